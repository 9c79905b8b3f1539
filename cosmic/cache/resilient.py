"""A cache that never fails its callers: an outage is a miss or a no-op.

Wraps a backend that can fail (``RedisCache``).  The first failure marks the
cache *down* and logs one warning; while down, calls do not touch the
backend at all (no caller waits for a timeout) and answer a miss (``None``)
or do nothing, and a probe pings the backend with exponential backoff and
jitter.  When it answers again the cache is *up*, one line says how long it
was out, and the keys whose writes or deletes were dropped meanwhile are
deleted, so no value older than a write made during the outage is served
after it (the replay list is bounded; beyond it, entries age out by TTL).

A ``ResponseError``-like ``CacheError`` (a bug, not an outage) is logged and
served as a miss without marking the cache down.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from cosmic.cache.interface import Cache, CacheError, CacheUnavailable
from cosmic.metrics import CacheMetrics
from cosmic.readiness import Check
from cosmic.store.backoff import Backoff

log = Logger(namespace="cosmic.cache")
T = TypeVar("T")

PROBE_BACKOFF = Backoff(initial=0.25, maximum=5.0)


class ResilientCache:
    def __init__(
        self,
        inner: Cache,
        *,
        clock: Any = None,
        metrics: CacheMetrics | None = None,
        backoff: Backoff = PROBE_BACKOFF,
        max_pending: int = 10_000,
        error_log_interval: float = 60.0,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.inner = inner
        self.backend = inner.backend
        self._clock = clock
        self._metrics = metrics
        self._backoff = backoff
        self._max_pending = max_pending
        self._error_log_interval = error_log_interval
        self.state = "up"
        self.down_since: float | None = None
        self.last_error = ""
        self.attempts = 0
        self.served_while_down = 0
        self.pending: OrderedDict[str, None] = OrderedDict()
        self.pending_dropped = 0
        self._probe_call: Any = None
        self._probing = False
        self._recovered: list[defer.Deferred[None]] = []
        self._closed = False
        self._last_error_log = float("-inf")
        self._suppressed = 0
        if metrics is not None:
            metrics.available.set(1)

    # --- lifecycle --------------------------------------------------------

    def open(self) -> defer.Deferred[None]:
        return defer.maybeDeferred(self.inner.open)

    def close(self) -> defer.Deferred[None]:
        self._closed = True
        if self._probe_call is not None and self._probe_call.active():
            self._probe_call.cancel()
        return defer.maybeDeferred(self.inner.close)

    def check(self) -> Check:
        if self._closed:
            return Check.fail("cache closed")
        if self.state == "down":
            since = self.down_since if self.down_since is not None else self._clock.seconds()
            return Check.degraded(
                f"{self.backend} unreachable for {self._clock.seconds() - since:.1f} s, "
                f"serving misses ({self.served_while_down} calls, {len(self.pending)} keys "
                f"to invalidate on recovery): {self.last_error}"
            )
        return self.inner.check()

    def when_up(self) -> defer.Deferred[None]:
        """Fires when the cache is (or next becomes) up."""
        if self.state == "up":
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._recovered.append(d)
        return d

    def mark_down(self, reason: str) -> None:
        """Treat the backend as down (e.g. not reachable at start) and probe."""
        self._went_down(reason)

    # --- the guard ------------------------------------------------------------

    def _guard(
        self,
        operation: str,
        call: Callable[[], defer.Deferred[T]],
        default: T,
        invalidates: str | None = None,
    ) -> defer.Deferred[T]:
        if self.state == "down" or self._closed:
            self.served_while_down += 1
            if invalidates is not None:
                self._remember(invalidates)
            return defer.succeed(default)
        try:
            d = call()
        except (TypeError, ValueError):
            raise  # the caller's mistake, not an outage
        except Exception:
            d = defer.fail()

        def failed(failure: Failure) -> T:
            if failure.check(TypeError, ValueError):
                failure.raiseException()
            if self._metrics is not None:
                self._metrics.errors.labels(operation).inc()
            if invalidates is not None:
                self._remember(invalidates)
            if failure.check(CacheError) and not failure.check(CacheUnavailable):
                self._log_error(operation, failure)
            else:
                self._went_down(f"{operation}: {failure.getErrorMessage()}")
            return default

        return d.addErrback(failed)

    def _log_error(self, operation: str, failure: Failure) -> None:
        now = self._clock.seconds()
        if now - self._last_error_log < self._error_log_interval:
            self._suppressed += 1
            return
        log.error(
            "cache {operation} failed (served as a miss; {suppressed} similar errors "
            "not logged): {error}",
            operation=operation,
            suppressed=self._suppressed,
            error=failure.getErrorMessage(),
        )
        self._last_error_log = now
        self._suppressed = 0

    def _remember(self, key: str) -> None:
        if key in self.pending:
            return
        if len(self.pending) >= self._max_pending:
            self.pending.popitem(last=False)
            self.pending_dropped += 1
        self.pending[key] = None

    def _went_down(self, reason: str) -> None:
        self.last_error = reason
        if self.state == "down":
            return
        self.state = "down"
        self.down_since = self._clock.seconds()
        self.attempts = 0
        self.served_while_down = 0
        if self._metrics is not None:
            self._metrics.available.set(0)
        log.warn(
            "cache {backend} unavailable, serving misses until it is back: {reason}",
            backend=self.backend,
            reason=reason,
        )
        self._schedule_probe()

    def _schedule_probe(self) -> None:
        if self._closed or (self._probe_call is not None and self._probe_call.active()):
            return
        self._probe_call = self._clock.callLater(self._backoff.delay(self.attempts), self._probe)

    def _probe(self) -> None:
        if self.state != "down" or self._closed or self._probing:
            return
        self.attempts += 1
        self._probing = True
        d = defer.maybeDeferred(self.inner.ping)
        d.addCallback(lambda _: self._replay())

        def done(_: Any) -> None:
            self._probing = False
            self._recovered_now()

        def failed(failure: Failure) -> None:
            self._probing = False
            self.last_error = f"ping: {failure.getErrorMessage()}"
            self._schedule_probe()

        d.addCallbacks(done, failed)

    def _replay(self) -> defer.Deferred[None]:
        """Delete the keys whose writes were dropped, oldest first."""
        keys = list(self.pending)
        if not keys:
            return defer.succeed(None)

        def one_by_one(remaining: list[str]) -> defer.Deferred[None]:
            if not remaining:
                return defer.succeed(None)
            key = remaining[0]
            d = self.inner.delete(key)

            def deleted(_: Any) -> defer.Deferred[None]:
                self.pending.pop(key, None)
                return one_by_one(remaining[1:])

            return d.addCallback(deleted)

        return one_by_one(keys)

    def _recovered_now(self) -> None:
        if self.state != "down":
            return
        since = self.down_since if self.down_since is not None else self._clock.seconds()
        log.info(
            "cache {backend} available again after {seconds} s "
            "({calls} calls served as misses meanwhile, {lost} invalidations lost)",
            backend=self.backend,
            seconds=round(self._clock.seconds() - since, 3),
            calls=self.served_while_down,
            lost=self.pending_dropped,
        )
        self.state = "up"
        self.down_since = None
        self.pending_dropped = 0
        if self._metrics is not None:
            self._metrics.available.set(1)
        recovered, self._recovered = self._recovered, []
        for d in recovered:
            d.callback(None)

    # --- the interface ------------------------------------------------------

    def ping(self) -> defer.Deferred[None]:
        return self._guard("ping", self.inner.ping, None)

    def get(self, key: str) -> defer.Deferred[bytes | None]:
        return self._guard("get", lambda: self.inner.get(key), None)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> defer.Deferred[None]:
        return self._guard("set", lambda: self.inner.set(key, value, ttl), None, key)

    def delete(self, key: str) -> defer.Deferred[None]:
        return self._guard("delete", lambda: self.inner.delete(key), None, key)

    def zadd(self, key: str, members: Mapping[str, float]) -> defer.Deferred[None]:
        return self._guard("zadd", lambda: self.inner.zadd(key, members), None, key)

    def zrem(self, key: str, members: Iterable[str]) -> defer.Deferred[None]:
        return self._guard("zrem", lambda: self.inner.zrem(key, members), None, key)

    def ztop(
        self, key: str, count: int, descending: bool = True
    ) -> defer.Deferred[list[tuple[str, float]] | None]:
        return self._guard("ztop", lambda: self.inner.ztop(key, count, descending), None)

    def zreplace(
        self, key: str, members: Mapping[str, float], ttl: float | None = None
    ) -> defer.Deferred[None]:
        return self._guard("zreplace", lambda: self.inner.zreplace(key, members, ttl), None, key)
