"""Slow and malformed HTTP clients over real sockets (slowloris, slow POST,
over-long header lines): the server closes them with a JSON error after its
read deadline, and serves everyone else meanwhile.

The in-process server (cosmic.net.testing: the daemon's Site and /ws) runs
with short deadlines so a test takes seconds; the assertions are that the
connection *is* closed with the right answer while other clients are served,
never how fast.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable, Iterator

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor, threads

from cosmic.net import codec as codecs
from cosmic.net.client import connect
from cosmic.net.testing import start_server

pytestmark = pytest.mark.integration

DEADLINE = 1.0  # the test server's header and body deadlines, seconds
GIVE_UP = 60.0  # a slow client still open after this long has not been cut off


def sleep(seconds: float) -> defer.Deferred:
    d: defer.Deferred = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@pytest_twisted.async_yield_fixture
async def server():
    started = await start_server(reactor)
    started.site.header_timeout = DEADLINE
    started.site.body_timeout = DEADLINE
    yield started
    await started.stop()


class Slow(protocol.Protocol):
    """A raw TCP client that records what it gets and when it is closed."""

    def __init__(self) -> None:
        self.received = b""
        self.sent = 0
        self.closed: defer.Deferred = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.closed.callback(self.received)

    @property
    def open(self) -> bool:
        return not self.closed.called


async def open_raw(server) -> Slow:
    return await protocol.ClientCreator(reactor, Slow).connectTCP("127.0.0.1", server.port)


async def dribble(client: Slow, chunks: Iterable[bytes], delay: float) -> None:
    """Send ``chunks`` one by one, ``delay`` apart, until the server closes
    the connection or GIVE_UP seconds have passed."""
    waited = 0.0
    for chunk in chunks:
        if not client.open or waited > GIVE_UP:
            return
        client.transport.write(chunk)
        client.sent += len(chunk)
        await sleep(delay)
        waited += delay


def bytewise(head: bytes) -> Iterator[bytes]:
    """A request head one byte at a time, then header bytes for ever (never
    the blank line that ends it)."""
    yield from (head[i : i + 1] for i in range(len(head)))
    n = 0
    while True:
        yield from (bytes([b]) for b in b"X-Slow-%d: x\r\n" % n)
        n += 1


def headers_for_ever(head: bytes) -> Iterator[bytes]:
    """Classic slowloris: one complete header line at a time, never the end."""
    yield head
    n = 0
    while True:
        yield b"X-Loris-%d: %d\r\n" % (n, n)
        n += 1


def parse_answer(raw: bytes) -> tuple[int, dict[str, str], object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, json.loads(body) if body else None


def assert_json_error(raw: bytes, status: int, code: str) -> None:
    got, headers, body = parse_answer(raw)
    assert got == status, raw
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["connection"] == "close"
    assert isinstance(body, dict) and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert b"Traceback" not in raw


async def ws_player(server, name: str):
    player = await server.player(name)
    client = await connect(reactor, "127.0.0.1", server.port, codecs.MSGPACK)
    kind, _, _ = await client.request("Authenticate", {"token": server.token(player)})
    assert kind == "AuthenticateResponse"
    return client


def http_get(port: int, path: str) -> tuple[int, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, json.loads(response.read())


async def served(server, ws_client) -> None:
    """A WebSocket client and a fresh HTTP client both get answers now."""
    kind, _, _ = await ws_client.request("Heartbeat", {}, timeout=10)
    assert kind == "HeartbeatAck"
    status, body = await threads.deferToThread(http_get, server.port, "/health/live")
    assert status == 200 and isinstance(body, dict)


# -- slowloris -----------------------------------------------------------------------------

HTTP_HEAD = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
WS_HEAD = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: cosmic.json.v1\r\n"
)


@pytest.mark.parametrize(
    "head, pace",
    [
        (HTTP_HEAD, "bytewise"),
        (HTTP_HEAD, "lines"),
        (WS_HEAD, "bytewise"),
        (WS_HEAD, "lines"),
    ],
    ids=["http-bytes", "http-lines", "ws-bytes", "ws-lines"],
)
@pytest_twisted.ensureDeferred
async def test_slowloris_is_cut_off_with_408_and_others_are_served(server, head, pace) -> None:
    other = await ws_player(server, "bob")
    slow = await open_raw(server)
    chunks = bytewise(head) if pace == "bytewise" else headers_for_ever(head)
    sending = defer.ensureDeferred(dribble(slow, chunks, 0.05 if pace == "bytewise" else 0.2))
    await sleep(DEADLINE / 2)
    assert slow.open  # still dribbling: the others are served meanwhile
    await served(server, other)
    answer = await slow.closed.addTimeout(GIVE_UP + 5, reactor)
    await sending
    assert_json_error(answer, 408, "HTTP_408")
    # The deadline is on the head as a whole, not per byte: it was cut off
    # while it still had plenty to send (the for-ever generator).
    assert server.metrics.http.requests.labels(method="other", status="408")._value.get() == 1
    assert not server.ws.connections - {c for c in server.ws.connections if c.session}
    await served(server, other)
    await other.close()


@pytest_twisted.ensureDeferred
async def test_many_slowloris_connections_at_once_are_all_closed(server) -> None:
    other = await ws_player(server, "bob")
    slow = [await open_raw(server) for _ in range(40)]
    sending = [
        defer.ensureDeferred(dribble(c, headers_for_ever(HTTP_HEAD if i % 2 else WS_HEAD), 0.2))
        for i, c in enumerate(slow)
    ]
    await served(server, other)
    answers = await defer.gatherResults([c.closed.addTimeout(GIVE_UP + 5, reactor) for c in slow])
    for answer in answers:
        assert_json_error(answer, 408, "HTTP_408")
    await defer.gatherResults(sending)
    await served(server, other)
    await other.close()


@pytest_twisted.ensureDeferred
async def test_a_slow_body_is_cut_off_with_408(server) -> None:
    other = await ws_player(server, "bob")
    slow = await open_raw(server)
    slow.transport.write(
        b"POST /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    sending = defer.ensureDeferred(dribble(slow, iter(lambda: b" ", None), 0.05))
    await served(server, other)
    answer = await slow.closed.addTimeout(GIVE_UP + 5, reactor)
    await sending
    assert slow.sent < 100000  # cut off long before the body was complete
    assert_json_error(answer, 408, "HTTP_408")
    await other.close()


@pytest_twisted.ensureDeferred
async def test_a_slow_chunked_body_is_cut_off_with_408(server) -> None:
    slow = await open_raw(server)
    slow.transport.write(
        b"POST /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sending = defer.ensureDeferred(dribble(slow, iter(lambda: b"1\r\nx\r\n", None), 0.1))
    answer = await slow.closed.addTimeout(GIVE_UP + 5, reactor)
    await sending
    assert_json_error(answer, 408, "HTTP_408")


@pytest_twisted.ensureDeferred
async def test_an_idle_keep_alive_connection_is_not_a_slow_request(server) -> None:
    """The deadline runs from a request's first byte: a kept-alive connection
    idle between two requests (for longer than the deadline) still works."""
    client = await open_raw(server)
    request = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(2):
        client.received = b""
        client.transport.write(request)
        while b"\r\n\r\n" not in client.received or not client.received.endswith(b"}"):
            assert client.open, client.received
            await sleep(0.02)
        status, headers, _ = parse_answer(client.received)
        assert status == 200 and headers.get("connection") != "close"
        await sleep(DEADLINE * 2)
        assert client.open
    # A request arriving whole, even in pieces, well within the deadline is served.
    client.received = b""
    for piece in (request[:10], request[10:30], request[30:]):
        client.transport.write(piece)
        await sleep(0.01)
    while not client.received.endswith(b"}"):
        await sleep(0.02)
    assert parse_answer(client.received)[0] == 200
    client.transport.loseConnection()
    await client.closed


# -- malformed heads get JSON answers too ------------------------------------------------------


@pytest.mark.parametrize(
    "payload, status, code",
    [
        (b"GARBAGE\r\n\r\n", 400, "HTTP_400"),
        (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400, "HTTP_400"),
        (b"GET / HTTP/1.1\r\nBad\x00Name: x\r\n\r\n", 400, "HTTP_400"),
        (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, "HTTP_400"),
        (b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n", 431, "HTTP_431"),
    ],
    ids=["request-line", "header-no-colon", "header-name-nul", "bad-length", "long-line"],
)
@pytest_twisted.ensureDeferred
async def test_malformed_heads_get_a_json_error_and_a_close(server, payload, status, code) -> None:
    client = await open_raw(server)
    client.transport.write(payload)
    answer = await client.closed.addTimeout(30, reactor)
    assert_json_error(answer, status, code)
