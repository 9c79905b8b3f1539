"""PostgreSQL for real: outages, recovery, pool limits, timeouts, migrations.

Outage tests stop and restart a PRIVATE cluster (its own data directory and
port); the shared server only ever gets throwaway databases.  Waits are on
events (pool up, a flush failing) with deadlines, never fixed sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg2
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task, threads

from cosmic.metrics import create as create_metrics
from cosmic.readiness import Readiness
from cosmic.store.errors import MigrationError, PoolExhausted, QueryTimeout, StoreUnavailable
from cosmic.store.postgres import PostgresStore, Session
from cosmic.store.records import BodyRecord, GardenRecord
from cosmic.store.writebehind import WriteBehind
from tests.contract.servers import PrivatePostgres, TempDatabase, pg_reachable

pytestmark = pytest.mark.integration

RECOVERY_BOUND = 5.0  # s from the server accepting connections to a query answered


@pytest.fixture
def shared_db() -> Iterator[TempDatabase]:
    why = pg_reachable()
    if why is not None:
        pytest.skip(why)
    database = TempDatabase().create()
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    try:
        server = PrivatePostgres().init()
    except (RuntimeError, OSError, KeyError) as exc:
        pytest.skip(f"cannot run a private PostgreSQL: {exc}")
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


async def until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.01, lambda: None)


async def bounded(d: defer.Deferred[Any], seconds: float = 30.0) -> Any:
    return await d.addTimeout(seconds, reactor)


def first_connection(dsn: str, timeout: float = 90.0) -> float:
    """When the server first accepts a connection (in a thread: psycopg2 blocks)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg2.connect(dsn, connect_timeout=1).close()
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
        else:
            return time.monotonic()


