"""Write-behind saving on task.Clock against the in-memory store."""

from __future__ import annotations

import itertools
import math
from typing import Any

import attrs
import pytest
from twisted.internet import defer, task
from twisted.logger import LogLevel, capturedLogs

from cosmic.metrics import create as create_metrics
from cosmic.readiness import Readiness
from cosmic.store.memory import MemoryStore
from cosmic.store.records import BodyRecord, GardenRecord
from cosmic.store.writebehind import WriteBehind


def body(garden_id: int, body_id: int, px: float = 1.0) -> BodyRecord:
    return BodyRecord(garden_id, body_id, "asteroid", "rock", 1.0, 0.1, px, 0, 0, 0, 0, 0, 1, 5.0)


class World:
    """A stand-in for the game: live gardens with version counters."""

    def __init__(self) -> None:
        self.gardens: dict[int, GardenRecord] = {}
        self.bodies: dict[int, list[BodyRecord]] = {}
        self.versions: dict[int, int] = {}
        self.clean: dict[int, int] = {}
        self.snapshots = 0
        self.broken = False

    def adopt(self, record: GardenRecord) -> None:
        self.gardens[record.id] = record
        self.bodies[record.id] = []
        self.versions[record.id] = record.version
        self.clean[record.id] = record.version

    def change(self, garden_id: int, **fields: Any) -> None:
        self.versions[garden_id] += 1
        bodies = fields.pop("bodies", None)
        if bodies is not None:
            self.bodies[garden_id] = bodies
        self.gardens[garden_id] = attrs.evolve(self.gardens[garden_id], **fields)

    # the GardenSource protocol
    def dirty(self) -> list[tuple[int, int]]:
        if self.broken:
            raise RuntimeError("the world is broken")
        return [(g, v) for g, v in self.versions.items() if self.clean.get(g) != v]

    def snapshot(self, garden_id: int) -> tuple[GardenRecord, list[BodyRecord]] | None:
        self.snapshots += 1
        record = attrs.evolve(self.gardens[garden_id], version=self.versions[garden_id])
        return record, list(self.bodies[garden_id])

    def saved(self, garden_id: int, version: int) -> None:
        if self.versions.get(garden_id) == version:
            self.clean[garden_id] = version


class Harness:
    def __init__(self, gardens: int = 3, **kwargs: Any) -> None:
        self.clock = task.Clock()
        self.store = MemoryStore()
        self.world = World()
        self.metrics = create_metrics("t")
        self.readiness = Readiness(self.clock)
        owner = self.result(self.store.create_account("owner", "Owner", "h", 1.0))
        for i in range(gardens):
            self.world.adopt(
                self.result(self.store.create_garden(owner.id, f"g{i}", True, 1.0, {}))
            )
        options = dict(
            clock=self.clock,
            interval=5.0,
            batch_size=200,
            max_backoff=60.0,
            stop_timeout=30.0,
            metrics=self.metrics.store,
            readiness=self.readiness,
            rand=lambda: 0.0,
        )
        options.update(kwargs)
        self.writer = WriteBehind(self.store, self.world, **options)

    @staticmethod
    def result(d: defer.Deferred[Any]) -> Any:
        out: list[Any] = []
        d.addBoth(out.append)
        assert out, "not fired"
        if hasattr(out[0], "raiseException"):
            out[0].raiseException()
        return out[0]

    def stored(self, garden_id: int) -> tuple[GardenRecord, list[BodyRecord]]:
        return self.result(self.store.load_garden(garden_id))

    def check(self) -> Any:
        report = self.result(defer.ensureDeferred(self.readiness.report()))
        return report.checks["persistence"]

    def sample(self, name: str) -> float | None:
        return self.metrics.registry.get_sample_value(name)


def test_saves_changed_gardens_every_interval() -> None:
    h = Harness()
    h.writer.startService()
    h.world.change(1, game_time=10.0, bodies=[body(1, 1), body(1, 2)])
    h.world.change(1, game_time=11.0)
    h.clock.advance(4.9)
    assert h.stored(1)[0].version == 0
    h.clock.advance(0.1)
    record, bodies = h.stored(1)
    assert (record.version, record.game_time, len(bodies)) == (2, 11.0, 2)
    assert h.world.dirty() == []
    assert h.store.calls["save_gardens"] == 1
    h.clock.advance(5.0)  # nothing dirty: nothing written
    assert h.store.calls["save_gardens"] == 1
    assert h.sample("t_persistence_gardens_saved_total") == 1
    assert h.check().status == "ok"


def test_batches_of_save_batch_size() -> None:
    h = Harness(gardens=5, batch_size=2)
    h.writer.startService()
    for g in range(1, 6):
        h.world.change(g, total_mass=float(g))
    h.clock.advance(5.0)
    assert h.store.calls["save_gardens"] == 3
    assert [h.stored(g)[0].total_mass for g in range(1, 6)] == [1.0, 2.0, 3.0, 4.0, 5.0]


