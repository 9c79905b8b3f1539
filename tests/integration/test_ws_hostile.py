"""Hostile input over real sockets: each gets a typed Error or a close, never a
crash, and the other clients keep being served."""

from __future__ import annotations

import json
import socket

import lz4.frame
import msgpack
import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor

from cosmic.game.commands import CreateBody
from cosmic.net import codec as codecs
from cosmic.net.client import connect
from cosmic.net.testing import start_server

pytestmark = pytest.mark.integration


def sleep(seconds: float) -> defer.Deferred:
    d: defer.Deferred = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


async def eventually(check, timeout: float = 10.0, step: float = 0.05) -> None:
    waited = 0.0
    while not check():
        if waited >= timeout:
            raise AssertionError("condition not met in time")
        await sleep(step)
        waited += step


@pytest_twisted.async_yield_fixture
async def server():
    started = await start_server(reactor)
    yield started
    await started.stop()


async def player_client(server, subprotocol=codecs.JSON, name="ada"):
    player = await server.player(name)
    client = await connect(reactor, "127.0.0.1", server.port, subprotocol)
    kind, data, _ = await client.request("Authenticate", {"token": server.token(player)})
    assert kind == "AuthenticateResponse"
    return client, data["garden_id"]


async def still_served(client) -> None:
    kind, _, _ = await client.request("Heartbeat", {}, timeout=5)
    assert kind == "HeartbeatAck"


@pytest.mark.parametrize("subprotocol", [codecs.JSON, codecs.MSGPACK, codecs.MSGPACK_LZ4])
@pytest_twisted.ensureDeferred
async def test_malformed_and_mistyped_messages_get_typed_errors(server, subprotocol) -> None:
    client, _ = await player_client(server, subprotocol)
    binary = subprotocol != codecs.JSON
    pack = (lambda o: msgpack.packb(o)) if binary else (lambda o: json.dumps(o).encode())
    cases = [
        (b"\xc1\xc1garbage" if binary else b'{"type": "Heartbeat",', binary, "WS_PROTO_001"),
        (pack([1, 2, 3]), binary, "WS_PROTO_002"),
        (pack({"type": "Teleport", "data": {}}), binary, "WS_PROTO_003"),
        (pack({"type": "DestroyCelestialBody", "data": {"body_id": "x"}}), binary, "WS_PROTO_004"),
        (b'{"type": "Heartbeat"}' if binary else b"\x81\xa4type", not binary, "WS_PROTO_005"),
    ]
    if subprotocol == codecs.MSGPACK_LZ4:
        cases.append((codecs.LZ4_MAGIC + b"\x00" * 30, True, "WS_PROTO_007"))
    for payload, as_binary, code in cases:
        client.send_raw(payload, as_binary)
        _kind, error, _ = await client.next("Error")
        assert error["code"] == code and error["recoverable"], (code, error)
    await still_served(client)
    await client.close()


@pytest_twisted.ensureDeferred
async def test_a_frame_over_the_limit_closes_with_1009(server) -> None:
    client, _ = await player_client(server)
    other, _ = await player_client(server, name="bob")
    client.send_raw(b'{"type": "Heartbeat", "data": {"x": "' + b"a" * 70_000 + b'"}}', False)
    code, _ = await client.closed()
    assert code == 1009
    await still_served(other)
    await other.close()


@pytest_twisted.ensureDeferred
async def test_an_lz4_bomb_is_refused_without_inflating_it(server) -> None:
    client, _ = await player_client(server, codecs.MSGPACK_LZ4)
    other, _ = await player_client(server, codecs.MSGPACK_LZ4, name="bob")
    bomb = lz4.frame.compress(b"\x00" * (12 * 1024 * 1024))  # 12 MiB of zeros
    assert len(bomb) < 65536  # fits in one allowed message
    client.send_raw(bomb, True)
    _kind, error, _ = await client.next("Error")
    assert error["code"] == "WS_PROTO_006" and not error["recoverable"]
    code, reason = await client.closed()
    assert code == 4406 and reason.startswith("WS_PROTO_006")
    await still_served(other)
    await other.close()


