"""Two-body Kepler orbit: period, energy and momentum through the engine."""

from __future__ import annotations

import numpy as np
import pytest

from cosmic.physics import PhysicsEngine
from tests.unit.physics.physics_helpers import kepler_pair

STEPS = 10_000
STEPS_PER_ORBIT = 2_500


def _engine(algorithm: str) -> PhysicsEngine:
    if algorithm == "reference":
        return PhysicsEngine(softening=0.0, implementation="reference")
    # Two bodies are below the default threshold (scalar); threshold 1 forces direct.
    threshold = 1 if algorithm == "direct" else 16
    engine = PhysicsEngine(softening=0.0, simd_threshold=threshold, implementation="compiled")
    assert engine.algorithm_for(2) == algorithm
    return engine


def _run_orbit(algorithm: str):
    pos, vel, mass, period = kepler_pair(a=1.0, e=0.1)
    engine = _engine(algorithm)
    engine.bodies.add_garden("g")
    for k in range(2):
        engine.bodies.add_body(
            "g", k + 1, mass=mass[k], radius=0.0, position=pos[k], velocity=vel[k]
        )
    dt = period / STEPS_PER_ORBIT
    e0 = engine.energy("g")
    p0 = engine.momentum("g")
    worst = 0.0
    crossings = []
    view = engine.bodies.garden("g")
    rel_y = view.position[1, 1] - view.position[1, 0]
    for k in range(STEPS):
        engine.step(dt)
        view = engine.bodies.garden("g")
        y = view.position[1, 1] - view.position[1, 0]
        if rel_y < 0.0 <= y:  # crossing the pericentre direction, going up
            crossings.append((k + rel_y / (rel_y - y)) * dt)
        rel_y = y
        if k % 10 == 0:
            worst = max(worst, abs(engine.energy("g") - e0) / abs(e0))
    drift = abs(engine.energy("g") - e0) / abs(e0)
    return period, np.diff(crossings), max(worst, drift), engine.momentum("g") - p0, mass, vel


@pytest.mark.parametrize("algorithm", ["scalar", "direct", "reference"])
def test_kepler_orbit_period_energy_and_momentum(algorithm):
    if algorithm != "reference":
        pytest.importorskip("cosmic.physics._kernels")
    period, periods, energy_error, dp, mass, vel = _run_orbit(algorithm)
    assert len(periods) >= 2  # four orbits: crossings after orbits 1, 2 and 3
    assert np.all(np.abs(periods - period) / period < 1e-3)
    assert energy_error <= 1e-6
    scale = float(np.sum(mass[:, None] * np.abs(vel)))
    assert np.all(np.abs(dp) <= 1e-13 * scale)
