"""What each client message does: the thin line from a validated message to the game.

Reads go through the broadcaster (inside ``loop.when_idle``); commands go
through ``loop.submit`` on the player's own garden only (the garden id is
the session's, never the client's: observers cannot change anything).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from cosmic.game import commands
from cosmic.game.errors import GameError, InvalidCommand
from cosmic.game.loop import QueueFull
from cosmic.gardens import GardenNotFound
from cosmic.net import messages
from cosmic.net.codec import plain
from cosmic.net.errors import WsError

if TYPE_CHECKING:
    from cosmic.net.auth import Identity
    from cosmic.net.broadcast import Broadcaster
    from cosmic.net.connection import Connection
    from cosmic.net.options import WsOptions
    from cosmic.net.sessions import SessionRegistry

log = Logger(namespace="cosmic.net")

ATTEMPTS = 3  # a garden may be unloaded between "ensure loaded" and its use


RESERVED = frozenset({"code", "message", "close", "recoverable"})


def game_error(exc: GameError) -> WsError:
    details = {k: v for k, v in plain(exc.details).items() if k not in RESERVED}
    return WsError(exc.code, exc.message, **details)


class Handlers:
    def __init__(
        self,
        game: Any,
        authenticate: Callable[[str], Awaitable[Identity]],
        sessions: SessionRegistry,
        broadcaster: Broadcaster,
        options: WsOptions,
        clock: Any,
    ) -> None:
        self.game = game
        self.authenticate = authenticate
        self.sessions = sessions
        self.broadcaster = broadcaster
        self.options = options
        self.clock = clock
        self._table: dict[type, Callable[..., Awaitable[None]]] = {
            messages.Authenticate: self.on_authenticate,
            messages.SyncGameState: self.on_sync,
            messages.ObserveGarden: self.on_observe,
            messages.StopObserving: self.on_stop_observing,
            messages.CreateCelestialBody: self.on_command,
            messages.DestroyCelestialBody: self.on_command,
            messages.RenameCelestialBody: self.on_command,
            messages.StartResearch: self.on_command,
            messages.BuyUpgrade: self.on_command,
            messages.SetGardenPublic: self.on_command,
        }

    async def __call__(self, conn: Connection, envelope: messages.Envelope) -> None:
        handler = self._table.get(type(envelope.message))
        if handler is None:  # Heartbeat is answered by the connection itself
            raise WsError("WS_PROTO_003", f"{envelope.message.TYPE} is not a request")
        await handler(conn, envelope.message, envelope.id)

    # -- authentication -----------------------------------------------------------------

    async def on_authenticate(self, conn: Connection, msg: messages.Authenticate, rid: Any) -> None:
        if conn.session is not None:
            raise WsError("WS_AUTH_009")
        if not msg.token:
            conn.auth_failed(WsError("WS_AUTH_001", "no token"), rid)
            return
        try:
            identity = await self.authenticate(msg.token)
        except WsError as error:
            if not conn.closing:
                conn.auth_failed(error, rid)
            return
        if conn.closing:
            return
        try:
            garden_id = await self.game.gardens.garden_for(identity.player_id, identity.garden_name)
            await self.game.gardens.ensure_loaded(garden_id)
        except Exception:
            log.failure("cannot load the garden of player {player}", player=identity.player_id)
            raise WsError("WS_CONN_004", close=True) from None
        if conn.closing:
            return

        session = None
        if msg.resume_token:
            session = self.sessions.find(msg.resume_token, identity.player_id)
            if session is not None and session.garden_id != garden_id:
                session = None
        resumed = session is not None
        if session is not None:
            previous = self.sessions.attach(session, conn)
            if previous is not None:
                previous.close("WS_CONN_003", "the session was resumed on another connection")
            if msg.last_sequence is not None and msg.last_sequence != session.own.sequence:
                session.own.rebase(msg.last_sequence)
            token = self.sessions.rotate(session)
        else:
            session = self.sessions.create(identity.player_id, garden_id)
            self.sessions.attach(session, conn)
            token = session.resume_token
        conn.authenticated(session, identity)
        conn.send(
            messages.AUTHENTICATE_RESPONSE,
            {
                "player_id": identity.player_id,
                "garden_id": garden_id,
                "session_id": session.id,
                "resume_token": token,
                "resume_grace": self.options.resume_grace,
                "resumed": resumed,
                "sequences": {str(gid): s.sequence for gid, s in session.streams.items()},
                "token_expires_at": identity.expires_at,
                "server_time": round(self.clock.seconds() * 1000.0, 3),
                "protocol": conn.codec.name,
                "quantum": self.options.quanta.as_data(),
                "broadcast_hz": self.options.broadcast_hz,
                "limits": {
                    "max_message_bytes": self.options.max_message_bytes,
                    "message_rate_per_second": self.options.message_rate_per_second,
                    "message_rate_burst": self.options.message_rate_burst,
                    "max_observed": self.options.max_observed,
                },
            },
            rid,
        )
        if session.own.needs_full:
            await self.broadcaster.sync(conn, session.own)

    # -- state ------------------------------------------------------------------------------

    async def on_sync(self, conn: Connection, msg: messages.SyncGameState, rid: Any) -> None:
        session = conn.session
        assert session is not None
        garden_id = msg.garden_id if msg.garden_id is not None else session.garden_id
        stream = session.streams.get(garden_id)
        if stream is None:
            raise WsError("WS_SYNC_002", f"garden {garden_id} is not streamed to you")
        stream.rebase(msg.last_sequence)
        await self._ensure_loaded(garden_id)
        await self.broadcaster.sync(conn, stream, rid)

    async def on_observe(self, conn: Connection, msg: messages.ObserveGarden, rid: Any) -> None:
        session = conn.session
        assert session is not None
        garden_id = msg.garden_id
        if garden_id in session.streams:
            session.streams[garden_id].rebase(None)
            await self.broadcaster.sync(conn, session.streams[garden_id], rid)
            return
        if len(session.observed) >= self.options.max_observed:
            raise WsError(
                "WS_SYNC_003", f"you may observe at most {self.options.max_observed} gardens"
            )
        await self._ensure_loaded(garden_id)
        for _ in range(ATTEMPTS):
            outcome = await self.game.loop.when_idle(
                lambda: self.broadcaster.observe(conn, session, garden_id, rid)
            )
            if outcome is not None:
                return
            await self._ensure_loaded(garden_id)
        raise WsError("WS_SYNC_004", f"garden {garden_id} is being unloaded; retry")

    async def on_stop_observing(
        self, conn: Connection, msg: messages.StopObserving, rid: Any
    ) -> None:
        session = conn.session
        assert session is not None
        if msg.garden_id is not None and msg.garden_id not in session.observed:
            raise WsError("WS_SYNC_002", f"you do not observe garden {msg.garden_id}")
        dropped = session.stop_observing(msg.garden_id)
        conn.send(messages.OBSERVATION_STOPPED, {"garden_ids": dropped, "reason": "requested"}, rid)
        self.sessions.changed()

    async def _ensure_loaded(self, garden_id: int) -> None:
        try:
            await self.game.gardens.ensure_loaded(garden_id)
        except GardenNotFound:
            raise WsError("WS_SYNC_001", f"no garden {garden_id} you may see") from None
        except GameError as exc:
            raise game_error(exc) from None

    # -- commands ------------------------------------------------------------------------------

    def command_for(self, msg: messages.ClientMessage, player: int, garden: int) -> Any:
        if isinstance(msg, messages.CreateCelestialBody):
            return commands.CreateBody(
                garden, player, msg.kind, msg.position, msg.velocity, msg.name, msg.parent_id
            )
        if isinstance(msg, messages.DestroyCelestialBody):
            return commands.DestroyBody(garden, player, msg.body_id)
        if isinstance(msg, messages.RenameCelestialBody):
            return commands.RenameBody(garden, player, msg.body_id, msg.name)
        if isinstance(msg, messages.StartResearch):
            return commands.StartResearch(garden, player, msg.research)
        if isinstance(msg, messages.BuyUpgrade):
            return commands.BuyUpgrade(garden, player, msg.resource)
        if isinstance(msg, messages.SetGardenPublic):
            return commands.SetPublic(garden, player, msg.public)
        raise WsError("WS_PROTO_003", f"{msg.TYPE} is not a command")

    async def on_command(self, conn: Connection, msg: messages.ClientMessage, rid: Any) -> None:
        session = conn.session
        assert session is not None
        command = self.command_for(msg, session.player_id, session.garden_id)
        garden_id = session.garden_id
        world = self.game.world
        for _ in range(ATTEMPTS):
            await self._ensure_loaded(garden_id)
            try:
                result = await self.game.loop.submit(command)
            except QueueFull as exc:
                raise WsError("WS_RATE_002", str(exc)) from None
            except InvalidCommand as exc:
                if garden_id in world.gardens:
                    raise game_error(exc) from None
                continue  # unloaded meanwhile: load again and retry
            except GameError as exc:
                raise game_error(exc) from None
            conn.send(messages.COMMAND_RESULT, {"command": msg.TYPE, "result": result}, rid)
            return
        raise WsError("WS_SYNC_004", "your garden is being reloaded; retry")
