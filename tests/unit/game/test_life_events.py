"""The player hears when life stalls, resumes, dies out or is wiped by a merger."""

from __future__ import annotations

from cosmic.game import events, rules
from cosmic.game.commands import CreateBody
from tests.unit.game.conftest import OWNER, rich, step

PLANT = rules.LIFE_BY_NAME["plant"].code


def living_planet(world, position=(1.1, 0.0, 0.0), velocity=None) -> int:
    rich(world)
    body = world.apply_command(CreateBody(1, OWNER, "planet", position, velocity))["body"]
    cols = world.garden(1).bodies
    row = cols.row(body["id"])
    cols.stage[row], cols.population[row] = PLANT, 5e6
    return body["id"]


def move(world, body_id: int, position) -> None:
    view = world.buffers.garden(1)
    view.position[:, world.garden(1).bodies.row(body_id)] = position
    world.buffers.touch(1)


def evolutions(world, since: int) -> list[dict]:
    return [e["data"] for e in world.delta(1, since)["events"] if e["type"] == events.EVOLUTION]


def test_leaving_the_zone_is_told_once_then_the_extinction(world) -> None:
    planet = living_planet(world)
    seq = world.garden(1).seq
    world.resource_tick(1.0)
    assert evolutions(world, seq) == []  # in the zone: nothing to tell
    move(world, planet, (6.0, 0.0, 0.0))
    for _ in range(int(rules.LIFE_STALL_SECONDS) - 1):
        world.resource_tick(1.0)
    assert evolutions(world, seq) == [
        {"body_id": planet, "stage": "plant", "previous": "plant", "reason": "stalled"}
    ]
    world.resource_tick(1.0)
    assert evolutions(world, seq)[1:] == [
        {"body_id": planet, "stage": "none", "previous": "plant", "reason": "extinct"}
    ]


def test_coming_back_into_the_zone_is_told(world) -> None:
    planet = living_planet(world)
    move(world, planet, (6.0, 0.0, 0.0))
    seq = world.garden(1).seq
    world.resource_tick(1.0)
    move(world, planet, (1.1, 0.0, 0.0))
    world.resource_tick(1.0)
    world.resource_tick(1.0)
    assert [e["reason"] for e in evolutions(world, seq)] == ["stalled", "resumed"]
    assert world.body(world.garden(1), planet)["life_stage"] == "plant"


def test_a_merger_that_makes_a_gas_giant_wipes_life_with_an_event(world) -> None:
    # Two heavy planets on a collision course, far from the star.
    planet = living_planet(world, position=(40.0, 0.0, 0.0), velocity=(0.0, 0.0, 0.0))
    other = world.apply_command(
        CreateBody(1, OWNER, "planet", (40.3, 0.0, 0.0), (-30.0, 0.0, 0.0))
    )["body"]
    view = world.buffers.garden(1)
    cols = world.garden(1).bodies
    view.mass[cols.row(planet)] = 9.5 * rules.EARTH_MASS  # the heavier survives
    world.buffers.touch(1)
    seq = world.garden(1).seq
    for _ in range(600):
        step(world)
        if cols.row(other["id"]) is None:
            break
    survivor = world.body(world.garden(1), planet)
    assert survivor["kind"] == "gas_giant"
    assert (survivor["life_stage"], survivor["population"]) == ("none", 0.0)
    assert evolutions(world, seq) == [
        {
            "body_id": planet,
            "stage": "none",
            "previous": "plant",
            "reason": "merger",
            "kind": "gas_giant",
        }
    ]
    types = [e["type"] for e in world.delta(1, seq)["events"]]
    assert types[-2:] == [events.EVOLUTION, events.LEVEL_UP]
