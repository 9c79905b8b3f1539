"""Engine behaviour: selection, events, merges, validation, metrics, fallback."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import cosmic.metrics
from cosmic.physics import (
    G,
    InvalidBodyError,
    PhysicsEngine,
    PhysicsError,
    UnknownBodyError,
    load_kernels,
    reference,
)
from tests.unit.physics.physics_helpers import add_system, random_system

compiled = pytest.importorskip("cosmic.physics._kernels")


def _value(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0.0


# ------------------------------------------------------------------ selection
@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, "scalar"), (1, "scalar"), (15, "scalar"), (16, "direct"), (17, "direct"),
     (3999, "direct"), (4000, "tree"), (20000, "tree")],
)  # fmt: skip
def test_algorithm_by_body_count(n, expected):
    engine = PhysicsEngine(simd_threshold=16, tree_threshold=4000, implementation="compiled")
    assert engine.algorithm_for(n) == expected


def test_threshold_changes_at_runtime():
    engine = PhysicsEngine(implementation="compiled")
    assert engine.algorithm_for(20) == "direct"
    engine.configure(simd_threshold=32)  # what a SIGHUP reload does
    assert engine.algorithm_for(20) == "scalar"
    assert engine.algorithm_for(32) == "direct"


def test_openmp_only_when_enabled():
    engine = PhysicsEngine(implementation="compiled", tree_threshold=4000)
    assert engine.algorithm_for(3000) == "direct"
    assert not engine.openmp_active
    engine.configure(openmp=True, openmp_threshold=1000)
    if engine.openmp_active:
        assert engine.algorithm_for(3000) == "direct_omp"
        assert engine.algorithm_for(5000) == "tree_omp"
        assert engine.algorithm_for(500) == "direct"
    else:
        assert "OpenMP" in engine.openmp_reason
        assert engine.algorithm_for(3000) == "direct"


def test_bad_settings_are_rejected_together():
    engine = PhysicsEngine(implementation="compiled")
    with pytest.raises(ValueError, match="simd_threshold") as info:
        engine.configure(simd_threshold=0, theta=2.0)
    assert "theta" in str(info.value)
    assert engine.simd_threshold == 16  # nothing applied


@pytest.mark.parametrize("n", [15, 16, 17])
def test_threshold_boundary_gardens_match_reference(n):
    rng = np.random.default_rng(n)
    system = random_system(rng, n)
    engines = [PhysicsEngine(implementation=i) for i in ("compiled", "reference")]
    for engine in engines:
        add_system(engine, "g", *system)
        for _ in range(5):
            engine.step(1e-3)
    got, want = (e.bodies.garden("g") for e in engines)
    assert np.allclose(got.position, want.position, rtol=1e-12, atol=1e-12)
    assert np.allclose(got.velocity, want.velocity, rtol=1e-10, atol=1e-12)


def test_one_step_steps_gardens_of_every_size_by_algorithm():
    rng = np.random.default_rng(1)
    metrics = cosmic.metrics.create("test")
    engine = PhysicsEngine(tree_threshold=200, metrics=metrics.physics, implementation="compiled")
    sizes = {"empty": 0, "one": 1, "small": 5, "mid": 50, "big": 200}
    for k, (name, n) in enumerate(sizes.items()):
        add_system(engine, name, *random_system(rng, n), first_id=1000 * k)
    result = engine.step(1e-3)
    assert set(result.seconds) == {"scalar", "direct", "tree"}
    assert result.bodies == sum(sizes.values())
    reg = metrics.registry
    assert _value(reg, "test_physics_bodies_simulated_total", algorithm="scalar") == 6
    assert _value(reg, "test_physics_bodies_simulated_total", algorithm="direct") == 50
    assert _value(reg, "test_physics_bodies_simulated_total", algorithm="tree") == 200
    # First step: accelerations were stale, so the direct sum ran twice.
    assert _value(reg, "test_physics_pair_interactions_total", algorithm="direct") == 2 * 1225
    assert _value(reg, "test_physics_calculation_duration_seconds_count", algorithm="direct") == 1
    assert _value(reg, "test_physics_kernel_info", implementation="compiled") == 1
    engine.step(1e-3)
    assert _value(reg, "test_physics_pair_interactions_total", algorithm="direct") == 3 * 1225


def test_empty_engine_and_empty_garden_step():
    engine = PhysicsEngine(implementation="compiled")
    assert engine.step().bodies == 0
    engine.bodies.add_garden("g")
    result = engine.step()
    assert result.collisions == () and result.escapes == () and result.bodies == 0


def test_one_body_moves_in_a_straight_line():
    engine = PhysicsEngine(implementation="compiled")
    engine.bodies.add_garden("g")
    engine.bodies.add_body("g", 7, mass=1.0, radius=0.01, position=(1, 2, 3), velocity=(1, 0, -1))
    for _ in range(10):
        engine.step(0.5)
    view = engine.bodies.garden("g")
    assert np.allclose(view.position[:, 0], [6.0, 2.0, -2.0], rtol=1e-15)
    assert np.all(view.acceleration == 0.0)


def test_momentum_conserved_by_direct_sum():
    rng = np.random.default_rng(2)
    pos, vel, mass, _ = random_system(rng, 60)
    mass = 10.0 ** rng.uniform(-6, 0, size=60)
    engine = PhysicsEngine(implementation="compiled")
    add_system(engine, "g", pos, vel, mass, np.zeros(60))
    p0 = engine.momentum("g")
    for _ in range(200):
        engine.step(1e-3)
    scale = float(np.sum(mass[:, None] * np.abs(vel)))
    assert np.all(np.abs(engine.momentum("g") - p0) <= 1e-13 * scale)


# --------------------------------------------------------- collisions, merges
def test_overlapping_bodies_are_reported_and_merged():
    engine = PhysicsEngine(implementation="compiled")
    engine.bodies.add_garden("g")
    engine.bodies.add_body("g", 1, mass=1.0, radius=0.1, position=(0, 0, 0))
    engine.bodies.add_body(
        "g", 2, mass=1e-3, radius=0.05, position=(0.12, 0, 0), velocity=(0, 6, 0)
    )
    engine.bodies.add_body("g", 3, mass=1e-3, radius=0.01, position=(5, 0, 0), velocity=(0, 3, 0))
    result = engine.step(1e-5)
    assert [tuple(c) for c in result.collisions] == [("g", 1, 2)]
    merges = engine.merge_collisions(result.collisions)
    assert [tuple(m) for m in merges] == [("g", 1, 2)]
    assert engine.bodies.garden("g").ids.tolist() == [1, 3]
    assert engine.step(1e-5).collisions == ()


def test_merge_conserves_mass_momentum_and_volume():
    engine = PhysicsEngine(implementation="compiled")
    engine.bodies.add_garden("g")
    engine.bodies.add_body("g", 10, mass=2.0, radius=0.2, position=(1, 0, 0), velocity=(0, 1, 0))
    engine.bodies.add_body("g", 11, mass=3.0, radius=0.3, position=(0, 1, 0), velocity=(1, 0, 2))
    engine.bodies.add_body("g", 12, mass=1.0, radius=0.1, position=(9, 9, 9))
    v0 = engine.bodies.garden("g")
    mass0 = v0.mass.sum()
    momentum0 = v0.velocity @ v0.mass
    com0 = v0.position @ v0.mass / mass0
    merge = engine.merge("g", 10, 11)
    assert (merge.survivor, merge.absorbed) == (11, 10)  # the heavier keeps its identity
    v = engine.bodies.garden("g")
    assert v.ids.tolist() == [11, 12]
    assert v.mass.sum() == pytest.approx(mass0, rel=1e-15)
    assert np.allclose(v.velocity @ v.mass, momentum0, rtol=1e-15)
    assert np.allclose(v.position @ v.mass / v.mass.sum(), com0, rtol=1e-15)
    assert v.radius[0] ** 3 == pytest.approx(0.2**3 + 0.3**3, rel=1e-14)
    with pytest.raises(UnknownBodyError):
        engine.merge("g", 10, 12)
    with pytest.raises(PhysicsError):
        engine.merge("g", 12, 12)


def test_merge_tie_keeps_the_first_body():
    engine = PhysicsEngine(implementation="compiled")
    engine.bodies.add_garden("g")
    engine.bodies.add_body("g", 1, mass=1.0, radius=0.0, position=(0, 0, 0))
    engine.bodies.add_body("g", 2, mass=1.0, radius=0.0, position=(1, 0, 0))
    assert engine.merge("g", 2, 1).survivor == 2


def test_merged_reference_values():
    m, x, v, r = reference.merged(1.0, [0, 0, 0], [1, 0, 0], 1.0, 3.0, [4, 0, 0], [0, 1, 0], 2.0)
    assert m == 4.0
    assert x.tolist() == [3.0, 0.0, 0.0]
    assert v.tolist() == [0.25, 0.75, 0.0]
    assert r == pytest.approx(9.0 ** (1 / 3))


# -------------------------------------------------------------------- escapes
def test_escape_beyond_twice_the_garden_radius():
    engine = PhysicsEngine(implementation="compiled")
    engine.bodies.add_garden("g", radius=10.0, origin=(100, 0, 0))
    engine.bodies.add_body("g", 1, mass=1.0, radius=0.0, position=(100, 0, 0))
    engine.bodies.add_body("g", 2, mass=1e-9, radius=0.0, position=(119.9, 0, 0))  # inside 2R
    engine.bodies.add_body("g", 3, mass=1e-9, radius=0.0, position=(100, -20.5, 0))  # beyond
    result = engine.step(1e-6)
    assert [tuple(e) for e in result.escapes] == [("g", 3)]
    engine.bodies.remove_bodies("g", [e.body_id for e in result.escapes])
    assert engine.step(1e-6).escapes == ()


def test_events_name_the_right_garden_among_many():
    engine = PhysicsEngine(implementation="compiled")
    for k in range(5):
        engine.bodies.add_garden(k, radius=1.0)
        engine.bodies.add_body(k, 1, mass=1.0, radius=0.0, position=(0, 0, 0))
    engine.bodies.add_body(3, 2, mass=1e-9, radius=0.0, position=(2.5, 0, 0))
    engine.bodies.add_body(1, 9, mass=1e-9, radius=0.0, position=(0, 0, -3))
    result = engine.step(1e-6)
    assert sorted(tuple(e) for e in result.escapes) == [(1, 9), (3, 2)]


# ----------------------------------------------------------------- validation
BAD = [
    ("position", {"position": (np.nan, 0, 0)}),
    ("position", {"position": (0, np.inf, 0)}),
    ("velocity", {"velocity": (0, 0, -np.inf)}),
    ("velocity", {"velocity": (np.nan, 0, 0)}),
    ("mass", {"mass": 0.0}),
    ("mass", {"mass": -1.0}),
    ("mass", {"mass": np.nan}),
    ("mass", {"mass": np.inf}),
    ("radius", {"radius": -0.1}),
    ("radius", {"radius": np.nan}),
]


@pytest.mark.parametrize(("field", "bad"), BAD)
def test_invalid_bodies_are_rejected_before_the_kernel(field, bad):
    engine = PhysicsEngine(implementation="compiled")
    engine.bodies.add_garden("g")
    body = {"mass": 1.0, "radius": 0.1, "position": (1, 0, 0), "velocity": (0, 1, 0)}
    body.update(bad)
    with pytest.raises(InvalidBodyError) as info:
        engine.bodies.add_body("g", 42, **body)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field and info.value.body_id == 42
    assert field in str(info.value) and "42" in str(info.value)
    assert engine.bodies.body_count("g") == 0


def test_batch_add_names_the_first_bad_body_and_adds_nothing():
    engine = PhysicsEngine(implementation="compiled")
    engine.bodies.add_garden("g")
    mass = np.array([1.0, 2.0, -3.0, 4.0])
    with pytest.raises(InvalidBodyError, match="body 30: mass"):
        engine.bodies.add_bodies(
            "g", [10, 20, 30, 40], mass=mass, radius=np.zeros(4),
            position=np.zeros((4, 3)), velocity=np.zeros((4, 3)),
        )  # fmt: skip
    assert engine.bodies.body_count("g") == 0


def test_bad_dt_is_rejected():
    engine = PhysicsEngine(implementation="compiled")
    with pytest.raises(ValueError, match="dt"):
        engine.step(float("nan"))
    with pytest.raises(ValueError, match="dt"):
        PhysicsEngine(dt=-1.0)


# -------------------------------------------------------------------- fallback
def test_reference_fallback_when_the_compiled_module_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "cosmic.physics._kernels", None)  # import fails
    module, implementation, reason = load_kernels()
    assert module is reference and implementation == "reference"
    assert "unavailable" in reason
    metrics = cosmic.metrics.create("fb")
    engine = PhysicsEngine(metrics=metrics.physics)
    assert engine.implementation == "reference"
    assert engine.algorithm_for(5000) == "reference"
    assert _value(metrics.registry, "fb_physics_kernel_info", implementation="reference") == 1
    engine.bodies.add_garden("g")
    engine.bodies.add_body("g", 1, mass=1.0, radius=0.0, position=(0, 0, 0))
    engine.bodies.add_body("g", 2, mass=1e-3, radius=0.0, position=(1, 0, 0), velocity=(0, 6, 0))
    assert set(engine.step().seconds) == {"reference"}


def test_stale_compiled_module_is_not_used(monkeypatch):
    class Stale:
        __pythran__ = ("0.19.0", "0" * 64)
        __file__ = "_kernels.so"

    monkeypatch.setitem(sys.modules, "cosmic.physics._kernels", Stale)
    _, implementation, reason = load_kernels()
    assert implementation == "reference" and "stale" in reason


def test_compiled_energy_matches_reference_energy_function():
    engine = PhysicsEngine(softening=0.01, implementation="compiled")
    engine.bodies.add_garden("g")
    engine.bodies.add_body("g", 1, mass=2.0, radius=0.0, position=(0, 0, 0), velocity=(0, 0, 0))
    engine.bodies.add_body("g", 2, mass=1.0, radius=0.0, position=(3, 4, 0), velocity=(1, 0, 0))
    assert engine.energy("g") == pytest.approx(0.5 * 1.0 - G * 2.0 / np.sqrt(25.0001), rel=1e-14)
