"""The resource pass in slices: each garden once per interval, by the interval."""

from __future__ import annotations

import collections

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from cosmic.game import rules
from cosmic.game.commands import BuyUpgrade, CreateBody
from cosmic.game.loop import GameLoop
from cosmic.game.world import World
from tests.unit.game.conftest import OWNER, make_world

INTERVAL = 2.0  # not the slice interval, not 1: a wrong dt shows


def populate(world: World, first: int, count: int) -> None:
    """Gardens whose rates differ: some asteroids, some dust upgrades."""
    for garden_id in range(first, first + count):
        world.create_garden(garden_id, OWNER, f"g{garden_id}")
        world.garden(garden_id).credit({"cosmic_dust": 1e5})
        for k in range(garden_id % 3):
            # Opposite ends of one circle: they never meet, so physics
            # cannot change what they produce.
            position = (3.0 * (-1) ** k, 0.0, 0.0)
            world.apply_command(CreateBody(garden_id, OWNER, "asteroid", position=position))
        for _ in range(garden_id % 2):
            world.apply_command(BuyUpgrade(garden_id, OWNER, "cosmic_dust"))


class Recorder:
    """Wraps World._resource_tick to log (garden id, dt) per advance."""

    def __init__(self, world: World) -> None:
        self.calls: list[tuple[int, float]] = []
        inner = world._resource_tick

        def recorded(garden, dt):
            self.calls.append((garden.id, dt))
            return inner(garden, dt)

        world._resource_tick = recorded

    def per_garden(self) -> collections.Counter:
        return collections.Counter(garden_id for garden_id, _ in self.calls)


def looped(world: World, slices: int = 10) -> tuple[GameLoop, Clock]:
    clock = Clock()
    loop = GameLoop(
        world,
        tps=20,
        resource_interval=INTERVAL,
        slices=slices,
        clock=clock,
        run_in_thread=defer.maybeDeferred,
    )
    loop.startService()
    return loop, clock


def run(clock: Clock, seconds: float, step: float = 0.05) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)
    clock.advance(step / 2)


def test_a_slice_advances_only_its_gardens() -> None:
    world, _ = make_world()
    populate(world, 1, 7)
    recorder = Recorder(world)
    world.resource_tick_slice(1, 3, INTERVAL)
    assert recorder.calls == [(2, INTERVAL), (5, INTERVAL)]  # slots 1 and 4
    for index in (0, 2):
        world.resource_tick_slice(index, 3, INTERVAL)
    assert recorder.per_garden() == dict.fromkeys(range(1, 8), 1)


def test_every_garden_once_per_interval_with_the_whole_interval() -> None:
    world, _ = make_world()
    populate(world, 1, 23)  # not a multiple of the slice count
    recorder = Recorder(world)
    _, clock = looped(world)
    run(clock, INTERVAL / 10)
    # The first slice: slot 0 modulo 10, a tenth of the gardens, not all.
    assert recorder.calls == [(1, INTERVAL), (11, INTERVAL), (21, INTERVAL)]
    run(clock, INTERVAL - INTERVAL / 10)
    assert recorder.per_garden() == dict.fromkeys(range(1, 24), 1)
    assert {dt for _, dt in recorder.calls} == {INTERVAL}
    run(clock, 2 * INTERVAL)
    assert recorder.per_garden() == dict.fromkeys(range(1, 24), 3)


def test_production_over_time_is_what_the_unsliced_pass_gives() -> None:
    sliced, _ = make_world()
    whole, _ = make_world()
    for world in (sliced, whole):
        populate(world, 1, 13)
    _, clock = looped(sliced)
    intervals = 15
    run(clock, intervals * INTERVAL)
    for _ in range(intervals):
        whole.resource_tick(INTERVAL)
    for garden_id in range(1, 14):
        got, want = sliced.garden(garden_id), whole.garden(garden_id)
        assert got.resources == pytest.approx(want.resources, rel=1e-12)
        assert got.rates == want.rates
    # What is compared is real production, not two zeros.
    asteroids = 2 * rules.KINDS["asteroid"].dust_per_second
    assert whole.garden(2).rates["cosmic_dust"] == rules.BASE_DUST_PER_SECOND + asteroids
    assert whole.garden(2).resources["energy"] == pytest.approx(intervals * INTERVAL * 1.0)


def test_a_garden_added_mid_cycle_is_advanced_within_one_interval() -> None:
    world, _ = make_world()
    populate(world, 1, 4)
    recorder = Recorder(world)
    _, clock = looped(world)
    run(clock, 0.7 * INTERVAL)
    populate(world, 10, 3)  # seven slices into the cycle; slots 4, 5, 6
    dust = {g: world.garden(g).resources["cosmic_dust"] for g in (10, 11, 12)}
    rates = {g: world._rates(world.garden(g))["cosmic_dust"] for g in (10, 11, 12)}
    recorder.calls.clear()
    run(clock, INTERVAL)
    counts = recorder.per_garden()
    assert {g: counts[g] for g in (10, 11, 12)} == dict.fromkeys((10, 11, 12), 1)
    for g in (10, 11, 12):
        assert world.garden(g).resources["cosmic_dust"] == pytest.approx(
            dust[g] + rates[g] * INTERVAL
        )


def test_a_reloaded_interval_is_sliced_too() -> None:
    world, _ = make_world()
    populate(world, 1, 5)
    recorder = Recorder(world)
    loop, clock = looped(world, slices=5)
    loop.set_rates(resources=1.0)
    assert loop.rates["resources"].interval == pytest.approx(0.2)
    run(clock, 3.0)
    assert recorder.per_garden() == dict.fromkeys(range(1, 6), 3)
    assert {dt for _, dt in recorder.calls} == {1.0}


def test_slices_must_be_positive() -> None:
    world, _ = make_world()
    with pytest.raises(ValueError, match="slices"):
        GameLoop(world, tps=20, slices=0, clock=Clock(), run_in_thread=defer.maybeDeferred)


def test_slices_follow_gardens_that_leave_and_arrive() -> None:
    world, _ = make_world()
    populate(world, 1, 6)
    recorder = Recorder(world)
    world.resource_tick_slice(0, 3, INTERVAL)  # slots 0 and 3: gardens 1 and 4
    world.detach(4)
    populate(world, 20, 1)  # slot 6: slice 0 again
    recorder.calls.clear()
    world.resource_tick_slice(0, 3, INTERVAL)
    assert recorder.calls == [(1, INTERVAL), (20, INTERVAL)]
