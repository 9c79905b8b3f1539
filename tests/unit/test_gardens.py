"""The garden loader and write-behind source, with the in-memory store."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from cosmic.game.commands import CreateBody
from cosmic.game.loop import GameLoop
from cosmic.gardens import GardenNotFound, Gardens
from cosmic.store.memory import MemoryStore
from cosmic.store.writebehind import WriteBehind
from tests.unit.game.conftest import make_world, step


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
