"""Backends for the contract suites: every test runs once per backend.

PostgreSQL: one fresh database per session on the shared server, emptied
before each test.  SQLite: a fresh file per test.  Redis: the shared server
under a random key prefix, deleted afterwards.  A missing server is a skip
(a failure under COSMIC_TEST_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from cosmic.cache.memory import MemoryCache
from cosmic.cache.redis import RedisCache
from cosmic.store.memory import MemoryStore
from cosmic.store.postgres import PostgresStore
from cosmic.store.sqlite import SQLiteStore
from tests.contract.servers import SHARED_REDIS, TempDatabase, pg_reachable, redis_reachable

STORE_BACKENDS = ["memory", "sqlite", "postgresql"]
CACHE_BACKENDS = ["memory", "redis"]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[TempDatabase]:
    why = pg_reachable()
    if why is not None:
        pytest.skip(why)
    database = TempDatabase().create()
    try:
        store = PostgresStore(database.dsn, reactor=reactor, min_size=0, max_size=1)
        pytest_twisted.blockon(store.migrate())
        yield database
    finally:
        database.drop()


def empty_pg(database: TempDatabase) -> None:
    database.execute("TRUNCATE accounts, refresh_tokens, gardens, bodies")


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    backend = request.param
    if backend == "memory":
        made = MemoryStore()
    elif backend == "sqlite":
        made = SQLiteStore(tmp_path / "data" / "store.sqlite3", reactor=reactor)
    else:
        database = request.getfixturevalue("pg_database")
        empty_pg(database)
        made = PostgresStore(
            database.dsn, reactor=reactor, min_size=1, max_size=4, acquire_timeout=5.0
        )
    pytest_twisted.blockon(made.open())
    if backend == "sqlite":
        pytest_twisted.blockon(made.migrate())
    try:
        yield made
    finally:
        pytest_twisted.blockon(made.close())


@pytest.fixture(params=CACHE_BACKENDS)
def cache(request: pytest.FixtureRequest) -> Iterator:
    if request.param == "memory":
        made = MemoryCache(1000, clock=reactor)
        pytest_twisted.blockon(made.open())
        yield made
        return
    why = redis_reachable()
    if why is not None:
        pytest.skip(why)
    host, port = SHARED_REDIS
    made = RedisCache(
        f"redis://{host}:{port}/0",
        reactor=reactor,
        timeout=2.0,
        prefix=f"cosmic-test-{secrets.token_hex(6)}:",
    )
    pytest_twisted.blockon(made.open())
    assert pytest_twisted.blockon(made.when_connected(5.0)), "no connection to Redis"
    try:
        yield made
    finally:
        pytest_twisted.blockon(made.delete_prefixed())
        pytest_twisted.blockon(made.close())
