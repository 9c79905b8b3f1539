"""What every HTTP request goes through before and after its resource.

``CosmicRequest`` (the Site's request factory) adds, in order:

* a body size limit: bodies over ``http.max_body_bytes`` are never buffered
  (the rest is read and dropped) and answer 413; a body that runs more than
  ``DRAIN_LIMIT`` past the limit gets its 413 at once and the connection closed;
* a request id: the client's ``X-Request-Id`` when well-formed, else a new one,
  echoed in the response and carried by the access log line and error logs;
* CORS per ``http.cors_origins``: preflights answered here (204, or 403 for an
  origin not allowed), allowed origins get ``Access-Control-Allow-Origin``;
* metrics and the access log when the response finishes:
  ``http_requests_total{method,status}`` and
  ``http_request_duration_seconds{method,route}`` by route *template*
  (``/api/v1/gardens/{garden_id}``), never the raw path, so a scan of random
  URLs cannot blow up the label count.

``RateLimiter`` is the per-address token bucket the router applies to the auth
routes (429 with Retry-After).

``CosmicChannel`` (the Site's HTTP/1.1 channel) puts deadlines on reading a
request: its headers within ``HEADER_TIMEOUT`` seconds of its first byte, its
body within ``BODY_TIMEOUT`` seconds of its headers, else 408 and the
connection closed.  twisted.web alone only has an idle timeout that every
received byte restarts, so a client sending one header byte every few seconds
(slowloris) or a body a byte at a time (slow POST) would hold its connection
for ever.  Its malformed-request answer is a JSON 400 like every other error.
"""

from __future__ import annotations

import collections
import io
import ipaddress
import math
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from twisted.logger import Logger
from twisted.web import http, resource, server

from cosmic.web.api import errors
from cosmic.web.api.schema import dumps
from cosmic.web.jsonapi import JsonRequest, error_body

log = Logger(namespace="cosmic.web")
access_log = Logger(namespace="cosmic.web.access")

DRAIN_LIMIT = 1024 * 1024  # bytes past the limit read and dropped before the early 413
LINGER = 5.0  # seconds an early 413's connection keeps reading before it is cut
HEADER_TIMEOUT = 10.0  # seconds from a request's first byte to the end of its headers
BODY_TIMEOUT = 30.0  # seconds from the end of a request's headers to the end of its body
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-Id"
EXPOSED_HEADERS = "X-Request-Id, Retry-After, WWW-Authenticate, Location"


# -- client address and rate limits -------------------------------------------------------


def client_address(request: server.Request, trust_proxy: bool) -> str:
    """The address requests are limited by: the peer, or with ``trust_proxy``
    the last X-Forwarded-For entry (the one our proxy added).  IPv6 clients
    count by /64, the block one subscriber usually gets."""
    text = None
    if trust_proxy:
        forwarded = request.requestHeaders.getRawHeaders(b"X-Forwarded-For")
        if forwarded:
            text = forwarded[-1].split(b",")[-1].strip().decode("latin-1")
    if text is None:
        text = getattr(request.getClientAddress(), "host", None) or "unknown"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class TokenBucket:
    """Per-key token buckets: ``burst`` at once, refilled at ``per_minute``.

    ``take(key)`` spends a token and answers None, or answers the seconds
    until one is available.  At most ``max_keys`` buckets are kept (least
    recently used dropped first).
    """

    def __init__(self, burst: int, per_minute: float, clock: Any, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()
        self.configure(burst, per_minute)

    def configure(self, burst: int, per_minute: float) -> None:
        self.burst = float(burst)
        self.rate = per_minute / 60.0

    def take(self, key: str) -> float | None:
        now = self.clock.seconds()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = None
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimiter:
    """The router's rate limit: one bucket per client address for all auth routes."""

    def __init__(self, bucket: TokenBucket, trust_proxy: bool, metrics: Any = None) -> None:
        self.bucket = bucket
        self.trust_proxy = trust_proxy
        self._metrics = metrics

    def take(self, request: server.Request, route: str) -> errors.ApiError | None:
        client = client_address(request, self.trust_proxy)
        wait = self.bucket.take(client)
        if wait is None:
            return None
        if self._metrics is not None:
            self._metrics.rate_limited.labels(route=route).inc()
        seconds = max(1, math.ceil(wait))
        log.debug("rate limited {client} on {route}", client=client, route=route)
        return errors.ApiError(
            429,
            errors.RATE_LIMITED,
            f"too many requests from this address; retry in {seconds} s",
            headers={b"Retry-After": b"%d" % seconds},
            retry_after=seconds,
        )


# -- CORS ----------------------------------------------------------------------------------


def parse_origins(text: str) -> tuple[bool, frozenset[str]]:
    """(any origin allowed, the allowed origins) from http.cors_origins."""
    allowed = set()
    any_origin = False
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        if item == "*":
            any_origin = True
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"http.cors_origins: {item!r} is not an origin like https://host")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError(f"http.cors_origins: {item!r} has more than scheme, host and port")
        allowed.add(item.rstrip("/").lower())
    return any_origin, frozenset(allowed)


