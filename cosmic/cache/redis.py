"""Redis through txredisapi: a lazy connection pool that reconnects, and a
deadline on every call.

txredisapi queues a call until a connection exists, so during an outage its
Deferreds hang until Redis returns (and cancelling one breaks its queue).
This backend therefore never hands txredisapi a call while no connection is
up (it fails at once with ``CacheUnavailable``), gives txredisapi a reply
timeout, and races every call against a deadline of its own without
cancelling txredisapi's Deferred.  Reconnection backs off from 0.1 s to 2 s
(txredisapi's defaults, 1 s to 10 s, took 5-6 s to notice a restart).

Used through ``ResilientCache`` in the daemon, which turns these errors into
misses; this class reports them, so the contract tests can see them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import txredisapi
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from cosmic.cache.interface import (
    CacheError,
    CacheUnavailable,
    check_count,
    check_key,
    check_members,
    check_ttl,
    check_value,
)
from cosmic.metrics import CacheMetrics
from cosmic.readiness import Check

log = Logger(namespace="cosmic.cache.redis")

_ZTOP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local last = tonumber(ARGV[1]) - 1
if ARGV[2] == '1' then return redis.call('ZREVRANGE', KEYS[1], 0, last, 'WITHSCORES') end
return redis.call('ZRANGE', KEYS[1], 0, last, 'WITHSCORES')
"""
_ZREPLACE = """
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
if #ARGV > 1 and tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"""


class _Factory(txredisapi.RedisFactory):
    initialDelay = 0.1
    maxDelay = 2.0
    factor = 2.0
    jitter = 0.2


def _score(value: float) -> str:
    # repr keeps every bit (txredisapi would format floats with 6 decimals)
    if value == float("inf"):
        return "+inf"
    if value == float("-inf"):
        return "-inf"
    return repr(value)


