"""The Autobahn protocol: thin glue between WebSocket frames and a Connection.

Handshake: pick the subprotocol (server preference from net.compression),
refuse a handshake without one we speak, and accept permessage-deflate only
as the factory's policy allows for that subprotocol.  After that, every
message goes to ``Connection.received`` and every send comes back through
``write_message``; nothing here decides anything about the game.
"""

from __future__ import annotations

import pprint
from typing import TYPE_CHECKING, Any

from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket import protocol as autobahn_protocol
from autobahn.websocket.types import ConnectionDeny
from twisted.logger import Logger

from cosmic.net import codec as codecs
from cosmic.net.connection import Connection

if TYPE_CHECKING:
    from cosmic.net.backpressure import Outbox
    from cosmic.net.factory import CosmicWebSocketFactory

log = Logger(namespace="cosmic.net")


class LazyFormat:
    """``pprint.pformat(value)``, computed only when a log line is written."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)

    __repr__ = __str__


class CosmicServerProtocol(WebSocketServerProtocol):
    factory: CosmicWebSocketFactory
    client_address = "unknown"  # set by the resource before the handshake
    connection: Connection | None = None
    _counted = False

    def _connectionMade(self) -> None:
        # Autobahn pretty-prints each new connection's 40-odd options for a
        # debug line whether or not debug is logged: with 10,000 players
        # opening, 0.4 ms of every handshake (bench/load.py under cProfile).
        # Lazy for that one call only (the module's other pformat users must
        # get a str), and the reactor runs one callback at a time.
        autobahn_protocol.pformat = LazyFormat
        try:
            super()._connectionMade()
        finally:
            autobahn_protocol.pformat = pprint.pformat

    # -- handshake ---------------------------------------------------------------------

    def onConnect(self, request: Any) -> str:
        server = self.factory.cosmic
        chosen = codecs.choose(list(request.protocols), server.options.compression)
        if chosen is None:
            raise ConnectionDeny(
                400,
                "offer one of the subprotocols " + ", ".join(codecs.SUBPROTOCOLS),
            )
        self.subprotocol = chosen
        # Per connection, so the decision can depend on the subprotocol.
        self.perMessageCompressionAccept = lambda offers: self.factory.accept_deflate(
            offers, chosen
        )
        return chosen

    def failHandshake(self, reason: str, code: int = 400, responseHeaders: Any = None) -> None:
        if not getattr(self, "_failure_counted", False):
            self._failure_counted = True
            self.factory.cosmic.handshake_failed(_reason_label(reason, code))
        super().failHandshake(reason, code, responseHeaders)

    def onOpenHandshakeTimeout(self) -> None:
        self.factory.cosmic.handshake_failed("timeout")
        super().onOpenHandshakeTimeout()

    def onOpen(self) -> None:
        server = self.factory.cosmic
        self.connection = server.connected(self, self.subprotocol, self.client_address)
        self.connection.opened()

    # -- frames -------------------------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.connection is not None:
            self.connection.received(payload, isBinary)

    def onAutoPong(self, ping_sent: int, ping_seq: int, pong_received: int, rtt: int, _: Any):
        if self.connection is not None:
            self.connection.ponged(rtt)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.lost()

    def connectionLost(self, reason: Any) -> None:
        try:
            super().connectionLost(reason)
        finally:
            connection, self.connection = self.connection, None
            if connection is not None:
                connection.lost()
            self.factory.cosmic.released(self)

    # -- what Connection needs (its Transport protocol) ----------------------------------

    def write_message(self, payload: bytes, binary: bool) -> None:
        if self.state != self.STATE_OPEN:
            return
        if (
            self._perMessageCompress is None
            and self.send_state == self.SEND_STATE_GROUND
            and not self.send_queue
        ):
            # The broadcast's hot path: one unfragmented, unmasked server
            # frame is a two-to-ten byte header.  Autobahn's sendMessage
            # builds the same bytes but formats debug log arguments eagerly
            # on every frame, a third of the cost of a small message.
            self.transport.write(frame_header(len(payload), binary) + payload)
        else:
            self.sendMessage(payload, isBinary=binary)

    def close_with(self, code: int, reason: str, *, hang_up: bool = False) -> None:
        # sendCloseFrame, not sendClose: Autobahn's sendClose only takes the
        # codes an application may send (1000, 3000-4999), and a server also
        # sends 1001 (going away), 1008, 1011 ...
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123])
            if hang_up:
                self._hang_up(reason)
        elif self.state == self.STATE_CONNECTING:
            self.dropConnection(abort=True)

    def _fail_connection(self, code: int = 1001, reason: str = "going away") -> None:
        # Autobahn's own protocol violations (a frame over the limit, bad
        # UTF-8, a bad opcode): the same as the flooders' closes.
        super()._fail_connection(code, reason)
        if self.state == self.STATE_CLOSING:
            self._hang_up(reason)

    def _hang_up(self, reason: str) -> None:
        """After the close frame to a flooding or malformed peer, stop reading
        and close the TCP connection once the frame is written, rather than
        read and parse whatever it sends during the close handshake (a flooder
        sent 460,000 frames in 20 s that way, slowing every other player)."""
        self.wasClean = False
        self.wasNotCleanReason = f"hung up on a hostile peer: {reason}"
        self.dropConnection(abort=False)

    def register_outbox(self, outbox: Outbox) -> None:
        transport = self.transport
        try:
            transport.registerProducer(outbox, True)
        except RuntimeError:  # someone (twisted.web) is still registered
            transport.unregisterProducer()
            transport.registerProducer(outbox, True)


def frame_header(length: int, binary: bool) -> bytes:
    """RFC 6455 5.2: FIN, the opcode (2 binary, 1 text), no mask, the length."""
    first = 0x82 if binary else 0x81
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


def _reason_label(reason: str, code: int) -> str:
    """A bounded label for ws_handshake_failures from Autobahn's free-text reason."""
    text = reason.lower()
    if "origin" in text:
        return "origin"
    if "maximum number of connections" in text:
        return "capacity"
    if "subprotocol" in text:
        return "subprotocol"
    if code >= 500:
        return "server_error"
    return "bad_request"
