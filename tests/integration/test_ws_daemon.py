"""The WebSocket endpoint of a real ``twistd cosmic`` (makeService's wiring):
a REST login, then the game over /ws with the access token it issued."""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from cosmic.net import codec as codecs
from cosmic.net.client import connect
from tests.contract.servers import free_port
from tests.integration.daemon import FAST_ARGON2, Daemon
from tests.integration.telnet import Telnet

pytestmark = pytest.mark.integration


def post(daemon: Daemon, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        daemon.url(path),
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read())


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    running = Daemon(tmp_path, *FAST_ARGON2, "--set", "ws.auth_timeout=5").start()
    try:
        post(running, "/api/v1/auth/register", {"username": "ada", "password": "a long password"})
        session = post(
            running, "/api/v1/auth/login", {"username": "ada", "password": "a long password"}
        )
        yield running, session["access_token"]
    finally:
        running.kill()


@pytest_twisted.ensureDeferred
async def test_login_over_rest_then_play_over_the_websocket(daemon) -> None:
    running, token = daemon
    client = await connect(reactor, "127.0.0.1", running.port, codecs.MSGPACK_LZ4)
    kind, hello, _ = await client.request("Authenticate", {"token": token})
    assert kind == "AuthenticateResponse", hello
    assert hello["protocol"] == codecs.MSGPACK_LZ4  # net.compression = lz4
    kind, full, _ = await client.next("FullStateSync")
    assert full["garden"]["name"] == "ada's garden"  # the display name, via site.accounts
    kind, created, _ = await client.request("CreateCelestialBody", {"kind": "asteroid"})
    assert kind == "CommandResult"
    body = created["result"]["body"]["id"]
    await client.next("StateDelta")
    kind, _result, _ = await client.request("DestroyCelestialBody", {"body_id": body})
    assert kind == "CommandResult"
    event = await pushed_event(client, "BodyDestroyed")
    assert event["data"] == {"body_id": body, "reason": "manual"}
    assert body not in client.replicas[hello["garden_id"]].bodies
    assert client.out_of_sync == 0
    await client.close()


async def pushed_event(client, kind: str, deltas: int = 100) -> dict[str, Any]:
    """The first ``kind`` event pushed in a StateDelta (where events travel)."""
    for _ in range(deltas):
        _, delta, _ = await client.next("StateDelta")
        for event in delta.get("events", ()):
            if event["type"] == kind:
                return event
    raise AssertionError(f"no {kind} event in {deltas} deltas")


@pytest.fixture
def manholed(tmp_path: Path) -> Iterator[tuple[Daemon, str, int]]:
    passwd = tmp_path / "passwd"
    passwd.write_text("ops:manhole-pass\n")
    port = free_port()
    running = Daemon(
        tmp_path,
        *FAST_ARGON2,
        "--set",
        f"manhole.port={port}",
        "--set",
        f"manhole.passwd_file={passwd}",
    ).start()
    try:
        post(running, "/api/v1/auth/register", {"username": "bob", "password": "a long password"})
        session = post(
            running, "/api/v1/auth/login", {"username": "bob", "password": "a long password"}
        )
        yield running, session["access_token"], port
    finally:
        running.kill()


@pytest_twisted.ensureDeferred
async def test_operators_broadcast_and_kick_from_the_manhole(manholed) -> None:
    running, token, port = manholed
    client = await connect(reactor, "127.0.0.1", running.port, codecs.JSON)
    kind, hello, _ = await client.request("Authenticate", {"token": token})
    assert kind == "AuthenticateResponse", hello
    console = Telnet(port)
    console.login("ops", "manhole-pass")
    assert console.evaluate('broadcast("maintenance at noon")') == b"1"
    _, notice, _ = await client.next("Notice")
    assert notice == {"text": "maintenance at noon"}
    player = hello["player_id"]
    assert console.evaluate(f"kick({player}, 'account review')") == b"1"
    _, error, _ = await client.next("Error")
    assert (error["code"], error["recoverable"]) == ("WS_CONN_006", False)
    code, _reason = await client.closed()
    assert code == 4606


@pytest_twisted.ensureDeferred
async def test_sigterm_closes_websockets_with_1001_and_exits_zero(daemon) -> None:
    running, token = daemon
    client = await connect(reactor, "127.0.0.1", running.port, codecs.JSON)
    kind, _, _ = await client.request("Authenticate", {"token": token})
    assert kind == "AuthenticateResponse"
    running.signal(signal.SIGTERM)
    _, error, _ = await client.next("Error")
    assert error["code"] == "WS_CONN_001"
    code, reason = await client.closed()
    assert code == 1001
    assert "shutting down" in reason
    assert running.stop() == 0
