"""Redis for real: a PRIVATE redis-server is killed, restarted and paused
while callers keep using the cache; they see misses, never errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task, threads

from cosmic.cache.interface import CacheView
from cosmic.cache.redis import RedisCache
from cosmic.cache.resilient import ResilientCache
from cosmic.cache.service import CacheService
from cosmic.metrics import create as create_metrics
from cosmic.readiness import Readiness
from cosmic.store.leaderboards import Leaderboards
from cosmic.store.memory import MemoryStore
from tests.contract.servers import PrivateRedis

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    try:
        server = PrivateRedis()
        server.start()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"cannot run a private redis-server: {exc}")
    try:
        yield server
    finally:
        server.cleanup()


async def until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.01, lambda: None)


async def bounded(d: defer.Deferred[Any], seconds: float = 10.0) -> Any:
    """Every cache call must answer: a hang fails the test here."""
    return await d.addTimeout(seconds, reactor)


def make_cache(server: PrivateRedis, metrics: Any = None) -> ResilientCache:
    redis = RedisCache(server.url, reactor=reactor, timeout=0.3, prefix="t:", metrics=metrics)
    return ResilientCache(redis, clock=reactor, metrics=metrics)


async def exercise(cache: ResilientCache) -> list[Any]:
    """One of each call; during an outage each is a miss or a no-op."""
    return [
        await bounded(cache.get("k")),
        await bounded(cache.set("k", b"v", ttl=60)),
        await bounded(cache.delete("gone")),
        await bounded(cache.zadd("z", {"a": 1.0})),
        await bounded(cache.ztop("z", 5)),
        await bounded(cache.zreplace("z2", {"a": 1.0}, ttl=60)),
    ]


@pytest_twisted.ensureDeferred
async def test_killing_and_restarting_redis_is_invisible_to_callers(
    private_redis: PrivateRedis,
) -> None:
    metrics = create_metrics("t")
    readiness = Readiness(reactor)
    cache = make_cache(private_redis, metrics.cache)
    service = CacheService(cache, readiness)
    await service.startService()
    view = CacheView(cache, "sessions", metrics.cache)
    try:
        await view.set("s1", b"alice")
        assert await view.get("s1") == b"alice"
        await threads.deferToThread(private_redis.stop)
        for _ in range(20):
            assert await exercise(cache) == [None] * 6
            assert await bounded(view.get("s1")) is None
        assert cache.state == "down"
        checks = (await readiness.report()).as_json()["checks"]
        assert checks["cache"]["status"] == "degraded"
        assert metrics.registry.get_sample_value("t_cache_up") == 0
        await threads.deferToThread(private_redis.start)
        await bounded(cache.when_up(), 30)  # recovers by itself
        await view.set("s1", b"alice again")
        assert await view.get("s1") == b"alice again"
        checks = (await readiness.report()).as_json()["checks"]
        assert checks["cache"]["status"] == "ok"
        assert view.misses >= 20
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_hung_redis_times_out_into_misses_and_stale_keys_are_invalidated(
    private_redis: PrivateRedis,
) -> None:
    cache = make_cache(private_redis)
    await cache.open()
    assert await cache.inner.when_connected(5.0)
    try:
        await cache.set("snapshot:1", b"old", ttl=600)
        private_redis.pause()  # connections stay open; nothing answers
        assert await bounded(cache.get("snapshot:1"), 5) is None  # the deadline, then a miss
        assert cache.state == "down"
        # while down nobody waits for the deadline any more
        assert await exercise(cache) == [None] * 6
        await cache.set("snapshot:1", b"new")  # dropped: Redis still holds "old"
        private_redis.resume()
        await bounded(cache.when_up(), 30)
        await until(lambda: not cache.pending, what="invalidations replayed")
        assert await cache.get("snapshot:1") is None  # never the stale "old"
        await cache.set("snapshot:1", b"fresh")
        assert await cache.get("snapshot:1") == b"fresh"
    finally:
        private_redis.resume()
        await cache.close()


@pytest_twisted.ensureDeferred
async def test_redis_down_at_start_then_up(private_redis: PrivateRedis) -> None:
    private_redis.stop()
    readiness = Readiness(reactor)
    cache = make_cache(private_redis)
    service = CacheService(cache, readiness, connect_wait=0.3)
    await service.startService()  # does not fail the daemon's start
    try:
        assert cache.state == "down"
        assert await cache.get("x") is None
        await threads.deferToThread(private_redis.start)
        await bounded(cache.when_up(), 30)
        await cache.set("x", b"1")
        assert await cache.get("x") == b"1"
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_leaderboards_fall_back_to_the_store(private_redis: PrivateRedis) -> None:
    store = MemoryStore()
    owner = await store.create_account("o", "Owner", "h", 1.0)
    await store.create_garden(owner.id, "g", True, 1.0, {})
    cache = make_cache(private_redis)
    await cache.open()
    assert await cache.inner.when_connected(5.0)
    boards = Leaderboards(store, CacheView(cache, "leaderboards"), ttl=60.0)
    try:
        assert len(await boards.top("total_mass")) == 1
        assert len(await boards.top("total_mass")) == 1
        assert boards.rebuilds == 1  # the second came from Redis
        await threads.deferToThread(private_redis.stop)
        for _ in range(3):
            assert len(await bounded(boards.top("total_mass"))) == 1
    finally:
        await cache.close()
