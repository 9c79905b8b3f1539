"""Fuzzing every REST route of a real ``twistd cosmic`` (SQLite) over real sockets.

The routes come from the daemon's own /api/v1/openapi.json, so a new route
is fuzzed without touching this file.  tests/unit/web/test_openapi.py drives
an in-process Site with requests shaped by the document; this one goes
after a real daemon process with what the document does not describe: huge
strings (past http.max_body_bytes too), unknown and repeated query
parameters, forged and mangled tokens (signed with the right key and wrong
claims, alg none, other algorithms, huge, non-ASCII), odd methods, odd
paths, odd Content-Types.  Every answer must be a 2xx or a 4xx, and every
4xx a JSON error ``{"error": {"code", "message"}}``; never a 5xx, never a
traceback.  Afterwards the daemon's log has no error and no traceback, and a
real player still plays.

More examples (a longer run)::

    COSMIC_TEST_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest \\
        tests/integration/test_api_fuzz.py -q
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.daemon import Daemon
from tests.unit.web.test_openapi import from_schema

pytestmark = pytest.mark.integration

V1 = "/api/v1"
PASSWORD = "a fuzzing password, long enough"
EXAMPLES = int(os.environ.get("COSMIC_TEST_FUZZ_EXAMPLES", "400"))
# etc/test.conf's key, issuer and audience: forged tokens that pass the
# signature check and fail on a claim reach deeper than random text.
SECRET = "test-only-jwt-secret-not-for-any-real-deployment"
ISSUER, AUDIENCE = "cosmic-gardener", "cosmic-gardener-clients"
MAX_BODY = 65536
MAX_LINE = 16384  # twisted.web's longest request line or header line
CUT = 0  # "status" of a connection the server closed before we could read an answer


# -- the daemon and a plain HTTP client ------------------------------------------------------


class Reply:
    def __init__(self, status: int, headers: dict[str, str], raw: bytes) -> None:
        self.status = status
        self.headers = headers
        self.raw = raw

    def json(self) -> Any:
        return json.loads(self.raw)

    def __repr__(self) -> str:
        return f"<{self.status} {self.raw[:300]!r}>"


class Api:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        assert daemon.port is not None
        self.port = daemon.port

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: list[tuple[str, bytes | str]] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers or []:
                if isinstance(value, str):  # raw UTF-8 bytes on the wire, as clients do
                    value = value.encode("utf-8", "surrogatepass")
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            # Refused while we were still sending: read the answer if any.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.endheaders(body)
            try:
                response = conn.getresponse()
                raw = response.read()
            except (ConnectionError, http.client.HTTPException):
                return Reply(CUT, {}, b"")
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, raw)
        finally:
            conn.close()

    def json_call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> Reply:
        headers: list[tuple[str, bytes | str]] = []
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers.append(("Content-Type", "application/json"))
        if token is not None:
            headers.append(("Authorization", f"Bearer {token}"))
        return self.request(method, path, data, headers)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    workdir: Path = tmp_path_factory.mktemp("api-fuzz")
    daemon = Daemon(
        workdir, "--set", "auth.rate_limit_burst=100000", "--set", "ws.handshake_rate_burst=1000"
    ).start()
    try:
        yield Api(daemon)
    finally:
        daemon.kill()


class Accounts:
    """A valid session for requests that need one, and fresh accounts for
    the ones that destroy theirs (DELETE /players/me, logout)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.made = 0
        # Account 1 first: the forged tokens (sub "1", the right key) that
        # are valid despite odd claims act on it, and may delete it.
        self.decoy = self.fresh()
        self.main = self.fresh()
        assert self.decoy["account"]["id"] == 1 and self.main["account"]["id"] != 1

    def fresh(self) -> dict[str, Any]:
        self.made += 1
        name = f"fuzz_{self.made}"
        reply = self.api.json_call(
            "POST", f"{V1}/auth/register", {"username": name, "password": PASSWORD}
        )
        assert reply.status == 201, reply
        reply = self.api.json_call(
            "POST", f"{V1}/auth/login", {"username": name, "password": PASSWORD}
        )
        assert reply.status == 200, reply
        return {"name": name, **reply.json()}


