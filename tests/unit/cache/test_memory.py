"""The in-process LRU: eviction order and TTL on task.Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task

from cosmic.cache.memory import MemoryCache


def value(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out
    return out[0]


def test_ttl_follows_the_injected_clock() -> None:
    clock = task.Clock()
    cache = MemoryCache(10, clock=clock)
    cache.set("a", b"1", ttl=30)
    cache.set("b", b"2")
    clock.advance(29.9)
    assert value(cache.get("a")) == b"1"
    clock.advance(0.1)
    assert value(cache.get("a")) is None
    clock.advance(10_000)
    assert value(cache.get("b")) == b"2"
    assert len(cache) == 1


def test_sorted_sets_expire_too() -> None:
    clock = task.Clock()
    cache = MemoryCache(10, clock=clock)
    cache.zreplace("board", {"x": 1.0}, ttl=5)
    cache.zadd("board", {"y": 2.0})  # keeps the expiry
    clock.advance(4)
    assert value(cache.ztop("board", 5)) == [("y", 2.0), ("x", 1.0)]
    clock.advance(1)
    assert value(cache.ztop("board", 5)) is None


def test_least_recently_used_goes_first() -> None:
    cache = MemoryCache(3, clock=task.Clock())
    for key in "abc":
        cache.set(key, key.encode())
    cache.get("a")  # a is now the most recent
    cache.set("d", b"d")
    assert value(cache.get("b")) is None
    assert [value(cache.get(k)) for k in "acd"] == [b"a", b"c", b"d"]
    assert cache.evictions == 1
    cache.zadd("z", {"m": 1.0})  # a sorted set is one entry
    assert len(cache) == 3


def test_replacing_a_value_resets_its_ttl() -> None:
    clock = task.Clock()
    cache = MemoryCache(10, clock=clock)
    cache.set("k", b"1", ttl=10)
    clock.advance(8)
    cache.set("k", b"2", ttl=10)
    clock.advance(8)
    assert value(cache.get("k")) == b"2"
    cache.set("k", b"3")  # no ttl: never expires
    clock.advance(1e9)
    assert value(cache.get("k")) == b"3"


def test_check_reports_fill() -> None:
    cache = MemoryCache(100, clock=task.Clock())
    cache.set("a", b"")
    assert cache.check().status == "ok"
    assert "1 of 100 entries" in cache.check().detail
