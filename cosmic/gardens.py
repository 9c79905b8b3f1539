"""Garden ownership: the one place that loads, creates, saves and unloads gardens.

Everything that needs a garden in memory (the API, the WebSocket protocol,
the manhole) asks here.  Loading reads the store, then attaches the garden to
the world while no physics step holds it; unloading saves first.  When
several processes share a database later, the lease on a garden is taken
here too.

``capture`` copies every changed garden while the world is idle; the
write-behind saver, on its own timer and with its own retry and backoff,
calls ``refresh`` (a capture as soon as no physics step runs) at the start
of every flush and writes those copies.  So the saver never reads the live
world while a physics step runs in the worker thread, and a flush writes the
state of its own moment: a crash loses at most one interval.

A capture on the reactor thread only copies arrays and a few dicts (about
25-35 us a garden), and ``refresh`` captures ``capture_batch`` gardens per idle
moment, letting I/O and physics run in between.  Turning the copies into one
record per body (about 2.5 us a body: 125 ms for 1000 gardens of 50) is done
by ``refresh`` through ``run_in_thread``, or on first use of a snapshot.  The
copies share nothing with the live garden, so the records are those of the
capture's moment wherever they are built; each garden is consistent, and
gardens of one flush are captured at most a few ticks apart.

With a ``SnapshotCache``, loads of public gardens read the cache first.  The
first save of a garden after it was loaded that way (``saved``) and every
``forget`` invalidate its entry (while it stays loaded nothing caches it
again); an idle garden unloaded after its final save leaves that save's
snapshot in the cache for its next load.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from cosmic.game import persist
from cosmic.game.errors import InvalidCommand
from cosmic.game.garden import Garden
from cosmic.game.loop import GameLoop
from cosmic.game.world import World
from cosmic.store.cached import SnapshotCache
from cosmic.store.interface import Store
from cosmic.store.records import BodyRecord, GardenRecord

log = Logger(namespace="cosmic.gardens")

Snapshot = tuple[GardenRecord, Sequence[BodyRecord]]
RunInThread = Callable[[Callable[[], Any]], defer.Deferred[Any]]


class _Copy:
    """A garden as it was at a capture, not yet turned into records."""

    __slots__ = ("garden", "saved_at", "version", "view")

    def __init__(self, garden: Garden, view: Any, saved_at: float) -> None:
        self.version = garden.version
        self.saved_at = saved_at
        self.garden = copy.copy(garden)
        frozen = self.garden
        for name in ("resources", "rates", "upgrades"):
            setattr(frozen, name, dict(getattr(garden, name)))
        frozen.completed = list(garden.completed)
        frozen.research = copy.copy(garden.research)
        frozen.events = type(garden.events)()  # not persisted; not shared either
        frozen.bodies = _frozen_columns(garden.bodies)
        self.view = view._replace(
            **{f: v.copy() for f, v in view._asdict().items() if isinstance(v, np.ndarray)}
        )

    def records(self) -> Snapshot:
        return persist.to_records(self.garden, self.view, self.saved_at)


def _frozen_columns(columns: Any) -> Any:
    # The row-aligned columns without their spare capacity: a copy of each
    # visible column is all that to_records reads.
    frozen = copy.copy(columns)
    frozen.__dict__ = {
        name: value.copy() if isinstance(value, np.ndarray) else value
        for name, value in vars(columns).items()
        if not name.startswith("_")
    }
    frozen.names = dict(columns.names)
    return frozen


def _version(entry: Snapshot | _Copy) -> int:
    return entry.version if isinstance(entry, _Copy) else entry[0].version


class GardenNotFound(InvalidCommand):
    """No such garden in the store (or it is private and not yours)."""


class Gardens(service.Service):
    """Loader and write-behind source in one (see the module docstring)."""

    name = "gardens"

    def __init__(
        self,
        world: World,
        loop: GameLoop,
        store: Store,
        *,
        unload_after: float,
        snapshots: SnapshotCache | None = None,
        run_in_thread: RunInThread | None = None,
        capture_batch: int = 200,
    ) -> None:
        self.world = world
        self.loop = loop
        self.store = store
        self.unload_after = unload_after
        self.snapshots = snapshots
        self._run_in_thread = run_in_thread
        self.capture_batch = capture_batch
        self._loading: dict[int, list[defer.Deferred[None]]] = {}
        self._captured: dict[int, Snapshot | _Copy] = {}
        self._saved: dict[int, int] = {}  # garden id -> version the store has
        self._player_gardens: dict[int, int] = {}
        # Loaded through the snapshot cache and not saved since: only their
        # first save needs to invalidate (a loaded garden is not cached
        # again until it is unloaded), which spares a cache call per saved
        # garden on every flush.
        self._in_cache: set[int] = set()
        # Gardens of deleted accounts: a snapshot cached or put by a load or an
        # unload that raced the deletion must never bring one back.
        self._gone: set[int] = set()

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
        if garden_id in self._gone:
            raise GardenNotFound(f"no garden {garden_id}")
        if self.snapshots is None:
            found = await self.store.load_garden(garden_id)
        else:
            found = await self.snapshots.load(garden_id, lambda: self.store.load_garden(garden_id))
        if found is None or garden_id in self._gone:  # deleted while it loaded
            raise GardenNotFound(f"no garden {garden_id}")
        record, bodies = found
        garden, columns = persist.from_records(record, bodies)

        def attach() -> None:
            if garden_id not in self.world.gardens:
                self.world.attach(garden, columns, record.saved_at)
                self._saved[garden_id] = record.version
                if self.snapshots is not None:
                    # Only once attached: a garden that failed to load (or
                    # never existed) must not stay in this set.
                    self._in_cache.add(garden_id)
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
                snapshot = self.snapshot(garden_id)
                assert snapshot is not None
                return snapshot

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
        self._gone.add(garden_id)
        try:
            await self.loop.when_idle(lambda: self._drop(garden_id))
        finally:
            if self.snapshots is not None:
                await self.snapshots.invalidate(garden_id)

    def _drop(self, garden_id: int) -> None:
        if garden_id in self.world.gardens:
            self.world.detach(garden_id)
        self._captured.pop(garden_id, None)
        self._saved.pop(garden_id, None)
        self._in_cache.discard(garden_id)
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
            if captured is not None and _version(captured) == garden.version:
                continue
            view = self.world.buffers.garden(garden_id)
            self._captured[garden_id] = _Copy(garden, view, now)
            count += 1
        return count

    def refresh(self) -> defer.Deferred[int]:
        """Capture as soon as no physics step holds the world (before a save),
        then build the records of the copies off the reactor thread."""
        return defer.ensureDeferred(self._refresh())

    async def _refresh(self) -> int:
        everyone = list(self.world.gardens)
        count = 0
        for first in range(0, len(everyone), self.capture_batch):
            if first:
                # Let I/O and physics run between slices (copies cost about
                # 25-35 us a garden: one slice of 200 is 5-7 ms).
                await task.deferLater(self.loop.clock, 0, lambda: None)
            batch = everyone[first : first + self.capture_batch]
            count += await self.loop.when_idle(lambda batch=batch: self.capture(batch))
        copies = [c for c in self._captured.values() if isinstance(c, _Copy)]
        if not copies:
            return count

        def build() -> list[Snapshot]:
            return [c.records() for c in copies]

        if self._run_in_thread is None:
            built = build()
        else:
            try:
                built = await self._run_in_thread(build)
            except Exception:
                # No thread (a stopped pool at shutdown, say) must not cost
                # the final save.
                log.failure("building garden records in a thread failed; building them here")
                built = build()
        for made, records in zip(copies, built, strict=True):
            gid = made.garden.id
            if self._captured.get(gid) is made:  # not recaptured or saved meanwhile
                self._captured[gid] = records
        return count

    def dirty(self) -> list[tuple[int, int]]:
        return [(gid, _version(entry)) for gid, entry in self._captured.items()]

    def snapshot(self, garden_id: int) -> Snapshot | None:
        entry = self._captured.get(garden_id)
        if isinstance(entry, _Copy):
            entry = self._captured[garden_id] = entry.records()
        return entry

    def saved(self, garden_id: int, version: int) -> None:
        self._saved[garden_id] = max(version, self._saved.get(garden_id, -1))
        captured = self._captured.get(garden_id)
        if captured is not None and _version(captured) <= version:
            del self._captured[garden_id]
        if garden_id in self._in_cache and self.snapshots is not None:
            # The store changed (or may have): the next load must read it.
            self._in_cache.discard(garden_id)
            self.snapshots.invalidate(garden_id)

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
        snapshots = [s for s in (self.snapshot(g) for g in idle) if s is not None]
        final: dict[int, Snapshot] = {}
        if snapshots:
            result = await self.store.save_gardens(snapshots)
            for garden_id in result.saved:
                snapshot = next(s for s in snapshots if s[0].id == garden_id)
                self.saved(garden_id, snapshot[0].version)
                final[garden_id] = snapshot

        def unload() -> list[Snapshot]:
            still_idle = set(self.world.idle_gardens(self.unload_after))
            unloaded = []
            for garden_id in idle:
                if garden_id in still_idle and self.is_saved(garden_id):
                    kept = final.get(garden_id)
                    if (
                        kept is not None
                        and self.world.gardens[garden_id].version == kept[0].version
                    ):
                        unloaded.append(kept)
                    self._drop(garden_id)
                    log.info("unloaded idle garden {garden_id}", garden_id=garden_id)
            return unloaded

        unloaded = await self.loop.when_idle(unload)
        if self.snapshots is not None:
            # What the store now has: the garden's next load need not read it.
            # All at once: a put registers against invalidation only when it
            # starts, so one awaited after another could store a snapshot
            # older than a save made meanwhile.
            await defer.gatherResults(
                [
                    defer.ensureDeferred(self.snapshots.put(snapshot))
                    for snapshot in unloaded
                    if snapshot[0].id not in self._gone
                ],
                consumeErrors=True,
            )

    def stopService(self) -> None:
        # The game loop has stopped (it starts after this service): capture
        # the final state for the saver's last flush, which runs next.
        super().stopService()
        self.capture()
