"""Factory options, origin policy, deflate policy and the endpoint's refusals."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from autobahn.websocket.compress import PerMessageDeflateOffer
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from cosmic import metrics as metrics_module
from cosmic.config import ConfigRequest, load
from cosmic.net import codec as codecs
from cosmic.net.factory import OriginPolicy, handshake_bytes
from cosmic.net.options import WsOptions, parse_origins
from cosmic.net.server import WebSocketServer


def server(**options) -> WebSocketServer:
    clock = Clock()
    return WebSocketServer(
        None,
        lambda token: None,
        WsOptions(**options),
        metrics_module.create().ws,
        clock=clock,
        reactor=clock,
    )


def test_every_limit_autobahn_leaves_open_is_set_from_the_options() -> None:
    ws = server(
        max_message_bytes=1000,
        max_frame_bytes=500,
        ping_interval=7.0,
        ping_timeout=3.0,
        open_handshake_timeout=2.0,
        close_handshake_timeout=1.5,
        max_connections=9,
    )
    f = ws.factory
    assert (f.maxMessagePayloadSize, f.maxFramePayloadSize) == (1000, 500)
    assert (f.autoPingInterval, f.autoPingTimeout) == (7.0, 3.0)
    assert (f.openHandshakeTimeout, f.closeHandshakeTimeout) == (2.0, 1.5)
    assert f.maxConnections == 9
    assert f.versions == [13] and f.webStatus is False and f.failByDrop is False
    assert f.trustXForwardedFor == 0 and f.server is None  # no version banner
    assert f.perMessageCompressionAccept([object()]) is None


def test_options_come_from_the_settings() -> None:
    settings = load(
        ConfigRequest(
            environ={},
            environment="test",
            overrides=(
                "ws.allowed_origins=https://play.example.com, https://*.example.org",
                "ws.position_quantum=0.001",
                "net.compression=deflate",
            ),
        )
    )
    options = WsOptions.from_settings(settings)
    assert options.allowed_origins == ("https://play.example.com", "https://*.example.org")
    assert options.quanta.position == 0.001
    assert options.compression == "deflate"
    assert options.broadcast_hz == settings.game.broadcast_hz


@pytest.mark.parametrize(
    ("allowed", "origin", "host", "ok"),
    [
        ("", None, "game.example.com", True),  # not a browser
        ("", "https://game.example.com", "game.example.com", True),  # same origin
        ("", "http://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("", "https://evil.example.net", "game.example.com", False),
        ("", "null", "game.example.com", False),
        ("*", "https://anything.test", "x", True),
        ("https://play.example.com", "https://play.example.com", "api.example.com", True),
        ("https://play.example.com", "https://play.example.com.evil.net", "x", False),
        ("https://*.example.org", "https://a.example.org", "x", True),
        ("https://*.example.org", "https://a.b.example.org/x", "x", False),
        ("https://*.example.org", "http://a.example.org", "x", False),
    ],
)
def test_origin_policy(allowed, origin, host, ok) -> None:
    assert OriginPolicy(parse_origins(allowed)).allows(origin, host) is ok


def offer(**kw) -> PerMessageDeflateOffer:
    return PerMessageDeflateOffer(**{"accept_max_window_bits": True, **kw})


def test_deflate_only_when_configured_never_on_lz4_and_always_bounded() -> None:
    off = server(compression="lz4")
    assert off.factory.accept_deflate([offer()], codecs.JSON) is None
    on = server(compression="deflate", deflate_window_bits=10, deflate_mem_level=4)
    assert on.factory.accept_deflate([offer()], codecs.MSGPACK_LZ4) is None
    assert on.factory.accept_deflate([offer(accept_max_window_bits=False)], codecs.JSON) is None
    accept = on.factory.accept_deflate([offer()], codecs.JSON)
    assert accept.no_context_takeover is True and accept.request_no_context_takeover is True
    assert accept.window_bits == 10 and accept.request_max_window_bits == 10
    assert accept.mem_level == 4 and accept.max_message_size == 65536
    smaller = on.factory.accept_deflate([offer(request_max_window_bits=9)], codecs.MSGPACK)
    assert smaller.window_bits == 9


def request(method=b"GET", headers=None, client="10.1.1.1") -> DummyRequest:
    req = DummyRequest([b"ws"])
    req.method = method
    req.uri = b"/ws"
    req.client = type("Addr", (), {"host": client})()
    req.getClientAddress = lambda: req.client
    base = {
        b"Upgrade": b"websocket",
        b"Connection": b"Upgrade",
        b"Host": b"game.example.com",
        b"Sec-WebSocket-Key": b"dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version": b"13",
    }
    for name, value in {**base, **(headers or {})}.items():
        if value is not None:
            req.requestHeaders.setRawHeaders(name, [value])
    return req


def render(ws: WebSocketServer, req: DummyRequest) -> tuple[int, dict]:
    body = ws.resource.render(req)
    return req.responseCode, json.loads(body)


def test_endpoint_refuses_what_is_not_a_websocket_handshake() -> None:
    ws = server()
    code, body = render(ws, request(method=b"POST"))
    assert code == 405 and body["error"]["code"] == "HTTP_405"
    code, _ = render(ws, request(headers={b"Upgrade": None}))
    assert code == 426
    code, body = render(ws, request(headers={b"X-Pad": b"a" * 9000}))
    assert code == 431 and "at most 8192" in body["error"]["message"]
    code, _ = render(ws, request(headers={b"Origin": b"https://evil.example.net"}))
    assert code == 403
    failures = ws.metrics.handshake_failures
    assert failures.labels(reason="too_large")._value.get() == 1
    assert failures.labels(reason="origin")._value.get() == 1


def test_endpoint_rate_limits_handshakes_per_address() -> None:
    ws = server(handshake_rate_burst=2, handshake_rate_per_minute=6.0)
    assert ws.admit("10.1.1.1") is None and ws.admit("10.1.1.1") is None
    req = request()
    code, body = render(ws, req)
    assert code == 429 and body["error"]["code"] == "HTTP_429"
    assert req.responseHeaders.getRawHeaders(b"Retry-After") == [b"10"]
    assert ws.admit("10.9.9.9") is None  # other addresses are not affected


def test_endpoint_caps_connections_per_address() -> None:
    ws = server(max_connections_per_address=2)
    ws.counted("10.1.1.1")
    ws.counted("10.1.1.1")
    code, body = render(ws, request())
    assert code == 429 and "connections" in body["error"]["message"]
    proto = type("P", (), {"_counted": True, "client_address": "10.1.1.1"})()
    ws.released(proto)
    ws.released(proto)  # once only
    assert ws.per_address["10.1.1.1"] == 1


def test_handshake_size_counts_line_and_headers() -> None:
    req = request()
    assert 150 < handshake_bytes(req) < 300


def test_autobahn_formats_its_options_log_line_only_when_it_is_written() -> None:
    import pprint

    from autobahn.websocket import protocol as autobahn_protocol

    from cosmic.net.protocol import CosmicServerProtocol, LazyFormat

    calls: list[Any] = []

    class Counting(list):
        def __repr__(self) -> str:
            calls.append(1)
            return super().__repr__()

    value = Counting([("maxMessagePayloadSize", 65536, "CosmicWebSocketFactory")] * 40)
    lazy = LazyFormat(value)
    assert calls == []  # nothing formatted until the line is written
    written = f"\n{lazy}"
    assert calls
    assert written == "\n" + pprint.pformat(value)

    seen = []

    def parent(self: Any) -> None:
        seen.append(autobahn_protocol.pformat)

    with mock.patch.object(
        CosmicServerProtocol.__mro__[1], "_connectionMade", parent, create=False
    ):
        CosmicServerProtocol._connectionMade(object.__new__(CosmicServerProtocol))
    assert seen == [LazyFormat]  # lazy while Autobahn sets the connection up
    assert autobahn_protocol.pformat is pprint.pformat  # and only then
