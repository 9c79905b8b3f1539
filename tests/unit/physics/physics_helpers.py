"""Shared set-ups for the physics tests (plain functions, no fixtures magic)."""

from __future__ import annotations

import numpy as np

from cosmic.physics import G


def kepler_pair(*, a: float = 1.0, e: float = 0.1, m1: float = 1.0, m2: float = 1e-3):
    """Two bodies on a Kepler orbit, at pericentre, in the centre-of-mass frame.

    Returns ``(positions (2, 3), velocities (2, 3), masses (2,), period)``.
    """
    total = m1 + m2
    r = a * (1.0 - e)
    v = np.sqrt(G * total * (1.0 + e) / (a * (1.0 - e)))
    rel_x = np.array([r, 0.0, 0.0])
    rel_v = np.array([0.0, v, 0.0])
    pos = np.array([-m2 / total * rel_x, m1 / total * rel_x])
    vel = np.array([-m2 / total * rel_v, m1 / total * rel_v])
    period = 2.0 * np.pi * np.sqrt(a**3 / (G * total))
    return pos, vel, np.array([m1, m2]), period


def random_system(rng: np.random.Generator, n: int, *, spread: float = 10.0):
    """n bodies: positions (n, 3), velocities (n, 3), masses, radii."""
    pos = rng.normal(scale=spread, size=(n, 3))
    vel = rng.normal(scale=0.5, size=(n, 3))
    mass = 10.0 ** rng.uniform(-9, -3, size=n)
    radius = rng.uniform(0.0, 1e-3, size=n)
    return pos, vel, mass, radius


def add_system(engine, garden_id, pos, vel, mass, radius, *, first_id: int = 1, **garden_kw):
    """Add a garden holding the given bodies (ids first_id, first_id + 1, ...)."""
    engine.bodies.add_garden(garden_id, **garden_kw)
    ids = np.arange(first_id, first_id + len(mass), dtype=np.int64)
    engine.bodies.add_bodies(garden_id, ids, mass=mass, radius=radius, position=pos, velocity=vel)
    return ids