# -- what to send ---------------------------------------------------------------------------------


def forge(**claims: Any) -> str:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "1", "iat": now, "exp": now + 600}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, SECRET, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict, payload: dict, signature: str = "") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{signature}"


def hs512() -> str:
    """Signed with the right key, by an algorithm the server refuses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT: 48 bytes is short for SHA-512
        return jwt.encode({"sub": "1", "iss": ISSUER, "aud": AUDIENCE, "exp": 9e9}, SECRET, "HS512")


BAD_TOKENS = st.sampled_from(
    [
        "",
        "x",
        "a.b.c",
        "..",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        unsigned({"alg": "none", "typ": "JWT"}, {"sub": "1", "iss": ISSUER, "aud": AUDIENCE}),
        unsigned({"alg": "HS256"}, {"sub": "1"}, "A" * 43),
        unsigned({"alg": "RS256"}, {"sub": "1"}, "A" * 342),
        unsigned({"alg": "HS256", "kid": "../../etc/passwd"}, {"sub": "1"}, "A" * 43),
        "Bearer " * 50,
        "e" * 9000,
        hs512(),
        jwt.encode({"sub": "1", "iss": ISSUER, "aud": AUDIENCE, "exp": 9e9}, "other" * 10),
        forge(exp=1),
        forge(exp=None),
        forge(iat=None),
        forge(iss=None),
        forge(aud="someone-else"),
        forge(nbf=int(time.time()) + 10**6),
        forge(iat=int(time.time()) + 10**6),
        forge(sub=None),
        forge(sub="not-a-number"),
        forge(sub="-1"),
        forge(sub="0"),
        forge(sub="9" * 400),
        forge(sub="999999999"),  # a well-formed token for an account that never was
        forge(sub=1),
        forge(sub=["1"]),
        forge(exp="soon"),
        forge(exp=10**30),
        forge(iat=-(10**30)),
    ]
) | st.text(st.characters(exclude_characters="\r\n"), max_size=60)  # any header-safe text

NASTY = st.sampled_from(
    [
        "' OR 1=1 --",
        "\u0000",
        "🌌" * 30,
        "../../etc/passwd",
        "%00",
        "%",
        "%zz",
        "<script>",
        "9" * 400,
        "-1",
        "0",
        "1e999",
        "NaN",
        "null",
        "[]",
        "{}",
        "\u202e",
        "\r\nX-Injected: 1",
    ]
)
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | NASTY,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=16,
)
HUGE_TEXT = st.builds(
    lambda ch, n: ch * n,
    st.sampled_from(["a", "é", "🌌", "\\", '"', "0"]),
    st.sampled_from([300, 5_000, 20_000, MAX_BODY - 40, MAX_BODY + 10, 200_000]),
)
RAW_BODIES = st.sampled_from(
    [
        b"{",
        b'{"a": NaN}',
        b'{"a": 1, "a": 2}',
        b"[" * 5000,
        b'{"a":' * 100 + b"1" + b"}" * 100,
        b"\xff\xfe\xfd",
        b"\xef\xbb\xbf{}",
        b'{"username": 1e999}',
        b"1" * 100,
        b"",
        b"null",
    ]
) | st.binary(max_size=300)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "APPLICATION/JSON",
        "application/json;;;",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
        "application/json\u00e9",
    ]
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"])
ODD_METHODS = st.sampled_from(["FOO", "PROPFIND", "CONNECT", "get", "M" * 300])


def quoted(value: Any) -> str:
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method.upper(), op)
        for path, item in sorted(doc["paths"].items())
        for method, op in sorted(item.items())
        if isinstance(op, dict) and "responses" in op
    ]


def body_fields(op: dict[str, Any], components: dict[str, Any]) -> list[str]:
    body = op.get("requestBody")
    if body is None:
        return []
    schema = body["content"]["application/json"]["schema"]
    while "$ref" in schema:
        schema = components[schema["$ref"].split("/")[-1]]
    return sorted(schema.get("properties", {}))


@st.composite
def hostile_requests(
    draw: st.DrawFn, doc: dict[str, Any], operation: tuple[str, str, dict[str, Any]]
) -> dict[str, Any]:
    path, method, op = operation
    components = doc["components"]["schemas"]
    url = path
    for param in op.get("parameters", []):
        if param["in"] == "path":
            value = draw(
                from_schema(param["schema"], components)
                | st.integers(-5, 10**20)
                | NASTY
                | st.text(min_size=1, max_size=30)
            )
            url = url.replace("{" + param["name"] + "}", quoted(value))
    declared = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
    query = draw(
        st.lists(
            st.tuples(
                st.sampled_from(declared) | st.text(max_size=12)
                if declared
                else st.text(max_size=12),
                st.one_of(st.integers(-(10**20), 10**20), NASTY, st.text(max_size=20), st.just(""))
                | HUGE_TEXT
                | st.sampled_from(["1", "10", "100"]),
            ),
            max_size=4,
        ),
        label="query",
    )
    if query:
        url += "?" + "&".join(f"{quoted(k)}={quoted(v)}" for k, v in query)
    url += draw(
        st.sampled_from([""] * 12 + ["/", "//", "/..", "/x", "%2f", ";x", "#frag"]), label="suffix"
    )
    sent_method = draw(st.sampled_from([method] * 8 + ["other", "odd"]), label="method kind")
    if sent_method == "other":
        sent_method = draw(METHODS)
    elif sent_method == "odd":
        sent_method = draw(ODD_METHODS)
    headers: list[tuple[str, bytes | str]] = []
    auth = draw(st.sampled_from(["valid", "valid", "none", "bad", "scheme", "two"]), label="auth")
    if auth == "bad":
        headers.append(("Authorization", "Bearer " + draw(BAD_TOKENS)))
    elif auth == "scheme":
        headers.append(
            (
                "Authorization",
                draw(
                    st.sampled_from(
                        [b"Basic YWRhOnB3", b"Bearer", b"bearer  ", b"Bearer \xff\xfe", b"\xe9"]
                    )
                ),
            )
        )
    body = None
    fields = body_fields(op, components)
    has_body = fields or draw(st.integers(0, 9)) == 0
    if has_body:
        kind = draw(
            st.sampled_from(["near", "near", "fields", "huge", "json", "raw"]), label="body"
        )
        if kind == "raw":
            body = draw(RAW_BODIES)
        else:
            if kind == "near" and fields:
                # A body the schema accepts, with at most one field made hostile:
                # these get past validation into the handlers.
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                value = draw(from_schema(schema, components), label="valid body")
                if draw(st.booleans()):
                    field = draw(st.sampled_from(fields))
                    if draw(st.booleans()):
                        value.pop(field, None)
                    else:
                        value[field] = draw(HUGE_TEXT | NASTY | ANY_JSON, label=field)
            elif kind in ("json", "near") or not fields:
                value = draw(ANY_JSON)
            else:
                value = draw(
                    st.dictionaries(
                        st.sampled_from(fields) | st.text(max_size=8),
                        ANY_JSON | HUGE_TEXT if kind == "huge" else ANY_JSON | NASTY,
                        max_size=len(fields) + 2,
                    )
                )
            body = json.dumps(value, ensure_ascii=draw(st.booleans())).encode(
                "utf-8", "surrogatepass"
            )
        content_type = draw(CONTENT_TYPES)
        if content_type:
            headers.append(("Content-Type", content_type.encode("utf-8")))
    if draw(st.integers(0, 9)) == 0:
        headers.append(
            draw(
                st.sampled_from(
                    [
                        ("X-Request-Id", "a" * 500),
                        ("X-Request-Id", "../\u00e9".encode()),
                        ("Origin", "https://evil.example.net"),
                        ("X-Forwarded-For", "1.2.3.4, ::1, garbage"),
                        ("Accept", "application/openmetrics-text"),
                        ("Expect", "100-continue"),
                        ("Cookie", "a=" + "b" * 4000),
                        ("Range", "bytes=0-1,2-3"),
                    ]
                )
            )
        )
    return {
        "op": (path, method),
        "method": sent_method,
        "url": url,
        "auth": auth,
        "headers": headers,
        "body": body,
    }


# -- the checks ----------------------------------------------------------------------------------


def check(request: dict[str, Any], reply: Reply) -> None:
    where = (request["method"], request["url"][:200], request["auth"], reply)
    if reply.status == CUT:
        # Only a request line or header too long to read is refused (431)
        # and closed while the client still writes; the reset can beat the
        # answer to the client.
        longest = max(
            [len(request["url"]) + 20]
            + [len(name) + len(value) + 2 for name, value in request["headers"]]
        )
        assert longest > MAX_LINE, where
        return
    assert reply.status < 500, where
    assert b"Traceback" not in reply.raw and b'File "' not in reply.raw, where
    # Answers from the HTTP channel itself (before any request exists) carry no id.
    assert reply.headers.get("x-request-id") or reply.status in (400, 408, 431), where
    if request["method"] == "HEAD" or reply.status in (204, 304) or reply.status < 400:
        return
    assert reply.headers.get("content-type") == "application/json; charset=utf-8", where
    body = reply.json()
    assert isinstance(body, dict) and set(body) == {"error"}, where
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], where
    assert isinstance(error.get("message"), str) and error["message"], where
    if reply.status == 401:
        assert reply.headers.get("www-authenticate", "").startswith("Bearer"), where
    if reply.status in (429, 503):
        assert int(reply.headers["retry-after"]) >= 1, where


def send(api: Api, accounts: Accounts, request: dict[str, Any]) -> Reply:
    headers = list(request["headers"])
    if request["auth"] in ("valid", "two"):
        # Whatever the route drawn, a DELETE that may reach /players/me ends
        # the account: never the main one.
        destroys = request["method"] == "DELETE" and request["url"].startswith(f"{V1}/players")
        session = accounts.fresh() if destroys else accounts.main
        headers.append(("Authorization", f"Bearer {session['access_token']}"))
        if request["auth"] == "two":
            headers.append(("Authorization", "Bearer " + forge()))
    return api.request(request["method"], request["url"], request["body"], headers)


def test_every_route_survives_hostile_requests(api: Api) -> None:
    reply = api.request("GET", f"{V1}/openapi.json")
    assert reply.status == 200
    doc = reply.json()
    ops = operations(doc)
    assert len(ops) >= 10  # the document lists the whole API
    accounts = Accounts(api)
    seen: dict[tuple[str, str], set[int]] = {}

    def fuzz(operation: tuple[str, str, dict[str, Any]]) -> None:
        @settings(
            max_examples=max(10, EXAMPLES // len(ops)),
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(st.data())
        def one(data: st.DataObject) -> None:
            request = data.draw(hostile_requests(doc, operation), label="request")
            reply = send(api, accounts, request)
            check(request, reply)
            seen.setdefault(request["op"], set()).add(reply.status)

        one()

    for operation in ops:  # each route gets its share of the examples
        fuzz(operation)

    # Every route was reached, and the fuzzing got past the door for most:
    # 4xx other than 401/404/405 means a body or parameter was judged.
    assert set(seen) == {(path, method) for path, method, _ in ops}, set(seen)
    judged = {op for op, statuses in seen.items() if statuses - {401, 404, 405, 413, 415}}
    assert len(judged) >= len(ops) // 2, seen

    # Nothing was lost or broken: the main account still works end to end.
    main = accounts.main
    me = api.json_call("GET", f"{V1}/players/me", token=main["access_token"])
    assert me.status == 200, me
    login = api.json_call(
        "POST", f"{V1}/auth/login", {"username": main["name"], "password": PASSWORD}
    )
    assert login.status == 200, login
    made = api.json_call(
        "POST",
        f"{V1}/celestial-bodies",
        {"kind": "asteroid", "name": "after the storm"},
        token=login.json()["access_token"],
    )
    assert made.status in (201, 409), made  # 409: the fuzzer spent the resources
    ready = api.request("GET", "/health/ready")
    assert ready.status == 200, ready

    # And the daemon logged no error and no traceback while it was fuzzed.
    daemon = api.daemon
    assert daemon.stop() == 0
    bad = [
        e for e in daemon.events if e.get("traceback") or e.get("level") in ("error", "critical")
    ]
    assert not bad, bad[:3]
    assert not [line for line in daemon.lines if "Traceback" in line]