class Cors:
    def __init__(self, origins: str, max_age: int) -> None:
        self.configure(origins, max_age)

    def configure(self, origins: str, max_age: int) -> None:
        self.any_origin, self.origins = parse_origins(origins)
        self.max_age = max_age

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin.lower() in self.origins

    def allow_origin_header(self, origin: str) -> bytes:
        return b"*" if self.any_origin else origin.encode("latin-1")


# -- the site and its requests ----------------------------------------------------------


def _plain_response(status: bytes, body: dict[str, Any]) -> bytes:
    """A whole JSON response written straight to the transport, then a close."""
    payload = dumps(body)
    return (
        b"HTTP/1.1 %s\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"Content-Length: %d\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
        % (status, len(payload))
    ) + payload


class CosmicChannel(http.HTTPChannel):
    """twisted.web's HTTP/1.1 channel with deadlines on reading a request
    (see the module docstring)."""

    _deadline: Any = None

    def dataReceived(self, data: bytes) -> None:
        # Line mode and no request in hand: these bytes start a request's head.
        if self._deadline is None and self.line_mode and not self._handlingRequest:
            self._arm(self.site.header_timeout, "headers")
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        self._disarm()
        super().allHeadersReceived()
        request = self.requests[-1] if self.requests else None
        if self.length != 0 and not getattr(request, "_rejected", False):
            self._arm(self.site.body_timeout, "body")

    def allContentReceived(self) -> None:
        self._disarm()
        super().allContentReceived()

    def connectionLost(self, reason: Any) -> None:
        self._disarm()
        super().connectionLost(reason)

    def _respondToBadRequestAndDisconnect(self) -> None:
        # twisted.web's bare "400 Bad Request" without a body, made JSON.
        self._disarm()
        if self.transport is not None:
            self.transport.write(
                _plain_response(
                    b"400 Bad Request",
                    error_body("HTTP_400", "malformed request line or headers"),
                )
            )
        self.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        # LineReceiver just drops the connection; say why first.
        self._disarm()
        if self.transport is not None:
            self.transport.write(
                _plain_response(
                    b"431 Request Header Fields Too Large",
                    error_body(
                        "HTTP_431",
                        f"the request line or a header line is longer than {self.MAX_LENGTH} bytes",
                    ),
                )
            )
        self.loseConnection()

    def _arm(self, seconds: float, part: str) -> None:
        self._disarm()
        self._deadline = self.callLater(seconds, self._expired, seconds, part)

    def _disarm(self) -> None:
        deadline, self._deadline = self._deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()

    def _expired(self, seconds: float, part: str) -> None:
        self._deadline = None
        if self.transport is None or self._handlingRequest:
            return  # taken over (WebSocket) or already answering
        log.debug(
            "request {part} not received within {seconds:g} s from {peer}: closing",
            part=part,
            seconds=seconds,
            peer=str(self.transport.getPeer()),
        )
        site = self.site
        if site.http_metrics is not None:
            site.http_metrics.requests.labels(method="other", status="408").inc()
        self.transport.write(
            _plain_response(
                b"408 Request Timeout",
                error_body("HTTP_408", f"the request's {part} took longer than {seconds:g} s"),
            )
        )
        self.persistent = False
        if self.abortTimeout is not None:  # a client that does not read either
            self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()


# -- the site and its requests ----------------------------------------------------------


