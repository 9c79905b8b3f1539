"""The cache contract: the same assertions against Redis and the in-process LRU."""

from __future__ import annotations

import math
import time

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from cosmic.cache.interface import Cache, CacheView
from cosmic.metrics import create as create_metrics

pytestmark = pytest.mark.integration


async def wait_until_gone(cache: Cache, key: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while await cache.get(key) is not None:
        assert time.monotonic() < deadline, f"{key} did not expire"
        await task.deferLater(reactor, 0.02, lambda: None)


@pytest_twisted.ensureDeferred
async def test_get_set_delete(cache: Cache) -> None:
    assert await cache.get("missing") is None
    await cache.set("k", b"value")
    assert await cache.get("k") == b"value"
    await cache.set("k", b"replaced")
    assert await cache.get("k") == b"replaced"
    await cache.delete("k")
    assert await cache.get("k") is None
    await cache.delete("never-set")  # no error


@pytest_twisted.ensureDeferred
async def test_values_are_arbitrary_bytes_and_keys_any_text(cache: Cache) -> None:
    every_byte = bytes(range(256)) * 4
    await cache.set("binary", every_byte)
    assert await cache.get("binary") == every_byte
    await cache.set("empty", b"")
    assert await cache.get("empty") == b""
    key = "session:🌌 'quoted' \"double\" \r\n spaces *?[glob]"
    await cache.set(key, "ünïcode ✨".encode())
    assert (await cache.get(key)).decode() == "ünïcode ✨"
    big = b"x" * 1_000_000
    await cache.set("big", big)
    assert await cache.get("big") == big


@pytest_twisted.ensureDeferred
async def test_ttl_expires(cache: Cache) -> None:
    await cache.set("short", b"1", ttl=0.15)
    await cache.set("long", b"2", ttl=300)
    await cache.set("forever", b"3")
    assert await cache.get("short") == b"1"
    await wait_until_gone(cache, "short")
    assert await cache.get("long") == b"2"
    assert await cache.get("forever") == b"3"


@pytest_twisted.ensureDeferred
async def test_bad_arguments_are_refused(cache: Cache) -> None:
    for call in (
        lambda: cache.set("k", "text, not bytes"),
        lambda: cache.set("k", b"v", ttl=0),
        lambda: cache.set("k", b"v", ttl=-1),
        lambda: cache.set("", b"v"),
        lambda: cache.ztop("z", 0),
        lambda: cache.zadd("z", {"m": math.nan}),
    ):
        with pytest.raises((TypeError, ValueError)):
            await call()


@pytest_twisted.ensureDeferred
async def test_sorted_set_order_both_ways(cache: Cache) -> None:
    assert await cache.ztop("board", 5) is None
    await cache.zadd("board", {"b": 2.0, "a": 2.0, "c": 3.5, "d": -1.0})
    await cache.zadd("board", {"e": 10.0})
    assert await cache.ztop("board", 3) == [("e", 10.0), ("c", 3.5), ("b", 2.0)]
    assert await cache.ztop("board", 10, descending=False) == [
        ("d", -1.0),
        ("a", 2.0),
        ("b", 2.0),
        ("c", 3.5),
        ("e", 10.0),
    ]
    await cache.zadd("board", {"d": 100.0})  # re-score
    assert (await cache.ztop("board", 1))[0] == ("d", 100.0)
    await cache.zrem("board", ["d", "e", "not-there"])
    assert await cache.ztop("board", 10) == [("c", 3.5), ("b", 2.0), ("a", 2.0)]
    await cache.zrem("board", ["a", "b", "c"])
    assert await cache.ztop("board", 10) is None  # an emptied set does not exist


@pytest_twisted.ensureDeferred
async def test_sorted_set_scores_keep_precision(cache: Cache) -> None:
    scores = {"tiny": 1e-10, "huge": 1.5e300, "third": 1 / 3, "inf": math.inf, "neg": -0.1}
    await cache.zadd("precise", scores)
    assert dict(await cache.ztop("precise", 10)) == scores
    members = {"🌌 ünï 'x'": 1.0, "with|pipe and [1,2]": 2.0}
    await cache.zadd("unicode", members)
    assert dict(await cache.ztop("unicode", 10)) == members


@pytest_twisted.ensureDeferred
async def test_zreplace_is_a_whole_new_set(cache: Cache) -> None:
    await cache.zadd("lb", {"old": 1.0, "keep": 2.0})
    await cache.zreplace("lb", {"keep": 5.0, "new": 3.0}, ttl=300)
    assert await cache.ztop("lb", 10) == [("keep", 5.0), ("new", 3.0)]
    await cache.zreplace("lb", {})
    assert await cache.ztop("lb", 10) is None
    await cache.zreplace("expiring", {"m": 1.0}, ttl=0.15)
    assert await cache.ztop("expiring", 1) == [("m", 1.0)]
    deadline = time.monotonic() + 10
    while await cache.ztop("expiring", 1) is not None:
        assert time.monotonic() < deadline
        await task.deferLater(reactor, 0.02, lambda: None)
    many = {f"member-{i:05d}": float(i) for i in range(5000)}
    await cache.zreplace("many", many, ttl=300)
    assert await cache.ztop("many", 2) == [("member-04999", 4999.0), ("member-04998", 4998.0)]


@pytest_twisted.ensureDeferred
async def test_views_are_separate_and_count_hits(cache: Cache) -> None:
    metrics = create_metrics("t")
    sessions = CacheView(cache, "sessions", metrics.cache)
    snapshots = CacheView(cache, "snapshots", metrics.cache)
    await sessions.set("42", b"session")
    assert await snapshots.get("42") is None
    assert await sessions.get("42") == b"session"
    assert await sessions.get("43") is None
    assert (sessions.hits, sessions.misses) == (1, 1)
    assert (snapshots.hits, snapshots.misses) == (0, 1)
    sample = metrics.registry.get_sample_value
    assert sample("t_cache_requests_total", {"cache": "sessions", "result": "hit"}) == 1
    assert sample("t_cache_requests_total", {"cache": "snapshots", "result": "miss"}) == 1
    await sessions.zadd("board", {"a": 1.0})
    assert await sessions.ztop("board", 1) == [("a", 1.0)]
    assert await snapshots.ztop("board", 1) is None
    assert sessions.hits == 2


@pytest_twisted.ensureDeferred
async def test_ping_and_check(cache: Cache) -> None:
    await cache.ping()
    assert cache.check().status == "ok"
