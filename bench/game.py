"""Game tick cost against gardens and bodies, and memory per body.

    .venv/bin/python bench/game.py [--json FILE] [--quick]

For each (gardens, bodies per garden) the world is filled with asteroids on
circular orbits around each garden's star, then timed: one physics tick
(prepare + kernel step + finish, with collisions and escapes applied) and one
resource tick (life, production, research).  Figures are the median of
repeated ticks, with the minimum beside it (the machine has 2 noisy cores).
Memory per body counts the physics buffers plus the game's columns (array
bytes, capacity included) and, separately, what tracemalloc saw allocated
while the gardens were built (Python objects included).  Beside it, the
layout the structure-of-arrays design replaces: one Python object per body
(``__slots__``, the same fields: id, kind, name, mass, radius, position and
velocity as 3-tuples, level, created_at, life stage, population), measured
the same way, as the "traditional" baseline for the seed's memory claim.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cosmic.game import rules
from cosmic.game.commands import CreateBody
from cosmic.game.world import World
from cosmic.physics.engine import PhysicsEngine

OWNER = 1


def spots(n: int) -> list[tuple[float, float, float]]:
    """n grid points 0.5 AU apart between 2 and 60 AU from the star, nearest first."""
    side = 2 * math.ceil((3 * n / (4 * math.pi)) ** (1 / 3)) + 10
    grid = [
        (0.5 * i, 0.5 * j, 0.5 * k)
        for i in range(-side, side + 1)
        for j in range(-side, side + 1)
        for k in range(-4, 5)
    ]
    grid = [p for p in grid if 2.0 <= math.dist(p, (0, 0, 0)) <= 60.0]
    grid.sort(key=lambda p: math.dist(p, (0, 0, 0)))
    return grid[:n]


def build(gardens: int, bodies: int) -> World:
    """Each garden: its star plus asteroids and comets (their caps allow 2000)."""
    engine = PhysicsEngine()
    world = World(engine, now=time.time, seed=7)
    places = spots(bodies - 1)
    for gid in range(1, gardens + 1):
        garden = world.create_garden(gid, OWNER, f"g{gid}")
        garden.credit({"cosmic_dust": 1e12})
        for k, place in enumerate(places):
            kind = "asteroid" if k < rules.KINDS["asteroid"].cap else "comet"
            world.apply_command(CreateBody(gid, OWNER, kind, position=place))
    return world


def time_ticks(world: World, repeat: int) -> dict[str, float]:
    physics, resources = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        job = world.prepare_step(1 / 60)
        job.run()
        world.finish_step(job)
        physics.append(time.perf_counter() - started)
    for _ in range(max(repeat // 10, 3)):
        started = time.perf_counter()
        world.resource_tick(1.0)
        resources.append(time.perf_counter() - started)
    return {
        "physics_ms_median": statistics.median(physics) * 1e3,
        "physics_ms_min": min(physics) * 1e3,
        "resources_ms_median": statistics.median(resources) * 1e3,
        "resources_ms_min": min(resources) * 1e3,
    }


def memory_per_body(gardens: int, bodies: int) -> dict[str, float]:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    world = build(gardens, bodies)
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    total = world.buffers.total_bodies
    b = world.buffers
    physics_bytes = sum(a.nbytes for a in (b.pos, b.vel, b.acc, b.mass, b.radius, b.ids))
    columns = sum(g.bodies.nbytes() for g in world.gardens.values())
    return {
        "bodies": total,
        "array_bytes_per_body": (physics_bytes + columns) / total,
        "traced_bytes_per_body": traced / total,
    }


class ObjectBody:
    """One body as one Python object: the baseline the SoA buffers replace."""

    __slots__ = (
        "created_at",
        "id",
        "kind",
        "level",
        "mass",
        "name",
        "population",
        "position",
        "radius",
        "stage",
        "velocity",
    )

    def __init__(self, i: int, place: tuple[float, float, float]) -> None:
        self.id = i
        self.kind = "asteroid"
        self.name = f"asteroid-{i}"
        self.mass = 1e-9 * (1.0 + i % 7)
        self.radius = 1e-5 * (1.0 + i % 5)
        self.position = (place[0] + 1e-3 * i, place[1], place[2])
        self.velocity = (0.1 * place[1], -0.1 * place[0] + 1e-4 * i, 0.0)
        self.level = 1
        self.created_at = 1.7e9 + i
        self.stage = "none"
        self.population = 0.0


def object_bytes_per_body(gardens: int, bodies: int) -> float:
    """tracemalloc bytes per body for ``gardens`` lists of ``ObjectBody``."""
    places = spots(bodies)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = [
        [ObjectBody(g * bodies + k, place) for k, place in enumerate(places)]
        for g in range(gardens)
    ]
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert sum(len(g) for g in held) == gardens * bodies
    return traced / (gardens * bodies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = parser.parse_args()
    sizes = [(1, 50), (100, 50), (1000, 50), (10, 500), (1, 2000)]
    repeat = 20 if args.quick else 100
    if args.quick:
        sizes = [(1, 50), (100, 50), (10, 500)]
    engine = PhysicsEngine()
    results = {"implementation": engine.implementation, "ticks": [], "memory": []}
    print(f"kernels: {engine.implementation}; median (min) of {repeat} ticks")
    print(f"{'gardens':>8} {'bodies':>7} {'physics ms':>18} {'resources ms':>18}")
    for gardens, bodies in sizes:
        world = build(gardens, bodies)
        figures = time_ticks(world, repeat)
        results["ticks"].append({"gardens": gardens, "bodies_per_garden": bodies, **figures})
        print(
            f"{gardens:>8} {bodies:>7} "
            f"{figures['physics_ms_median']:>9.3f} ({figures['physics_ms_min']:6.3f}) "
            f"{figures['resources_ms_median']:>9.3f} ({figures['resources_ms_min']:6.3f})"
        )
    print(
        f"\n{'gardens':>8} {'bodies':>7} {'array B/body':>13} {'traced B/body':>14} "
        f"{'objects B/body':>15} {'arrays/objects':>15}  (target <= 200)"
    )
    for gardens, bodies in [(1, 2000), (1000, 50)]:
        figures = memory_per_body(gardens, bodies)
        figures["object_bytes_per_body"] = object_bytes_per_body(gardens, bodies)
        figures["arrays_vs_objects"] = (
            figures["array_bytes_per_body"] / figures["object_bytes_per_body"]
        )
        results["memory"].append({"gardens": gardens, "bodies_per_garden": bodies, **figures})
        print(
            f"{gardens:>8} {bodies:>7} {figures['array_bytes_per_body']:>13.0f} "
            f"{figures['traced_bytes_per_body']:>14.0f} "
            f"{figures['object_bytes_per_body']:>15.0f} {figures['arrays_vs_objects']:>15.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
