"""One connection's limits: auth timeout, floods, invalid input, pending requests, slow reads."""

from __future__ import annotations

import pytest_twisted

from cosmic.net import codec as codecs
from tests.unit.net.conftest import Harness, settle


def make(**options) -> Harness:
    return Harness(**options)


def test_only_authenticate_and_heartbeat_before_auth() -> None:
    h = make()
    conn = h.connect()
    h.send(conn, "Heartbeat", {"client_time": 12.5}, "hb")
    h.send(conn, "CreateCelestialBody", {"kind": "asteroid"}, 2)
    h.send(conn, "SyncGameState", {}, 3)
    got = conn.test_transport.messages()
    assert got[0][0] == "HeartbeatAck" and got[0][2] == "hb"
    assert got[0][1]["client_time"] == 12.5 and got[0][1]["latency_ms"] is None
    assert [(k, d["code"], rid) for k, d, rid in got[1:]] == [
        ("Error", "WS_AUTH_008", 2),
        ("Error", "WS_AUTH_008", 3),
    ]
    conn.ponged(42)
    h.send(conn, "Heartbeat")
    assert conn.test_transport.of("HeartbeatAck")[-1]["latency_ms"] == 42
    h.stop()


def test_the_auth_timeout_closes_the_connection() -> None:
    h = make(auth_timeout=5.0)
    conn = h.connect()
    h.clock.advance(4.9)
    assert conn.test_transport.closed_with is None
    h.clock.advance(0.2)
    assert conn.test_transport.errors() == ["WS_AUTH_007"]
    assert conn.test_transport.closed_with[0] == 4107
    assert conn.test_transport.closed_with[1].startswith("WS_AUTH_007")
    assert not conn.test_transport.hung_up  # a close handshake, as usual
    h.stop()


def test_a_flood_is_dropped_reported_once_a_second_then_closed() -> None:
    h = make(message_rate_burst=5, message_rate_per_second=1.0, flood_close_after=50)
    conn = h.connect()
    for _ in range(5):
        h.send(conn, "Heartbeat")
    assert len(conn.test_transport.of("HeartbeatAck")) == 5
    for _ in range(20):
        h.send(conn, "Heartbeat")
    assert conn.test_transport.errors() == ["WS_RATE_001"]  # one report, not twenty
    error = conn.test_transport.of("Error")[0]
    assert error["recoverable"] and 0 < error["retry_after"] <= 1.0
    h.clock.advance(1.0)
    h.send(conn, "Heartbeat")  # one token back
    assert len(conn.test_transport.of("HeartbeatAck")) == 6
    for _ in range(49):
        h.send(conn, "Heartbeat")
    assert conn.test_transport.closed_with is None
    h.send(conn, "Heartbeat")
    assert conn.test_transport.closed_with[0] == 4303
    assert conn.test_transport.errors()[-1] == "WS_RATE_003"
    assert conn.test_transport.hung_up  # no close handshake with a flooder
    frames = len(conn.test_transport.frames)
    for _ in range(1000):
        h.send(conn, "Heartbeat")  # after the close: ignored, nothing grows
    assert len(conn.test_transport.frames) == frames
    assert h.metrics.ws.rate_limited.labels(scope="message")._value.get() >= 70
    h.stop()


def test_invalid_messages_get_typed_errors_then_a_close() -> None:
    h = make(max_protocol_errors=4)
    conn = h.connect()
    conn.received(b"{not json", False)
    conn.received(b'{"type": "Nope", "id": 9}', False)
    conn.received(b'{"type": "Heartbeat"}', True)
    assert conn.test_transport.closed_with is None
    conn.received(b'{"type": "DestroyCelestialBody", "data": {"body_id": "x"}}', False)
    transport = conn.test_transport
    assert transport.errors() == ["WS_PROTO_001", "WS_PROTO_003", "WS_PROTO_005", "WS_PROTO_008"]
    assert [rid for k, _, rid in transport.messages()][1] == 9  # the id is echoed
    assert transport.closed_with[0] == 4408 and transport.hung_up
    h.stop()


def test_an_lz4_bomb_closes_the_connection_at_once() -> None:
    import lz4.frame

    h = make()
    conn = h.connect(codecs.MSGPACK_LZ4)
    conn.received(lz4.frame.compress(b"\x00" * (20 * 1024 * 1024)), True)
    assert conn.test_transport.errors() == ["WS_PROTO_006"]
    assert conn.test_transport.closed_with[0] == 4406 and conn.test_transport.hung_up
    h.stop()


@pytest_twisted.ensureDeferred
async def test_pending_requests_are_bounded() -> None:
    h = make(max_pending_requests=2)
    conn = h.connect()
    player = await h.player()
    await h.login(conn, player)
    for rid in (10, 11, 12):  # commands wait for the next physics tick
        h.send(conn, "CreateCelestialBody", {"kind": "asteroid"}, rid)
    assert conn.test_transport.errors() == ["WS_RATE_004"]
    await settle(h)
    results = [rid for k, _, rid in conn.test_transport.messages() if k == "CommandResult"]
    assert results == [10, 11]
    h.stop()


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_is_closed_and_its_queue_freed() -> None:
    h = make(slow_client_timeout=3.0, send_queue_bytes=65536)
    conn = h.connect()
    player = await h.player()
    await h.login(conn, player)
    conn.test_transport.producer.pauseProducing()  # the socket buffer is full
    for _ in range(5):
        h.send(conn, "Heartbeat")  # non-critical: dropped, not queued
    assert conn.outbox.queued_bytes == 0
    assert h.metrics.ws.dropped.labels(type="HeartbeatAck")._value.get() == 5
    h.server.broadcaster.tick()
    assert h.metrics.ws.coalesced._value.get() == 1
    h.clock.advance(3.1)
    assert conn.test_transport.closed_with[0] == 4602
    conn.lost()
    assert conn.session.client is None  # detached: resumable
    assert h.server.counts()["connections"] == 0
    h.stop()
