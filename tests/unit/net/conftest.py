"""Fakes and a small game for the WebSocket layer's unit tests (task.Clock only)."""

from __future__ import annotations

import time
from typing import Any

import attrs
import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from cosmic import metrics as metrics_module
from cosmic.auth import TokenIssuer
from cosmic.game.loop import GameLoop
from cosmic.gardens import Gardens
from cosmic.net import codec as codecs
from cosmic.net import messages
from cosmic.net.auth import as_authenticator
from cosmic.net.options import WsOptions
from cosmic.net.server import WebSocketServer
from cosmic.store.memory import MemoryStore
from tests.unit.game.conftest import make_world

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
ISSUER = "cosmic-gardener"
AUDIENCE = "cosmic-gardener-clients"


class FakeTransport:
    """What a Connection writes to: records messages, closes and the producer."""

    def __init__(self, codec: codecs.Codec) -> None:
        self.codec = codec
        self.frames: list[tuple[bytes, bool]] = []
        self.closed_with: tuple[int, str] | None = None
        self.producer: Any = None
        self.connection: Any = None

    def write_message(self, payload: bytes, binary: bool) -> None:
        self.frames.append((payload, binary))

    def close_with(self, code: int, reason: str, *, hang_up: bool = False) -> None:
        self.closed_with = (code, reason)
        self.hung_up = hang_up

    def register_outbox(self, outbox: Any) -> None:
        self.producer = outbox

    def dropConnection(self, abort: bool = False) -> None:
        if self.connection is not None:
            self.connection.lost()

    def messages(self) -> list[tuple[str, Any, Any]]:
        out = []
        for payload, binary in self.frames:
            env = self.codec.decode_envelope(payload, binary)
            out.append((env["type"], env["data"], env.get("id")))
        return out

    def of(self, kind: str) -> list[Any]:
        return [data for k, data, _ in self.messages() if k == kind]

    def errors(self) -> list[str]:
        return [data["code"] for data in self.of("Error")]


def encode(codec: codecs.Codec, kind: str, data: Any = None, rid: Any = None) -> bytes:
    return codec.encode(messages.envelope(kind, data if data is not None else {}, rid)).payload


@attrs.define
class Game:
    world: Any
    loop: Any
    gardens: Any


class Harness:
    """A real world, loop and loader on a task.Clock, and a WebSocketServer
    whose connections write to FakeTransports."""

    def __init__(self, **options: Any) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.world, self.now = make_world()
        self.loop = GameLoop(
            self.world, tps=60, clock=self.clock, run_in_thread=defer.maybeDeferred
        )
        self.store = MemoryStore()
        self.gardens = Gardens(self.world, self.loop, self.store, unload_after=300.0)
        self.game = Game(self.world, self.loop, self.gardens)
        self.metrics = metrics_module.create()
        defaults = {
            "message_rate_burst": 1000,
            "message_rate_per_second": 1000.0,
            "auth_timeout": 10.0,
            # Every broadcast sends, at rest or not (test_broadcast.py covers
            # the idle pacing).
            "idle_interval": 0.0,
            # One broadcast, one call (test_broadcast.py covers the slices).
            "broadcast_slice": 0.0,
        }
        self.options = WsOptions(**{**defaults, **options})
        self.issuer = TokenIssuer(
            SECRET, issuer=ISSUER, audience=AUDIENCE, ttl=900, clock=self.clock
        )
        self.server = WebSocketServer(
            self.game,
            as_authenticator(self.issuer),
            self.options,
            self.metrics.ws,
            clock=self.clock,
            reactor=self.clock,
        )
        self.loop.startService()

    def stop(self) -> None:
        self.loop.stopService()

    def connect(self, subprotocol: str = codecs.JSON, address: str = "10.0.0.1") -> Any:
        codec = codecs.codec_for(subprotocol)
        transport = FakeTransport(codec)
        conn = self.server.connected(transport, subprotocol, address)
        transport.connection = conn
        conn.opened()
        conn.test_transport = transport
        return conn

    def send(self, conn: Any, kind: str, data: Any = None, rid: Any = None) -> None:
        conn.received(encode(conn.codec, kind, data, rid), conn.codec.binary)

    def tick(self, seconds: float = 1 / 60) -> None:
        """Advance the clock (physics ticks run commands)."""
        self.clock.advance(seconds)

    async def player(self, name: str = "ada") -> int:
        record = await self.store.create_account(name, name.title(), "hash", time.time())
        return record.id

    async def login(self, conn: Any, player: int, **extra: Any) -> None:
        self.send(conn, "Authenticate", {"token": self.issuer.issue(player).token, **extra}, 1)
        await settle(self)


async def settle(h: Harness, rounds: int = 4) -> None:
    """Let queued handlers run: a few physics ticks (commands apply there)."""
    for _ in range(rounds):
        h.clock.advance(1 / 60)
        await defer.succeed(None)


@pytest.fixture
def h() -> Any:
    harness = Harness()
    yield harness
    harness.stop()
