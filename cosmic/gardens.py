"""Garden ownership: the one place that loads, creates, saves and unloads gardens.

Everything that needs a garden in memory (the API, the WebSocket protocol,
the manhole) asks here.  Loading reads the store, then attaches the garden to
the world while no physics step holds it; unloading saves first.  When
several processes share a database later, the lease on a garden is taken
here too.

``capture`` copies every changed garden into records while the world is
idle; the write-behind saver, on its own timer and with its own retry and
backoff, calls ``refresh`` (a capture as soon as no physics step runs) at
the start of every flush and writes those copies.  So the saver never reads
the live world while a physics step runs in the worker thread, and a flush
writes the state of its own moment: a crash loses at most one interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from cosmic.game import persist
from cosmic.game.errors import InvalidCommand
from cosmic.game.loop import GameLoop
from cosmic.game.world import World
from cosmic.store.interface import Store
from cosmic.store.records import BodyRecord, GardenRecord

log = Logger(namespace="cosmic.gardens")

Snapshot = tuple[GardenRecord, Sequence[BodyRecord]]


class GardenNotFound(InvalidCommand):
    """No such garden in the store (or it is private and not yours)."""


class Gardens(service.Service):
    """Loader and write-behind source in one (see the module docstring)."""

    name = "gardens"

    def __init__(self, world: World, loop: GameLoop, store: Store, *, unload_after: float) -> None:
        self.world = world
        self.loop = loop
        self.store = store
        self.unload_after = unload_after
        self._loading: dict[int, list[defer.Deferred[None]]] = {}
        self._captured: dict[int, Snapshot] = {}
        self._saved: dict[int, int] = {}  # garden id -> version the store has
        self._player_gardens: dict[int, int] = {}

    # -- loading ------------------------------------------------------------------

    async def ensure_loaded(self, garden_id: int) -> None:
        """Load the garden unless it is in memory; concurrent callers share one load."""
        if garden_id in self.world.gardens:
            return
        waiter: defer.Deferred[None] = defer.Deferred()
        waiters = self._loading.get(garden_id)
        if waiters is not None:
            waiters.append(waiter)
        else:
            # Registered before the load starts: it may finish synchronously.
            self._loading[garden_id] = [waiter]
            defer.ensureDeferred(self._load(garden_id)).addBoth(self._loaded, garden_id)
        await waiter

    def _loaded(self, result: Any, garden_id: int) -> None:
        for waiter in self._loading.pop(garden_id):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)

    async def _load(self, garden_id: int) -> None:
        found = await self.store.load_garden(garden_id)
        if found is None:
            raise GardenNotFound(f"no garden {garden_id}")
        record, bodies = found
        garden, columns = persist.from_records(record, bodies)

        def attach() -> None:
            if garden_id not in self.world.gardens:
                self.world.attach(garden, columns, record.saved_at)
                self._saved[garden_id] = record.version
                log.info(
                    "loaded garden {garden_id} ({bodies} bodies)",
                    garden_id=garden_id,
                    bodies=len(bodies),
                )

        await self.loop.when_idle(attach)

    async def garden_for(self, player_id: int, name: str) -> int:
        """The player's garden id, creating the garden on first use."""
        known = self._player_gardens.get(player_id)
        if known is not None:
            return known
        owned = await self.store.gardens_of(player_id)
        if owned:
            garden_id = owned[0].id
        else:
            now = self.world.now()
            record = await self.store.create_garden(player_id, name, False, now, {})
            garden_id = record.id

            def create() -> Snapshot:
                if garden_id not in self.world.gardens:
                    self.world.create_garden(garden_id, player_id, name)
                self.capture([garden_id])
                return self._captured[garden_id]

            # Saved at once: a crash before the first flush must not leave
            # an empty garden row behind.
            snapshot = await self.loop.when_idle(create)
            result = await self.store.save_gardens([snapshot])
            if garden_id in result.saved:
                self.saved(garden_id, snapshot[0].version)
            log.info(
                "created garden {garden_id} for player {player_id}",
                garden_id=garden_id,
                player_id=player_id,
            )
        self._player_gardens[player_id] = garden_id
        return garden_id

    async def forget(self, garden_id: int) -> None:
        """Drop a garden the store no longer has (a deleted account's)."""

        await self.loop.when_idle(lambda: self._drop(garden_id))

    def _drop(self, garden_id: int) -> None:
        if garden_id in self.world.gardens:
            self.world.detach(garden_id)
        self._captured.pop(garden_id, None)
        self._saved.pop(garden_id, None)
        for player, owned in list(self._player_gardens.items()):
            if owned == garden_id:
                del self._player_gardens[player]

    # -- the write-behind source -------------------------------------------------------

    def capture(self, garden_ids: Sequence[int] | None = None) -> int:
        """Copy changed gardens into records; call only while the world is idle."""
        now = self.world.now()
        count = 0
        for garden_id in garden_ids if garden_ids is not None else list(self.world.gardens):
            garden = self.world.gardens.get(garden_id)
            if garden is None or garden.version == self._saved.get(garden_id):
                continue
            captured = self._captured.get(garden_id)
            if captured is not None and captured[0].version == garden.version:
                continue
            view = self.world.buffers.garden(garden_id)
            self._captured[garden_id] = persist.to_records(garden, view, now)
            count += 1
        return count

    def refresh(self) -> defer.Deferred[int]:
        """Capture as soon as no physics step holds the world (before a save)."""
        return self.loop.when_idle(self.capture)

    def dirty(self) -> list[tuple[int, int]]:
        return [(gid, snap[0].version) for gid, snap in self._captured.items()]

    def snapshot(self, garden_id: int) -> Snapshot | None:
        return self._captured.get(garden_id)

    def saved(self, garden_id: int, version: int) -> None:
        self._saved[garden_id] = max(version, self._saved.get(garden_id, -1))
        captured = self._captured.get(garden_id)
        if captured is not None and captured[0].version <= version:
            del self._captured[garden_id]

    def is_saved(self, garden_id: int) -> bool:
        garden = self.world.gardens.get(garden_id)
        return garden is None or garden.version == self._saved.get(garden_id)

    # -- loop hooks ----------------------------------------------------------------

    async def cleanup(self) -> None:
        """Save and unload the gardens nobody has watched for ``unload_after``."""
        idle = self.world.idle_gardens(self.unload_after)
        if not idle:
            return
        self.capture(idle)
        snapshots = [self._captured[g] for g in idle if g in self._captured]
        if snapshots:
            result = await self.store.save_gardens(snapshots)
            for garden_id in result.saved:
                version = next(s[0].version for s in snapshots if s[0].id == garden_id)
                self.saved(garden_id, version)

        def unload() -> None:
            still_idle = set(self.world.idle_gardens(self.unload_after))
            for garden_id in idle:
                if garden_id in still_idle and self.is_saved(garden_id):
                    self._drop(garden_id)
                    log.info("unloaded idle garden {garden_id}", garden_id=garden_id)

        await self.loop.when_idle(unload)

    def stopService(self) -> None:
        # The game loop has stopped (it starts after this service): capture
        # the final state for the saver's last flush, which runs next.
        super().stopService()
        self.capture()
