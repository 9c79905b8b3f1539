"""One open WebSocket connection: limits, decoding, dispatch and sending.

The Autobahn protocol (cosmic.net.protocol) hands every message here and
sends what this asks it to; everything that decides anything is here, with
the clock injected, so unit tests drive it without sockets.

Incoming, in this order: the message rate bucket (before any decoding, so a
flood costs nothing to refuse), the codec (bytes -> validated message), the
"authenticate first" rule, then Heartbeat is answered at once and anything
else waits in a small per-connection queue (``max_pending_requests``) that
the handlers work through one at a time, so answers come in request order.

Outgoing, everything goes through the Outbox (cosmic.net.backpressure).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from cosmic.net import messages
from cosmic.net.backpressure import Outbox
from cosmic.net.codec import Codec
from cosmic.net.errors import WsError, close_code
from cosmic.net.ratelimit import TokenBucket

if TYPE_CHECKING:
    from cosmic.net.auth import Identity
    from cosmic.net.options import WsOptions
    from cosmic.net.sessions import Session

log = Logger(namespace="cosmic.net")

RATE_ERROR_INTERVAL = 1.0  # seconds between WS_RATE_001 reports to one client
MAX_REASON_BYTES = 123  # what a close frame can carry
# Closes for flooding or malformed input: no close handshake, the server hangs up.
HOSTILE = ("WS_RATE_", "WS_PROTO_")


class Transport(Protocol):
    """What a Connection needs from the WebSocket underneath."""

    def write_message(self, payload: bytes, binary: bool) -> None: ...
    def close_with(self, code: int, reason: str, *, hang_up: bool = False) -> None: ...
    def register_outbox(self, outbox: Outbox) -> None: ...


class Connection:
    def __init__(
        self,
        transport: Transport,
        codec: Codec,
        *,
        address: str,
        options: WsOptions,
        clock: Any,
        metrics: Any,
        dispatch: Callable[[Connection, messages.Envelope], Any],
        on_lost: Callable[[Connection], None] | None = None,
    ) -> None:
        self.transport = transport
        self.codec = codec
        self.address = address
        self.options = options
        self.clock = clock
        self.metrics = metrics
        self._dispatch = dispatch
        self._on_lost = on_lost
        self.session: Session | None = None
        self.identity: Identity | None = None
        self.closing = False
        self.closed = False
        self.rtt_ms: int | None = None
        self.protocol_errors = 0
        self.auth_failures = 0
        self.dropped_in_row = 0
        self._last_rate_error: float | None = None
        self._queue: collections.deque[messages.Envelope] = collections.deque()
        self._busy = False
        self.bucket = TokenBucket(
            options.message_rate_burst, options.message_rate_per_second, clock
        )
        self.outbox = Outbox(
            self._write,
            limit_bytes=options.send_queue_bytes,
            slow_timeout=options.slow_client_timeout,
            clock=clock,
            on_slow=self._too_slow,
            on_drop=self._dropped,
        )
        self._auth_timer: Any = None
        label = codec.label
        self._in_bytes = metrics.payload_bytes.labels(codec=label, direction="in", stage="encoded")
        self._out_serialized = metrics.payload_bytes.labels(
            codec=label, direction="out", stage="serialized"
        )
        self._out_encoded = metrics.payload_bytes.labels(
            codec=label, direction="out", stage="encoded"
        )
        self._sent: dict[str, Any] = {}

    # -- lifecycle ------------------------------------------------------------------

    def opened(self) -> None:
        self.transport.register_outbox(self.outbox)
        self.metrics.connections.labels(codec=self.codec.label).inc()
        self._auth_timer = self.clock.callLater(self.options.auth_timeout, self._auth_timed_out)

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self.session is None and not self.closing:
            self.fail(
                WsError(
                    "WS_AUTH_007",
                    f"no successful Authenticate within {self.options.auth_timeout:g} s",
                    close=True,
                )
            )

    def authenticated(self, session: Session, identity: Identity) -> None:
        self.session = session
        self.identity = identity
        self._cancel_auth_timer()

    def _cancel_auth_timer(self) -> None:
        timer, self._auth_timer = self._auth_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def lost(self) -> None:
        """The connection is gone (whoever closed it)."""
        if self.closed:
            return
        self.closed = True
        self.closing = True
        self._cancel_auth_timer()
        self.outbox.close()
        self._queue.clear()
        self.metrics.connections.labels(codec=self.codec.label).dec()
        if self._on_lost is not None:
            self._on_lost(self)

    # -- incoming -------------------------------------------------------------------

    def received(self, payload: bytes, binary: bool) -> None:
        if self.closing:
            return
        self._in_bytes.inc(len(payload))
        if not self.bucket.take():
            self._rate_limited()
            return
        self.dropped_in_row = 0
        raw: Any = None
        try:
            raw = self.codec.decode_envelope(payload, binary)
            envelope = messages.parse(raw)
        except WsError as error:
            self.metrics.messages_in.labels(type="invalid").inc()
            self.protocol_errors += 1
            if not error.close and self.protocol_errors >= self.options.max_protocol_errors:
                error = WsError(
                    "WS_PROTO_008",
                    f"{self.protocol_errors} invalid messages ({error.code}: {error.message})",
                    close=True,
                )
            self.fail(error, messages.request_id(raw))
            return
        message = envelope.message
        self.metrics.messages_in.labels(type=message.TYPE).inc()
        if self.session is None and not message.BEFORE_AUTH:
            error = WsError("WS_AUTH_008", f"{message.TYPE} needs Authenticate first")
            self.fail(error, envelope.id)
            return
        if isinstance(message, messages.Heartbeat):
            self.heartbeat(message, envelope.id)
            return
        if len(self._queue) + self._busy >= self.options.max_pending_requests:
            self.metrics.rate_limited.labels(scope="pending").inc()
            self.fail(
                WsError(
                    "WS_RATE_004",
                    f"{self.options.max_pending_requests} requests are waiting for an answer",
                ),
                envelope.id,
            )
            return
        self._queue.append(envelope)
        if not self._busy:
            defer.ensureDeferred(self._work())

    def _rate_limited(self) -> None:
        self.dropped_in_row += 1
        self.metrics.rate_limited.labels(scope="message").inc()
        if self.dropped_in_row >= self.options.flood_close_after:
            self.fail(
                WsError(
                    "WS_RATE_003",
                    f"{self.dropped_in_row} messages over the rate limit in a row",
                    close=True,
                )
            )
            return
        now = self.clock.seconds()
        if self._last_rate_error is None or now - self._last_rate_error >= RATE_ERROR_INTERVAL:
            self._last_rate_error = now
            wait = self.bucket.wait()
            self.send(
                messages.ERROR,
                WsError(
                    "WS_RATE_001",
                    f"more than {self.options.message_rate_per_second:g} messages per second; "
                    f"messages are dropped for {wait:.2f} s",
                    retry_after=round(wait, 3),
                ).as_data(),
                critical=False,
            )

    async def _work(self) -> None:
        self._busy = True
        try:
            while self._queue and not self.closing:
                envelope = self._queue.popleft()
                try:
                    await self._dispatch(self, envelope)
                except WsError as error:
                    self.fail(error, envelope.id)
                except Exception:
                    log.failure(
                        "handling {type} failed", type=envelope.message.TYPE, address=self.address
                    )
                    self.fail(WsError("WS_CONN_005"), envelope.id)
        finally:
            self._busy = False

    def heartbeat(self, message: messages.Heartbeat, request_id: Any) -> None:
        self.send(
            messages.HEARTBEAT_ACK,
            {
                "latency_ms": self.rtt_ms,
                "client_time": message.client_time,
                "server_time": round(self.clock.seconds() * 1000.0, 3),
            },
            request_id,
        )

    def ponged(self, rtt_ms: int) -> None:
        """The round trip of the last WebSocket ping (HeartbeatAck.latency_ms)."""
        self.rtt_ms = max(0, int(rtt_ms))

    def auth_failed(self, error: WsError, request_id: Any = None) -> None:
        self.auth_failures += 1
        if self.auth_failures >= self.options.auth_attempts:
            error = WsError(
                "WS_AUTH_010",
                f"{self.auth_failures} failed Authenticate attempts; last: {error.code} "
                f"{error.message}",
                close=True,
                cause=error.code,
            )
        self.fail(error, request_id)

    # -- outgoing -------------------------------------------------------------------

    def send(
        self, kind: str, data: Any, request_id: Any = None, *, critical: bool | None = None
    ) -> bool:
        """Encode and send (or queue, or drop) one message; False when not sent."""
        if self.closing:
            return False
        try:
            encoded = self.codec.encode(messages.envelope(kind, data, request_id))
        except Exception:
            log.failure("cannot encode {type}", type=kind)
            return False
        if critical is None:
            critical = kind not in messages.NON_CRITICAL
        if not self.outbox.send(encoded.payload, encoded.binary, kind, critical=critical):
            return False
        counter = self._sent.get(kind)
        if counter is None:
            counter = self._sent[kind] = self.metrics.messages_out.labels(type=kind)
        counter.inc()
        self._out_serialized.inc(encoded.raw_size)
        self._out_encoded.inc(len(encoded.payload))
        return True

    def _write(self, payload: bytes, binary: bool) -> None:
        if not self.closed:
            self.transport.write_message(payload, binary)

    def _dropped(self, kind: str) -> None:
        self.metrics.dropped.labels(type=kind).inc()

    def _too_slow(self, why: str) -> None:
        self.close("WS_CONN_002", f"too slow: {why}")

    def fail(self, error: WsError, request_id: Any = None) -> None:
        """Tell the client about ``error``; close when the error says so."""
        data = error.as_data()
        critical = not error.code.startswith("WS_RATE")
        self.send(messages.ERROR, data, request_id, critical=critical)
        if error.close:
            self.close(error.code, error.message)

    def close(self, code: str, message: str = "", ws_code: int | None = None) -> None:
        """Close with an error code (the close code derives from it) or an
        explicit WebSocket code (1001 going away, ...)."""
        if self.closing:
            return
        self.closing = True
        self._cancel_auth_timer()
        self._queue.clear()
        self.metrics.closed.labels(code=code).inc()
        reason = f"{code}: {message}" if message else code
        encoded = reason.encode("utf-8")[:MAX_REASON_BYTES].decode("utf-8", "ignore")
        self.transport.close_with(
            ws_code if ws_code is not None else close_code(code),
            encoded,
            hang_up=code.startswith(HOSTILE),
        )
