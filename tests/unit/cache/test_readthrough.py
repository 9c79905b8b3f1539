"""ReadThrough: cached reads, invalidation racing slow loads, and a cache
that is down or broken, all on task.Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.logger import capturedLogs

from cosmic.cache.interface import CacheUnavailable, CacheView
from cosmic.cache.memory import MemoryCache
from cosmic.cache.readthrough import ReadThrough
from cosmic.cache.resilient import ResilientCache
from cosmic.metrics import create as create_metrics
from tests.unit.cache.test_resilient import Flaky


def value(d: Any) -> Any:
    out: list[Any] = []
    defer.ensureDeferred(d).addBoth(out.append)
    assert out, "not fired"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


class Source:
    """The store: counts reads; ``hold`` makes the next read wait."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.reads = 0
        self.held: list[defer.Deferred[None]] = []
        self.hold = False

    def loader(self, key: str):
        async def load() -> str | None:
            self.reads += 1
            if self.hold:
                gate: defer.Deferred[None] = defer.Deferred()
                self.held.append(gate)
                seen = self.values.get(key)  # read before the write lands
                await gate
                return seen
            return self.values.get(key)

        return load


def through(cache: Any, clock: task.Clock, **kwargs: Any) -> ReadThrough[str]:
    metrics = kwargs.pop("metrics", None)
    view = CacheView(cache, "things", metrics)
    return ReadThrough(view, 30.0, str.encode, bytes.decode, **kwargs)


def test_a_miss_reads_the_store_once_then_hits_until_the_ttl() -> None:
    clock = task.Clock()
    metrics = create_metrics("t")
    rt = through(MemoryCache(100, clock=clock), clock, metrics=metrics.cache)
    source = Source()
    source.values["a"] = "one"
    assert value(rt.get("a", source.loader("a"))) == "one"
    assert value(rt.get("a", source.loader("a"))) == "one"
    assert source.reads == 1
    assert (rt.view.hits, rt.view.misses) == (1, 1)
    sample = metrics.registry.get_sample_value
    assert sample("t_cache_requests_total", {"cache": "things", "result": "hit"}) == 1
    assert sample("t_cache_requests_total", {"cache": "things", "result": "miss"}) == 1
    clock.advance(30.0)
    assert value(rt.get("a", source.loader("a"))) == "one"
    assert source.reads == 2


def test_nothing_is_cached_for_a_missing_or_unkept_value() -> None:
    clock = task.Clock()
    rt = through(MemoryCache(100, clock=clock), clock, keep=lambda v: v != "secret")
    source = Source()
    source.values["s"] = "secret"
    for _ in range(3):
        assert value(rt.get("none", source.loader("none"))) is None
        assert value(rt.get("s", source.loader("s"))) == "secret"
    assert source.reads == 6
    assert rt.view.hits == 0


def test_invalidate_drops_the_entry() -> None:
    clock = task.Clock()
    rt = through(MemoryCache(100, clock=clock), clock)
    source = Source()
    source.values["a"] = "old"
    value(rt.get("a", source.loader("a")))
    source.values["a"] = "new"
    assert value(rt.get("a", source.loader("a"))) == "old"  # cached, as intended
    value(rt.invalidate("a"))
    assert value(rt.get("a", source.loader("a"))) == "new"


def test_a_load_that_straddles_a_write_does_not_cache_the_old_value() -> None:
    clock = task.Clock()
    rt = through(MemoryCache(100, clock=clock), clock)
    source = Source()
    source.values["a"] = "old"
    source.hold = True
    slow = defer.ensureDeferred(rt.get("a", source.loader("a")))
    source.values["a"] = "new"  # the write commits while the read is in flight
    value(rt.invalidate("a"))
    source.held.pop().callback(None)
    assert value(slow) == "old"  # that reader saw the old row...
    source.hold = False
    assert value(rt.get("a", source.loader("a"))) == "new"  # ...but did not cache it
    assert source.reads == 2


