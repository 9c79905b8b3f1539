"""The game loop service driven by task.Clock and a fake world."""

from __future__ import annotations

import collections
import threading
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher

from cosmic.game.loop import GameLoop, QueueFull
from cosmic.metrics import create as create_metrics


class Job:
    def __init__(self, world: FakeWorld, dt: float) -> None:
        self.world = world
        self.dt = dt

    def run(self) -> None:
        self.world.journal.append(("run", self.dt))
        if self.world.fail_step:
            raise RuntimeError("kernel exploded")


class FakeWorld:
    def __init__(self) -> None:
        self.journal: list[tuple[str, Any]] = []
        self.fail_step = False
        self.fail_resources = False

    def apply_command(self, command: Any) -> Any:
        self.journal.append(("command", command))
        if command == "bad":
            raise ValueError("bad command")
        return f"done:{command}"

    def prepare_step(self, dt: float) -> Job:
        self.journal.append(("prepare", dt))
        return Job(self, dt)

    def finish_step(self, job: Job) -> None:
        self.journal.append(("finish", job.dt))

    def resource_tick_slice(self, index: int, slices: int, dt: float) -> None:
        self.journal.append(("resources", (index, slices, dt)))
        if self.fail_resources:
            raise RuntimeError("resource bug")

    def load(self) -> dict[str, int]:
        return {"gardens": 3, "bodies": 42}

    def count(self, kind: str) -> int:
        return sum(1 for entry in self.journal if entry[0] == kind)

    def slices(self) -> list[tuple[int, int, float]]:
        return [entry[1] for entry in self.journal if entry[0] == "resources"]


class Thread:
    """Stands in for the worker thread: a step completes when the test says."""

    def __init__(self, manual: bool = False) -> None:
        self.manual = manual
        self.pending: list[tuple[Any, defer.Deferred]] = []

    def __call__(self, f: Any) -> defer.Deferred:
        if not self.manual:
            return defer.maybeDeferred(f)
        d: defer.Deferred = defer.Deferred()
        self.pending.append((f, d))
        return d

    def complete(self) -> None:
        f, d = self.pending.pop(0)
        defer.maybeDeferred(f).chainDeferred(d)


def make_loop(thread: Thread | None = None, **kwargs: Any) -> tuple[GameLoop, FakeWorld, Clock]:
    clock = Clock()
    world = FakeWorld()
    loop = GameLoop(world, tps=60, clock=clock, run_in_thread=thread or Thread(), **kwargs)
    return loop, world, clock


def advance(clock: Clock, seconds: float, step: float) -> None:
    """Advance in small steps, ending half a step past ``seconds`` so that a
    tick due exactly at the end is not lost to float rounding."""
    for _ in range(round(seconds / step)):
        clock.advance(step)
    clock.advance(step / 2)


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_tick_counts_at_each_rate() -> None:
    hooks = {"broadcast": 0, "flush": 0, "cleanup": 0}

    def hook(name: str):
        return lambda: hooks.__setitem__(name, hooks[name] + 1)

    loop, world, clock = make_loop()
    loop.add_hook("broadcast", 0.1, hook("broadcast"))
    loop.add_hook("flush", 5.0, hook("flush"))
    loop.add_hook("cleanup", 30.0, hook("cleanup"))
    loop.startService()
    advance(clock, 60.0, 1 / 240)
    assert world.count("finish") == 3600
    # Ten slices a second, each slice once a second, each a whole second.
    slices = world.slices()
    assert len(slices) == 600
    assert collections.Counter(index for index, _, _ in slices) == dict.fromkeys(range(10), 60)
    assert {(n, dt) for _, n, dt in slices} == {(10, 1.0)}
    assert [index for index, _, _ in slices[:12]] == [*range(10), 0, 1]
    assert hooks == {"broadcast": 600, "flush": 12, "cleanup": 2}
    assert all(r.overruns == 0 for r in loop.rates.values())


