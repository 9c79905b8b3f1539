"""build_persistence, the services and migrate(), from real Settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from cosmic.cache.memory import MemoryCache
from cosmic.cache.resilient import ResilientCache
from cosmic.config import ConfigRequest, load
from cosmic.metrics import create as create_metrics
from cosmic.readiness import Readiness
from cosmic.store.errors import StoreUnavailable
from cosmic.store.postgres import PostgresStore
from cosmic.store.service import build_persistence, make_store, migrate
from cosmic.store.sqlite import SQLiteStore
from tests.contract.servers import free_port


def settings(*overrides: str):
    return load(ConfigRequest(environ={}, environment="test", overrides=overrides))


async def report(readiness: Readiness) -> dict:
    return (await readiness.report()).as_json()["checks"]


def test_the_url_chooses_the_backend(tmp_path: Path) -> None:
    lite = make_store(settings("database.url=sqlite:///var/a.sqlite3"), reactor, cwd=tmp_path)
    assert isinstance(lite, SQLiteStore) and lite.path == tmp_path / "var" / "a.sqlite3"
    pg = make_store(
        settings(
            "database.url=postgresql://u:secret@127.0.0.1:5999/db", "database.pool_max_size=7"
        ),
        reactor,
    )
    assert isinstance(pg, PostgresStore)
    assert pg.pool.max_size == 7 and pg.pool.min_size == 2
    assert pg.pool.acquire_timeout == 5.0
    assert "secret" not in pg.check().detail


@pytest_twisted.ensureDeferred
async def test_embedded_defaults_start_and_stop(tmp_path: Path) -> None:
    metrics = create_metrics("t")
    readiness = Readiness(reactor)
    p = build_persistence(
        settings(f"database.url=sqlite:///{tmp_path}/db/cosmic.sqlite3"),
        reactor,
        metrics,
        readiness,
    )
    assert isinstance(p.cache, MemoryCache)
    checks = await report(readiness)
    assert checks["store"]["status"] == "fail" and checks["cache"]["status"] == "fail"
    await p.store_service.startService()
    await p.cache_service.startService()
    checks = await report(readiness)
    assert checks["store"]["status"] == "ok" and checks["cache"]["status"] == "ok"
    owner = await p.store.create_account("a", "A", "h", 1.0)
    await p.store.create_garden(owner.id, "g", True, 1.0, {})
    assert [r.score for r in await p.leaderboards.top("total_mass")] == [0.0]
    sessions = p.cache_view("sessions")
    assert p.cache_view("sessions") is sessions
    await sessions.set("t", b"1")
    assert await sessions.get("t") == b"1"
    await p.cache_service.stopService()
    await p.store_service.stopService()
    assert (await report(readiness))["store"]["status"] == "fail"
    assert (tmp_path / "db" / "cosmic.sqlite3").exists()


@pytest_twisted.ensureDeferred
async def test_unreachable_postgresql_fails_the_start_clearly() -> None:
    port = free_port()
    p = build_persistence(
        settings(
            f"database.url=postgresql://cosmic:hunter2@127.0.0.1:{port}/cosmic",
            "database.connect_timeout=2",
        ),
        reactor,
    )
    with pytest.raises(StoreUnavailable) as caught:
        await p.store_service.startService()
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "hunter2" not in message
    assert p.store_service.check().status == "fail"


@pytest_twisted.ensureDeferred
async def test_unreachable_redis_does_not_fail_the_start() -> None:
    readiness = Readiness(reactor)
    p = build_persistence(
        settings(f"cache.redis_url=redis://127.0.0.1:{free_port()}/0"), reactor, None, readiness
    )
    assert isinstance(p.cache, ResilientCache)
    p.cache_service._connect_wait = 0.2
    await p.cache_service.startService()
    try:
        checks = await report(readiness)
        assert checks["cache"]["status"] == "degraded"
        assert await p.cache.get("x") is None  # a miss, not an error
    finally:
        await p.cache_service.stopService()


@pytest_twisted.ensureDeferred
async def test_migrate_only(tmp_path: Path) -> None:
    config = settings(f"database.url=sqlite:///{tmp_path}/m.sqlite3")
    assert await migrate(config, reactor) == ["0001_initial"]
    assert await migrate(config, reactor) == []


class Nothing:
    """A loader with nothing to save."""

    def dirty(self):
        return []

    def snapshot(self, garden_id):
        return None

    def saved(self, garden_id, version):
        pass


@pytest_twisted.ensureDeferred
async def test_reload_changes_intervals(tmp_path: Path) -> None:
    p = build_persistence(settings(f"database.url=sqlite:///{tmp_path}/r.sqlite3"), reactor)

    writer = p.write_behind(Nothing())
    assert writer.interval == 5.0 and writer.batch_size == 200
    new = settings(f"database.url=sqlite:///{tmp_path}/r.sqlite3", "database.flush_interval=1.5")
    p.on_reload(new, ("database.flush_interval",))
    assert writer.interval == 1.5
    await defer.succeed(None)


def test_the_saver_stops_within_the_shutdown_timeout(tmp_path: Path) -> None:
    p = build_persistence(
        settings(f"database.url=sqlite:///{tmp_path}/s.sqlite3", "server.shutdown_timeout=20"),
        reactor,
    )

    writer = p.write_behind(Nothing())
    assert writer.stop_timeout == pytest.approx(16.0)  # 0.8 of server.shutdown_timeout
    assert writer._stop_began is None
    p.stopping()
    assert writer._stop_began is not None


def test_the_session_and_snapshot_caches_are_named_views(tmp_path: Path) -> None:
    p = build_persistence(
        settings(f"database.url=sqlite:///{tmp_path}/c.sqlite3", "cache.snapshot_ttl=12.5"),
        reactor,
    )
    assert p.sessions.cache.view is p.cache_view("sessions")
    assert p.snapshots.cache.view is p.cache_view("snapshots")
    assert p.snapshots.cache.ttl == 12.5
    assert 0 < p.sessions.cache.ttl <= 10.0