def test_an_invalidation_during_the_set_deletes_again() -> None:
    clock = task.Clock()

    class SlowSet(MemoryCache):
        def __init__(self) -> None:
            super().__init__(100, clock=clock)
            self.pending: list[tuple[defer.Deferred[None], Any]] = []

        def set(self, key, value, ttl=None):  # type: ignore[override]
            d: defer.Deferred[None] = defer.Deferred()
            self.pending.append((d, lambda: super(SlowSet, self)._set(key, value, ttl)))
            return d

    cache = SlowSet()
    rt = through(cache, clock)
    source = Source()
    source.values["a"] = "old"
    reading = defer.ensureDeferred(rt.get("a", source.loader("a")))
    value(rt.invalidate("a"))  # reaches Redis first, on another connection
    d, apply = cache.pending.pop()
    apply()
    d.callback(None)
    assert value(reading) == "old"
    assert value(cache.get("things:a")) is None


def test_a_cache_that_is_down_falls_back_to_the_store_silently() -> None:
    clock = task.Clock()
    flaky = Flaky(clock)
    resilient = ResilientCache(flaky, clock=clock)
    rt = through(resilient, clock)
    source = Source()
    source.values["a"] = "one"
    value(rt.get("a", source.loader("a")))
    flaky.up = False
    with capturedLogs() as events:
        for _ in range(3):
            assert value(rt.get("a", source.loader("a"))) == "one"
        source.values["a"] = "two"
        value(rt.invalidate("a"))  # dropped now, replayed on recovery
        assert value(rt.get("a", source.loader("a"))) == "two"
    assert source.reads >= 2
    assert not [e for e in events if "using the store" in e.get("log_format", "")]
    flaky.up = True
    clock.advance(60.0)  # the probe finds it back and deletes the dropped keys
    assert resilient.state == "up"
    assert value(rt.get("a", source.loader("a"))) == "two"


def test_a_raw_backend_error_is_a_logged_miss() -> None:
    clock = task.Clock()
    flaky = Flaky(clock)
    flaky.up = False
    rt = through(flaky, clock)
    source = Source()
    source.values["a"] = "one"
    with capturedLogs() as events:
        assert value(rt.get("a", source.loader("a"))) == "one"
        value(rt.invalidate("a"))
    assert source.reads == 1
    failed = [e for e in events if "using the store" in e.get("log_format", "")]
    assert {e["operation"] for e in failed} == {"get", "set", "delete"}
    assert all(isinstance(e["error"], str) for e in failed)
    assert CacheUnavailable.__name__ in failed[0]["error"]


def test_an_undecodable_entry_is_dropped_and_read_from_the_store() -> None:
    clock = task.Clock()
    cache = MemoryCache(100, clock=clock)

    def strict(raw: bytes) -> str:
        if not raw.startswith(b"v1:"):
            raise ValueError("another layout")
        return raw[3:].decode()

    rt = ReadThrough(CacheView(cache, "things"), 30.0, lambda v: b"v1:" + v.encode(), strict)
    value(cache.set("things:a", b"garbage"))
    source = Source()
    source.values["a"] = "one"
    with capturedLogs():
        assert value(rt.get("a", source.loader("a"))) == "one"
    assert value(cache.get("things:a")) == b"v1:one"
    assert value(rt.get("a", source.loader("a"))) == "one"
    assert source.reads == 1


def test_put_caches_a_known_value_unless_unkept() -> None:
    clock = task.Clock()
    rt = through(MemoryCache(100, clock=clock), clock, keep=lambda v: v != "secret")
    value(rt.put("a", "fresh"))
    value(rt.put("s", "secret"))
    source = Source()
    assert value(rt.get("a", source.loader("a"))) == "fresh"
    assert value(rt.get("s", source.loader("s"))) is None
    assert source.reads == 1