class RedisCache:
    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        reactor: Any = None,
        timeout: float = 0.5,
        prefix: str = "",
        poolsize: int = 4,
        connect_timeout: float = 2.0,
        metrics: CacheMetrics | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            raise ValueError(f"not a redis:// URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 6379
        db = parts.path.strip("/")
        self.db = int(db) if db else None
        self.password = parts.password
        self.username = parts.username or None
        self.where = f"redis://{self.host}:{self.port}/{self.db or 0}"
        self.timeout = timeout
        self.prefix = prefix
        self._reactor = reactor
        self._poolsize = poolsize
        self._connect_timeout = connect_timeout
        self._metrics = metrics
        self._factory: _Factory | None = None

    # --- lifecycle --------------------------------------------------------

    @property
    def connected(self) -> int:
        """How many pool connections are up now."""
        return 0 if self._factory is None else self._factory.size

    def open(self) -> defer.Deferred[None]:
        if self._factory is not None:
            return defer.succeed(None)
        factory = _Factory(
            self.where,
            self.db,
            self._poolsize,
            isLazy=True,
            charset=None,  # values are bytes
            password=self.password,
            username=self.username,
            replyTimeout=self.timeout,
            convertNumbers=False,
        )
        factory.reconnect = True
        factory.startConnecting(
            HostnameEndpoint(self._reactor, self.host, self.port, timeout=self._connect_timeout)
        )
        self._factory = factory
        return defer.succeed(None)

    def when_connected(self, timeout: float) -> defer.Deferred[bool]:
        """True once a connection is up, False if none is within ``timeout``."""
        d: defer.Deferred[bool] = defer.Deferred()
        deadline = self._reactor.seconds() + timeout

        def poll() -> None:
            if self.connected:
                d.callback(True)
            elif self._reactor.seconds() >= deadline or self._factory is None:
                d.callback(False)
            else:
                self._reactor.callLater(0.01, poll)

        poll()
        return d

    def close(self) -> defer.Deferred[None]:
        factory, self._factory = self._factory, None
        if factory is None:
            return defer.succeed(None)
        d = factory.disconnect()
        d.addTimeout(2.0, self._reactor)
        return d.addBoth(lambda _: None)

    def check(self) -> Check:
        if self._factory is None:
            return Check.fail(f"{self.where} not open")
        if self.connected:
            return Check.ok(f"{self.where}: {self.connected} connections")
        return Check.degraded(f"{self.where}: not connected")

    # --- calls --------------------------------------------------------------

    def _call(self, operation: str, method: str, *args: Any) -> defer.Deferred[Any]:
        factory = self._factory
        if factory is None:
            return defer.fail(CacheUnavailable(f"{self.where} is not open"))
        if not factory.size:
            return defer.fail(CacheUnavailable(f"{self.where} is not connected"))
        start = time.perf_counter()
        try:
            inner = getattr(factory.handler, method)(*args)
        except Exception as exc:
            return defer.fail(CacheUnavailable(f"{operation}: {exc}"))
        result: defer.Deferred[Any] = defer.Deferred()

        def expire() -> None:
            if not result.called:
                result.errback(
                    CacheUnavailable(
                        f"{self.where} did not answer {operation} in {self.timeout:g} s"
                    )
                )

        timer = self._reactor.callLater(self.timeout, expire)

        def settle(value: Any) -> None:
            if timer.active():
                timer.cancel()
            if self._metrics is not None:
                self._metrics.duration.labels(operation).observe(time.perf_counter() - start)
            if result.called:
                return
            if isinstance(value, Failure):
                if value.check(txredisapi.ResponseError):
                    result.errback(CacheError(f"{operation}: {value.getErrorMessage()}"))
                else:
                    result.errback(
                        CacheUnavailable(f"{operation} on {self.where}: {value.getErrorMessage()}")
                    )
            else:
                result.callback(value)

        inner.addBoth(settle)
        return result

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def ping(self) -> defer.Deferred[None]:
        return self._call("ping", "ping").addCallback(lambda _: None)

    def get(self, key: str) -> defer.Deferred[bytes | None]:
        try:
            full = self._key(key)
        except ValueError as exc:
            return defer.fail(exc)
        return self._call("get", "get", full)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> defer.Deferred[None]:
        try:
            full, data, seconds = self._key(key), check_value(value), check_ttl(ttl)
        except (TypeError, ValueError) as exc:
            return defer.fail(exc)
        if seconds is None:
            d = self._call("set", "execute_command", "SET", full, data)
        else:
            millis = max(1, round(seconds * 1000))
            d = self._call("set", "execute_command", "SET", full, data, "PX", millis)
        return d.addCallback(lambda _: None)

    def delete(self, key: str) -> defer.Deferred[None]:
        try:
            full = self._key(key)
        except ValueError as exc:
            return defer.fail(exc)
        return self._call("delete", "execute_command", "DEL", full).addCallback(lambda _: None)

    def zadd(self, key: str, members: Mapping[str, float]) -> defer.Deferred[None]:
        try:
            full, checked = self._key(key), check_members(members)
        except (TypeError, ValueError) as exc:
            return defer.fail(exc)
        if not checked:
            return defer.succeed(None)
        args: list[Any] = []
        for member, score in checked.items():
            args += [_score(score), member]
        return self._call("zadd", "execute_command", "ZADD", full, *args).addCallback(
            lambda _: None
        )

    def zrem(self, key: str, members: Iterable[str]) -> defer.Deferred[None]:
        try:
            full = self._key(key)
        except ValueError as exc:
            return defer.fail(exc)
        names = list(members)
        if not names:
            return defer.succeed(None)
        return self._call("zrem", "execute_command", "ZREM", full, *names).addCallback(
            lambda _: None
        )

    def ztop(
        self, key: str, count: int, descending: bool = True
    ) -> defer.Deferred[list[tuple[str, float]] | None]:
        try:
            full, count = self._key(key), check_count(count)
        except ValueError as exc:
            return defer.fail(exc)

        def pairs(reply: Any) -> list[tuple[str, float]] | None:
            if reply is None:
                return None
            return [
                (reply[i].decode("utf-8"), float(reply[i + 1])) for i in range(0, len(reply), 2)
            ]

        d = self._call("ztop", "eval", _ZTOP, [full], [count, "1" if descending else "0"])
        return d.addCallback(pairs)

    def zreplace(
        self, key: str, members: Mapping[str, float], ttl: float | None = None
    ) -> defer.Deferred[None]:
        try:
            full, checked, seconds = self._key(key), check_members(members), check_ttl(ttl)
        except (TypeError, ValueError) as exc:
            return defer.fail(exc)
        millis = 0 if seconds is None else max(1, round(seconds * 1000))
        args: list[Any] = [millis]
        for member, score in checked.items():
            args += [_score(score), member]
        return self._call("zreplace", "eval", _ZREPLACE, [full], args).addCallback(lambda _: None)

    def delete_prefixed(self) -> defer.Deferred[int]:
        """Delete every key under this cache's prefix (tests clean up with it)."""
        if not self.prefix:
            return defer.fail(ValueError("refusing to delete every key: no prefix set"))
        script = (
            "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
            "n = n + redis.call('DEL', k) end return n"
        )
        pattern = self.prefix.replace("*", "\\*").replace("?", "\\?").replace("[", "\\[") + "*"
        return self._call("delete_prefixed", "eval", script, [], [pattern])
