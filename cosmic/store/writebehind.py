"""Write-behind saving of changed gardens.

The game owns the live gardens and gives this saver a *source*:

* ``dirty() -> list[(garden_id, version)]``: gardens changed since saved;
* ``snapshot(garden_id) -> (GardenRecord, list[BodyRecord]) | None``: an
  immutable copy of the garden now (its ``version`` included; None if the
  garden is no longer in memory).  It must not share mutable objects (the
  state dict) with the live garden: the save reads it after the call;
* ``saved(garden_id, version)``: the store has that version; the source marks
  the garden clean only if its version is still ``version``;
* optionally ``refresh() -> Deferred``: bring the copies up to date; every
  flush awaits it first, so that what a flush writes is at most as old as
  the flush itself (a kill loses at most one interval, not two).

Every ``database.flush_interval`` (a LoopingCall on the injected clock) the
saver snapshots the dirty gardens a batch of ``database.save_batch_size`` at
a time and writes each batch with one ``store.save_gardens`` call.  A change
made while a save is in flight bumps the version, so ``saved`` leaves the
garden dirty and the next flush writes it again: nothing is lost.

When the store fails, the gardens stay dirty, the next attempt waits an
exponential backoff with jitter (at least one interval, at most
``max_backoff``), readiness says degraded with the backlog, and the metrics
count failures.  A garden the store refuses (``InvalidValue``: a NaN from a
bug, a name too long) is set aside, logged and counted, while the others
are saved; it is tried again once its version changes.

``stopService`` stops the loop and runs ``flush_all``: repeated flushes
until nothing is dirty or ``stop_timeout`` passes.  Stop the game loop
first, so that nothing changes during the final flush.  The deadline also
ends a save that hangs (a database that stopped answering): the gardens not
saved are logged then, before the root's ``server.shutdown_timeout`` ends
the process, so ``stop_timeout`` must be shorter than that.  Call
``stopping()`` when the daemon's stop begins (the root's ``on_stopping``) to
count ``stop_timeout`` from there rather than from this service's turn.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from cosmic.metrics import StoreMetrics
from cosmic.readiness import Check, Readiness
from cosmic.store.backoff import Backoff
from cosmic.store.errors import InvalidValue
from cosmic.store.interface import Store
from cosmic.store.records import BodyRecord, GardenRecord

log = Logger(namespace="cosmic.store.writebehind")

# Retries of the final flush at stop: quicker than the running backoff.
STOP_BACKOFF = Backoff(initial=0.25, maximum=5.0)


class GardenSource(Protocol):
    def dirty(self) -> Sequence[tuple[int, int]]: ...

    def snapshot(self, garden_id: int) -> tuple[GardenRecord, Sequence[BodyRecord]] | None: ...

    def saved(self, garden_id: int, version: int) -> None: ...


class WriteBehind(service.Service):
    name = "persistence"

    def __init__(
        self,
        store: Store,
        source: GardenSource,
        *,
        clock: Any = None,
        interval: float = 5.0,
        batch_size: int = 200,
        max_backoff: float = 60.0,
        stop_timeout: float = 30.0,
        metrics: StoreMetrics | None = None,
        readiness: Readiness | None = None,
        check_name: str = "persistence",
        rand: Callable[[], float] = random.random,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.store = store
        self.source = source
        self._clock = clock
        self.interval = interval
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.stop_timeout = stop_timeout
        self._metrics = metrics
        self._readiness = readiness
        self._check_name = check_name
        self._rand = rand
        self._loop: task.LoopingCall | None = None
        self._stop_began: float | None = None
        self._lock = defer.DeferredLock()
        self.failures = 0  # consecutive failed flushes
        self.retry_at: float | None = None
        self.last_error = ""
        self.last_flush: float | None = None
        self.backlog = 0
        self.rejected: dict[int, int] = {}  # garden id -> version the store refused
        self.saved_total = 0
        if readiness is not None:
            readiness.add(check_name, self.check)

    def _backoff(self) -> Backoff:
        return Backoff(initial=self.interval, maximum=max(self.max_backoff, self.interval))

    # --- service ----------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=False)

    def stopping(self) -> None:
        """The daemon's stop has begun: ``stop_timeout`` counts from now."""
        if self._stop_began is None:
            self._stop_began = self._clock.seconds()

    def stopService(self) -> defer.Deferred[bool]:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        timeout = self.stop_timeout
        if self._stop_began is not None:
            timeout = max(0.0, timeout - (self._clock.seconds() - self._stop_began))
        return self.flush_all(timeout)

    def set_interval(self, seconds: float) -> None:
        """database.flush_interval changed (reload): takes effect next tick."""
        self.interval = seconds
        if self._loop is not None and self._loop.running:
            self._loop.interval = seconds

    def check(self) -> Check:
        waiting = f"{self.backlog} garden{'s' if self.backlog != 1 else ''} waiting to be saved"
        if self.failures:
            retry = ""
            if self.retry_at is not None:
                retry = f", next attempt in {max(0.0, self.retry_at - self._clock.seconds()):.1f} s"
            return Check.degraded(
                f"saving fails: {waiting}, {self.failures} failed attempts{retry}: "
                f"{self.last_error}"
            )
        if self.rejected:
            ids = ", ".join(str(g) for g in sorted(self.rejected)[:10])
            return Check.degraded(
                f"{len(self.rejected)} gardens refused by the store (ids {ids}); {waiting}"
            )
        return Check.ok(waiting)

    # --- flushing -----------------------------------------------------------

    def _tick(self) -> defer.Deferred[None]:
        """One LoopingCall tick: never fails (a LoopingCall must not die)."""
        if self.retry_at is not None and self._clock.seconds() < self.retry_at:
            self._update_backlog()
            return defer.succeed(None)
        d = self.flush()
        d.addErrback(lambda f: None)  # logged and counted in _flush
        return d.addCallback(lambda _: None)

    def flush(self) -> defer.Deferred[int]:
        """Save every dirty garden once now; the number saved.  Fails with the
        store's error (the gardens not saved stay dirty)."""
        return self._lock.run(lambda: defer.ensureDeferred(self._flush()))

    async def _flush(self) -> int:
        start = self._clock.seconds()
        saved = 0
        try:
            refresh = getattr(self.source, "refresh", None)
            if refresh is not None:
                await refresh()
            dirty = self._pending()
            for first in range(0, len(dirty), self.batch_size):
                batch = dirty[first : first + self.batch_size]
                saved += await self._save_batch([gid for gid, _ in batch])
        except Exception as exc:
            self._failed(exc)
            raise
        finally:
            self._update_backlog()
        self.failures = 0
        self.retry_at = None
        self.last_error = ""
        self.last_flush = self._clock.seconds()
        if self._metrics is not None:
            self._metrics.flush_duration.observe(self._clock.seconds() - start)
        return saved

    def _pending(self) -> list[tuple[int, int]]:
        pending = []
        for garden_id, version in self.source.dirty():
            refused = self.rejected.get(garden_id)
            if refused is not None:
                if refused == version:
                    continue  # unchanged since refused: it would fail again
                del self.rejected[garden_id]
            pending.append((garden_id, version))
        return pending

    async def _save_batch(self, garden_ids: list[int]) -> int:
        snapshots = []
        for garden_id in garden_ids:
            try:
                snapshot = self.source.snapshot(garden_id)
            except Exception:
                log.failure("snapshot of garden {garden_id} failed", garden_id=garden_id)
                continue
            if snapshot is not None:
                snapshots.append(snapshot)
        while snapshots:
            try:
                result = await self.store.save_gardens(snapshots)
            except InvalidValue as exc:
                if exc.garden_id is None:
                    raise
                self._reject(exc)
                snapshots = [s for s in snapshots if s[0].id != exc.garden_id]
                continue
            break
        else:
            return 0
        versions = {garden.id: garden.version for garden, _ in snapshots}
        for garden_id in result.saved:
            self.source.saved(garden_id, versions[garden_id])
        for garden_id in result.stale:
            log.warn(
                "garden {garden_id}: the store has a newer version than {version}; not overwritten",
                garden_id=garden_id,
                version=versions[garden_id],
            )
            self.source.saved(garden_id, versions[garden_id])
        for garden_id in result.missing:
            log.info("garden {garden_id} no longer exists; not saved", garden_id=garden_id)
            self.source.saved(garden_id, versions[garden_id])
        count = len(result.saved)
        self.saved_total += count
        if self._metrics is not None:
            self._metrics.gardens_saved.inc(count)
        return count

    def _reject(self, exc: InvalidValue) -> None:
        assert exc.garden_id is not None
        version = next((v for g, v in self.source.dirty() if g == exc.garden_id), -1)
        self.rejected[exc.garden_id] = version
        if self._metrics is not None:
            self._metrics.gardens_rejected.inc()
        log.error(
            "the store refused garden {garden_id} (version {version}); it stays unsaved "
            "until it changes: {error}",
            garden_id=exc.garden_id,
            version=version,
            error=str(exc),
        )

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        delay = self._backoff().delay(self.failures - 1, self._rand)
        self.retry_at = self._clock.seconds() + delay
        if self._metrics is not None:
            self._metrics.flush_failures.inc()
        if self.failures == 1:
            log.warn(
                "saving gardens failed; they stay in memory and are retried: {error}",
                error=self.last_error,
            )
        else:
            log.debug(
                "saving gardens failed again ({failures} times); next attempt in {delay} s",
                failures=self.failures,
                delay=round(delay, 2),
            )

    def _update_backlog(self) -> None:
        try:
            self.backlog = len(self._pending())
        except Exception:
            log.failure("the garden source failed to list dirty gardens")
            return
        if self._metrics is not None:
            self._metrics.backlog.set(self.backlog)

    def flush_all(self, timeout: float | None = None) -> defer.Deferred[bool]:
        """Flush until nothing is dirty (True) or ``timeout`` passes (False:
        logged as critical with the gardens left unsaved)."""
        seconds = self.stop_timeout if timeout is None else timeout
        return defer.ensureDeferred(self._flush_all(seconds))

    async def _flush_all(self, timeout: float) -> bool:
        deadline = self._clock.seconds() + timeout
        attempt = 0
        while True:
            finished = await self._until(self.flush(), deadline)
            remaining = self._pending()
            if not remaining:
                if attempt:
                    log.info("all changed gardens saved")
                return True
            now = self._clock.seconds()
            if now >= deadline or not finished:
                why = self.last_error or "saving kept failing"
                if not finished:
                    why = "a save was still waiting for the store"
                log.critical(
                    "{count} changed gardens could not be saved within {timeout} s ({why}) "
                    "and are lost: {ids}",
                    count=len(remaining),
                    timeout=round(timeout, 3),
                    why=why,
                    ids=[gid for gid, _ in remaining][:50],
                )
                return False
            wait = STOP_BACKOFF.delay(attempt, self._rand) if self.failures else self.interval
            wait = min(wait, deadline - now)
            attempt += 1
            await task.deferLater(self._clock, wait, lambda: None)

    def _until(self, flushing: defer.Deferred[int], deadline: float) -> defer.Deferred[bool]:
        """True when ``flushing`` ends (failed or not), False at ``deadline``.

        The flush is not cancelled: a store call cut off half-way might leave
        its connection unusable, and the store closes next anyway.
        """
        result: defer.Deferred[bool] = defer.Deferred()

        def ended(_: object) -> None:  # a failure is counted and logged by the flush
            if timer.active():
                timer.cancel()
            if not result.called:
                result.callback(True)

        def expired() -> None:
            if not result.called:
                result.callback(False)

        timer = self._clock.callLater(max(0.0, deadline - self._clock.seconds()), expired)
        flushing.addBoth(ended)
        return result
