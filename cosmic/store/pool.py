"""A connection pool with health checks and recovery, independent of the driver.

``Pool`` hands out connections made by a *connector* (for PostgreSQL, a
txpostgres connection; for tests, a fake), one operation at a time each:

* between ``min_size`` and ``max_size`` connections; an operation waits at
  most ``acquire_timeout`` for one, then fails with ``PoolExhausted``;
* idle connections are pinged every ``health_check_interval``; dead ones are
  dropped and replaced; a connection lives at most ``max_lifetime`` (minus up
  to 10 % jitter, so they do not all recycle at once);
* a connection the server closes (restart, admin shutdown) is noticed when it
  is lost, even idle, and dropped; the other idle ones are then pinged at once;
* when a connection cannot be opened the pool is *down*: operations that find
  no idle connection fail at once with ``StoreUnavailable`` (no one waits for
  a dead server), and one probe connection is attempted after an exponential
  backoff with jitter until the server answers; then the pool refills;
* an operation whose server does not answer within ``operation_timeout`` has
  its connection closed (the server-side statement_timeout cannot help when
  the server or network is gone);
* an idempotent operation that fails because a reused connection turned out
  dead is retried once on a fresh connection, so the first query after a
  server restart does not fail.

Everything runs on the reactor thread, driven by the injected reactor/clock.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from cosmic.metrics import StoreMetrics
from cosmic.store.backoff import Backoff
from cosmic.store.errors import PoolExhausted, StoreUnavailable

log = Logger(namespace="cosmic.store.pool")

DEFAULT_BACKOFF = Backoff()

T = TypeVar("T")
C = TypeVar("C")


class Connector(Protocol[C]):
    def connect(self, on_lost: Callable[[C], None]) -> defer.Deferred[C]:
        """Open one connection; call ``on_lost(conn)`` if it is ever lost."""

    def close(self, conn: C) -> None:
        """Close it (idempotent, never raises)."""

    def ping(self, conn: C) -> defer.Deferred[Any]:
        """One round trip."""

    def is_broken(self, conn: C, failure: Failure) -> bool:
        """Does this failure of an operation mean the connection is unusable?"""


class Slot(Generic[C]):
    __slots__ = ("conn", "created", "expires", "lost", "timed_out", "uses")

    def __init__(self, conn: C, created: float, expires: float) -> None:
        self.conn = conn
        self.created = created
        self.expires = expires
        self.uses = 0
        self.lost = False
        self.timed_out = False


class _Waiter:
    __slots__ = ("d", "timer")

    def __init__(self, d: defer.Deferred[Any]) -> None:
        self.d = d
        self.timer: Any = None


class Pool(Generic[C]):
    def __init__(
        self,
        connector: Connector[C],
        *,
        reactor: Any,
        min_size: int = 2,
        max_size: int = 20,
        acquire_timeout: float = 5.0,
        operation_timeout: float = 20.0,
        health_check_interval: float = 30.0,
        max_lifetime: float = 1800.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        metrics: StoreMetrics | None = None,
        name: str = "database",
        rand: Callable[[], float] = random.random,
    ) -> None:
        if max_size < 1 or min_size < 0 or min_size > max_size:
            raise ValueError(f"bad pool sizes: min {min_size}, max {max_size}")
        self.connector = connector
        self._clock = reactor
        self.min_size = min_size
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self.operation_timeout = operation_timeout
        self.health_check_interval = health_check_interval
        self.max_lifetime = max_lifetime
        self._backoff = backoff
        self._metrics = metrics
        self._name = name
        self._rand = rand

        self._idle: deque[Slot[C]] = deque()
        self._busy: set[Slot[C]] = set()  # in use or being checked
        self._by_conn: dict[int, Slot[C]] = {}
        self._connecting = 0
        self._waiters: deque[_Waiter] = deque()
        self._to_replace = 0

        self.state = "stopped"  # stopped, up, down, closing, closed
        self.down_since: float | None = None
        self.attempts = 0
        self.last_error = ""
        self._probe_call: Any = None
        self._probing = False
        self._recovered: list[defer.Deferred[None]] = []
        self._checker: task.LoopingCall | None = None
        self._checking = False
        self._drained: list[defer.Deferred[None]] = []

    # --- numbers --------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self._idle) + len(self._busy) + self._connecting

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def in_use(self) -> int:
        return len(self._busy)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def connecting(self) -> int:
        return self._connecting

    def describe(self) -> str:
        return (
            f"{self.size} connections ({self.in_use} in use, {self.idle} idle, "
            f"{self._connecting} connecting), {self.waiting} waiting"
        )

    def _gauges(self) -> None:
        if self._metrics is None:
            return
        m = self._metrics
        m.pool_connections.labels("in_use").set(len(self._busy))
        m.pool_connections.labels("idle").set(len(self._idle))
        m.pool_connections.labels("connecting").set(self._connecting)
        m.pool_waiting.set(len(self._waiters))
        m.available.set(0 if self.state == "down" else 1)

    # --- lifecycle ------------------------------------------------------

    def start(self) -> defer.Deferred[None]:
        """Open ``max(min_size, 1)`` connections; fails if the first cannot be made."""
        if self.state != "stopped":
            return defer.succeed(None)
        self.state = "up"
        first = max(self.min_size, 1)
        opening = [self._open() for _ in range(first)]
        self._checker = task.LoopingCall(self._health_tick)
        self._checker.clock = self._clock

        def started(results: list[tuple[bool, Any]]) -> None:
            failures = [value for ok, value in results if not ok]
            if len(failures) == len(results):
                self.close()
                failures[0].raiseException()
            if failures:  # some made it: the pool works and refills by itself
                log.warn(
                    "{name}: {n} of {total} initial connections failed: {error}",
                    name=self._name,
                    n=len(failures),
                    total=len(results),
                    error=failures[0].getErrorMessage(),
                )
            assert self._checker is not None
            self._checker.start(self.health_check_interval, now=False).addErrback(
                lambda f: log.failure("{name}: health checks stopped", f, name=self._name)
            )

        d = defer.DeferredList(opening, consumeErrors=True)
        return d.addCallback(started)

    def close(self, drain_timeout: float = 5.0) -> defer.Deferred[None]:
        """Stop: fail the waiters, close idle connections, then busy ones as
        they come back (or after ``drain_timeout``)."""
        if self.state in ("closed", "stopped"):
            self.state = "closed"
            return defer.succeed(None)
        if self.state == "closing":
            d: defer.Deferred[None] = defer.Deferred()
            self._drained.append(d)
            return d
        self.state = "closing"
        if self._checker is not None and self._checker.running:
            self._checker.stop()
        if self._probe_call is not None and self._probe_call.active():
            self._probe_call.cancel()
        self._fail_waiters(StoreUnavailable(f"{self._name} pool is closed"))
        while self._idle:
            self._discard(self._idle.pop())
        d = defer.Deferred()
        self._drained.append(d)
        if not self._busy:
            self._finish_close()
        else:
            self._clock.callLater(drain_timeout, self._force_close)
        return d

    def _force_close(self) -> None:
        if self.state != "closing":
            return
        for slot in list(self._busy):
            self.connector.close(slot.conn)
        self._busy.clear()
        self._finish_close()

    def _finish_close(self) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        self._gauges()
        drained, self._drained = self._drained, []
        for d in drained:
            d.callback(None)
        recovered, self._recovered = self._recovered, []
        for d in recovered:
            d.errback(StoreUnavailable(f"{self._name} pool is closed"))

    def when_up(self) -> defer.Deferred[None]:
        """Fires when the pool is (or next becomes) up."""
        if self.state == "up":
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._recovered.append(d)
        return d

    def set_health_check_interval(self, seconds: float) -> None:
        self.health_check_interval = seconds
        if self._checker is not None and self._checker.running:
            self._checker.interval = seconds

    # --- running operations ---------------------------------------------

    def run(
        self, operation: Callable[[C], Awaitable[T]], *, idempotent: bool = False
    ) -> defer.Deferred[T]:
        """Run ``operation(conn)`` on a pooled connection of its own."""
        return defer.ensureDeferred(self._run(operation, idempotent))

    async def _run(self, operation: Callable[[C], Awaitable[T]], idempotent: bool) -> T:
        attempt = 0
        while True:
            slot = await self.acquire()
            reused = slot.uses > 0
            slot.uses += 1
            try:
                result = await self._guarded(operation, slot)
            except Exception:
                failure = Failure()
                broken = slot.timed_out or slot.lost or self.connector.is_broken(slot.conn, failure)
                self.release(slot, broken=broken)
                if not broken:
                    failure.raiseException()
                if slot.timed_out:
                    raise StoreUnavailable(
                        f"{self._name} did not answer within {self.operation_timeout:g} s; "
                        "connection closed"
                    ) from None
                if idempotent and reused and attempt == 0:
                    attempt += 1
                    log.debug("{name}: retrying on a fresh connection", name=self._name)
                    continue
                raise StoreUnavailable(
                    f"{self._name} connection lost: {failure.getErrorMessage().strip()}"
                ) from None
            self.release(slot)
            return result

    def _guarded(self, operation: Callable[[C], Awaitable[T]], slot: Slot[C]) -> defer.Deferred[T]:
        d = defer.ensureDeferred(_call(operation, slot.conn))
        if d.called:
            return d

        def expire() -> None:
            slot.timed_out = True
            log.warn(
                "{name}: no answer within {seconds} s, closing the connection",
                name=self._name,
                seconds=self.operation_timeout,
            )
            self.connector.close(slot.conn)

        timer = self._clock.callLater(self.operation_timeout, expire)

        def done(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        return d.addBoth(done)

    def acquire(self) -> defer.Deferred[Slot[C]]:
        if self.state not in ("up", "down"):
            return defer.fail(StoreUnavailable(f"{self._name} pool is {self.state}"))
        slot = self._take_idle()
        if slot is not None:
            return defer.succeed(slot)
        if self.state == "down" and not self._busy and not self._connecting:
            return defer.fail(StoreUnavailable(self.down_message()))
        waiter = _Waiter(defer.Deferred(lambda d: self._cancel_waiter(waiter)))
        waiter.timer = self._clock.callLater(self.acquire_timeout, self._timed_out, waiter)
        self._waiters.append(waiter)
        self._grow()
        self._gauges()
        return waiter.d

    def release(self, slot: Slot[C], broken: bool = False) -> None:
        self._busy.discard(slot)
        if broken or slot.lost:
            self._drop(slot, replace=True)
        elif self.state not in ("up", "down") or slot.expires <= self._clock.seconds():
            self._discard(slot)
            self._top_up()
        else:
            self._give(slot)
        if self.state == "closing" and not self._busy:
            self._finish_close()
        self._serve()

    def down_message(self) -> str:
        since = self.down_since if self.down_since is not None else self._clock.seconds()
        return (
            f"{self._name} unreachable for {self._clock.seconds() - since:.1f} s "
            f"({self.attempts} reconnection attempts; last error: {self.last_error})"
        )

    # --- internals --------------------------------------------------------

    def _take_idle(self) -> Slot[C] | None:
        now = self._clock.seconds()
        while self._idle:
            slot = self._idle.pop()  # most recently used first: the others can expire
            if slot.lost:
                self._drop(slot, replace=True)
                continue
            if slot.expires <= now:
                self._discard(slot)
                self._top_up()
                continue
            self._busy.add(slot)
            self._gauges()
            return slot
        return None

    def _give(self, slot: Slot[C]) -> None:
        """A free connection: to the first waiter, else idle."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.timer is not None and waiter.timer.active():
                waiter.timer.cancel()
            self._busy.add(slot)
            self._gauges()
            waiter.d.callback(slot)
            return
        self._idle.append(slot)
        self._gauges()

    def _serve(self) -> None:
        while self._waiters and self._idle:
            slot = self._take_idle()
            if slot is None:
                break
            self._busy.discard(slot)
            self._give(slot)
        if self._waiters:
            if self.state == "down" and not self._busy and not self._connecting:
                self._fail_waiters(StoreUnavailable(self.down_message()))
            else:
                self._grow()
        self._gauges()

    def _grow(self) -> None:
        while (
            self.state == "up"
            and len(self._waiters) > self._connecting
            and self.size < self.max_size
        ):
            self._open().addErrback(lambda _: None)

    def _top_up(self) -> None:
        while self.state == "up" and self.size < self.min_size:
            self._open().addErrback(lambda _: None)

    def _open(self, probe: bool = False) -> defer.Deferred[None]:
        self._connecting += 1
        self._gauges()
        d = defer.maybeDeferred(self.connector.connect, self._lost)
        return d.addCallbacks(self._opened, self._open_failed, errbackArgs=(probe,))

    def _opened(self, conn: C) -> None:
        self._connecting -= 1
        now = self._clock.seconds()
        lifetime = self.max_lifetime * (1.0 - 0.1 * self._rand())
        slot: Slot[C] = Slot(conn, now, now + lifetime)
        if self.state in ("closing", "closed", "stopped"):
            self.connector.close(conn)
            self._gauges()
            return
        self._by_conn[id(conn)] = slot
        recovering = self.state == "down"
        if recovering or self._to_replace > 0:
            self._to_replace = max(0, self._to_replace - 1)
            self._count_reconnect()
        self._give(slot)
        if recovering:
            self._recover()
        self._serve()

    def _open_failed(self, failure: Failure, probe: bool) -> Failure:
        self._connecting -= 1
        self.last_error = failure.getErrorMessage().strip() or failure.type.__name__
        if self.state in ("up", "down"):
            if self.state == "up":
                self._go_down()
            elif not probe and not self._probing:
                self._schedule_probe()
            self._serve()
        self._gauges()
        return failure

    def _count_reconnect(self) -> None:
        if self._metrics is not None:
            self._metrics.reconnects.inc()

    def _go_down(self) -> None:
        self.state = "down"
        self.down_since = self._clock.seconds()
        self.attempts = 0
        log.warn(
            "{name} unreachable, retrying with backoff: {error}",
            name=self._name,
            error=self.last_error,
        )
        self._gauges()
        self._schedule_probe()

    def _schedule_probe(self) -> None:
        if self._probe_call is not None and self._probe_call.active():
            return
        delay = self._backoff.delay(self.attempts, self._rand)
        self._probe_call = self._clock.callLater(delay, self._probe)

    def _probe(self) -> None:
        if self.state != "down":
            return
        self.attempts += 1
        self._probing = True

        def failed(failure: Failure) -> None:
            self._probing = False
            if self.state == "down":
                self._schedule_probe()

        def done(result: Any) -> Any:
            self._probing = False
            return result

        self._open(probe=True).addCallbacks(done, failed)

    def _recover(self) -> None:
        since = self.down_since or self._clock.seconds()
        log.info(
            "{name} reachable again after {seconds} s ({attempts} attempts)",
            name=self._name,
            seconds=round(self._clock.seconds() - since, 3),
            attempts=self.attempts,
        )
        self.state = "up"
        self.down_since = None
        self.attempts = 0
        self._gauges()
        recovered, self._recovered = self._recovered, []
        for d in recovered:
            d.callback(None)
        self._top_up()

    def _lost(self, conn: C) -> None:
        """The connector noticed the connection went away (maybe while idle)."""
        slot = self._by_conn.get(id(conn))
        if slot is None or slot.lost:
            return
        slot.lost = True
        if slot in self._idle:
            self._idle.remove(slot)
            self._drop(slot, replace=True)
            self._serve()
        # a busy slot is dropped when its operation releases it

    def _drop(self, slot: Slot[C], replace: bool) -> None:
        """A dead connection: discard it, check the other idle ones now, refill."""
        self._discard(slot)
        if replace and self.state == "up":
            self._to_replace = min(self._to_replace + 1, self.max_size)
            self._check_idle_now()
            self._top_up()

    def _discard(self, slot: Slot[C]) -> None:
        self._by_conn.pop(id(slot.conn), None)
        try:
            self.connector.close(slot.conn)
        except Exception:
            log.failure("{name}: closing a connection failed", name=self._name)
        self._gauges()

    def _cancel_waiter(self, waiter: _Waiter) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        self._gauges()

    def _timed_out(self, waiter: _Waiter) -> None:
        if waiter not in self._waiters:
            return
        self._waiters.remove(waiter)
        waiting = len(self._waiters)
        self._gauges()
        if self.state == "down":
            waiter.d.errback(StoreUnavailable(self.down_message()))
        elif self.size >= self.max_size and not self._connecting:
            waiter.d.errback(PoolExhausted(self.acquire_timeout, self.max_size, waiting))
        else:
            waiter.d.errback(
                StoreUnavailable(
                    f"no {self._name} connection within {self.acquire_timeout:g} s "
                    f"(database.acquire_timeout): {self.describe()}"
                )
            )

    def _fail_waiters(self, error: Exception) -> None:
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if waiter.timer is not None and waiter.timer.active():
                waiter.timer.cancel()
            waiter.d.errback(Failure(error))
        self._gauges()

    # --- health checks -----------------------------------------------------

    def _check_idle_now(self) -> None:
        """After one connection died the others are suspect: ping them before
        anyone gets one (an operation retried now opens a fresh connection or
        waits for a checked one)."""
        if not self._checking:
            self._health_tick()

    def _health_tick(self) -> defer.Deferred[None]:
        """The health check, never failing (a LoopingCall must not die)."""
        return defer.maybeDeferred(self._health_check).addErrback(
            lambda f: log.failure("{name}: health check failed", f, name=self._name)
        )

    def _health_check(self) -> defer.Deferred[None]:
        """Recycle expired idle connections, ping the others, refill to min_size."""
        if self.state != "up" or self._checking:
            return defer.succeed(None)
        self._checking = True
        now = self._clock.seconds()
        checks = []
        try:
            for slot in list(self._idle):
                self._idle.remove(slot)
                if slot.lost:
                    self._drop(slot, replace=True)
                elif slot.expires <= now:
                    self._discard(slot)
                else:
                    self._busy.add(slot)
                    checks.append(self._ping(slot))
        except BaseException:
            self._checking = False
            raise
        self._gauges()

        def finished(_: Any) -> None:
            self._checking = False
            self._top_up()
            self._serve()

        return defer.DeferredList(checks, consumeErrors=True).addCallback(finished)

    def _ping(self, slot: Slot[C]) -> defer.Deferred[None]:
        d = self._guarded(lambda conn: self.connector.ping(conn), slot)

        def ok(_: Any) -> None:
            self.release(slot)

        def failed(failure: Failure) -> None:
            log.info(
                "{name}: dropping a dead idle connection: {error}",
                name=self._name,
                error=failure.getErrorMessage().strip(),
            )
            self._busy.discard(slot)
            self._drop(slot, replace=True)
            if self.state == "closing" and not self._busy:
                self._finish_close()
            self._serve()

        return d.addCallbacks(ok, failed)


async def _call(operation: Callable[[C], Awaitable[T]], conn: C) -> T:
    return await operation(conn)
