"""The embedded default cache: an in-process LRU with TTL.

At most ``max_entries`` keys (a sorted set counts as one); the least recently
used key goes first.  Expiry uses the injected clock (``clock.seconds()``),
so tests drive it with ``task.Clock``.  Every Deferred it returns has already
fired.  Per process: several daemons do not share it (use Redis for that).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from twisted.internet import defer

from cosmic.cache.interface import (
    check_count,
    check_key,
    check_members,
    check_ttl,
    check_value,
)
from cosmic.readiness import Check


class _Entry:
    __slots__ = ("expires", "value")

    def __init__(self, value: bytes | dict[str, float], expires: float | None) -> None:
        self.value = value
        self.expires = expires


class MemoryCache:
    backend = "memory"

    def __init__(self, max_entries: int = 100_000, clock: Any = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def open(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    def close(self) -> defer.Deferred[None]:
        self._entries.clear()
        return defer.succeed(None)

    def check(self) -> Check:
        return Check.ok(f"in-process LRU: {len(self._entries)} of {self.max_entries} entries")

    def ping(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    # --- internals --------------------------------------------------------

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires is not None and entry.expires <= self._clock.seconds():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _put(self, key: str, entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1

    def _expiry(self, ttl: float | None) -> float | None:
        return None if ttl is None else self._clock.seconds() + ttl

    # --- the interface ------------------------------------------------------

    def get(self, key: str) -> defer.Deferred[bytes | None]:
        return defer.maybeDeferred(self._get, key)

    def _get(self, key: str) -> bytes | None:
        entry = self._live(check_key(key))
        if entry is None or not isinstance(entry.value, bytes):
            return None
        return entry.value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._set, key, value, ttl)

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._put(check_key(key), _Entry(check_value(value), self._expiry(check_ttl(ttl))))

    def delete(self, key: str) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._entries.pop, check_key(key), None).addCallback(
            lambda _: None
        )

    def zadd(self, key: str, members: Mapping[str, float]) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._zadd, key, members)

    def _zadd(self, key: str, members: Mapping[str, float]) -> None:
        checked = check_members(members)
        entry = self._live(check_key(key))
        if entry is None or not isinstance(entry.value, dict):
            if not checked:
                return
            entry = _Entry({}, None)
            self._put(key, entry)
        assert isinstance(entry.value, dict)
        entry.value.update(checked)

    def zrem(self, key: str, members: Iterable[str]) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._zrem, key, members)

    def _zrem(self, key: str, members: Iterable[str]) -> None:
        entry = self._live(check_key(key))
        if entry is None or not isinstance(entry.value, dict):
            return
        for member in members:
            entry.value.pop(member, None)
        if not entry.value:
            del self._entries[key]

    def ztop(
        self, key: str, count: int, descending: bool = True
    ) -> defer.Deferred[list[tuple[str, float]] | None]:
        return defer.maybeDeferred(self._ztop, key, count, descending)

    def _ztop(self, key: str, count: int, descending: bool) -> list[tuple[str, float]] | None:
        check_count(count)
        entry = self._live(check_key(key))
        if entry is None or not isinstance(entry.value, dict):
            return None
        # Redis order: by score, then member bytes; descending is the reverse.
        ordered = sorted(entry.value.items(), key=lambda kv: (kv[1], kv[0].encode("utf-8")))
        if descending:
            ordered.reverse()
        return ordered[:count]

    def zreplace(
        self, key: str, members: Mapping[str, float], ttl: float | None = None
    ) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._zreplace, key, members, ttl)

    def _zreplace(self, key: str, members: Mapping[str, float], ttl: float | None) -> None:
        checked = check_members(members)
        expires = self._expiry(check_ttl(ttl))
        check_key(key)
        if not checked:
            self._entries.pop(key, None)
            return
        self._put(key, _Entry(checked, expires))