class Inflating:
    """A zlib decompressor that records how many bytes each call produced."""

    def __init__(self, inner, produced: list[int]) -> None:
        self._inner = inner
        self._produced = produced

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out = self._inner.decompress(data, max_length)
        self._produced.append(len(out))
        return out

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@pytest.mark.parametrize(("subprotocol", "fragment"), [(codecs.JSON, None), (codecs.MSGPACK, 1024)])
@pytest_twisted.ensureDeferred
async def test_a_deflate_bomb_is_cut_off_at_the_message_limit(subprotocol, fragment) -> None:
    server = await start_server(reactor, net={"compression": "deflate"})
    try:
        limit = server.settings.ws.max_message_bytes
        client = await connect(reactor, "127.0.0.1", server.port, subprotocol, deflate=True)
        token = server.token(await server.player())
        kind, _, _ = await client.request("Authenticate", {"token": token})
        assert kind == "AuthenticateResponse"
        other, _ = await player_client(server, name="bob")  # no deflate
        (pmce,) = [
            ext for c in server.ws.connections for ext in c.transport.websocket_extensions_in_use
        ]
        inflated: list[int] = []
        start = pmce.start_decompress_message

        def counting_start() -> None:
            # Measure what zlib really produced on the server, not what
            # reached the application (nothing does).
            start()
            pmce._decompressor = Inflating(pmce._decompressor, inflated)

        pmce.start_decompress_message = counting_start
        padding = b"a" * (12 * 1024 * 1024)  # 12 MiB, deflated to a few KiB
        if subprotocol == codecs.JSON:
            bomb = b'{"type": "Heartbeat", "data": {"pad": "' + padding + b'"}}'
        else:
            bomb = msgpack.packb({"type": "Heartbeat", "data": {"pad": padding}})
        # Autobahn compresses as the extension says, then splits into frames.
        client.protocol.sendMessage(bomb, isBinary=client.codec.binary, fragmentSize=fragment)
        code, _ = await client.closed()
        assert code == 1009
        assert inflated and sum(inflated) <= limit + 1  # stopped at the limit, not 12 MiB
        await still_served(other)
        await other.close()
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_a_message_flood_is_rate_limited_then_closed() -> None:
    server = await start_server(
        reactor, ws={"message_rate_burst": 10, "message_rate_per_second": 5.0}
    )
    try:
        flooder, _ = await player_client(server)
        other, _ = await player_client(server, name="bob")
        for _ in range(5000):
            flooder.send("Heartbeat", {})
        _kind, error, _ = await flooder.next("Error")
        assert error["code"] == "WS_RATE_001" and error["recoverable"]
        code, reason = await flooder.closed()
        assert code == 4303 and reason.startswith("WS_RATE_003")
        assert len(flooder.inbox) < 20  # a handful of acks and errors, not 5000
        await still_served(other)
        await other.close()
    finally:
        await server.stop()