class CosmicRequest(JsonRequest):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bodies are the API's business: twisted.web must not parse form posts
        # into ``args`` (mixing them with the query) nor answer a bad multipart
        # body with a bare, non-JSON 400.
        self._parsePOSTFormSubmission = False
        self.route: str | None = None
        self.request_id: str | None = None
        self._recorded = False
        self._started: float | None = None
        self._body_size = 0
        self._limit: int | None = None
        self._oversize = False
        self._rejected = False
        self._linger: Any = None

    # -- the body, as it arrives ------------------------------------------------------

    def gotLength(self, length: int | None) -> None:
        site = getattr(self.channel, "site", None)
        self._limit = getattr(site, "max_body_bytes", None)
        self.content = io.BytesIO()
        if self._limit is not None and length is not None and length > self._limit:
            self._oversize = True
            if length > self._limit + DRAIN_LIMIT:
                self._reject_now()

    def handleContentChunk(self, data: bytes) -> None:
        if self._rejected:
            return
        self._body_size += len(data)
        if self._limit is not None and self._body_size > self._limit:
            if not self._oversize:
                self._oversize = True
                self.content = io.BytesIO()  # drop what was buffered
            if self._body_size > self._limit + DRAIN_LIMIT:
                self._reject_now()
            return
        if not self._oversize:
            self.content.write(data)

    def _too_large(self) -> dict[str, Any]:
        return error_body(errors.TOO_LARGE, f"the request body is larger than {self._limit} bytes")

    def _reject_now(self) -> None:
        """413 before the body has arrived, then a lingering close: the answer
        is sent and our side shut for writing, and what the client still sends
        is read and dropped for up to LINGER seconds before the connection is
        cut.  (Closing at once with unread data makes the kernel send a reset,
        which can destroy the 413 before the client reads it.)"""
        self._rejected = True
        self._recorded = True
        site = self.channel.site
        self.request_id = uuid.uuid4().hex
        payload = dumps(self._too_large())
        head = (
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\nCache-Control: no-store\r\n"
            b"X-Request-Id: %s\r\n\r\n" % (len(payload), self.request_id.encode("ascii"))
        )
        self.channel.transport.write(head + payload)
        method = getattr(self.channel, "_command", b"") or b""
        site.record(self, method.decode("latin-1"), 413, "unmatched", 0.0, counted=False)
        transport = self.channel.transport
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is None:
            self.channel.loseConnection()
            return
        half_close()
        self._linger = site.reactor.callLater(LINGER, transport.abortConnection)

    # -- processing ------------------------------------------------------------------

    def process(self) -> None:
        if self._rejected:
            return
        site: CosmicSite = self.channel.site
        self.site = site
        self._started = site.perf()
        site.in_flight(+1)
        incoming = self.getHeader(b"X-Request-Id")
        if incoming is not None and _REQUEST_ID.match(incoming.decode("latin-1")):
            self.request_id = incoming.decode("latin-1")
        else:
            self.request_id = uuid.uuid4().hex
        self.setHeader(b"X-Request-Id", self.request_id.encode("ascii"))
        if self._answer_cors():
            return
        if self._oversize:
            self._answer(http.REQUEST_ENTITY_TOO_LARGE, self._too_large())
            return
        if self.path == b"*" or not self.path.startswith(b"/"):
            self._answer(http.BAD_REQUEST, error_body("HTTP_400", "the request target is a path"))
            return
        super().process()

    def _answer(self, status: int, body: Any, headers: dict[bytes, bytes] | None = None) -> None:
        self.setResponseCode(status)
        for name, value in (headers or {}).items():
            self.setHeader(name, value)
        self.setHeader(b"Cache-Control", b"no-store")
        if body is None:
            self.setHeader(b"Content-Length", b"0")
        else:
            payload = dumps(body)
            self.setHeader(b"Content-Type", b"application/json; charset=utf-8")
            self.setHeader(b"Content-Length", b"%d" % len(payload))
            if self.method != b"HEAD":
                self.write(payload)
        self.finish()

    def _answer_cors(self) -> bool:
        """Set CORS headers; answer a preflight here.  True when answered."""
        site: CosmicSite = self.site
        raw = self.getHeader(b"Origin")
        origin = raw.decode("latin-1") if raw is not None else None
        allowed = origin is not None and site.cors.allows(origin)
        if allowed:
            assert origin is not None
            self.setHeader(b"Access-Control-Allow-Origin", site.cors.allow_origin_header(origin))
            self.setHeader(b"Access-Control-Expose-Headers", EXPOSED_HEADERS.encode())
        if origin is not None and not site.cors.any_origin:
            self.responseHeaders.addRawHeader(b"Vary", b"Origin")
        preflight = (
            self.method == b"OPTIONS"
            and origin is not None
            and self.getHeader(b"Access-Control-Request-Method") is not None
        )
        if not preflight:
            return False
        self.route = site.route_for(self.path)
        methods = site.methods_for(self.path)
        if methods is None:
            self._answer(http.NOT_FOUND, error_body(errors.NOT_FOUND, "no such resource"))
        elif not allowed:
            self._answer(
                http.FORBIDDEN,
                error_body(errors.CORS_DENIED, "this origin may not call the API"),
            )
        else:
            self._answer(
                http.NO_CONTENT,
                None,
                {
                    b"Access-Control-Allow-Methods": ", ".join(methods).encode(),
                    b"Access-Control-Allow-Headers": ALLOWED_HEADERS.encode(),
                    b"Access-Control-Max-Age": b"%d" % site.cors.max_age,
                    b"Allow": ", ".join(methods).encode(),
                },
            )
        return True

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> None:
        if not self.finished and not self._recorded:
            self._record(self.code)
        return super().finish()

    def connectionLost(self, reason: Any) -> None:
        linger, self._linger = self._linger, None
        if linger is not None and linger.active():
            linger.cancel()
        if not self.finished and not self._recorded and self._started is not None:
            self._record(499)  # the client went away before the answer (nginx's code)
        super().connectionLost(reason)

    def _record(self, status: int) -> None:
        self._recorded = True
        site: CosmicSite = self.channel.site if self.channel is not None else self.site
        route = self.route or site.route_for(self.path)
        seconds = site.perf() - self._started if self._started is not None else 0.0
        site.record(self, self.method.decode("latin-1"), status, route, seconds)

    def processingFailed(self, reason: Any) -> Any:
        log.failure(
            "unhandled error serving {method} {path} [{request_id}]",
            failure=reason,
            method=self.method.decode("latin-1"),
            path=self.path.decode("latin-1"),
            request_id=self.request_id,
        )
        if self.finished or self.startedWriting:
            if not self.finished:
                self.finish()
            return reason
        self._answer(
            http.INTERNAL_SERVER_ERROR,
            error_body(errors.INTERNAL, "internal error; it has been logged"),
        )
        return reason


