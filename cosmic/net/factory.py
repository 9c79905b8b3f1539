"""The WebSocket factory (every Autobahn option set explicitly) and the /ws resource.

Autobahn's defaults are unlimited frame and message sizes, no pings, any
origin, and no cap on the opening handshake; every one of those is set here
from [ws].  What Autobahn cannot express is checked in ``WebSocketEndpoint``
before the upgrade, each refusal a JSON error like the rest of the Site:

* 405 for anything but GET, 426 for a GET without ``Upgrade: websocket``;
* 431 when the request line and headers exceed ``ws.max_handshake_bytes``
  (twisted.web already refuses past 16 KiB and 500 headers, so a header
  flood costs at most that before the connection is closed);
* 403 for an Origin ``ws.allowed_origins`` does not allow (empty: the
  page's own origin only; clients that send no Origin are not browsers and
  are allowed, the token is what authenticates them);
* 429 with Retry-After past the per-address handshake bucket, or past
  ``ws.max_connections_per_address`` open connections.

permessage-deflate is accepted only with net.compression = deflate, never
for cosmic.msgpack-lz4.v1 (compressing LZ4 again wastes CPU), only from a
client that lets us bound its window (client_max_window_bits), and always
without context takeover in both directions, with ``ws.deflate_window_bits``
and ``ws.deflate_mem_level``: each connection then holds one small zlib
state (about 20 KiB at the defaults) instead of ~300 KiB.
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from twisted.protocols.policies import ProtocolWrapper
from twisted.web import resource, server

from cosmic.net import codec as codecs
from cosmic.net.protocol import CosmicServerProtocol

if TYPE_CHECKING:
    from cosmic.net.options import WsOptions
    from cosmic.net.server import WebSocketServer


def _json_error(request: server.Request, status: int, code: str, message: str) -> bytes:
    """A refused handshake: a JSON error like the rest of the Site, then the
    connection is closed (no keep-alive for a client we just refused)."""
    from cosmic.web.jsonapi import error_body, respond

    channel = getattr(request, "channel", None)
    if channel is not None:
        channel.persistent = False
    request.setHeader(b"Connection", b"close")
    return respond(request, status, error_body(code, message))


# -- origins -----------------------------------------------------------------------------


def _pattern(origin: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(origin).replace(r"\*", "[^/]*") + "$")


class OriginPolicy:
    """ws.allowed_origins as a predicate (see the module docstring)."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.any = "*" in allowed
        self.patterns = [_pattern(item) for item in allowed if item != "*"]

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True  # not a browser: nothing to protect against
        origin = origin.strip().lower().rstrip("/")
        if self.any:
            return True
        if origin == "null":
            return False
        if self.patterns:
            return any(p.match(origin) for p in self.patterns)
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return bool(parts.netloc) and host is not None and parts.netloc == host.strip().lower()


# -- the factory ---------------------------------------------------------------------------


class CosmicWebSocketFactory(WebSocketServerFactory):
    protocol = CosmicServerProtocol

    def __init__(self, cosmic: WebSocketServer, options: WsOptions, reactor: Any) -> None:
        # server=None: no "Server: AutobahnPython/<version>" header.
        super().__init__(server=None, reactor=reactor)
        self.cosmic = cosmic
        self.noisy = False
        self.configure(options)

    def configure(self, options: WsOptions) -> None:
        self.options = options
        self.setProtocolOptions(
            versions=[13],
            webStatus=False,
            utf8validateIncoming=True,
            maskServerFrames=False,
            requireMaskedClientFrames=True,
            applyMask=True,
            maxFramePayloadSize=options.max_frame_bytes,
            maxMessagePayloadSize=options.max_message_bytes,
            autoFragmentSize=0,
            failByDrop=False,
            echoCloseCodeReason=False,
            openHandshakeTimeout=options.open_handshake_timeout,
            closeHandshakeTimeout=options.close_handshake_timeout,
            tcpNoDelay=True,
            perMessageCompressionAccept=lambda offers: None,  # per connection, see protocol
            autoPingInterval=options.ping_interval,
            autoPingTimeout=options.ping_timeout,
            autoPingSize=12,
            autoPingRestartOnAnyTraffic=False,
            serveFlashSocketPolicy=False,
            # The origin check needs the Host header ("same origin"), which
            # Autobahn's patterns cannot express: WebSocketEndpoint does it.
            allowedOrigins=["*"],
            allowNullOrigin=False,
            maxConnections=options.max_connections,
            # The client address is taken once, by the Site's rule (http.trust_proxy).
            trustXForwardedFor=0,
        )

    def accept_deflate(self, offers: list[Any], subprotocol: str) -> Any:
        options = self.options
        if options.compression != "deflate" or subprotocol == codecs.MSGPACK_LZ4:
            return None
        for offer in offers:
            if not isinstance(offer, PerMessageDeflateOffer):
                continue
            if not (offer.accept_max_window_bits and offer.accept_no_context_takeover):
                continue  # we could not bound the client's window: no compression
            bits = options.deflate_window_bits
            if offer.request_max_window_bits:
                bits = min(bits, offer.request_max_window_bits)
            return PerMessageDeflateOfferAccept(
                offer,
                request_no_context_takeover=True,
                request_max_window_bits=options.deflate_window_bits,
                no_context_takeover=True,
                window_bits=bits,
                mem_level=options.deflate_mem_level,
                max_message_size=options.max_message_bytes,
            )
        return None


