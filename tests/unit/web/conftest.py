"""A real Site on a loopback port over the in-memory store and a real game.

Time that matters to the assertions (token expiry, refresh expiry, rate
limits) runs on a ``task.Clock`` the test advances; the game loop runs on the
reactor (commands apply at its next tick, a few milliseconds away).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor, task
from twisted.web.client import Agent, HTTPConnectionPool

from cosmic import metrics as metrics_module
from cosmic.cache.memory import MemoryCache
from cosmic.config import ConfigRequest, load
from cosmic.gameplay import build_game
from cosmic.readiness import Readiness
from cosmic.settings import Settings
from cosmic.store.memory import MemoryStore
from cosmic.store.service import Persistence
from cosmic.web.site import build_site

# Cheap argon2 for the suite (one test keeps the production parameters).
FAST_ARGON2 = (
    "auth.argon2_time_cost=1",
    "auth.argon2_memory_kib=8",
    "auth.argon2_parallelism=1",
)
PASSWORD = "correct horse battery staple"


def make_settings(*overrides: str) -> Settings:
    return load(ConfigRequest(environ={}, environment="test", overrides=(*FAST_ARGON2, *overrides)))


@attrs.define
class Reply:
    code: int
    body: Any
    headers: Any
    raw: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[-1] if values else None

    @property
    def error(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None


class Served:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = task.Clock()
        self.clock.advance(time.time())
        self.metrics = metrics_module.create(settings.metrics.namespace)
        self.readiness = Readiness(reactor, timeout=1.0)
        self.store = MemoryStore()
        self.cache = MemoryCache(10_000, clock=reactor)
        self.persistence = Persistence(
            settings, self.store, self.cache, reactor, self.metrics, self.readiness
        )
        self.game = build_game(settings, reactor, self.metrics, self.persistence, self.readiness)
        self.site = build_site(
            self.readiness,
            settings=settings,
            metrics=self.metrics,
            persistence=self.persistence,
            game=self.game,
            reactor=reactor,
            clock=self.clock,
        )
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = treq.client.HTTPClient(Agent(reactor, pool=self.pool))
        self.port: Any = None
        self.base = ""

    def services(self) -> list[Any]:
        persistence = self.persistence
        return [persistence.store_service, persistence.cache_service, *self.game.services()]

    def start(self) -> None:
        for service in self.services():
            service.startService()  # in-memory backends: started at once
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    async def stop(self) -> None:
        await self.port.stopListening()
        for service in reversed(self.services()):
            await defer.maybeDeferred(service.stopService)
        await self.pool.closeCachedConnections()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            sent.setdefault("Content-Type", "application/json")
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        response = await self.client.request(
            method,
            self.base + path,
            data=data,
            headers={k: [v] for k, v in sent.items()},
        )
        raw = await response.content()
        parsed = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw
        return Reply(response.code, parsed, response.headers, raw)

    async def register(self, username: str = "ada", password: str = PASSWORD, **extra) -> dict:
        reply = await self.call(
            "POST", "/api/v1/auth/register", {"username": username, "password": password, **extra}
        )
        assert reply.code == 201, reply
        return reply.body

    async def login(self, username: str = "ada", password: str = PASSWORD) -> dict:
        reply = await self.call(
            "POST", "/api/v1/auth/login", {"username": username, "password": password}
        )
        assert reply.code == 200, reply
        return reply.body

    async def player(self, username: str = "ada") -> str:
        """Register and log in; the access token."""
        await self.register(username)
        return (await self.login(username))["access_token"]


def serve(*overrides: str) -> Iterator[Served]:
    served = Served(make_settings(*overrides))
    served.start()
    try:
        yield served
    finally:
        pytest_twisted.blockon(defer.ensureDeferred(served.stop()))


@pytest.fixture
def api() -> Iterator[Served]:
    yield from serve("auth.rate_limit_burst=1000")


@pytest.fixture
def logged() -> Iterator[list[dict]]:
    """Log events emitted while the test runs."""
    from twisted.logger import globalLogPublisher

    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)
