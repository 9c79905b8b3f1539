"""SQLite specifics: the file, the worker thread, migrations, timeouts."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from cosmic.store.errors import QueryTimeout, StoreUnavailable
from cosmic.store.sqlite import SQLiteStore, path_from_url


def test_paths_from_urls(tmp_path: Path) -> None:
    assert path_from_url("sqlite:///var/x.sqlite3", tmp_path) == tmp_path / "var/x.sqlite3"
    assert path_from_url("sqlite:////abs/x.db", tmp_path) == Path("/abs/x.db")
    assert path_from_url("sqlite:///with%20space.db", tmp_path) == tmp_path / "with space.db"
    with pytest.raises(ValueError):
        path_from_url("postgresql://h/db", tmp_path)


@pytest_twisted.ensureDeferred
async def test_creates_parent_directories_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "cosmic.sqlite3"
    store = SQLiteStore(path, reactor=reactor)
    await store.open()
    try:
        assert await store.migrate() == ["0001_initial"]
        assert await store.migrate() == []
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 1
    finally:
        conn.close()


@pytest_twisted.ensureDeferred
async def test_concurrent_migrators_do_not_race(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    stores = [SQLiteStore(path, reactor=reactor) for _ in range(4)]
    await defer.gatherResults([s.open() for s in stores])
    try:
        results = await defer.gatherResults([s.migrate() for s in stores])
    finally:
        await defer.gatherResults([s.close() for s in stores])
    assert sorted(results) == [[], [], [], ["0001_initial"]]


@pytest_twisted.ensureDeferred
async def test_work_runs_in_one_thread_that_is_not_the_reactor(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.sqlite3", reactor=reactor)
    await store.open()
    threads = set()

    def job(conn: sqlite3.Connection) -> None:
        threads.add(threading.get_ident())

    try:
        await defer.gatherResults([store._run("probe", job) for _ in range(20)])
    finally:
        await store.close()
    assert len(threads) == 1
    assert threading.get_ident() not in threads


@pytest_twisted.ensureDeferred
async def test_a_slow_statement_does_not_block_the_reactor(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.sqlite3", reactor=reactor, statement_timeout=60.0)
    await store.open()
    ticks: list[float] = []
    loop = task.LoopingCall(lambda: ticks.append(reactor.seconds()))
    loop.start(0.01)
    started = threading.Event()
    release = threading.Event()

    def slow(conn: sqlite3.Connection) -> int:
        started.set()
        release.wait(30)  # the worker is busy until the reactor says so
        return conn.execute("SELECT 1").fetchone()[0]

    try:
        pending = store._run("slow", slow)
        # the reactor keeps ticking while the worker is busy
        while len(ticks) < 5:
            await task.deferLater(reactor, 0.01, lambda: None)
        assert started.is_set() and not pending.called
        release.set()
        assert await pending == 1
    finally:
        release.set()
        loop.stop()
        await store.close()


@pytest_twisted.ensureDeferred
async def test_statement_timeout_interrupts(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.sqlite3", reactor=reactor, statement_timeout=0.2)
    await store.open()
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    try:
        with pytest.raises(QueryTimeout, match=r"database\.statement_timeout"):
            await store._run("endless", lambda conn: conn.execute(endless).fetchone())
        await store.ping()  # still usable
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_unopenable_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = SQLiteStore(blocker / "sub" / "x.sqlite3", reactor=reactor)
    with pytest.raises(StoreUnavailable, match="cannot open SQLite database"):
        await store.open()
    assert store.check().status == "fail"