class RawClient(protocol.Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.done: defer.Deferred = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.done.callback(self.received)


async def raw(server, payload_chunks, chunk_delay: float = 0.0) -> tuple[bytes, int]:
    """Send chunks on a raw TCP connection; (what came back, bytes sent before the close)."""
    proto = RawClient()
    endpoint_factory = protocol.Factory.forProtocol(lambda: proto)
    await protocol.ClientCreator(reactor, lambda: proto).connectTCP("127.0.0.1", server.port)
    del endpoint_factory
    sent = 0
    for chunk in payload_chunks:
        if proto.done.called:
            break
        proto.transport.write(chunk)
        sent += len(chunk)
        await sleep(chunk_delay)
    answer = await proto.done.addTimeout(10, reactor)
    return answer, sent


def upgrade_request(extra: bytes = b"", protocols: bytes = b"cosmic.json.v1") -> bytes:
    return (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: " + protocols + b"\r\n" + extra + b"\r\n"
    )


@pytest_twisted.ensureDeferred
async def test_a_header_flood_is_cut_off_early(server) -> None:
    other, _ = await player_client(server)
    head = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    flood = [head] + [b"X-Flood-%06d: %s\r\n" % (i, b"a" * 1000) for i in range(28 * 1024)]
    answer, sent = await raw(server, flood)
    assert answer.startswith(b"HTTP/1.1 4")
    assert sent < 28 * 1024 * 1000  # refused long before 28 MiB
    await still_served(other)
    # Smaller than twisted.web's 16 KiB, larger than ws.max_handshake_bytes:
    answer, _ = await raw(server, [upgrade_request(b"X-Pad: " + b"a" * 9000 + b"\r\n")])
    assert answer.startswith(b"HTTP/1.1 431")
    assert b"WS_" not in answer and b'"HTTP_431"' in answer
    await other.close()


@pytest_twisted.ensureDeferred
async def test_handshakes_that_are_refused(server) -> None:
    failures = server.metrics.ws.handshake_failures
    answer, _ = await raw(server, [upgrade_request(protocols=b"chat.v2")])
    assert answer.startswith(b"HTTP/1.1 400")
    assert failures.labels(reason="subprotocol")._value.get() == 1
    answer, _ = await raw(server, [upgrade_request(b"Origin: https://evil.example.net\r\n")])
    assert answer.startswith(b"HTTP/1.1 403")
    answer, _ = await raw(server, [b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 426")
    with pytest.raises(ConnectionError, match="closed during the handshake"):
        await connect(reactor, "127.0.0.1", server.port, codecs.JSON, protocols=["nope"])


@pytest_twisted.ensureDeferred
async def test_handshakes_per_address_are_rate_limited() -> None:
    server = await start_server(
        reactor, ws={"handshake_rate_burst": 3, "handshake_rate_per_minute": 1.0}
    )
    try:
        opened = [await connect(reactor, "127.0.0.1", server.port, codecs.JSON) for _ in range(3)]
        answer, _ = await raw(server, [upgrade_request()])
        assert answer.startswith(b"HTTP/1.1 429") and b"Retry-After: " in answer
        assert server.metrics.ws.rate_limited.labels(scope="handshake")._value.get() == 1
        for client in opened:
            await still_served(client)
            await client.close()
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_the_auth_timeout_closes_an_idle_connection() -> None:
    server = await start_server(reactor, ws={"auth_timeout": 0.5})
    try:
        client = await connect(reactor, "127.0.0.1", server.port, codecs.MSGPACK)
        kind, _ack, _ = await client.request("Heartbeat", {})  # allowed before auth
        assert kind == "HeartbeatAck"
        kind, error, _ = await client.next("Error", timeout=5)
        assert error["code"] == "WS_AUTH_007"
        code, _ = await client.closed()
        assert code == 4107
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_is_closed_and_others_are_served() -> None:
    server = await start_server(
        reactor,
        ws={"slow_client_timeout": 1.0, "send_queue_bytes": 65536, "close_handshake_timeout": 1},
        game={"broadcast_hz": 30},
    )
    try:
        slow, garden = await player_client(server)
        other, _ = await player_client(server, name="bob")
        world = server.game.world

        def fill() -> None:
            world.garden(garden).credit({"cosmic_dust": 1e9})
            for i in range(400):
                world.apply_command(
                    CreateBody(
                        garden,
                        world.garden(garden).owner_id,
                        "asteroid",
                        position=(3 + (i % 20) * 0.5, (i // 20) * 0.5, 0.0),
                    )
                )

        await server.game.loop.when_idle(fill)
        (conn,) = [c for c in server.ws.connections if c.session and c.session.garden_id == garden]
        # Small socket buffers on both sides: the kernel absorbs little, so
        # the server's transport fills (and pauses the outbox) quickly.
        handle = conn.transport.transport.getHandle()
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        slow.protocol.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.protocol.transport.pauseProducing()  # stop reading
        closed = server.metrics.ws.closed.labels(code="WS_CONN_002")
        await eventually(lambda: closed._value.get() == 1, timeout=30)
        assert server.metrics.ws.coalesced._value.get() > 0
        assert conn.outbox.queued_bytes == 0  # freed at the close
        await still_served(other)
        await other.next("StateDelta")
        slow.protocol.transport.resumeProducing()
        code, _ = await slow.closed()
        assert code in (4602, 1006)
        await other.close()
    finally:
        await server.stop()