class SlowStore(MemoryStore):
    """save_gardens waits until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[defer.Deferred[None]] = []

    def save_gardens(self, snapshots: Any) -> defer.Deferred[Any]:
        gate: defer.Deferred[None] = defer.Deferred()
        self.waiting.append(gate)
        return gate.addCallback(lambda _: MemoryStore.save_gardens(self, snapshots))


def test_a_change_during_a_save_in_flight_is_not_lost() -> None:
    h = Harness()
    slow = SlowStore()
    owner = h.result(slow.create_account("o", "o", "h", 1.0))
    g = h.result(slow.create_garden(owner.id, "g", True, 1.0, {}))
    world = World()
    world.adopt(g)
    writer = WriteBehind(slow, world, clock=h.clock, interval=5.0, rand=lambda: 0.0)
    writer.startService()
    world.change(g.id, game_time=1.0)
    h.clock.advance(5.0)
    assert len(slow.waiting) == 1  # version 1 is being written
    world.change(g.id, game_time=2.0)  # version 2, meanwhile
    slow.waiting.pop().callback(None)
    assert h.result(slow.load_garden(g.id))[0].game_time == 1.0
    assert world.dirty() == [(g.id, 2)]  # still dirty: saved(…, 1) did not clean it
    h.clock.advance(5.0)
    slow.waiting.pop().callback(None)
    assert h.result(slow.load_garden(g.id))[0].game_time == 2.0
    assert world.dirty() == []


def test_store_outage_keeps_everything_and_retries_with_backoff() -> None:
    h = Harness()
    h.writer.startService()
    h.store.available = False
    h.world.change(1, game_time=1.0)
    h.world.change(2, game_time=2.0)
    with capturedLogs() as events:
        h.clock.advance(5.0)  # first attempt fails
        for _ in range(20):
            h.clock.advance(5.0)
    warnings = [e for e in events if e["log_level"] == LogLevel.warn]
    assert len(warnings) == 1  # one warning for the outage, not one per attempt
    attempts = h.store.calls["save_gardens"]
    # backoff (jitter off): 5, 10, 20, 40, 60, 60 ... seconds between attempts
    assert 4 <= attempts <= 6
    assert h.writer.failures == attempts
    check = h.check()
    assert check.status == "degraded"
    assert "2 gardens waiting to be saved" in check.detail
    assert "StoreUnavailable" in check.detail
    assert h.sample("t_persistence_backlog_gardens") == 2
    assert h.sample("t_persistence_flush_failures_total") == attempts
    assert sorted(h.world.dirty()) == [(1, 1), (2, 1)]
    h.world.change(1, game_time=1.5)  # keeps changing meanwhile
    h.store.available = True
    h.clock.advance(60.0)
    assert h.stored(1)[0].game_time == 1.5
    assert h.stored(2)[0].game_time == 2.0
    assert h.world.dirty() == []
    assert h.check().status == "ok"
    assert h.writer.failures == 0


def test_retry_delays_grow_and_are_capped() -> None:
    h = Harness(interval=1.0, max_backoff=8.0)
    h.writer.startService()
    h.store.available = False
    h.world.change(1, game_time=1.0)
    times = []
    for _ in range(80):
        before = h.store.calls["save_gardens"]
        h.clock.advance(1.0)
        if h.store.calls["save_gardens"] > before:
            times.append(h.clock.seconds())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[:4] == [1.0, 2.0, 4.0, 8.0]
    assert set(gaps[4:]) == {8.0}


def test_a_refused_garden_is_set_aside_and_the_others_saved() -> None:
    h = Harness()
    h.writer.startService()
    h.world.change(1, game_time=1.0)
    h.world.change(2, game_time=math.nan)  # a bug in the game
    h.world.change(3, game_time=3.0)
    with capturedLogs() as events:
        h.clock.advance(5.0)
    assert h.stored(1)[0].game_time == 1.0
    assert h.stored(3)[0].game_time == 3.0
    assert h.stored(2)[0].version == 0
    assert any(e["log_level"] == LogLevel.error and e.get("garden_id") == 2 for e in events)
    check = h.check()
    assert check.status == "degraded" and "refused" in check.detail
    assert h.sample("t_persistence_gardens_rejected_total") == 1
    h.clock.advance(5.0)  # unchanged: not tried again
    assert h.sample("t_persistence_gardens_rejected_total") == 1
    h.world.change(2, game_time=2.0)  # fixed
    h.clock.advance(5.0)
    assert h.stored(2)[0].game_time == 2.0
    assert h.check().status == "ok"


def test_a_deleted_garden_is_not_retried() -> None:
    h = Harness()
    h.writer.startService()
    h.world.change(1, game_time=1.0)
    h.result(h.store.delete_garden(1))
    with capturedLogs() as events:
        h.clock.advance(5.0)
    assert h.world.dirty() == []
    assert any("no longer exists" in e.get("log_format", "") for e in events)


def test_stop_flushes_everything() -> None:
    h = Harness()
    h.writer.startService()
    h.world.change(1, game_time=1.0)
    h.world.change(3, game_time=3.0)
    stopped = h.writer.stopService()
    assert h.result(stopped) is True
    assert h.stored(1)[0].game_time == 1.0
    assert h.stored(3)[0].game_time == 3.0


def test_stop_retries_until_the_store_is_back() -> None:
    h = Harness()
    h.writer.startService()
    h.world.change(1, game_time=1.0)
    h.store.available = False
    stopped = h.writer.stopService()
    h.clock.advance(1.0)
    assert not stopped.called
    h.store.available = True
    h.clock.advance(5.0)
    assert h.result(stopped) is True
    assert h.stored(1)[0].game_time == 1.0


def test_stop_gives_up_after_stop_timeout_and_says_what_is_lost() -> None:
    h = Harness(stop_timeout=10.0)
    h.writer.startService()
    h.world.change(2, game_time=1.0)
    h.store.available = False
    with capturedLogs() as events:
        stopped = h.writer.stopService()
        h.clock.advance(10.0)
    assert h.result(stopped) is False
    critical = [e for e in events if e["log_level"] == LogLevel.critical]
    assert len(critical) == 1 and critical[0]["ids"] == [2]


def test_a_failing_source_does_not_stop_the_loop() -> None:
    h = Harness()
    h.writer.startService()
    h.world.broken = True
    with capturedLogs():
        h.clock.advance(5.0)
        h.clock.advance(5.0)
    h.world.broken = False
    h.world.change(1, game_time=7.0)
    h.clock.advance(60.0)
    assert h.stored(1)[0].game_time == 7.0


def test_interval_can_change_on_reload() -> None:
    h = Harness()
    h.writer.startService()
    h.writer.set_interval(1.0)
    h.clock.advance(5.0)  # the tick already scheduled
    h.world.change(1, game_time=1.0)
    h.clock.advance(1.0)
    assert h.stored(1)[0].game_time == 1.0


@pytest.mark.parametrize("count", [0, 1, 450])
def test_flush_returns_how_many_were_saved(count: int) -> None:
    h = Harness(gardens=max(count, 1), batch_size=200)
    for g in range(1, count + 1):
        h.world.change(g, total_mass=1.0)
    assert h.result(h.writer.flush()) == count
    assert h.store.calls["save_gardens"] == math.ceil(count / 200)


def test_every_flush_refreshes_the_source_first() -> None:
    """A source with ``refresh`` brings its copies up to date before each
    flush reads them: a flush writes the state of its own moment."""
    h = Harness()
    pending: list[defer.Deferred[None]] = []
    h.world.refresh = lambda: pending.append(defer.Deferred()) or pending[-1]
    h.writer.startService()
    h.clock.advance(5.0)
    assert len(pending) == 1 and h.store.calls["save_gardens"] == 0  # waits for it
    h.world.change(1, game_time=42.0)  # what the refresh captures
    pending[0].callback(None)
    assert h.stored(1)[0].game_time == 42.0
    h.clock.advance(5.0)
    assert len(pending) == 2


def test_a_save_that_hangs_is_cut_off_at_stop_timeout_and_names_the_gardens() -> None:
    h = Harness(stop_timeout=10.0)
    h.writer.startService()
    h.world.change(1, game_time=1.0)
    h.world.change(3, game_time=3.0)
    hung: list[defer.Deferred[Any]] = []

    def never_answers(snapshots: Any) -> defer.Deferred[Any]:
        hung.append(defer.Deferred())
        return hung[-1]

    h.store.save_gardens = never_answers  # type: ignore[method-assign]
    with capturedLogs() as events:
        stopped = h.writer.stopService()
        h.clock.advance(9.9)
        assert not stopped.called
        h.clock.advance(0.1)
    assert h.result(stopped) is False
    assert len(hung) == 1 and not hung[0].called  # waited for, never cancelled
    critical = [e for e in events if e["log_level"] == LogLevel.critical]
    assert len(critical) == 1
    assert critical[0]["ids"] == [1, 3] and critical[0]["count"] == 2
    assert "waiting for the store" in critical[0]["why"]


def test_stop_timeout_counts_from_when_the_stop_began() -> None:
    h = Harness(stop_timeout=10.0)
    h.writer.startService()
    h.world.change(2, game_time=1.0)
    h.store.available = False
    h.writer.stopping()
    h.clock.advance(4.0)  # the sessions and the game loop stop first
    h.writer.stopping()  # a second call does not move the start
    with capturedLogs() as events:
        stopped = h.writer.stopService()
        h.clock.advance(5.9)
        assert not stopped.called
        h.clock.advance(0.1)
    assert h.result(stopped) is False
    critical = [e for e in events if e["log_level"] == LogLevel.critical]
    assert len(critical) == 1 and critical[0]["ids"] == [2] and critical[0]["timeout"] == 6.0
