"""How the daemon serves the web client: the page, its assets, the rules
table, and the JSON description for API clients (no browser needed)."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

import pytest

from cosmic.game import rules
from tests.integration.daemon import Daemon

pytestmark = pytest.mark.integration


def fetch(
    daemon: Daemon, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Sends ``path`` as it is (no client-side normalisation of ``..``)."""
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def assets(page: bytes) -> tuple[str, list[str]]:
    """The asset prefix (/client/<version>) and the files the page names."""
    names = re.findall(rb'(?:href|src)="(/client/[0-9a-f]{16})/([^"]+)"', page)
    assert names, page[:400]
    prefixes = {prefix.decode() for prefix, _ in names}
    assert len(prefixes) == 1
    return prefixes.pop(), [name.decode() for _, name in names]


@pytest.fixture(scope="module")
def daemon(server: tuple[Daemon, int]) -> Daemon:
    return server[0]


def test_root_serves_the_page_with_a_content_security_policy(daemon: Daemon) -> None:
    status, headers, body = fetch(daemon, "/", {"Accept": "text/html,*/*;q=0.8"})
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<canvas" in body and b'type="module"' in body
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-cache"
    assert "Accept" in headers["Vary"]
    # Revalidation is cheap: the same page answers 304 to its ETag.
    status, _, body = fetch(daemon, "/", {"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")


def test_json_clients_still_get_the_service_description(daemon: Daemon) -> None:
    status, headers, body = fetch(daemon, "/", {"Accept": "application/json"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    description = json.loads(body)
    assert description["service"] == "cosmic-gardener"
    assert description["api"] == "/api/v1/openapi.json"
    assert description["websocket"] == "/ws"


def test_assets_are_versioned_and_cached_for_good(daemon: Daemon) -> None:
    _, _, page = fetch(daemon, "/")
    prefix, names = assets(page)
    assert {"style.css", "js/main.js", "favicon.svg"} <= set(names)
    types = {"style.css": "text/css", "js/main.js": "text/javascript", "favicon.svg": "image/svg"}
    for name, kind in types.items():
        status, headers, body = fetch(daemon, f"{prefix}/{name}")
        assert status == 200, name
        assert headers["Content-Type"].startswith(kind)
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert body
    # Modules import each other relatively, under the same version.
    _, _, main = fetch(daemon, f"{prefix}/js/main.js")
    for module in re.findall(rb'from "\./([a-z]+\.js)"', main):
        assert fetch(daemon, f"{prefix}/js/{module.decode()}")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/client",
        "/client/",
        "/client/0000000000000000/style.css",
        "{prefix}/no-such-file.js",
        "{prefix}/../site.py",
        "{prefix}/js/../../site.py",
        "{prefix}/%2e%2e/site.py",
        "{prefix}/index.html",
    ],
)
def test_only_the_client_files_are_served(daemon: Daemon, path: str) -> None:
    prefix, _ = assets(fetch(daemon, "/")[2])
    status, _, body = fetch(daemon, path.format(prefix=prefix))
    assert status == 404
    assert json.loads(body)["error"]["code"] == "HTTP_404"


def test_assets_refuse_writes(daemon: Daemon) -> None:
    prefix, _ = assets(fetch(daemon, "/")[2])
    status, _, body = fetch(daemon, f"{prefix}/style.css", method="POST")
    assert status == 405
    assert json.loads(body)["error"]["code"] == "HTTP_405"


def test_rules_table_matches_the_game(daemon: Daemon) -> None:
    prefix, _ = assets(fetch(daemon, "/")[2])
    status, headers, body = fetch(daemon, f"{prefix}/rules.json")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    table: dict[str, Any] = json.loads(body)
    assert table["resources"] == list(rules.RESOURCES)
    assert list(table["kinds"]) == [k.name for k in rules.KIND_BY_CODE]
    for name, kind in rules.KINDS.items():
        assert table["kinds"][name]["cost"] == dict(kind.cost)
        assert table["kinds"][name]["requires"] == kind.requires
    assert list(table["research"]) == list(rules.RESEARCH)
    star = table["research"]["stellar_formation"]
    assert star["requires"] == ["orbital_mechanics"]
    assert star["cost"] == dict(rules.RESEARCH["stellar_formation"].cost)
    assert set(table["upgrades"]) == set(rules.UPGRADES)


def test_request_metrics_label_the_client_routes(daemon: Daemon) -> None:
    prefix, _ = assets(fetch(daemon, "/")[2])
    fetch(daemon, f"{prefix}/js/main.js")
    fetch(daemon, f"{prefix}/nothing-here")
    _, _, text = fetch(daemon, "/metrics")
    routes = set(re.findall(rb'http_request_duration_seconds_count\{[^}]*route="([^"]+)"', text))
    assert b"/" in routes
    assert f"{prefix}/js/main.js".encode() in routes
    assert not any(b"nothing-here" in route for route in routes)
