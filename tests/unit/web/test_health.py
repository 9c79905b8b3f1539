"""The Site skeleton over a real loopback socket."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.web import resource

from cosmic.readiness import Check, Readiness
from cosmic.web.site import build_site


class Boom(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        raise RuntimeError("secret internals")


@pytest.fixture
def served():
    readiness = Readiness(reactor, timeout=1.0)
    site = build_site(readiness)
    site.resource.putChild(b"boom", Boom())
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    yield f"http://127.0.0.1:{port.getHost().port}", readiness
    pytest_twisted.blockon(port.stopListening())


async def fetch(method: str, url: str) -> tuple[int, dict | None, object]:
    response = await treq.request(method, url)
    body = await response.content()
    parsed = json.loads(body) if body else None
    return response.code, parsed, response.headers


@pytest_twisted.ensureDeferred
async def test_live(served) -> None:
    base, _ = served
    code, body, headers = await fetch("GET", base + "/health/live")
    assert (code, body) == (200, {"status": "alive"})
    assert headers.getRawHeaders("content-type") == ["application/json; charset=utf-8"]


@pytest_twisted.ensureDeferred
async def test_ready_names_each_check(served) -> None:
    base, readiness = served
    readiness.add("store", lambda: Check.ok("pool 2/20"))
    code, body, _ = await fetch("GET", base + "/health/ready")
    assert code == 200
    assert body == {"status": "ready", "checks": {"store": {"status": "ok", "detail": "pool 2/20"}}}
    readiness.add("cache", lambda: Check.fail("redis unreachable"))
    code, body, _ = await fetch("GET", base + "/health/ready")
    assert code == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["cache"] == {"status": "fail", "detail": "redis unreachable"}


@pytest_twisted.ensureDeferred
async def test_head_has_no_body(served) -> None:
    base, _ = served
    code, body, _headers = await fetch("HEAD", base + "/health/ready")
    assert code == 200
    assert body is None


@pytest_twisted.ensureDeferred
async def test_unknown_path_is_a_json_404(served) -> None:
    base, _ = served
    for path in ("/nope", "/health/nope", "/health/live/extra"):
        code, body, _ = await fetch("GET", base + path)
        assert code == 404, path
        assert body == {"error": {"code": "HTTP_404", "message": "no such resource"}}


@pytest_twisted.ensureDeferred
async def test_wrong_method_is_a_json_405(served) -> None:
    base, _ = served
    code, body, headers = await fetch("DELETE", base + "/health/live")
    assert code == 405
    assert body["error"]["code"] == "HTTP_405"
    assert headers.getRawHeaders("allow") == ["GET, HEAD"]


@pytest_twisted.ensureDeferred
async def test_unhandled_error_is_a_json_500_without_internals(served) -> None:
    base, _ = served
    code, body, _ = await fetch("GET", base + "/boom")
    assert code == 500
    assert body["error"]["code"] == "HTTP_500"
    assert "secret" not in json.dumps(body)