def test_commands_apply_in_order_at_the_start_of_the_next_tick() -> None:
    loop, world, clock = make_loop()
    loop.startService()
    results = [loop.submit(name) for name in ("a", "b", "bad", "c")]
    assert world.count("command") == 0
    clock.advance(1 / 60)
    commands = [entry for entry in world.journal if entry[0] in ("command", "prepare")]
    assert commands == [
        ("command", "a"),
        ("command", "b"),
        ("command", "bad"),
        ("command", "c"),
        ("prepare", 1 / 60),
    ]
    outcomes: list[Any] = []
    for d in results:
        d.addBoth(outcomes.append)
    assert outcomes[0] == "done:a"
    assert outcomes[2].check(ValueError)
    assert outcomes[3] == "done:c"


def test_full_queue_refuses_instead_of_growing() -> None:
    loop, _world, clock = make_loop(queue_size=2)
    loop.startService()
    loop.submit("a")
    loop.submit("b")
    refused = loop.submit("c")
    failures: list[Any] = []
    refused.addErrback(failures.append)
    assert failures[0].check(QueueFull)
    assert len(loop.queue) == 2
    clock.advance(1 / 60)
    assert len(loop.queue) == 0
    loop.submit("d").addCallback(failures.append)


def test_a_slow_step_is_an_overrun_not_a_pile_up(logged) -> None:
    thread = Thread(manual=True)
    metrics = create_metrics("t")
    loop, world, clock = make_loop(thread, metrics=metrics.game)
    loop.startService()
    clock.advance(1 / 60)
    assert world.count("prepare") == 1
    for _ in range(5):  # the step is still running: no new step starts
        clock.advance(1 / 60)
    clock.advance(0.5 / 60)
    assert world.count("prepare") == 1
    thread.complete()
    assert world.count("finish") == 1
    clock.advance(1 / 60)
    assert world.count("prepare") == 2
    assert loop.rates["physics"].overruns == 5
    overruns = "t_game_tick_overruns_total"
    assert metrics.registry.get_sample_value(overruns, {"loop": "physics"}) == 5
    assert metrics.registry.get_sample_value(overruns, {"loop": "resources"}) is None
    warning = next(e for e in logged if e.get("log_level") == LogLevel.warn)
    assert warning["missed"] == 5
    assert (warning["gardens"], warning["bodies"]) == (3, 42)


def test_the_world_waits_while_a_step_holds_it() -> None:
    thread = Thread(manual=True)
    loop, _world, clock = make_loop(thread)
    loop.startService()
    clock.advance(1 / 60)
    seen: list[str] = []
    loop.when_idle(lambda: seen.append("broadcast"))
    assert seen == []
    thread.complete()
    assert seen == ["broadcast"]
    loop.when_idle(lambda: seen.append("now"))
    assert seen == ["broadcast", "now"]


def test_a_tick_that_raises_is_logged_counted_and_the_loop_goes_on(logged) -> None:
    loop, world, clock = make_loop()
    loop.startService()
    world.fail_step = True
    world.fail_resources = True
    advance(clock, 1.0, 1 / 240)
    world.fail_step = False
    world.fail_resources = False
    advance(clock, 1.0, 1 / 240)
    assert loop.rates["physics"].errors == 60
    assert loop.rates["resources"].errors == 10
    assert world.count("finish") == 60
    assert world.count("resources") == 20
    failures = [e for e in logged if e.get("log_failure") is not None]
    assert {e["loop"] for e in failures} == {"physics", "resources"}


def test_rates_change_while_running() -> None:
    loop, world, clock = make_loop()
    loop.startService()
    advance(clock, 1.0, 1 / 240)
    assert world.count("finish") == 60
    loop.set_rates(tps=30)
    advance(clock, 1.0, 1 / 240)
    assert world.count("finish") == 90


def drive(clock: Clock, thread: Thread, seconds: float, step: float = 1 / 240) -> None:
    """``advance``, with the "worker thread" finishing each step at once."""
    for _ in range(round(seconds / step)):
        clock.advance(step)
        while thread.pending:
            thread.complete()
    clock.advance(step / 2)


