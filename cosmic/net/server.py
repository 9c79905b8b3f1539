"""The WebSocket server as one object, and the one call that wires it in.

``install_websocket(root, settings, game, verifier, metrics, reactor)`` puts
the endpoint at /ws on the Site's root resource, adds the broadcast hook to
the game loop (before it starts) and returns the ``WebSocketServer``, whose
``services()`` go under the root service and whose ``close_all(code,
reason)`` closes every connection in one call (graceful shutdown).
"""

from __future__ import annotations

import collections
from typing import Any

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from cosmic.net import codec as codecs
from cosmic.net import messages
from cosmic.net.auth import Authenticator, as_authenticator
from cosmic.net.broadcast import Broadcaster
from cosmic.net.connection import Connection
from cosmic.net.errors import WsError
from cosmic.net.factory import CosmicWebSocketFactory, OriginPolicy, WebSocketEndpoint
from cosmic.net.handlers import Handlers
from cosmic.net.options import WsOptions
from cosmic.net.ratelimit import KeyedBuckets
from cosmic.net.sessions import SessionRegistry

log = Logger(namespace="cosmic.net")

PATH = b"ws"
BROADCAST_HOOK = "broadcast"
SESSION_GAUGE_DELAY = 0.5  # s


class WebSocketServer:
    def __init__(
        self,
        game: Any,
        authenticate: Authenticator,
        options: WsOptions,
        metrics: Any,
        *,
        clock: Any,
        reactor: Any,
    ) -> None:
        self.game = game
        self.options = options
        self.metrics = metrics
        self.clock = clock
        self._counting: Any = None
        self.reactor = reactor
        self.origins = OriginPolicy(options.allowed_origins)
        self.handshakes = KeyedBuckets(
            options.handshake_rate_burst, options.handshake_rate_per_minute, clock
        )
        self.per_address: collections.Counter[str] = collections.Counter()
        self.connections: set[Connection] = set()
        self.sessions = SessionRegistry(
            clock,
            grace=options.resume_grace,
            keep_frames=options.resume_frames,
            max_detached=options.max_detached_sessions,
            on_change=self._count_sessions,
        )
        self.broadcaster = Broadcaster(game, self.sessions, options, clock, metrics)
        self.handlers = Handlers(
            game, authenticate, self.sessions, self.broadcaster, options, clock
        )
        self.factory = CosmicWebSocketFactory(self, options, reactor)
        self.resource = WebSocketEndpoint(self)
        self.service = WebSocketService(self)
        self._drained: list[defer.Deferred[None]] = []

    # -- handshakes ---------------------------------------------------------------------

    def address_of(self, request: server.Request) -> str:
        from cosmic.web.middleware import client_address

        return client_address(request, self.options.trust_proxy)

    def admit(self, address: str) -> tuple[str, float | None] | None:
        """None when a handshake from ``address`` may go on; else (scope, wait)."""
        if self.per_address[address] >= self.options.max_connections_per_address:
            self.metrics.rate_limited.labels(scope="connections").inc()
            return "connections", None
        wait = self.handshakes.take(address)
        if wait is not None:
            self.metrics.rate_limited.labels(scope="handshake").inc()
            return "handshake", wait
        return None

    def counted(self, address: str) -> None:
        self.per_address[address] += 1

    def released(self, protocol: Any) -> None:
        if getattr(protocol, "_counted", False):
            protocol._counted = False
            address = protocol.client_address
            self.per_address[address] -= 1
            if self.per_address[address] <= 0:
                del self.per_address[address]

    def handshake_failed(self, reason: str) -> None:
        self.metrics.handshake_failures.labels(reason=reason).inc()

    # -- connections ----------------------------------------------------------------------

    def connected(self, transport: Any, subprotocol: str, address: str) -> Connection:
        options = self.options
        conn = Connection(
            transport,
            codecs.codec_for(subprotocol, options.max_message_bytes, options.lz4_min_bytes),
            address=address,
            options=options,
            clock=self.clock,
            metrics=self.metrics,
            dispatch=self.handlers,
            on_lost=self._lost,
        )
        self.connections.add(conn)
        return conn

    def _lost(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if conn.session is not None:
            self.sessions.detach(conn.session, conn)
        if not self.connections:
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)

    def _count_sessions(self) -> None:
        # Counting walks every session: once per burst of changes, not per
        # change (10,000 players authenticating made it quadratic).
        if self._counting is None or not self._counting.active():
            self._counting = self.clock.callLater(SESSION_GAUGE_DELAY, self._set_session_gauges)

    def _set_session_gauges(self) -> None:
        if self._counting is not None and self._counting.active():
            self._counting.cancel()
        self._counting = None
        for kind, value in self.sessions.counts().items():
            self.metrics.sessions.labels(kind=kind).set(value)

    def counts(self) -> dict[str, int]:
        return {"connections": len(self.connections), **self.sessions.counts()}

    def close_all(
        self,
        code: int = 1001,
        reason: str = "the server is going away",
        *,
        error_code: str = "WS_CONN_001",
        timeout: float | None = None,
    ) -> defer.Deferred[None]:
        """Close every connection with WebSocket close ``code`` and ``reason``
        (an Error ``error_code`` goes first); fires once all are closed, or
        after ``timeout`` seconds (default: the close handshake timeout + 1)."""
        done: defer.Deferred[None] = defer.Deferred()
        if not self.connections:
            done.callback(None)
            return done
        self._drained.append(done)
        for conn in list(self.connections):
            conn.send("Error", WsError(error_code, reason, close=True).as_data())
            conn.close(error_code, reason, ws_code=code)
        limit = timeout if timeout is not None else self.options.close_handshake_timeout + 1.0

        def cut(failure: Any) -> None:  # timed out: drop whoever is left
            failure.trap(defer.TimeoutError)
            for conn in list(self.connections):
                drop = getattr(conn.transport, "dropConnection", None)
                if drop is not None:
                    drop(abort=True)

        done.addTimeout(limit, self.clock)
        done.addErrback(cut)
        return done

    def kick(self, player_id: int, reason: str = "disconnected by an operator") -> int:
        """Close every connection of a player (WS_CONN_006); how many closed."""
        closed = 0
        for conn in list(self.connections):
            if conn.session is not None and conn.session.player_id == player_id:
                conn.send("Error", WsError("WS_CONN_006", reason, close=True).as_data())
                conn.close("WS_CONN_006", reason)
                closed += 1
        return closed

    def announce(self, text: str) -> int:
        """Send a Notice {text} to every authenticated connection; how many got it."""
        sent = 0
        for conn in list(self.connections):
            if conn.session is not None and conn.send(messages.NOTICE, {"text": text}):
                sent += 1
        return sent

    # -- configuration --------------------------------------------------------------------

    def on_reload(self, settings: Any, changed: tuple[str, ...]) -> None:
        """Apply reloaded [ws] keys (and game.broadcast_hz) to the live server.

        The quanta are kept: changing them under connected clients would
        corrupt their state; they take effect after a restart."""
        if not any(k.startswith("ws.") or k == "game.broadcast_hz" for k in changed):
            return
        fresh = attrs.evolve(WsOptions.from_settings(settings), quanta=self.options.quanta)
        self.options = fresh
        self.origins = OriginPolicy(fresh.allowed_origins)
        self.handshakes.configure(fresh.handshake_rate_burst, fresh.handshake_rate_per_minute)
        self.factory.configure(fresh)
        self.broadcaster.options = fresh
        self.handlers.options = fresh
        self.sessions.grace = fresh.resume_grace
        self.sessions.max_detached = fresh.max_detached_sessions
        for conn in self.connections:
            conn.options = fresh
            conn.bucket.configure(fresh.message_rate_burst, fresh.message_rate_per_second)
            conn.outbox.limit_bytes = fresh.send_queue_bytes
            conn.outbox.slow_timeout = fresh.slow_client_timeout

    def services(self) -> list[service.Service]:
        return [self.service]