class CosmicSite(server.Site):
    """The Site with the middleware's settings and hooks."""

    def __init__(
        self,
        root: resource.Resource,
        *,
        http_metrics: Any,
        cors: Cors,
        max_body_bytes: int,
        static_routes: dict[str, list[str]],
        api_router: Any = None,
        api_prefix: bytes = b"/api/",
        perf: Callable[[], float] = time.perf_counter,
        reactor: Any = None,
        header_timeout: float = HEADER_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        super().__init__(root, requestFactory=CosmicRequest, reactor=reactor)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.http_metrics = http_metrics
        self.cors = cors
        self.max_body_bytes = max_body_bytes
        self.static_routes = dict(static_routes)
        self.api_router = api_router
        self.api_prefix = api_prefix
        self.perf = perf
        self.displayTracebacks = False
        self.noisy = False  # no 'Starting factory' lines; WebService logs the address

    def protocol(self) -> Any:  # type: ignore[override]
        # What twisted.web's _genericHTTPChannelProtocolFactory builds (the
        # wrapper that also speaks HTTP/2 after ALPN), with our channel.
        return http._GenericHTTPChannelProtocol(CosmicChannel())

    def _api(self, path: bytes) -> bool:
        return self.api_router is not None and path.startswith(self.api_prefix)

    def route_for(self, path: bytes) -> str:
        """The route template a path is counted under (never the raw path)."""
        if self._api(path):
            return self.api_router.template_for(path) or "unmatched"
        text = path.decode("latin-1")
        return text if text in self.static_routes else "unmatched"

    def methods_for(self, path: bytes) -> list[str] | None:
        if self._api(path):
            return self.api_router.methods_for(path)
        return self.static_routes.get(path.decode("latin-1"))

    def in_flight(self, change: int) -> None:
        if self.http_metrics is not None:
            self.http_metrics.in_flight.inc(change)

    def record(
        self,
        request: server.Request,
        method: str,
        status: int,
        route: str,
        seconds: float,
        counted: bool = True,
    ) -> None:
        label = method if method in _METHODS else "other"
        if self.http_metrics is not None:
            self.http_metrics.requests.labels(method=label, status=str(status)).inc()
            self.http_metrics.duration.labels(method=label, route=route).observe(seconds)
        if counted:
            self.in_flight(-1)
        # Probes and scrapes arrive every few seconds: debug, not info.
        emit = access_log.debug if route in self.static_routes else access_log.info
        emit(
            "{method} {route} {status} {duration_ms:.1f} ms [{request_id}]",
            method=label,
            route=route,
            status=status,
            duration_ms=seconds * 1000.0,
            request_id=getattr(request, "request_id", None),
            path=request.path.decode("latin-1")[:512] if request.path else None,
        )