def test_a_rate_change_while_ticks_are_in_flight_applies_from_the_next_tick() -> None:
    thread = Thread(manual=True)
    loop, world, clock = make_loop(thread)
    broadcasts: list[float] = []
    loop.add_hook("broadcast", 0.1, lambda: broadcasts.append(clock.seconds()))
    loop.startService()
    clock.advance(1 / 60)  # the first step starts and does not finish
    clock.advance(0.1 - 1 / 60)  # the broadcast and a resource slice wait for it
    assert (world.count("prepare"), broadcasts, world.slices()) == (1, [], [])
    loop.set_rates(tps=30, resources=2.0, broadcast=0.05)
    thread.complete()
    assert world.count("finish") == 1 and len(broadcasts) == 1
    assert world.slices() == [(0, 10, 1.0)]  # that slice was due under the old rate
    # One pending call per rate: a restarted LoopingCall left behind would
    # be a second one (and tick on after stop).
    assert len(clock.getDelayedCalls()) == 3
    assert loop.rates["resources"].interval == pytest.approx(0.2)

    # A quarter interval past the end: a tick a hair late (float time) still counts.
    drive(clock, thread, 1.0 + 1 / 120)
    assert world.count("finish") == 1 + 30
    assert len(broadcasts) == 1 + 20
    assert world.slices()[1:] == [(i, 10, 2.0) for i in range(1, 6)]
    assert all(r.overruns == 0 and r.errors == 0 for r in loop.rates.values())

    stopped = loop.stopService()
    assert stopped.called
    assert clock.getDelayedCalls() == []
    drive(clock, thread, 1.0)  # nothing left to tick, nothing raises
    assert world.count("prepare") == 31 and len(broadcasts) == 21


def test_a_rate_change_then_stop_while_a_step_is_in_flight() -> None:
    thread = Thread(manual=True)
    loop, world, clock = make_loop(thread)
    loop.startService()
    clock.advance(1 / 60)
    loop.set_rates(tps=30)
    stopped = loop.stopService()
    assert not stopped.called
    thread.complete()
    assert stopped.called
    assert clock.getDelayedCalls() == []
    drive(clock, thread, 1.0)
    assert world.count("prepare") == 1


def test_resource_slices_missed_by_an_overrun_run_late_not_never() -> None:
    thread = Thread(manual=True)
    loop, world, clock = make_loop(thread)
    loop.startService()
    clock.advance(1 / 60)
    for _ in range(80):  # a step of a third of a second: slices 1 and 2 come due meanwhile
        clock.advance(1 / 240)
    thread.complete()
    assert [index for index, _, _ in world.slices()] == [0]
    drive(clock, thread, 0.1 - 1 / 240)  # the late tick catches up
    assert [index for index, _, _ in world.slices()] == [0, 1, 2, 3]
    assert loop.rates["resources"].overruns == 2
    drive(clock, thread, 0.6)
    assert [index for index, _, _ in world.slices()] == [*range(10)]


def test_stop_waits_for_the_step_in_flight() -> None:
    thread = Thread(manual=True)
    loop, world, clock = make_loop(thread)
    loop.startService()
    clock.advance(1 / 60)
    stopped = loop.stopService()
    assert not stopped.called
    thread.complete()
    assert stopped.called
    clock.advance(1.0)
    assert world.count("prepare") == 1


@pytest_twisted.ensureDeferred
async def test_steps_run_in_one_dedicated_worker_thread() -> None:
    from twisted.internet import reactor

    threads_seen: set[int] = set()
    stepped: defer.Deferred = defer.Deferred()

    class ThreadWorld(FakeWorld):
        def finish_step(self, job: Job) -> None:
            super().finish_step(job)
            if self.count("finish") == 5 and not stepped.called:
                stepped.callback(None)

    class ThreadJob(Job):
        def run(self) -> None:
            threads_seen.add(threading.get_ident())

    world = ThreadWorld()
    world.prepare_step = lambda dt: ThreadJob(world, dt)
    loop = GameLoop(world, tps=200, clock=reactor, reactor=reactor)
    loop.startService()
    try:
        await stepped.addTimeout(10, reactor)
    finally:
        await loop.stopService()
    assert len(threads_seen) == 1
    assert threading.get_ident() not in threads_seen
