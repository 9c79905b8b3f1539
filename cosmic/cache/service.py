"""The cache as a service of the root: open at start, close at stop."""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from cosmic.cache.interface import Cache
from cosmic.cache.redis import RedisCache
from cosmic.cache.resilient import ResilientCache
from cosmic.readiness import Check, Readiness

log = Logger(namespace="cosmic.cache")


class CacheService(service.Service):
    """Starts the cache; never fails the daemon's start because Redis is down
    (the cache then serves misses and readiness says degraded)."""

    name = "cache"

    def __init__(
        self,
        cache: Cache,
        readiness: Readiness | None = None,
        connect_wait: float = 2.0,
    ) -> None:
        self.cache = cache
        self._connect_wait = connect_wait
        self._state = "stopped"
        if readiness is not None:
            readiness.add("cache", self.check)

    def check(self) -> Check:
        if self._state != "running":
            return Check.fail(f"cache {self._state}")
        return self.cache.check()

    def startService(self) -> defer.Deferred[None]:
        super().startService()
        self._state = "starting"
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        await self.cache.open()
        inner: Any = getattr(self.cache, "inner", None)
        if isinstance(inner, RedisCache) and isinstance(self.cache, ResilientCache):
            if not await inner.when_connected(self._connect_wait):
                self.cache.mark_down(f"{inner.where} not reachable at start")
            else:
                log.info("cache: connected to {where}", where=inner.where)
        else:
            log.info("cache: {backend}", backend=self.cache.backend)
        self._state = "running"

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        self._state = "stopped"
        return self.cache.close()