class WebSocketService(service.Service):
    """Lifecycle of the WebSocket layer under the root service."""

    name = "websocket"

    def __init__(self, server: WebSocketServer) -> None:
        self.server = server

    def startService(self) -> None:
        super().startService()
        options = self.server.options
        log.info(
            "WebSocket at /ws: {subprotocols}; preferred compression {compression}",
            subprotocols=", ".join(codecs.preference(options.compression)),
            compression=options.compression,
        )

    def stopService(self) -> defer.Deferred[None]:
        # Graceful shutdown: the listener has stopped (it stops first); close
        # every connection with 1001 and a reason, then drop session timers.
        super().stopService()
        closing = self.server.close_all(1001, "the server is shutting down")
        closing.addCallback(lambda _: self.server.sessions.clear())
        return closing.addCallback(lambda _: self.server._set_session_gauges())


def install_websocket(
    root: resource.Resource,
    settings: Any,
    game: Any,
    verifier: Any,
    metrics: Any,
    reactor: Any,
    *,
    reloader: Any = None,
    clock: Any = None,
) -> WebSocketServer:
    """Serve the WebSocket protocol at /ws of the Site whose root is ``root``.

    ``verifier``: ``site.accounts`` (preferred: refuses deleted accounts) or
    ``site.tokens`` (a TokenVerifier), or an async ``token -> Identity``.
    ``metrics``: the process's ``Metrics`` (or its ``.ws``).  Call before the
    game loop starts (the broadcast hook is added here).
    """
    options = WsOptions.from_settings(settings)
    ws_metrics = getattr(metrics, "ws", metrics)
    ws = WebSocketServer(
        game,
        as_authenticator(verifier),
        options,
        ws_metrics,
        clock=clock if clock is not None else reactor,
        reactor=reactor,
    )
    root.putChild(PATH, ws.resource)
    game.loop.add_hook(BROADCAST_HOOK, 1.0 / settings.game.broadcast_hz, ws.broadcaster.tick)
    if reloader is not None:
        reloader.subscribe(ws.on_reload)
    return ws
