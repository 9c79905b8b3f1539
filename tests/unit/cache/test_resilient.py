"""ResilientCache: outages are misses, probes back off, recovery replays
dropped invalidations; all on task.Clock with a fake backend."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.logger import LogLevel, capturedLogs

from cosmic.cache.interface import CacheError, CacheUnavailable, CacheView
from cosmic.cache.memory import MemoryCache
from cosmic.cache.resilient import ResilientCache
from cosmic.metrics import create as create_metrics
from cosmic.store.backoff import Backoff


class Flaky(MemoryCache):
    """A MemoryCache that can be switched off, and counts calls."""

    backend = "fake-redis"

    def __init__(self, clock: task.Clock) -> None:
        super().__init__(100, clock=clock)
        self.up = True
        self.calls = 0

    def _gate(self, method: Any, *args: Any) -> defer.Deferred[Any]:
        self.calls += 1
        if not self.up:
            return defer.fail(CacheUnavailable("connection refused"))
        return method(*args)

    def get(self, key):  # type: ignore[override]
        return self._gate(super().get, key)

    def set(self, key, value, ttl=None):  # type: ignore[override]
        return self._gate(super().set, key, value, ttl)

    def delete(self, key):  # type: ignore[override]
        return self._gate(super().delete, key)

    def zadd(self, key, members):  # type: ignore[override]
        return self._gate(super().zadd, key, members)

    def ztop(self, key, count, descending=True):  # type: ignore[override]
        return self._gate(super().ztop, key, count, descending)

    def zreplace(self, key, members, ttl=None):  # type: ignore[override]
        return self._gate(super().zreplace, key, members, ttl)

    def ping(self):  # type: ignore[override]
        return self._gate(super().ping)


def value(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "not fired"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def make() -> tuple[ResilientCache, Flaky, task.Clock, Any]:
    clock = task.Clock()
    inner = Flaky(clock)
    metrics = create_metrics("t")
    cache = ResilientCache(
        inner,
        clock=clock,
        metrics=metrics.cache,
        backoff=Backoff(initial=0.25, maximum=5.0, factor=2.0, jitter=0.0),
    )
    return cache, inner, clock, metrics


def test_an_outage_is_a_miss_and_a_no_op_with_one_warning() -> None:
    cache, inner, _clock, metrics = make()
    value(cache.set("k", b"v"))
    inner.up = False
    with capturedLogs() as events:
        assert value(cache.get("k")) is None
        calls = inner.calls
        for _ in range(100):
            assert value(cache.get("k")) is None
            assert value(cache.set("k", b"x")) is None
            assert value(cache.ztop("board", 3)) is None
            assert value(cache.zadd("board", {"a": 1.0})) is None
            assert value(cache.delete("k")) is None
    assert inner.calls == calls  # while down the backend is not called at all
    warnings = [e for e in events if e["log_level"] >= LogLevel.warn]
    assert len(warnings) == 1
    assert cache.check().status == "degraded"
    assert "serving misses" in cache.check().detail
    assert metrics.registry.get_sample_value("t_cache_up") == 0
    assert metrics.registry.get_sample_value("t_cache_errors_total", {"operation": "get"}) == 1


def test_probes_back_off_and_recovery_is_noticed() -> None:
    cache, inner, clock, metrics = make()
    inner.up = False
    value(cache.get("k"))
    pings = []
    for _ in range(6):
        delay = cache._probe_call.getTime() - clock.seconds()
        pings.append(delay)
        clock.advance(delay)
    assert pings == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0]
    back = cache.when_up()
    inner.up = True
    with capturedLogs() as events:
        clock.advance(5.0)
    assert back.called
    assert cache.state == "up"
    assert any("available again" in e.get("log_format", "") for e in events)
    value(cache.set("k", b"again"))
    assert value(cache.get("k")) == b"again"
    assert metrics.registry.get_sample_value("t_cache_up") == 1


def test_writes_dropped_during_an_outage_invalidate_on_recovery() -> None:
    cache, inner, clock, _ = make()
    value(cache.set("snapshot:1", b"old"))
    value(cache.set("untouched", b"same"))
    inner.up = False
    value(cache.get("anything"))  # notices the outage
    value(cache.set("snapshot:1", b"new"))  # dropped: Redis still has "old"
    value(cache.zadd("board", {"a": 1.0}))
    assert set(cache.pending) == {"snapshot:1", "board"}
    inner.up = True
    clock.advance(0.25)
    assert cache.state == "up"
    assert value(cache.get("snapshot:1")) is None  # not the stale "old"
    assert value(cache.get("untouched")) == b"same"
    assert not cache.pending


def test_the_replay_list_is_bounded() -> None:
    clock = task.Clock()
    inner = Flaky(clock)
    cache = ResilientCache(inner, clock=clock, max_pending=3)
    inner.up = False
    value(cache.get("x"))
    for i in range(5):
        value(cache.set(f"k{i}", b"v"))
    assert list(cache.pending) == ["k2", "k3", "k4"]
    assert cache.pending_dropped == 2


def test_a_response_error_is_logged_rate_limited_but_not_an_outage() -> None:
    clock = task.Clock()

    class Wrong(Flaky):
        def get(self, key):  # type: ignore[override]
            return defer.fail(CacheError("WRONGTYPE Operation against a key"))

    inner = Wrong(clock)
    cache = ResilientCache(inner, clock=clock, error_log_interval=60.0)
    with capturedLogs() as events:
        for _ in range(10):
            assert value(cache.get("k")) is None
        clock.advance(61)
        value(cache.get("k"))
    errors = [e for e in events if e["log_level"] == LogLevel.error]
    assert len(errors) == 2
    assert errors[1]["suppressed"] == 9
    assert cache.state == "up"


def test_caller_mistakes_still_raise() -> None:
    cache, _, _, _ = make()
    with pytest.raises(TypeError):
        value(cache.set("k", "not bytes"))


def test_views_count_outage_misses() -> None:
    cache, inner, _, metrics = make()
    view = CacheView(cache, "sessions", metrics.cache)
    value(view.set("s", b"1"))
    assert value(view.get("s")) == b"1"
    inner.up = False
    assert value(view.get("s")) is None
    assert (view.hits, view.misses) == (1, 1)


def test_close_stops_probing() -> None:
    cache, inner, clock, _ = make()
    inner.up = False
    value(cache.get("k"))
    value(cache.close())
    assert cache.check().status == "fail"
    assert not clock.getDelayedCalls()
