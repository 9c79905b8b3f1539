"""An in-process game server with the WebSocket endpoint, for tests and benches.

A real Site (cosmic.web.site.build_site: the same middleware as the daemon),
a real world and game loop (physics in its worker thread), the in-memory
store, and ``install_websocket`` exactly as makeService calls it, listening
on a loopback port of the running reactor::

    server = await start_server(reactor, ws={"auth_timeout": 1.0})
    client = await connect(reactor, "127.0.0.1", server.port, "cosmic.json.v1")
    await client.request("Authenticate", {"token": server.token(player)})
    ...
    await server.stop()
"""

from __future__ import annotations

import time
from typing import Any

import attrs
from twisted.internet import defer

from cosmic import metrics as metrics_module
from cosmic.auth import TokenIssuer
from cosmic.config import ConfigRequest, load
from cosmic.game.loop import GameLoop
from cosmic.game.world import World
from cosmic.gardens import Gardens
from cosmic.net.server import WebSocketServer, install_websocket
from cosmic.physics.engine import PhysicsEngine
from cosmic.readiness import Readiness
from cosmic.store.memory import MemoryStore
from cosmic.web.site import build_site

SECRET = "in-process-test-secret-of-enough-length-for-hs256"


@attrs.define
class Game:
    world: World
    loop: GameLoop
    gardens: Gardens


@attrs.define
class LocalServer:
    settings: Any
    metrics: Any
    game: Game
    store: MemoryStore
    issuer: TokenIssuer
    ws: WebSocketServer
    listening: Any
    site: Any

    @property
    def port(self) -> int:
        return self.listening.getHost().port

    def token(self, player_id: int) -> str:
        return self.issuer.issue(player_id).token

    async def player(self, name: str = "ada") -> int:
        record = await self.store.create_account(name, name.title(), "hash", time.time())
        return record.id

    async def stop(self) -> None:
        """Close every connection (1001), stop listening and the game loop
        (its worker thread would keep the process alive), whatever fails."""
        try:
            await self.ws.close_all(1001, "test server stopping", timeout=2.0)
        finally:
            try:
                await defer.maybeDeferred(self.listening.stopListening)
            finally:
                await self.game.loop.stopService()
                self.ws.service.stopService()


async def start_server(
    reactor: Any,
    *,
    ws: dict[str, Any] | None = None,
    game: dict[str, Any] | None = None,
    net: dict[str, Any] | None = None,
) -> LocalServer:
    """Settings are the test environment's, with [ws] / [game] / [net] overrides."""
    overrides = []
    for section, values in (("ws", ws), ("game", game), ("net", net)):
        for key, value in (values or {}).items():
            overrides.append(f"{section}.{key}={value}")
    settings = load(ConfigRequest(environ={}, environment="test", overrides=tuple(overrides)))
    metrics = metrics_module.create(settings.metrics.namespace)
    world = World(
        PhysicsEngine(metrics=metrics.physics),
        now=time.time,
        time_scale=settings.game.time_scale,
    )
    loop = GameLoop(
        world,
        tps=settings.game.target_tps,
        resource_interval=settings.game.resource_interval,
        queue_size=settings.game.command_queue_size,
        clock=reactor,
        reactor=reactor,
        metrics=metrics.game,
    )
    store = MemoryStore()
    gardens = Gardens(world, loop, store, unload_after=settings.game.unload_after)
    the_game = Game(world, loop, gardens)
    site = build_site(Readiness(reactor), settings=settings, metrics=metrics, reactor=reactor)
    issuer = TokenIssuer(
        SECRET,
        issuer=settings.auth.issuer,
        audience=settings.auth.audience,
        ttl=settings.auth.access_ttl,
        leeway=settings.auth.leeway,
        clock=reactor,
    )
    server = install_websocket(site.resource, settings, the_game, issuer, metrics, reactor)
    loop.startService()
    server.service.startService()
    listening = reactor.listenTCP(0, site, interface="127.0.0.1")
    return LocalServer(settings, metrics, the_game, store, issuer, server, listening, site)
