"""The REST API of a real ``twistd cosmic`` over real sockets: SQLite (the
embedded default), then PostgreSQL and Redis when they are reachable."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.contract.servers import TempDatabase, pg_reachable, redis_reachable
from tests.integration.daemon import FAST_ARGON2, Daemon, base_environ

pytestmark = pytest.mark.integration

V1 = "/api/v1"
PASSWORD = "an integration password"


class Client:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        sent = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.daemon.url(path), data=data, method=method, headers=sent
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status, got, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, got, raw = exc.code, dict(exc.headers), exc.read()
        content_type = got.get("Content-Type", "")
        parsed = json.loads(raw) if raw and content_type.startswith("application/json") else raw
        return status, got, parsed


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Any]:
    started: list[Daemon] = []

    def make(*args: str, env: dict[str, str] | None = None) -> Client:
        daemon = Daemon(tmp_path, *FAST_ARGON2, *args, env=env).start()
        started.append(daemon)
        return Client(daemon)

    yield make
    for daemon in started:
        daemon.kill()


def play(client: Client) -> dict[str, Any]:
    """One player's whole life through the API; returns what later checks need."""
    status, headers, body = client.call(
        "POST", f"{V1}/auth/register", {"username": "ada", "password": PASSWORD}
    )
    assert status == 201, body
    assert len(headers["X-Request-Id"]) == 32
    status, _, session = client.call(
        "POST", f"{V1}/auth/login", {"username": "ada", "password": PASSWORD}
    )
    assert status == 200, session
    token = session["access_token"]

    status, _, me = client.call("GET", f"{V1}/players/me", token=token)
    assert status == 200 and me["garden_id"] is None
    status, _, created = client.call(
        "POST", f"{V1}/celestial-bodies", {"kind": "asteroid", "name": "Ceres"}, token=token
    )
    assert status == 201, created
    status, _, refused = client.call("POST", f"{V1}/celestial-bodies", {"kind": "planet"}, token)
    assert status == 409 and refused["error"]["code"] == "WS_GAME_001"
    status, _, page = client.call("GET", f"{V1}/celestial-bodies?limit=1", token=token)
    assert status == 200 and page["total"] == 2 and page["next_after"] == 1
    status, _, me = client.call("GET", f"{V1}/players/me", token=token)
    garden_id = me["garden_id"]
    status, _, garden = client.call("GET", f"{V1}/gardens/{garden_id}", token=token)
    assert status == 200 and garden["garden"]["owner_id"] == me["id"]
    assert client.call("GET", f"{V1}/gardens/{garden_id}")[0] == 404  # private
    status, _, board = client.call("GET", f"{V1}/leaderboards/total_mass")
    assert status == 200 and board["entries"][0]["garden_id"] == garden_id

    # Refresh rotation and reuse detection.
    status, _, rotated = client.call(
        "POST", f"{V1}/auth/refresh", {"refresh_token": session["refresh_token"]}
    )
    assert status == 200
    status, headers, reused = client.call(
        "POST", f"{V1}/auth/refresh", {"refresh_token": session["refresh_token"]}
    )
    assert status == 401 and reused["error"]["code"] == "AUTH_REFRESH_REUSED"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, _, family = client.call(
        "POST", f"{V1}/auth/refresh", {"refresh_token": rotated["refresh_token"]}
    )
    assert status == 401 and family["error"]["code"] == "AUTH_REFRESH_INVALID"

    status, _, document = client.call("GET", f"{V1}/openapi.json")
    assert status == 200 and f"{V1}/celestial-bodies" in document["paths"]
    return {"token": rotated["access_token"], "garden_id": garden_id, "account_id": me["id"]}


def scrape(client: Client) -> dict[tuple[str, tuple], float]:
    status, headers, raw = client.call("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(raw.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_the_api_over_sqlite(daemons) -> None:
    client = daemons()
    before = scrape(client)
    state = play(client)
    after = scrape(client)
    key = ("cosmic_gardener_http_requests_total", (("method", "POST"), ("status", "201")))
    assert after[key] - before.get(key, 0) == 2  # register, create
    route = f"{V1}/gardens/{{garden_id}}"
    histogram = ("cosmic_gardener_http_request_duration_seconds_count", ())
    counts = {k: v for k, v in after.items() if k[0] == histogram[0] and ("route", route) in k[1]}
    assert sum(counts.values()) == 2
    assert any(k[0] == "cosmic_gardener_process_cpu_seconds_total" for k in after)

    token = state["token"]
    assert client.call("DELETE", f"{V1}/players/me", token=token)[0] == 204
    status, _, gone = client.call("GET", f"{V1}/players/me", token=token)
    assert status == 401 and gone["error"]["code"] == "AUTH_ACCOUNT_GONE"

    # The brute-force limit (the default burst is 10 per address).
    codes = [
        client.call("POST", f"{V1}/auth/login", {"username": "ada", "password": "guess" * 3})[0]
        for _ in range(12)
    ]
    assert codes.count(429) >= 1 and set(codes) == {401, 429}
    status, headers, limited = client.call(
        "POST", f"{V1}/auth/login", {"username": "ada", "password": "guess" * 3}
    )
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert limited["error"]["code"] == "RATE_LIMITED"

    status, _, ready = client.call("GET", "/health/ready")
    assert status == 200 and {"store", "cache", "game", "startup"} <= set(ready["checks"])
    assert client.daemon.stop() == 0  # reads the rest of the log
    access = [e for e in client.daemon.events if e.get("namespace") == "cosmic.web.access"]
    assert len(access) > 20 and all(e.get("request_id") for e in access)
    assert not any(
        e.get("traceback") or e.get("level") in ("error", "critical") for e in client.daemon.events
    )


def test_the_api_over_postgresql_and_redis(daemons) -> None:
    for why in (pg_reachable(), redis_reachable()):
        if why is not None:
            pytest.skip(why)
    database = TempDatabase().create()
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{database.name}"
        env = base_environ(DATABASE_URL=url, REDIS_URL="redis://127.0.0.1:6379/0")
        client = daemons(env=env)
        state = play(client)
        status, _, ready = client.call("GET", "/health/ready")
        assert status == 200, ready
        assert client.call("DELETE", f"{V1}/players/me", token=state["token"])[0] == 204
        connection = psycopg2.connect(database.dsn)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM accounts")
                assert cursor.fetchone()[0] == 0
                cursor.execute("SELECT count(*) FROM gardens")
                assert cursor.fetchone()[0] == 0
        finally:
            connection.close()
        assert client.daemon.stop() == 0
    finally:
        database.drop()
