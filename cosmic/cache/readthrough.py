"""Read-through caching over a ``CacheView``, with invalidation that cannot
be undone by a slow reader.

``get(key, load)`` answers the cached value, or calls ``load()`` (the store)
and caches what it returns.  The classic race of cache-aside (a reader
misses, reads the old row, a writer writes and deletes the key, the reader
then caches the old row) is closed in this process: ``invalidate(key)``
marks every load of that key still in flight, and a marked load does not
cache its result.  A set still in flight when the key is invalidated is
followed by one more delete, because a Redis pool may run the delete on
another connection before the set.  Across processes the TTL is the bound.

Cache failures never reach callers: the daemon's cache is a
``ResilientCache`` (an outage is a miss), and anything a raw backend raises
is logged and treated as a miss here too, so the store answers instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from twisted.internet import defer
from twisted.logger import Logger

from cosmic.cache.interface import CacheView

log = Logger(namespace="cosmic.cache")
T = TypeVar("T")


class _Load:
    __slots__ = ("stale",)

    def __init__(self) -> None:
        self.stale = False


class ReadThrough(Generic[T]):
    def __init__(
        self,
        view: CacheView,
        ttl: float,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
        keep: Callable[[T], bool] = lambda value: True,
    ) -> None:
        self.view = view
        self.ttl = ttl
        self._encode = encode
        self._decode = decode
        self._keep = keep
        self._loads: dict[str, list[_Load]] = {}

    @property
    def name(self) -> str:
        return self.view.name

    async def get(self, key: str, load: Callable[[], Awaitable[T | None]]) -> T | None:
        """The cached value of ``key``, else ``await load()`` (cached if kept)."""
        cached = await self._cached(key)
        if cached is not None:
            return cached
        mine = self._begin(key)
        try:
            value = await load()
            if value is not None and not mine.stale:
                await self._store(key, value, mine)
            return value
        finally:
            self._end(key, mine)

    def put(self, key: str, value: T) -> defer.Deferred[None]:
        """Cache a value known to equal the store's (e.g. just saved)."""
        return defer.ensureDeferred(self._put(key, value))

    async def _put(self, key: str, value: T) -> None:
        mine = self._begin(key)
        try:
            await self._store(key, value, mine)
        finally:
            self._end(key, mine)

    def _begin(self, key: str) -> _Load:
        mine = _Load()
        self._loads.setdefault(key, []).append(mine)
        return mine

    def _end(self, key: str, mine: _Load) -> None:
        loads = self._loads[key]
        loads.remove(mine)
        if not loads:
            del self._loads[key]

    async def _store(self, key: str, value: T, mine: _Load) -> None:
        if not self._keep(value):
            return
        await self._set(key, value)
        if mine.stale:
            await self._delete(key)

    def invalidate(self, *keys: str) -> defer.Deferred[None]:
        """Forget ``keys``: call after the store write (and whatever its outcome)."""
        for key in keys:
            for load in self._loads.get(key, ()):
                load.stale = True
        return defer.gatherResults([self._delete(key) for key in keys]).addCallback(lambda _: None)

    # --- never failing ---------------------------------------------------------

    async def _cached(self, key: str) -> T | None:
        try:
            raw = await self.view.get(key)
        except Exception as exc:
            self._warn("get", key, exc)
            return None
        if raw is None:
            return None
        try:
            return self._decode(raw)
        except Exception as exc:
            # Written by another version of the daemon, or corrupt: the store
            # has the truth, and the entry must not be tried again.
            self._warn("decode", key, exc)
            await self._delete(key)
            return None

    async def _set(self, key: str, value: T) -> None:
        try:
            await self.view.set(key, self._encode(value), self.ttl)
        except Exception as exc:
            self._warn("set", key, exc)

    def _delete(self, key: str) -> defer.Deferred[None]:
        def failed(failure: Any) -> None:
            self._warn("delete", key, failure.value)

        return defer.maybeDeferred(self.view.delete, key).addCallbacks(lambda _: None, failed)

    def _warn(self, operation: str, key: str, exc: BaseException) -> None:
        log.warn(
            "cache {name}: {operation} of {key} failed, using the store: {error}",
            name=self.view.name,
            operation=operation,
            key=key,
            error=repr(exc),
        )