# -- the resource ---------------------------------------------------------------------------


def handshake_bytes(request: server.Request) -> int:
    """The size of the request line and headers as received (near enough)."""
    size = len(request.method) + len(request.uri) + len(b" HTTP/1.1\r\n\r\n") + 1
    for name, values in request.requestHeaders.getAllRawHeaders():
        for value in values:
            size += len(name) + len(value) + 4
    return size


class WebSocketEndpoint(resource.Resource):
    """/ws: the checks above, then the upgrade (as Autobahn's WebSocketResource)."""

    isLeaf = True

    def __init__(self, cosmic: WebSocketServer) -> None:
        super().__init__()
        self.cosmic = cosmic

    def render(self, request: server.Request) -> bytes | int:
        cosmic = self.cosmic
        options = cosmic.options
        if request.method != b"GET":
            request.setHeader(b"Allow", b"GET")
            cosmic.handshake_failed("bad_request")
            return _json_error(request, 405, "HTTP_405", "the WebSocket endpoint takes GET")
        upgrade = (request.getHeader(b"upgrade") or b"").lower()
        if b"websocket" not in upgrade:
            request.setHeader(b"Upgrade", b"websocket")
            cosmic.handshake_failed("not_websocket")
            return _json_error(
                request, 426, "HTTP_426", "this is a WebSocket endpoint: send Upgrade: websocket"
            )
        size = handshake_bytes(request)
        if size > options.max_handshake_bytes:
            cosmic.handshake_failed("too_large")
            return _json_error(
                request,
                431,
                "HTTP_431",
                f"the handshake has {size} bytes of headers; at most {options.max_handshake_bytes}",
            )
        origin = request.getHeader(b"origin")
        host = request.getHeader(b"host")
        if not cosmic.origins.allows(
            origin.decode("latin-1") if origin is not None else None,
            host.decode("latin-1") if host is not None else None,
        ):
            cosmic.handshake_failed("origin")
            return _json_error(request, 403, "HTTP_403", "this origin may not open the WebSocket")
        address = cosmic.address_of(request)
        refusal = cosmic.admit(address)
        if refusal is not None:
            scope, wait = refusal
            cosmic.handshake_failed("rate_limited")
            if wait is not None:
                request.setHeader(b"Retry-After", b"%d" % max(1, math.ceil(wait)))
            message = (
                "too many WebSocket handshakes from this address; retry later"
                if scope == "handshake"
                else "too many WebSocket connections from this address"
            )
            return _json_error(request, 429, "HTTP_429", message)
        return self._upgrade(request, address)

    def _upgrade(self, request: server.Request, address: str) -> bytes | int:
        channel = request.channel
        transport = channel.transport if channel is not None else None
        if transport is None:  # HTTP/2: no transport to take over
            return _json_error(request, 426, "HTTP_426", "WebSocket needs HTTP/1.1")
        factory = self.cosmic.factory
        protocol = factory.buildProtocol(transport.getPeer())
        if protocol is None:
            return _json_error(request, 503, "HTTP_503", "cannot accept a WebSocket now")
        protocol.client_address = address
        protocol._counted = True
        self.cosmic.counted(address)

        # Take the transport over from twisted.web (what Autobahn's
        # WebSocketResource does), and unregister twisted.web's channel as
        # the transport's producer so that our Outbox can register.
        channel.transport = None
        with contextlib.suppress(Exception):  # depends on the transport
            transport.unregisterProducer()
        if isinstance(transport, ProtocolWrapper):
            transport.wrappedProtocol = protocol
        elif isinstance(getattr(transport, "protocol", None), ProtocolWrapper):
            transport.protocol.wrappedProtocol = protocol
        else:
            transport.protocol = protocol
        protocol.makeConnection(transport)
        if hasattr(transport, "resumeProducing"):
            transport.resumeProducing()  # twisted.web paused reading for the request

        self._record(request)
        data = request.method + b" " + request.uri + b" HTTP/1.1\r\n"
        for name, values in request.requestHeaders.getAllRawHeaders():
            data += name + b": " + b",".join(values) + b"\r\n"
        data += b"\r\n"
        protocol.dataReceived(data)
        return server.NOT_DONE_YET

    @staticmethod
    def _record(request: server.Request) -> None:
        """The request will never finish as HTTP: count it once as 101 in the
        Site's HTTP metrics and access log (cosmic.web.middleware)."""
        site = getattr(request, "site", None)
        record = getattr(site, "record", None)
        if record is None or getattr(request, "_recorded", True):
            return
        request._recorded = True
        started = getattr(request, "_started", None)
        seconds = site.perf() - started if started is not None else 0.0
        record(request, "GET", 101, "/ws", seconds)
