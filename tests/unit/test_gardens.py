"""The garden loader and write-behind source, with the in-memory store."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from cosmic.cache.interface import CacheView
from cosmic.cache.memory import MemoryCache
from cosmic.cache.resilient import ResilientCache
from cosmic.game import persist
from cosmic.game.commands import CreateBody, SetPublic
from cosmic.game.loop import GameLoop
from cosmic.gardens import GardenNotFound, Gardens
from cosmic.metrics import create as create_metrics
from cosmic.store.cached import SnapshotCache
from cosmic.store.memory import MemoryStore
from cosmic.store.writebehind import WriteBehind
from tests.unit.cache.test_resilient import Flaky
from tests.unit.game.conftest import make_world, rich, step


class Harness:
    def __init__(self) -> None:
        self.world, self.now = make_world()
        self.clock = Clock()
        self.loop = GameLoop(
            self.world, tps=60, clock=self.clock, run_in_thread=defer.maybeDeferred
        )
        self.store = MemoryStore()
        self.gardens = Gardens(self.world, self.loop, self.store, unload_after=300.0)
        self.writer = WriteBehind(self.store, self.gardens, clock=self.clock, interval=5.0)

    async def account(self, name: str = "ada") -> int:
        record = await self.store.create_account(name, name, "hash", self.now())
        return record.id

    async def stored(self, garden_id: int) -> tuple[Any, list]:
        return await self.store.load_garden(garden_id)


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest_twisted.ensureDeferred
async def test_first_use_creates_and_saves_the_garden(h: Harness) -> None:
    player = await h.account()
    garden_id = await h.gardens.garden_for(player, "Eden")
    assert garden_id in h.world.gardens
    assert await h.gardens.garden_for(player, "ignored") == garden_id
    record, bodies = await h.stored(garden_id)
    assert [b.kind for b in bodies] == ["star"]  # saved at once, not at the next flush
    assert record.state["resources"]["cosmic_dust"] == 500
    assert h.gardens.is_saved(garden_id)


@pytest_twisted.ensureDeferred
async def test_capture_flush_and_reload(h: Harness) -> None:
    player = await h.account()
    garden_id = await h.gardens.garden_for(player, "Eden")
    h.world.apply_command(CreateBody(garden_id, player, "asteroid"))
    step(h.world, 30)
    assert not h.gardens.is_saved(garden_id)
    assert h.gardens.capture() == 1
    assert h.gardens.dirty() == [(garden_id, h.world.garden(garden_id).version)]
    await h.writer.flush()
    assert h.gardens.is_saved(garden_id)
    assert h.gardens.dirty() == []
    before = h.world.snapshot(garden_id)
    h.world.detach(garden_id)
    await h.gardens.ensure_loaded(garden_id)
    after = h.world.snapshot(garden_id)
    assert after["bodies"]["position"].tolist() == before["bodies"]["position"].tolist()
    assert after["resources"] == before["resources"]


@pytest_twisted.ensureDeferred
async def test_a_change_during_a_save_stays_dirty(h: Harness) -> None:
    player = await h.account()
    garden_id = await h.gardens.garden_for(player, "Eden")
    step(h.world)
    h.gardens.capture()
    saving = h.writer.flush()
    step(h.world)  # changes after the capture
    await saving
    assert not h.gardens.is_saved(garden_id)
    h.gardens.capture()
    await h.writer.flush()
    assert h.gardens.is_saved(garden_id)


@pytest_twisted.ensureDeferred
async def test_concurrent_loads_share_one_read(h: Harness) -> None:
    player = await h.account()
    garden_id = await h.gardens.garden_for(player, "Eden")
    h.world.detach(garden_id)
    reads = h.store.calls["load_garden"]
    await defer.gatherResults(
        [defer.ensureDeferred(h.gardens.ensure_loaded(garden_id)) for _ in range(5)]
    )
    assert h.store.calls["load_garden"] == reads + 1
    with pytest.raises(GardenNotFound):
        await h.gardens.ensure_loaded(999)


@pytest_twisted.ensureDeferred
async def test_cleanup_saves_then_unloads_idle_gardens(h: Harness) -> None:
    player = await h.account()
    garden_id = await h.gardens.garden_for(player, "Eden")
    other = await h.gardens.garden_for(await h.account("bob"), "Avalon")
    h.world.apply_command(CreateBody(garden_id, player, "comet"))
    h.now.value += 301.0
    h.world.watch(other)
    await h.gardens.cleanup()
    assert garden_id not in h.world.gardens
    assert other in h.world.gardens
    _, bodies = await h.stored(garden_id)
    assert sorted(b.kind for b in bodies) == ["comet", "star"]
    assert await h.gardens.garden_for(player, "Eden") == garden_id  # found in the store


@pytest_twisted.ensureDeferred
async def test_stop_captures_the_final_state_for_the_last_flush(h: Harness) -> None:
    player = await h.account()
    garden_id = await h.gardens.garden_for(player, "Eden")
    h.world.apply_command(CreateBody(garden_id, player, "asteroid"))
    h.gardens.startService()
    h.writer.startService()
    h.gardens.stopService()
    assert await h.writer.stopService() is True
    _, bodies = await h.stored(garden_id)
    assert len(bodies) == 2


# -- capture off the reactor thread ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_capture_is_a_copy_of_its_moment(h: Harness) -> None:
    player = await h.account()
    garden_id = await h.gardens.garden_for(player, "Eden")
    rich(h.world, garden_id)
    h.world.apply_command(CreateBody(garden_id, player, "asteroid"))
    step(h.world, 5)
    then = persist.to_records(
        h.world.garden(garden_id), h.world.buffers.garden(garden_id), h.world.now()
    )
    h.gardens.capture()
    h.world.apply_command(CreateBody(garden_id, player, "comet"))  # after the capture
    step(h.world, 30)
    h.world.garden(garden_id).resources["cosmic_dust"] += 1.0
    h.world.garden(garden_id).bodies.level[0] += 1  # in place, as upgrades do
    assert h.gardens.snapshot(garden_id) == then


@pytest_twisted.ensureDeferred
async def test_refresh_builds_the_records_in_the_thread(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    players = [await h.account(f"p{i}") for i in range(3)]
    ids = [await h.gardens.garden_for(p, "Eden") for p in players]
    step(h.world, 2)
    where: list[str] = []
    place = ["reactor"]
    real = persist.to_records

    def to_records(*args: Any) -> Any:
        where.append(place[0])
        return real(*args)

    def in_thread(work: Any) -> defer.Deferred[Any]:
        place[0] = "thread"
        try:
            return defer.succeed(work())
        finally:
            place[0] = "reactor"

    monkeypatch.setattr(persist, "to_records", to_records)
    h.gardens._run_in_thread = in_thread
    assert await h.gardens.refresh() == 3
    assert where == ["thread"] * 3
    assert {gid for gid, _ in h.gardens.dirty()} == set(ids)
    await h.writer.flush()
    assert where == ["thread"] * 3  # the saver found them built
    assert all(h.gardens.is_saved(gid) for gid in ids)


@pytest_twisted.ensureDeferred
async def test_refresh_captures_a_slice_at_a_time_letting_the_reactor_run(h: Harness) -> None:
    ids = [await h.gardens.garden_for(await h.account(f"p{i}"), "Eden") for i in range(5)]
    step(h.world)
    h.gardens.capture_batch = 2
    refreshing = h.gardens.refresh()
    assert len(h.gardens.dirty()) == 2  # the first slice, then a turn of the reactor
    assert not refreshing.called
    h.clock.advance(0)
    assert await refreshing == 5
    assert {gid for gid, _ in h.gardens.dirty()} == set(ids)


# -- the "snapshots" cache ------------------------------------------------------------------


class Cached(Harness):
    def __init__(self, cache: Any = None) -> None:
        super().__init__()
        self.metrics = create_metrics("t")
        self.cache = cache if cache is not None else MemoryCache(100, clock=self.clock)
        view = CacheView(self.cache, "snapshots", self.metrics.cache)
        self.gardens.snapshots = SnapshotCache(view, 30.0)

    async def public_garden(self, name: str = "ada") -> tuple[int, int]:
        player = await self.account(name)
        garden_id = await self.gardens.garden_for(player, "Eden")
        self.world.apply_command(SetPublic(garden_id, player, True))
        self.gardens.capture()
        await self.writer.flush()
        return player, garden_id

    async def reload(self, garden_id: int) -> None:
        await self.loop.when_idle(lambda: self.world.detach(garden_id))
        await self.gardens.ensure_loaded(garden_id)

    def reads(self) -> int:
        return self.store.calls["load_garden"]

    def counted(self, result: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "t_cache_requests_total", {"cache": "snapshots", "result": result}
        )


@pytest_twisted.ensureDeferred
async def test_a_public_garden_is_loaded_from_the_cache() -> None:
    c = Cached()
    _, garden_id = await c.public_garden()
    before = c.reads()
    await c.reload(garden_id)  # a miss: read and cached
    expected = c.world.snapshot(garden_id)
    await c.reload(garden_id)
    await c.reload(garden_id)
    assert c.reads() == before + 1
    assert (c.counted("hit"), c.counted("miss")) == (2, 1)
    got = c.world.snapshot(garden_id)
    assert got["bodies"]["position"].tolist() == expected["bodies"]["position"].tolist()
    assert got["garden"]["public"] is True


@pytest_twisted.ensureDeferred
async def test_a_save_invalidates_so_no_stale_snapshot_is_loaded() -> None:
    c = Cached()
    player, garden_id = await c.public_garden()
    await c.reload(garden_id)  # cached now
    c.world.apply_command(CreateBody(garden_id, player, "comet"))
    c.gardens.capture()
    await c.writer.flush()
    before = c.reads()
    await c.reload(garden_id)
    assert c.reads() == before + 1  # the store, not the old entry
    assert len(c.world.buffers.garden(garden_id).ids) == 2  # star and comet


@pytest_twisted.ensureDeferred
async def test_a_private_garden_never_comes_from_the_cache() -> None:
    c = Cached()
    player, garden_id = await c.public_garden()
    await c.reload(garden_id)
    assert len(c.cache) == 1
    c.world.apply_command(SetPublic(garden_id, player, False))  # made private
    c.gardens.capture()
    await c.writer.flush()
    assert len(c.cache) == 0  # the save of the change invalidated it
    before = c.reads()
    for _ in range(3):
        await c.reload(garden_id)
        assert c.world.snapshot(garden_id)["garden"]["public"] is False
    assert c.reads() == before + 3 and len(c.cache) == 0
    assert c.counted("hit") is None or c.counted("hit") == 0


@pytest_twisted.ensureDeferred
async def test_an_unloaded_idle_garden_leaves_its_final_save_cached() -> None:
    c = Cached()
    player, garden_id = await c.public_garden()
    c.world.apply_command(CreateBody(garden_id, player, "comet"))
    c.now.value += 301.0
    await c.gardens.cleanup()
    assert garden_id not in c.world.gardens
    before = c.reads()
    await c.gardens.ensure_loaded(garden_id)
    assert c.reads() == before  # the cache had exactly what was saved
    assert len(c.world.buffers.garden(garden_id).ids) == 2
    _, stored = await c.stored(garden_id)
    assert len(stored) == 2


@pytest_twisted.ensureDeferred
async def test_forget_invalidates() -> None:
    c = Cached()
    _, garden_id = await c.public_garden()
    await c.reload(garden_id)
    assert len(c.cache) == 1
    await c.store.delete_garden(garden_id)
    await c.gardens.forget(garden_id)
    assert len(c.cache) == 0
    with pytest.raises(GardenNotFound):
        await c.gardens.ensure_loaded(garden_id)


@pytest_twisted.ensureDeferred
async def test_loads_fall_back_to_the_store_when_the_cache_is_down() -> None:
    clock = Clock()
    flaky = Flaky(clock)
    c = Cached(ResilientCache(flaky, clock=clock))
    _, garden_id = await c.public_garden()
    flaky.up = False
    before = c.reads()
    with capturedLogs():
        for _ in range(3):
            await c.reload(garden_id)
    assert c.reads() == before + 3
    assert garden_id in c.world.gardens


@pytest_twisted.ensureDeferred
async def test_only_the_first_save_after_a_cached_load_invalidates() -> None:
    class Counting(MemoryCache):
        deletes = 0

        def delete(self, key):  # type: ignore[override]
            Counting.deletes += 1
            return super().delete(key)

    c = Cached(Counting(100, clock=Clock()))
    _, garden_id = await c.public_garden()
    assert Counting.deletes == 0  # never loaded through the cache: nothing to drop
    await c.reload(garden_id)
    for _ in range(3):
        step(c.world, 5)
        c.gardens.capture()
        await c.writer.flush()
        assert c.gardens.is_saved(garden_id)
    assert Counting.deletes == 1
    assert len(c.cache) == 0


@pytest_twisted.ensureDeferred
async def test_a_garden_that_does_not_load_is_not_remembered_as_cached() -> None:
    c = Cached()
    for missing in range(1000, 1050):  # anyone may ask for any garden id
        with pytest.raises(GardenNotFound):
            await c.gardens.ensure_loaded(missing)
    assert c.gardens._in_cache == set()


@pytest_twisted.ensureDeferred
async def test_a_deleted_garden_never_comes_back_from_a_snapshot_put_meanwhile() -> None:
    c = Cached()
    _, garden_id = await c.public_garden()
    stored = await c.stored(garden_id)
    await c.store.delete_garden(garden_id)
    await c.gardens.forget(garden_id)
    # A put that raced the deletion (an unload in flight) left its snapshot.
    await c.gardens.snapshots.put(stored)
    assert len(c.cache) == 1
    with pytest.raises(GardenNotFound):
        await c.gardens.ensure_loaded(garden_id)
    assert garden_id not in c.world.gardens
