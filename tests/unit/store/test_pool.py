"""The connection pool's logic, on task.Clock with a fake connector; and the
real PostgreSQL connector's own connect timeout, which needs no server."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, error, protocol, task
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from cosmic.metrics import create as create_metrics
from cosmic.store.backoff import Backoff
from cosmic.store.errors import PoolExhausted, StoreUnavailable
from cosmic.store.pool import Pool
from cosmic.store.postgres import PostgresStore


class FakeConn:
    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False
        self.alive = True
        self.pending: list[defer.Deferred[Any]] = []


class FakeConnector:
    def __init__(self) -> None:
        self.up = True
        self.hang = False
        self.opened: list[FakeConn] = []
        self.attempts = 0
        self.on_lost: dict[int, Any] = {}
        self.pings = 0

    def connect(self, on_lost: Any) -> defer.Deferred[FakeConn]:
        self.attempts += 1
        if not self.up:
            return defer.fail(StoreUnavailable("connection refused"))
        conn = FakeConn(len(self.opened))
        self.opened.append(conn)
        self.on_lost[conn.n] = on_lost
        return defer.succeed(conn)

    def close(self, conn: FakeConn) -> None:
        conn.closed = True
        pending, conn.pending = conn.pending, []
        for d in pending:
            d.errback(error.ConnectionDone())

    def ping(self, conn: FakeConn) -> defer.Deferred[None]:
        self.pings += 1
        if conn.alive and self.up:
            return defer.succeed(None)
        return defer.fail(error.ConnectionLost())

    def is_broken(self, conn: FakeConn, failure: Failure) -> bool:
        return conn.closed or not conn.alive or bool(failure.check(error.ConnectionLost))

    def server_restart_begins(self) -> None:
        """The server goes away: every open connection is lost."""
        self.up = False
        for conn in self.opened:
            if conn.alive and not conn.closed:
                conn.alive = False
                self.on_lost[conn.n](conn)

    def live(self) -> list[FakeConn]:
        return [c for c in self.opened if not c.closed]


def make_pool(connector: FakeConnector, **kwargs: Any) -> tuple[Pool, task.Clock, Any]:
    clock = task.Clock()
    metrics = create_metrics("t")
    options = dict(
        reactor=clock,
        min_size=2,
        max_size=3,
        acquire_timeout=5.0,
        operation_timeout=20.0,
        health_check_interval=30.0,
        max_lifetime=1800.0,
        backoff=Backoff(initial=0.1, maximum=2.0, factor=2.0, jitter=0.5),
        metrics=metrics.store,
        rand=lambda: 0.0,
    )
    options.update(kwargs)
    pool = Pool(connector, **options)
    started = pool.start()
    assert started.called
    return pool, clock, metrics


async def conn_number(conn: FakeConn) -> int:
    return conn.n


def holder() -> tuple[Any, list[defer.Deferred[Any]]]:
    """An operation that holds its connection until its Deferred is fired."""
    held: list[defer.Deferred[Any]] = []

    async def op(conn: FakeConn) -> int:
        d: defer.Deferred[Any] = defer.Deferred()
        conn.pending.append(d)
        held.append(d)
        await d
        return conn.n

    return op, held


def result_of(d: defer.Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def test_start_opens_min_size_and_reuses_connections() -> None:
    connector = FakeConnector()
    pool, _, metrics = make_pool(connector)
    assert len(connector.opened) == 2
    assert pool.idle == 2 and pool.in_use == 0
    for _ in range(5):
        assert result_of(pool.run(conn_number)) in (0, 1)
    assert len(connector.opened) == 2
    sample = metrics.registry.get_sample_value
    assert sample("t_db_pool_connections", {"state": "idle"}) == 2
    assert sample("t_db_up") == 1


def test_start_fails_when_no_connection_can_be_made() -> None:
    connector = FakeConnector()
    connector.up = False
    pool = Pool(connector, reactor=task.Clock(), min_size=2, max_size=3)
    d = pool.start()
    with pytest.raises(StoreUnavailable, match="refused"):
        result_of(d)
    assert pool.state == "closed"


def test_exhausted_pool_fails_with_a_clear_error_after_the_acquire_timeout() -> None:
    connector = FakeConnector()
    pool, clock, _ = make_pool(connector, min_size=0, max_size=2, acquire_timeout=5.0)
    op, held = holder()
    first, second = pool.run(op), pool.run(op)
    third = pool.run(conn_number)
    assert pool.in_use == 2 and pool.waiting == 1
    clock.advance(4.9)
    assert not third.called
    clock.advance(0.1)
    with pytest.raises(PoolExhausted) as caught:
        result_of(third)
    message = str(caught.value)
    assert "within 5 s (database.acquire_timeout)" in message
    assert "all 2 connections of the pool (database.pool_max_size) are in use" in message
    held[0].callback(None)
    assert result_of(first) == 0
    assert result_of(pool.run(conn_number)) == 0
    held[1].callback(None)
    assert result_of(second) == 1
    assert len(connector.opened) == 2


def test_waiters_are_served_in_order_when_connections_come_back() -> None:
    connector = FakeConnector()
    pool, _, _ = make_pool(connector, min_size=1, max_size=1)
    op, held = holder()
    busy = pool.run(op)
    order: list[str] = []

    def named(name: str) -> Any:
        async def op(conn: FakeConn) -> None:
            order.append(name)

        return op

    pool.run(named("a"))
    pool.run(named("b"))
    assert pool.waiting == 2
    held[0].callback(None)
    result_of(busy)
    assert order == ["a", "b"]
    assert pool.waiting == 0


def test_outage_fails_fast_probes_with_backoff_and_recovers() -> None:
    connector = FakeConnector()
    pool, clock, metrics = make_pool(connector)
    with capturedLogs() as events:
        connector.server_restart_begins()
    assert pool.state == "down"
    assert pool.idle == 0
    assert any("unreachable" in e.get("log_format", "") for e in events)
    # no one waits for a dead server
    with pytest.raises(StoreUnavailable, match="unreachable"):
        result_of(pool.run(conn_number))
    # probes at 0.1, 0.2, 0.4, 0.8, 1.6, then every 2 s (jitter off in this test)
    attempts = connector.attempts
    schedule = []
    for _ in range(7):
        call = pool._probe_call
        delay = call.getTime() - clock.seconds()
        schedule.append(round(delay, 6))
        clock.advance(delay)
    assert schedule == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert connector.attempts == attempts + 7
    recovered = pool.when_up()
    connector.up = True
    clock.advance(2.0)
    assert recovered.called
    assert pool.state == "up"
    assert len(connector.live()) == 2  # refilled to min_size
    assert result_of(pool.run(conn_number)) in {c.n for c in connector.live()}
    assert metrics.registry.get_sample_value("t_db_reconnects_total") >= 1
    assert metrics.registry.get_sample_value("t_db_up") == 1


def test_jitter_spreads_the_probes() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, factor=2.0, jitter=0.5)
    assert backoff.delay(0, lambda: 0.0) == 1.0
    assert backoff.delay(0, lambda: 1.0) == 0.5
    assert backoff.delay(3, lambda: 0.0) == 8.0
    assert backoff.delay(10, lambda: 0.5) == 6.0
    assert backoff.delay(10_000, lambda: 0.0) == 8.0


def test_a_lost_idle_connection_is_replaced_and_the_others_checked() -> None:
    connector = FakeConnector()
    pool, clock, _ = make_pool(connector)
    victim = connector.opened[0]
    victim.alive = False
    connector.on_lost[victim.n](victim)
    assert victim.closed
    clock.advance(0)  # the immediate check of the other idle connections
    assert connector.pings >= 1
    assert pool.state == "up"
    assert len(connector.live()) == 2


def test_health_check_drops_dead_idle_connections() -> None:
    connector = FakeConnector()
    pool, clock, _ = make_pool(connector)
    silent = connector.opened[1]
    silent.alive = False  # died without the reactor noticing
    clock.advance(30.0)
    assert silent.closed
    assert len(connector.live()) == 2
    assert pool.idle == 2


def test_connections_are_recycled_after_max_lifetime() -> None:
    connector = FakeConnector()
    pool, clock, _ = make_pool(
        connector, max_lifetime=100.0, health_check_interval=30.0, operation_timeout=1000.0
    )
    first = list(connector.opened)
    clock.advance(90.0)
    assert not any(c.closed for c in first)
    clock.advance(30.0)  # the check at 120 s
    assert all(c.closed for c in first)
    assert len(connector.live()) == 2
    # and a busy connection past its lifetime is closed when it comes back
    op, held = holder()
    running = pool.run(op)
    clock.advance(200.0)
    held[0].callback(None)
    result_of(running)
    assert pool.idle + pool.in_use == 2


def test_idempotent_operation_is_retried_once_on_a_fresh_connection() -> None:
    connector = FakeConnector()
    pool, _, _ = make_pool(connector, min_size=1)
    result_of(pool.run(conn_number))  # the connection has been used once

    calls: list[int] = []

    async def flaky(conn: FakeConn) -> int:
        calls.append(conn.n)
        if len(calls) == 1:
            conn.alive = False
            raise error.ConnectionLost("server closed the connection")
        return conn.n

    assert result_of(pool.run(flaky, idempotent=True)) == calls[1]
    assert calls[0] != calls[1]

    calls.clear()
    result_of(pool.run(conn_number))
    with pytest.raises(StoreUnavailable, match="connection lost"):
        result_of(pool.run(flaky, idempotent=False))
    assert len(calls) == 1


def test_an_unanswered_operation_closes_its_connection() -> None:
    connector = FakeConnector()
    pool, clock, _ = make_pool(connector, operation_timeout=20.0)
    op, _ = holder()
    stuck = pool.run(op)
    clock.advance(19.9)
    assert not stuck.called
    with capturedLogs() as events:
        clock.advance(0.1)
    with pytest.raises(StoreUnavailable, match="did not answer within 20 s"):
        result_of(stuck)
    assert connector.opened[-1].closed or any(c.closed for c in connector.opened)
    assert any("closing the connection" in e.get("log_format", "") for e in events)
    assert len(connector.live()) == 2


def test_a_plain_error_keeps_the_connection() -> None:
    connector = FakeConnector()
    pool, _, _ = make_pool(connector, min_size=1)

    async def bad(conn: FakeConn) -> None:
        raise ValueError("a constraint failed")

    with pytest.raises(ValueError):
        result_of(pool.run(bad))
    assert len(connector.opened) == 1
    assert pool.idle == 1


def test_close_fails_waiters_and_closes_connections() -> None:
    connector = FakeConnector()
    pool, _clock, _ = make_pool(connector, min_size=1, max_size=1)
    op, held = holder()
    busy = pool.run(op)
    waiting = pool.run(conn_number)
    closed = pool.close(drain_timeout=5.0)
    with pytest.raises(StoreUnavailable, match="closed"):
        result_of(waiting)
    assert not closed.called
    held[0].callback(None)
    result_of(busy)
    assert closed.called
    assert all(c.closed for c in connector.opened)
    with pytest.raises(StoreUnavailable):
        result_of(pool.run(conn_number))


def test_close_gives_up_on_busy_connections_after_the_drain_timeout() -> None:
    connector = FakeConnector()
    pool, clock, _ = make_pool(connector, min_size=1, max_size=1)
    op, _ = holder()
    busy = pool.run(op)
    closed = pool.close(drain_timeout=5.0)
    clock.advance(5.0)
    assert closed.called
    with pytest.raises((StoreUnavailable, error.ConnectionDone)):
        result_of(busy)


def test_acquire_can_be_cancelled() -> None:
    connector = FakeConnector()
    pool, _, _ = make_pool(connector, min_size=1, max_size=1)
    op, _held = holder()
    pool.run(op)
    waiter = pool.acquire()
    assert pool.waiting == 1
    waiter.cancel()
    assert pool.waiting == 0
    waiter.addErrback(lambda f: f.trap(defer.CancelledError))


class Silent(protocol.Protocol):
    """Accepts the connection and never says a word, like a wedged server."""

    def __init__(self, accepted: list[Silent]) -> None:
        self.accepted = accepted
        self.received = b""

    def connectionMade(self) -> None:
        self.accepted.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data


@pytest_twisted.ensureDeferred
async def test_a_server_that_accepts_and_never_answers_times_out_clearly() -> None:
    from twisted.internet import reactor

    accepted: list[Silent] = []
    factory = protocol.Factory.forProtocol(lambda: Silent(accepted))
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    where = f"127.0.0.1:{port.getHost().port}"
    store = PostgresStore(
        f"host=127.0.0.1 port={port.getHost().port} user=cosmic dbname=cosmic password=hunter2",
        reactor=reactor,
        min_size=1,
        connect_timeout=0.5,
    )
    try:
        # The outer bound only turns a hang (the bug this guards) into a failure.
        opening = store.open().addTimeout(20, reactor)
        with pytest.raises(StoreUnavailable) as caught:
            await opening
    finally:
        for silent in accepted:
            silent.transport.abortConnection()
        await port.stopListening()
    message = str(caught.value)
    assert f"no connection to postgresql://cosmic@{where}/cosmic within 0.5 s" in message
    assert "hunter2" not in message
    assert accepted, "the client never reached the listener: not a connect timeout"
    assert accepted[0].received, "the client sent nothing, so nothing went unanswered"
    assert store.pool.state == "closed"