async def first_answer(store: PostgresStore, timeout: float = 90.0) -> float:
    """When the store first answers a query (it fails fast while the pool is down)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await bounded(store.ping(), 10)
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await task.deferLater(reactor, 0.01, lambda: None)
        else:
            return time.monotonic()


class LiveWorld:
    """Gardens that keep changing (positions move, bodies come and go)."""

    def __init__(self, gardens: list[GardenRecord]) -> None:
        self.gardens = {g.id: g for g in gardens}
        self.bodies: dict[int, list[BodyRecord]] = {g.id: [] for g in gardens}
        self.versions = {g.id: 0 for g in gardens}
        self.clean = dict(self.versions)
        self.step = 0

    def tick(self) -> None:
        self.step += 1
        for gid in self.gardens:
            self.versions[gid] += 1
            count = 1 + (self.step + gid) % 7  # the body set changes size
            x = self.step * 0.5
            self.bodies[gid] = [
                BodyRecord(gid, b, "asteroid", f"b{b}", 1.0, 0.1, x, b, 0.0, 0, 0, 0, 1, 1.0)
                for b in range(count)
            ]
            self.gardens[gid] = attrs.evolve(
                self.gardens[gid], game_time=float(self.step), total_mass=float(count)
            )

    def dirty(self) -> list[tuple[int, int]]:
        return [(g, v) for g, v in self.versions.items() if self.clean[g] != v]

    def snapshot(self, gid: int) -> tuple[GardenRecord, list[BodyRecord]]:
        return attrs.evolve(self.gardens[gid], version=self.versions[gid]), list(self.bodies[gid])

    def saved(self, gid: int, version: int) -> None:
        if self.versions[gid] == version:
            self.clean[gid] = version


@pytest_twisted.ensureDeferred
async def test_restarting_postgresql_during_a_save_loop_loses_nothing(
    private_pg: PrivatePostgres, record_property: Any
) -> None:
    metrics = create_metrics("t")
    readiness = Readiness(reactor)
    store = PostgresStore(
        private_pg.dsn,
        reactor=reactor,
        metrics=metrics.store,
        min_size=2,
        max_size=4,
        connect_timeout=2.0,
        acquire_timeout=2.0,
    )
    await store.migrate()
    await store.open()
    owner = await store.create_account("owner", "Owner", "h", 1.0)
    gardens = [await store.create_garden(owner.id, f"g{i}", True, 1.0, {}) for i in range(12)]
    world = LiveWorld(gardens)
    writer = WriteBehind(
        store,
        world,
        clock=reactor,
        interval=0.05,
        batch_size=5,
        max_backoff=0.5,
        metrics=metrics.store,
        readiness=readiness,
    )
    game = task.LoopingCall(world.tick)
    game.start(0.02)
    writer.startService()
    try:
        await until(lambda: writer.saved_total >= 24, what="saves before the outage")
        await threads.deferToThread(private_pg.stop, "fast")
        await until(lambda: writer.failures >= 2, what="failed flushes during the outage")
        checks = (await readiness.report()).as_json()["checks"]
        assert checks["persistence"]["status"] == "degraded"
        assert "waiting to be saved" in checks["persistence"]["detail"]
        assert store.check().status == "degraded"
        with pytest.raises(StoreUnavailable):
            await bounded(store.get_account(owner.id), 10)  # fails fast, no hang
        # Long enough for the pool's probe to back off to its 2 s cap.
        await until(lambda: store.pool.attempts >= 5, what="the reconnection backoff")
        steps_during_outage = world.step
        starting = threads.deferToThread(private_pg.start)
        accepted = threads.deferToThread(first_connection, private_pg.dsn)
        answered = defer.ensureDeferred(first_answer(store))
        await bounded(starting, 90)
        back = await bounded(accepted, 90)
        ours = await bounded(answered, 90)
        await bounded(store.pool.when_up(), 30)  # recovered by itself
        recovery = max(0.0, ours - back)
        record_property("first_query_after_restart_s", round(recovery, 3))
        # At most one capped probe delay (2 s) plus a connection set-up.
        assert recovery < RECOVERY_BOUND, recovery
        await until(lambda: writer.failures == 0, what="a successful flush after the outage")
        assert world.step > steps_during_outage  # the game never stopped
    finally:
        game.stop()
        saved_all = await bounded(defer.maybeDeferred(writer.stopService), 60)
    assert saved_all is True
    assert world.dirty() == []
    for gid in world.gardens:
        record, bodies = await store.load_garden(gid)
        expected, expected_bodies = world.snapshot(gid)
        assert record == expected
        assert bodies == expected_bodies
    assert metrics.registry.get_sample_value("t_db_reconnects_total") >= 1
    assert metrics.registry.get_sample_value("t_persistence_flush_failures_total") >= 2
    assert store.check().status == "ok"
    await store.close()


@pytest_twisted.ensureDeferred
async def test_connections_killed_by_the_server_are_replaced(shared_db: TempDatabase) -> None:
    store = PostgresStore(shared_db.dsn, reactor=reactor, min_size=3, max_size=5)
    await store.migrate()
    await store.open()
    try:
        await store.ping()
        killed = shared_db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = 'cosmic-gardener'"
        )
        assert len(killed) >= 3
        # the first query after the kill succeeds: dead connections are noticed
        # and dropped, or retried once on a fresh one
        await bounded(store.ping(), 10)
        assert await bounded(store.get_account(1), 10) is None
        await until(lambda: store.pool.size >= 3, what="the pool to refill")
        assert store.check().status == "ok"
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_an_exhausted_pool_says_so_clearly(shared_db: TempDatabase) -> None:
    store = PostgresStore(
        shared_db.dsn, reactor=reactor, min_size=0, max_size=2, acquire_timeout=0.3
    )
    await store.open()
    release: defer.Deferred[None] = defer.Deferred()

    async def hold(conn: Any) -> None:
        await Session(conn).one("SELECT 1")
        await release

    try:
        holders = [store.pool.run(hold), store.pool.run(hold)]
        with pytest.raises(PoolExhausted) as caught:
            await bounded(store.ping(), 10)
        message = str(caught.value)
        assert "0.3 s (database.acquire_timeout)" in message
        assert "all 2 connections" in message
        release.callback(None)
        await defer.gatherResults(holders)
        await store.ping()
    finally:
        if not release.called:
            release.callback(None)
        await store.close()


@pytest_twisted.ensureDeferred
async def test_statement_timeout_cancels_and_the_connection_survives(
    shared_db: TempDatabase,
) -> None:
    store = PostgresStore(
        shared_db.dsn, reactor=reactor, min_size=1, max_size=1, statement_timeout=0.2
    )
    await store.open()

    async def sleepy(s: Session) -> Any:
        return await s.one("SELECT pg_sleep(5)")

    try:
        with pytest.raises(QueryTimeout):
            await bounded(store._run("sleepy", sleepy), 10)
        await store.ping()
        assert store.pool.size == 1
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_concurrent_migrations_on_a_fresh_database_do_not_race(
    shared_db: TempDatabase,
) -> None:
    stores = [PostgresStore(shared_db.dsn, reactor=reactor) for _ in range(5)]
    results = await bounded(defer.gatherResults([s.migrate() for s in stores]), 60)
    assert sorted(results) == [[], [], [], [], ["0001_initial"]]
    rows = shared_db.execute("SELECT version, name FROM schema_migrations")
    assert rows == [(1, "0001_initial")]
    assert await stores[0].migrate() == []  # idempotent


@pytest_twisted.ensureDeferred
async def test_an_edited_migration_is_refused(shared_db: TempDatabase) -> None:
    store = PostgresStore(shared_db.dsn, reactor=reactor)
    await store.migrate()
    shared_db.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await store.migrate()


@pytest_twisted.ensureDeferred
async def test_the_migration_lock_times_out_clearly(shared_db: TempDatabase) -> None:
    holder = psycopg2.connect(shared_db.dsn)
    try:
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", (0x636F736D6963,))
        store = PostgresStore(shared_db.dsn, reactor=reactor, migration_lock_timeout=0.3)
        with pytest.raises(MigrationError, match="migration lock"):
            await bounded(store.migrate(), 10)
    finally:
        holder.close()


@pytest_twisted.ensureDeferred
async def test_unreachable_at_start_is_a_clear_error() -> None:
    store = PostgresStore(
        "host=127.0.0.1 port=1 user=nobody dbname=none password=hunter2",
        reactor=reactor,
        connect_timeout=2.0,
    )
    with pytest.raises(
        StoreUnavailable, match=r"cannot connect to postgresql://nobody@127\.0\.0\.1:1/none"
    ):
        await bounded(store.open(), 10)
    assert "hunter2" not in store.check().detail
