"""The one cache interface, its errors, and per-name views.

Backends: ``RedisCache`` (production, wrapped in ``ResilientCache``) and
``MemoryCache`` (in-process LRU with TTL, the embedded default).  Keys and
sorted-set members are text, values are bytes, scores are finite floats.

Sorted sets order like Redis: ascending by (score, member); ``ztop`` with
``descending=True`` is the exact reverse (ties: members in reverse order).
``ztop`` answers ``None`` when the set does not exist, so a caller can tell
"not cached" from "cached and empty".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from twisted.internet import defer

from cosmic.metrics import CacheMetrics
from cosmic.readiness import Check


class CacheError(Exception):
    """Base of the cache's errors (only raw backends raise them; the resilient
    wrapper turns every outage into a miss)."""


class CacheUnavailable(CacheError):
    """The backend is not connected or did not answer in time."""


@runtime_checkable
class Cache(Protocol):
    backend: str

    def open(self) -> defer.Deferred[None]: ...

    def close(self) -> defer.Deferred[None]: ...

    def check(self) -> Check: ...

    def ping(self) -> defer.Deferred[None]: ...

    def get(self, key: str) -> defer.Deferred[bytes | None]: ...

    def set(self, key: str, value: bytes, ttl: float | None = None) -> defer.Deferred[None]:
        """Store ``value``; it expires after ``ttl`` seconds (None: never)."""

    def delete(self, key: str) -> defer.Deferred[None]: ...

    def zadd(self, key: str, members: Mapping[str, float]) -> defer.Deferred[None]:
        """Add or re-score members (the set keeps any expiry it has)."""

    def zrem(self, key: str, members: Iterable[str]) -> defer.Deferred[None]: ...

    def ztop(
        self, key: str, count: int, descending: bool = True
    ) -> defer.Deferred[list[tuple[str, float]] | None]:
        """The first ``count`` (>= 1) (member, score) pairs, or None if no such set."""

    def zreplace(
        self, key: str, members: Mapping[str, float], ttl: float | None = None
    ) -> defer.Deferred[None]:
        """Atomically replace the whole set (an empty mapping deletes it)."""


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"cache key must be non-empty text, not {key!r}")
    return key


def check_value(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"cache values are bytes, not {type(value).__name__}")
    return bytes(value)


def check_ttl(ttl: object) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        raise ValueError(f"ttl must be a positive number of seconds or None, not {ttl!r}")
    return float(ttl)


def check_members(members: Mapping[str, float]) -> dict[str, float]:
    checked = {}
    for member, score in members.items():
        if not isinstance(member, str):
            raise ValueError(f"sorted-set members are text, not {member!r}")
        score = float(score)
        if math.isnan(score):
            raise ValueError(f"score of {member!r} is NaN")
        checked[member] = score
    return checked


def check_count(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a whole number >= 1, not {count!r}")
    return count


class CacheView:
    """A named slice of a cache ("sessions", "snapshots", "leaderboards"):
    keys are prefixed with ``name:`` and lookups count hits and misses."""

    def __init__(self, cache: Cache, name: str, metrics: CacheMetrics | None = None) -> None:
        self.cache = cache
        self.name = name
        self._prefix = f"{name}:"
        self._metrics = metrics
        self.hits = 0
        self.misses = 0

    def _count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        if self._metrics is not None:
            self._metrics.requests.labels(self.name, "hit" if hit else "miss").inc()

    def _counted(self, value: object) -> object:
        self._count(value is not None)
        return value

    def get(self, key: str) -> defer.Deferred[bytes | None]:
        return self.cache.get(self._prefix + key).addCallback(self._counted)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> defer.Deferred[None]:
        return self.cache.set(self._prefix + key, value, ttl)

    def delete(self, key: str) -> defer.Deferred[None]:
        return self.cache.delete(self._prefix + key)

    def zadd(self, key: str, members: Mapping[str, float]) -> defer.Deferred[None]:
        return self.cache.zadd(self._prefix + key, members)

    def zrem(self, key: str, members: Iterable[str]) -> defer.Deferred[None]:
        return self.cache.zrem(self._prefix + key, members)

    def ztop(
        self, key: str, count: int, descending: bool = True
    ) -> defer.Deferred[list[tuple[str, float]] | None]:
        return self.cache.ztop(self._prefix + key, count, descending).addCallback(self._counted)

    def zreplace(
        self, key: str, members: Mapping[str, float], ttl: float | None = None
    ) -> defer.Deferred[None]:
        return self.cache.zreplace(self._prefix + key, members, ttl)
