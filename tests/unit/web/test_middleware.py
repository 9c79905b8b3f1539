"""Request ids, JSON errors everywhere, body limits, media types, CORS, rate limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import Clock
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer

from cosmic.web.middleware import TokenBucket, client_address, parse_origins
from tests.unit.web.conftest import PASSWORD, Served, make_settings, serve
from tests.unit.web.test_api import V1, assert_error

LOGIN = f"{V1}/auth/login"


# -- request ids and errors -----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_request_ids_are_echoed_or_made(api: Served, logged: list[dict]) -> None:
    made = await api.call("GET", "/health/live")
    assert len(made.header("X-Request-Id")) == 32
    mine = await api.call("GET", "/health/live", headers={"X-Request-Id": "client-42.a:b"})
    assert mine.header("X-Request-Id") == "client-42.a:b"
    for bad in ("has spaces", "x" * 200, 'quote"d'):
        reply = await api.call("GET", "/health/live", headers={"X-Request-Id": bad})
        assert reply.header("X-Request-Id") != bad
    access = [e for e in logged if e.get("log_namespace") == "cosmic.web.access"]
    assert any(e["request_id"] == "client-42.a:b" and e["route"] == "/health/live" for e in access)


@pytest_twisted.ensureDeferred
async def test_unexpected_errors_are_json_500_logged_with_the_request_id(
    api: Served, logged: list[dict]
) -> None:
    token = await api.player("ada")

    def broken(owner_id):
        raise RuntimeError("secret internals")

    api.store.gardens_of = broken
    reply = await api.call("GET", f"{V1}/players/me", token=token)
    assert_error(reply, 500, "HTTP_500")
    assert b"secret" not in reply.raw
    request_id = reply.header("X-Request-Id")
    failures = [e for e in logged if e.get("log_failure") is not None]
    assert [e["request_id"] for e in failures] == [request_id]
    assert failures[0]["log_failure"].check(RuntimeError)


@pytest_twisted.ensureDeferred
async def test_404_405_and_options_are_json(api: Served) -> None:
    for path in ("/nope", f"{V1}/nope", f"{V1}/players/me/", "/api", f"{V1}/players"):
        assert_error(await api.call("GET", path), 404, "HTTP_404")
    wrong = await api.call("PUT", f"{V1}/players/me")
    error = assert_error(wrong, 405, "HTTP_405")
    assert wrong.header("Allow") == "DELETE, GET, HEAD, OPTIONS, PATCH"
    assert "PATCH" in error["message"]
    assert_error(await api.call("POST", "/health/live"), 405, "HTTP_405")
    assert_error(await api.call("BREW", f"{V1}/players/me"), 405, "HTTP_405")
    options = await api.call("OPTIONS", f"{V1}/celestial-bodies")
    assert options.code == 204 and options.header("Allow") == "GET, HEAD, OPTIONS, POST"
    head = await api.call("HEAD", f"{V1}/leaderboards/total_mass")
    assert head.code == 200 and head.raw == b""


@pytest_twisted.ensureDeferred
async def test_malformed_bodies_are_typed_4xx(api: Served) -> None:
    bad_json = [
        b"{",
        b'{"username": "ada", "password": NaN}',
        b'{"username": "ada", "password": Infinity}',
        b'{"username": -Infinity}',
        b'{"username": "a", "username": "b", "password": "x"}',
        b'{"username": 1e999, "password": "x"}',
        b'{"username": "\xff\xfe", "password": "x"}',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a":' * 100 + b"1" + b"}" * 100,
        b'{"username": ' + b"9" * 5000 + b"}",
        b"\x00\x01\x02",
    ]
    json_type = {"Content-Type": "application/json"}
    for data in bad_json:
        reply = await api.call("POST", LOGIN, data=data, headers=json_type)
        assert_error(reply, 400, "REQUEST_MALFORMED_JSON")
    for data in (b"[]", b"null", b'"text"', b"42", b"{}", b"   "):
        reply = await api.call("POST", LOGIN, data=data, headers=json_type)
        assert_error(reply, 422, "REQUEST_INVALID")
    bom = b'\xef\xbb\xbf{"username": "nobody", "password": "whatever-long"}'
    assert (await api.call("POST", LOGIN, data=bom, headers=json_type)).code == 401


@pytest_twisted.ensureDeferred
async def test_media_types(api: Served) -> None:
    body = b'{"username": "ada", "password": "whatever-long"}'
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "multipart/form-data; boundary=x",
    ):
        reply = await api.call("POST", LOGIN, data=body, headers={"Content-Type": content_type})
        assert_error(reply, 415, "REQUEST_UNSUPPORTED_MEDIA_TYPE")
    assert_error(await api.call("POST", LOGIN, data=body), 415, "REQUEST_UNSUPPORTED_MEDIA_TYPE")
    assert_error(await api.call("POST", LOGIN), 422, "REQUEST_INVALID")
    for content_type in ("application/json; charset=UTF-8", "Application/JSON"):
        reply = await api.call("POST", LOGIN, data=body, headers={"Content-Type": content_type})
        assert reply.code == 401


# -- body size --------------------------------------------------------------------------


@implementer(IBodyProducer)
class Chunked:
    """A body of unknown length: sent chunked."""

    length = UNKNOWN_LENGTH

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def startProducing(self, consumer):
        for chunk in self.chunks:
            consumer.write(chunk)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def stopProducing(self):
        pass


@pytest_twisted.ensureDeferred
async def test_oversize_bodies_are_413_and_the_connection_survives(api: Served) -> None:
    limit = api.settings.http.max_body_bytes
    big = b'{"username": "' + b"a" * limit + b'", "password": "x"}'
    reply = await api.call("POST", LOGIN, data=big, headers={"Content-Type": "application/json"})
    error = assert_error(reply, 413, "REQUEST_TOO_LARGE")
    assert str(limit) in error["message"]
    response = await api.client.request(
        "POST",
        api.base + LOGIN,
        data=Chunked([b"x" * 8192] * (limit // 8192 + 2)),
        headers={"Content-Type": ["application/json"]},
    )
    assert response.code == 413
    assert (await response.json())["error"]["code"] == "REQUEST_TOO_LARGE"
    exact = b" " * (limit - 2) + b"{}"
    reply = await api.call("POST", LOGIN, data=exact, headers={"Content-Type": "application/json"})
    assert_error(reply, 422, "REQUEST_INVALID")  # at the limit: read and judged


class Raw(protocol.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.closed: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason) -> None:
        self.closed.callback(self.data)


@pytest_twisted.ensureDeferred
async def test_a_hopelessly_large_body_is_refused_before_it_is_sent(api: Served) -> None:
    raw = Raw()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", api.port.getHost().port)
    await connectProtocol(endpoint, raw)
    raw.transport.write(
        b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{"
    )
    answer = await raw.closed.addTimeout(10, reactor)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in head
    assert b'"REQUEST_TOO_LARGE"' in body
    samples = api.metrics.http.requests.labels(method="POST", status="413")._value.get()
    assert samples == 1


@pytest_twisted.ensureDeferred
async def test_an_endless_chunked_body_is_cut_off(api: Served) -> None:
    raw = Raw()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", api.port.getHost().port)
    await connectProtocol(endpoint, raw)
    raw.transport.write(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    sent = 0
    while sent < api.settings.http.max_body_bytes + 2 * 1024 * 1024 and not raw.closed.called:
        raw.transport.write(chunk)
        sent += 0x10000
    answer = await raw.closed.addTimeout(10, reactor)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert answer.count(b"HTTP/1.1") == 1


# -- CORS ----------------------------------------------------------------------------------


@pytest.fixture
def cors_api() -> Iterator[Served]:
    yield from serve("http.cors_origins=https://play.example.com, http://localhost:5173")


@pytest_twisted.ensureDeferred
async def test_cors_preflight_and_simple_requests(cors_api: Served) -> None:
    api = cors_api
    preflight = {
        "Origin": "https://play.example.com",
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    reply = await api.call("OPTIONS", f"{V1}/players/me", headers=preflight)
    assert reply.code == 204
    assert reply.header("Access-Control-Allow-Origin") == "https://play.example.com"
    assert "PATCH" in reply.header("Access-Control-Allow-Methods")
    assert "Authorization" in reply.header("Access-Control-Allow-Headers")
    assert reply.header("Access-Control-Max-Age") == "600"
    assert reply.header("Vary") == "Origin"

    evil = {**preflight, "Origin": "https://evil.example"}
    denied = await api.call("OPTIONS", f"{V1}/players/me", headers=evil)
    assert_error(denied, 403, "CORS_ORIGIN_DENIED")
    assert denied.header("Access-Control-Allow-Origin") is None
    assert_error(await api.call("OPTIONS", f"{V1}/nope", headers=preflight), 404, "HTTP_404")
    health = await api.call("OPTIONS", "/health/ready", headers=preflight)
    assert health.code == 204 and "GET" in health.header("Access-Control-Allow-Methods")

    simple = await api.call(
        "GET", f"{V1}/leaderboards/total_mass", headers={"Origin": "http://localhost:5173"}
    )
    assert simple.code == 200
    assert simple.header("Access-Control-Allow-Origin") == "http://localhost:5173"
    assert "X-Request-Id" in simple.header("Access-Control-Expose-Headers")
    error = await api.call("GET", f"{V1}/players/me", headers={"Origin": "http://localhost:5173"})
    assert error.code == 401 and error.header("Access-Control-Allow-Origin")
    other = await api.call(
        "GET", f"{V1}/leaderboards/total_mass", headers={"Origin": "https://evil.example"}
    )
    assert other.code == 200 and other.header("Access-Control-Allow-Origin") is None


@pytest_twisted.ensureDeferred
async def test_cors_off_by_default(api: Served) -> None:
    headers = {"Origin": "https://play.example.com", "Access-Control-Request-Method": "GET"}
    reply = await api.call("OPTIONS", f"{V1}/players/me", headers=headers)
    assert_error(reply, 403, "CORS_ORIGIN_DENIED")


def test_origins_parse_and_refuse_non_origins() -> None:
    assert parse_origins("") == (False, frozenset())
    assert parse_origins(" * ") == (True, frozenset())
    assert parse_origins("https://A.example:8443/, http://b") == (
        False,
        frozenset({"https://a.example:8443", "http://b"}),
    )
    for bad in ("example.com", "ftp://x", "https://x/path", "https://u@x", "https://x?q"):
        with pytest.raises(ValueError, match="cors_origins"):
            parse_origins(bad)


# -- rate limits ------------------------------------------------------------------------------


@pytest.fixture
def limited() -> Iterator[Served]:
    yield from serve("auth.rate_limit_burst=3", "auth.rate_limit_per_minute=6")


@pytest_twisted.ensureDeferred
async def test_brute_force_limit_is_429_with_retry_after(limited: Served) -> None:
    api = limited
    attempt = {"username": "ada", "password": "guess-guess-guess"}
    for _ in range(3):
        assert_error(await api.call("POST", LOGIN, attempt), 401, "AUTH_INVALID_CREDENTIALS")
    blocked = await api.call("POST", LOGIN, attempt)
    error = assert_error(blocked, 429, "RATE_LIMITED")
    assert blocked.header("Retry-After") == "10" and error["retry_after"] == 10
    register = await api.call("POST", f"{V1}/auth/register", {"username": "x", "password": "y"})
    assert_error(register, 429, "RATE_LIMITED")  # one bucket for the auth routes
    assert (await api.call("GET", f"{V1}/leaderboards/total_mass")).code == 200  # not limited
    api.clock.advance(10)
    assert_error(await api.call("POST", LOGIN, attempt), 401, "AUTH_INVALID_CREDENTIALS")
    assert_error(await api.call("POST", LOGIN, attempt), 429, "RATE_LIMITED")
    limited_count = api.metrics.http.rate_limited.labels(route=LOGIN)._value.get()
    assert limited_count == 2
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    spoofed = await api.call("POST", LOGIN, attempt, headers=forwarded)
    assert_error(spoofed, 429, "RATE_LIMITED")  # X-Forwarded-For is not trusted by default


@pytest.fixture
def proxied() -> Iterator[Served]:
    yield from serve("auth.rate_limit_burst=1", "http.trust_proxy=true")


@pytest_twisted.ensureDeferred
async def test_behind_a_proxy_each_forwarded_address_has_its_bucket(proxied: Served) -> None:
    api = proxied
    body = {"username": "ada", "password": PASSWORD}
    first = {"X-Forwarded-For": "198.51.100.7, 203.0.113.1"}
    second = {"X-Forwarded-For": "203.0.113.2"}
    assert (await api.call("POST", LOGIN, body, headers=first)).code == 401
    assert (await api.call("POST", LOGIN, body, headers=first)).code == 429
    assert (await api.call("POST", LOGIN, body, headers=second)).code == 401


def test_token_bucket_refills_and_forgets_the_oldest() -> None:
    clock = Clock()
    bucket = TokenBucket(2, 60.0, clock, max_keys=2)
    assert bucket.take("a") is None and bucket.take("a") is None
    assert bucket.take("a") == pytest.approx(1.0)
    clock.advance(0.5)
    assert bucket.take("a") == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.take("a") is None
    bucket.take("b")
    bucket.take("c")
    assert len(bucket) == 2  # "a" was least recently used
    assert bucket.take("a") is None


def test_client_addresses_group_ipv6_by_64() -> None:
    request = DummyRequest([b""])
    request.client = None

    class Peer:
        host = "2001:db8:1:2:aaaa::1"

    request.getClientAddress = lambda: Peer()
    assert client_address(request, False) == "2001:db8:1:2::/64"
    Peer.host = "::ffff:192.0.2.1"
    assert client_address(request, False) == "192.0.2.1"
    request.requestHeaders.addRawHeader(b"X-Forwarded-For", b"garbage")
    assert client_address(request, True) == "garbage"


@pytest_twisted.ensureDeferred
async def test_a_response_json_refuses_is_a_500_not_a_hang(api: Served) -> None:
    token = await api.player("ada")
    await api.call("GET", f"{V1}/celestial-bodies", token=token)
    world = api.game.world
    real = world.snapshot

    def poisoned(garden_id):
        snapshot = real(garden_id)
        snapshot["resources"]["cosmic_dust"] = float("nan")
        return snapshot

    world.snapshot = poisoned
    reply = await api.call("GET", f"{V1}/gardens/1", token=token)
    assert_error(reply, 500, "HTTP_500")


@pytest_twisted.ensureDeferred
async def test_reload_applies_limits_cors_and_hash_parameters(limited: Served) -> None:
    api = limited
    fresh = make_settings(
        "auth.rate_limit_burst=50",
        "http.cors_origins=https://new.example",
        "http.max_body_bytes=2048",
        "auth.argon2_time_cost=2",
        "auth.access_ttl=60",
    )
    changed = tuple(fresh.changed_keys(api.settings))
    api.site.control.on_reload(fresh, changed)
    assert api.site.cors.allows("https://new.example")
    assert api.site.max_body_bytes == 2048
    assert api.site.accounts.hasher.parameters.time_cost == 2
    assert api.site.accounts.tokens.ttl == 60
    attempt = {"username": "ada", "password": "guess-guess-guess"}
    codes = [(await api.call("POST", LOGIN, attempt)).code for _ in range(10)]
    assert codes == [401] * 10
