from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from cosmic.game import rules
from cosmic.game.world import World
from cosmic.physics.engine import PhysicsEngine

OWNER = 7


class Now:
    """A settable wall clock for the world (seconds since the epoch)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value


def make_world(seed: int = 0, implementation: str | None = None) -> tuple[World, Now]:
    now = Now()
    engine = PhysicsEngine(implementation=implementation)
    return World(engine, now=now, seed=seed), now


def rich(world: World, garden_id: int = 1, amount: float = 1e9) -> None:
    world.garden(garden_id).credit(dict.fromkeys(rules.RESOURCES, amount))


def step(world: World, ticks: int = 1, dt: float = 1 / 60) -> None:
    for _ in range(ticks):
        job = world.prepare_step(dt)
        job.run()
        world.finish_step(job)


def fingerprint(world: World, garden_id: int = 1) -> dict[str, Any]:
    """Everything a command could change, compared by value."""
    g = world.garden(garden_id)
    view = world.buffers.garden(garden_id)
    return copy.deepcopy(
        {
            "resources": g.resources,
            "upgrades": g.upgrades,
            "completed": g.completed,
            "research": None if g.research is None else (g.research.name, g.research.remaining),
            "seq": g.seq,
            "version": g.version,
            "public": g.public,
            "names": g.bodies.names,
            "next_body_id": g.next_body_id,
            "ids": view.ids.tolist(),
            "kind": g.bodies.kind.tolist(),
            "level": g.bodies.level.tolist(),
            "mass": view.mass.tolist(),
            "pos": view.position.tolist(),
            "vel": view.velocity.tolist(),
            "radius": view.radius.tolist(),
            # Placement draws from it: a failed command must not move it on.
            "rng": g.rng.getstate(),
        }
    )


@pytest.fixture
def world() -> World:
    w, _ = make_world()
    w.create_garden(1, OWNER, "home")
    return w


@pytest.fixture
def clocked() -> tuple[World, Now]:
    w, now = make_world()
    w.create_garden(1, OWNER, "home")
    return w, now


def total_mass(world: World, garden_id: int = 1) -> float:
    return float(np.sum(world.buffers.garden(garden_id).mass))
