"""The WebSocket protocol end to end: a real server (Site, world, game loop) on a
loopback port and real Autobahn clients, for each subprotocol."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from cosmic.net import codec as codecs
from cosmic.net.client import connect
from cosmic.net.testing import SECRET, start_server

pytestmark = pytest.mark.integration

SUBPROTOCOLS = [codecs.JSON, codecs.MSGPACK, codecs.MSGPACK_LZ4]


def sleep(seconds: float) -> defer.Deferred:
    d: defer.Deferred = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(server, player: int, **over) -> dict:
    now = int(time.time())
    auth = server.settings.auth
    return {
        "iss": auth.issuer,
        "aud": auth.audience,
        "sub": str(player),
        "iat": now,
        "exp": now + 600,
        **over,
    }


@pytest_twisted.async_yield_fixture
async def server():
    started = await start_server(reactor)
    yield started
    await started.stop()


async def login(server, subprotocol: str, name: str = "ada", **extra):
    player = await server.player(name)
    client = await connect(reactor, "127.0.0.1", server.port, subprotocol)
    kind, data, _ = await client.request("Authenticate", {"token": server.token(player), **extra})
    assert kind == "AuthenticateResponse", data
    return client, player, data


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@pytest_twisted.ensureDeferred
async def test_auth_full_sync_then_deltas_and_commands(server, subprotocol) -> None:
    client, _player, hello = await login(server, subprotocol)
    assert client.subprotocol == subprotocol and hello["protocol"] == subprotocol
    garden = hello["garden_id"]
    kind, full, _ = await client.next("FullStateSync")
    assert full["garden_id"] == garden and full["bodies"]["kind"] == ["star"]

    kind, result, _ = await client.request(
        "CreateCelestialBody", {"kind": "asteroid", "name": "Ceres"}
    )
    assert kind == "CommandResult" and result["result"]["body"]["name"] == "Ceres"
    kind, error, _ = await client.request("CreateCelestialBody", {"kind": "planet"})
    assert kind == "Error" and error["code"] == "WS_GAME_001" and error["recoverable"]
    kind, error, _ = await client.request("DestroyCelestialBody", {"body_id": 12345})
    assert error["code"] == "WS_GAME_007"

    for _ in range(5):
        await client.next("StateDelta", garden_id=garden)
    replica = client.replicas[garden]
    assert client.out_of_sync == 0
    assert replica.ids() == [1, 2] and replica.bodies[2]["name"] == "Ceres"
    # The client's integers are the server's: positions within half a step.
    snapshot = server.game.world.snapshot(garden)
    served = dict(
        zip(snapshot["bodies"]["ids"].tolist(), snapshot["bodies"]["position"], strict=False)
    )
    assert abs(replica.positions()[1] - served[2]).max() < 0.05  # one broadcast of motion

    kind, ack, _ = await client.request("Heartbeat", {"client_time": 1.0})
    assert kind == "HeartbeatAck" and ack["client_time"] == 1.0
    await client.close()


async def pushed_event(client, garden: int, kind: str, deltas: int = 100, **data) -> tuple:
    """The first ``kind`` event (with ``data``) in the garden's StateDeltas,
    and the delta that carried it: events travel only inside deltas."""
    for _ in range(deltas):
        _, delta, _ = await client.next("StateDelta", garden_id=garden)
        for event in delta.get("events", ()):
            if event["type"] == kind and all(event["data"].get(k) == v for k, v in data.items()):
                return event, delta
    raise AssertionError(f"no {kind} {data} in {deltas} deltas")


def in_the_game(server, work) -> defer.Deferred:
    """Run ``work(world)`` between ticks, as the game loop does its own."""
    return server.game.loop.when_idle(lambda: work(server.game.world))


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@pytest_twisted.ensureDeferred
async def test_upgrades_and_research_until_it_is_done(server, subprotocol) -> None:
    client, _player, hello = await login(server, subprotocol)
    garden = hello["garden_id"]
    await client.next("FullStateSync")

    kind, bought, _ = await client.request("BuyUpgrade", {"resource": "cosmic_dust"})
    assert kind == "CommandResult" and bought["command"] == "BuyUpgrade"
    assert bought["result"]["resource"] == "cosmic_dust" and bought["result"]["level"] == 1
    assert bought["result"]["resources"]["cosmic_dust"] < 500  # paid 50 of the starting 500
    event, _ = await pushed_event(client, garden, "UpgradeBought", resource="cosmic_dust")
    assert event["data"]["level"] == 1 and event["data"]["next_cost"] == 75.0
    assert client.replicas[garden].progress["upgrades"]["cosmic_dust"]["level"] == 1
    _, error, _ = await client.request("BuyUpgrade", {"resource": "energy"})
    assert error["code"] == "WS_GAME_001" and error["missing"]["energy"] > 0
    _, error, _ = await client.request("BuyUpgrade", {"resource": "nothing"})
    assert error["code"] == "WS_GAME_010" and error["recoverable"]

    _, error, _ = await client.request("StartResearch", {"research": "orbital_mechanics"})
    assert error["code"] == "WS_GAME_001" and error["missing"]["cosmic_dust"] > 0
    _, error, _ = await client.request("StartResearch", {"research": "stellar_formation"})
    assert error["code"] == "WS_GAME_008" and error["requires"] == ["orbital_mechanics"]
    await in_the_game(server, lambda world: world.garden(garden).credit({"cosmic_dust": 1000}))
    kind, started, _ = await client.request("StartResearch", {"research": "orbital_mechanics"})
    assert kind == "CommandResult"
    assert started["result"]["research"] == "orbital_mechanics"
    assert started["result"]["seconds"] == 60.0
    await pushed_event(client, garden, "ResearchStarted", research="orbital_mechanics")
    _, error, _ = await client.request("StartResearch", {"research": "orbital_mechanics"})
    assert error["code"] == "WS_GAME_009" and error["active"] == "orbital_mechanics"

    # Research counts seconds of play, which no setting speeds up: one
    # resource tick of a minute is the minute the loop would take.
    await in_the_game(server, lambda world: world.resource_tick(60.0))
    await pushed_event(client, garden, "ResearchDone", research="orbital_mechanics")
    research = client.replicas[garden].progress["research"]
    assert research == {"completed": ["orbital_mechanics"], "active": None}
    _, error, _ = await client.request("StartResearch", {"research": "orbital_mechanics"})
    assert error["code"] == "WS_GAME_008"  # already done
    assert client.out_of_sync == 0
    await client.close()


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@pytest_twisted.ensureDeferred
async def test_renames_and_destroys_reach_the_client_as_events(server, subprotocol) -> None:
    client, _player, hello = await login(server, subprotocol)
    garden = hello["garden_id"]
    await client.next("FullStateSync")

    kind, renamed, _ = await client.request("RenameCelestialBody", {"body_id": 1, "name": "Sol"})
    assert kind == "CommandResult" and renamed["result"] == {"body_id": 1, "name": "Sol"}
    await pushed_event(client, garden, "BodyUpdated", body_id=1, name="Sol")
    assert client.replicas[garden].bodies[1]["name"] == "Sol"
    _, error, _ = await client.request("RenameCelestialBody", {"body_id": 999, "name": "Nix"})
    assert error["code"] == "WS_GAME_007" and error["body_id"] == 999
    _, error, _ = await client.request("RenameCelestialBody", {"body_id": 1, "name": "   "})
    assert error["code"] == "WS_GAME_011" and error["recoverable"]

    _, created, _ = await client.request("CreateCelestialBody", {"kind": "asteroid"})
    body = created["result"]["body"]["id"]
    await pushed_event(client, garden, "BodyCreated")
    kind, destroyed, _ = await client.request("DestroyCelestialBody", {"body_id": body})
    assert kind == "CommandResult" and destroyed["result"] == {"body_id": body}
    event, delta = await pushed_event(client, garden, "BodyDestroyed", body_id=body)
    assert event["data"]["reason"] == "manual"
    assert body in delta["removed"] and body not in client.replicas[garden].bodies
    assert client.out_of_sync == 0
    await client.close()


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@pytest_twisted.ensureDeferred
async def test_sync_game_state_with_a_last_sequence_answers_a_delta(server, subprotocol) -> None:
    client, _player, hello = await login(server, subprotocol)
    garden = hello["garden_id"]
    await client.next("FullStateSync")
    await client.request("CreateCelestialBody", {"kind": "asteroid", "name": "Ceres"})
    await client.next("StateDelta", garden_id=garden)
    have = client.replicas[garden]
    client.inbox.clear()  # frames already applied
    client.track_state = False  # the frames after this one are "missed"
    for _ in range(2):
        await client.next("StateDelta", garden_id=garden)
    had = have.sequence
    client.track_state = True
    # A broadcast may race the answer; the replica refuses it (out of sync)
    # and takes the answer, which is based on what it has.
    kind, delta, _ = await client.request(
        "SyncGameState", {"garden_id": garden, "last_sequence": had}
    )
    assert kind == "StateDelta" and delta["base"] == had and delta["sequence"] > had + 2
    assert have.sequence == delta["sequence"]
    assert not [m for m in client.inbox if m[0] == "FullStateSync"]
    client.inbox.clear()  # what raced the answer
    refused = client.out_of_sync
    for _ in range(3):
        _, later, _ = await client.next("StateDelta", garden_id=garden)
    assert client.out_of_sync == refused and have.sequence == later["sequence"]
    assert have.bodies[2]["name"] == "Ceres"

    _, error, _ = await client.request("SyncGameState", {"garden_id": garden + 1000})
    assert error["code"] == "WS_SYNC_002" and error["recoverable"]
    kind, full, _ = await client.request("SyncGameState", {"last_sequence": 10**9})
    assert kind == "FullStateSync" and full["garden_id"] == garden  # not a kept frame
    await client.close()


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@pytest_twisted.ensureDeferred
async def test_refused_tokens(server, subprotocol) -> None:
    player = await server.player()
    expired = jwt.encode(claims(server, player, exp=int(time.time()) - 120), SECRET)
    forged = jwt.encode(claims(server, player), "another-secret-that-is-long-enough-for-hs256")
    alg_none = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims(server, player)) + "."
    client = await connect(reactor, "127.0.0.1", server.port, subprotocol)
    seen = []
    for token in (expired, forged):
        _, error, _ = await client.request("Authenticate", {"token": token})
        seen.append(error["code"])
    assert seen == ["WS_AUTH_002", "WS_AUTH_003"]
    _, error, _ = await client.request("Authenticate", {"token": alg_none})
    assert error["code"] == "WS_AUTH_010" and error["cause"] == "WS_AUTH_004"
    code, reason = await client.closed()
    assert code == 4110 and reason.startswith("WS_AUTH_010")

    other = await connect(reactor, "127.0.0.1", server.port, subprotocol)
    _, error, _ = await other.request("Authenticate", {})
    assert error["code"] == "WS_AUTH_001"
    _kind, error, _ = await other.request("SyncGameState", {})
    assert error["code"] == "WS_AUTH_008"
    await other.close()


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@pytest_twisted.ensureDeferred
async def test_observing_another_players_public_garden(server, subprotocol) -> None:
    owner, _ada, hello = await login(server, subprotocol, "ada")
    viewer, _bob, _ = await login(server, subprotocol, "bob")
    garden = hello["garden_id"]
    kind, error, _ = await viewer.request("ObserveGarden", {"garden_id": garden})
    assert error["code"] == "WS_SYNC_001"  # private
    kind, result, _ = await owner.request("SetGardenPublic", {"public": True})
    assert result["result"] == {"public": True}
    kind, full, _ = await viewer.request("ObserveGarden", {"garden_id": garden})
    assert kind == "FullStateSync" and full["role"] == "observer"
    await owner.request("CreateCelestialBody", {"kind": "comet", "name": "Halley"})
    for _ in range(20):
        await viewer.next("StateDelta", garden_id=garden)
        if 2 in viewer.replicas[garden].bodies:
            break
    assert viewer.replicas[garden].bodies[2]["name"] == "Halley"
    assert server.ws.counts()["observers"] == 1
    kind, stopped, _ = await viewer.request("StopObserving", {"garden_id": garden})
    assert stopped == {"garden_ids": [garden], "reason": "requested"}
    await owner.close()
    await viewer.close()


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@pytest_twisted.ensureDeferred
async def test_reconnect_with_resume_and_with_an_expired_token(server, subprotocol) -> None:
    client, player, hello = await login(server, subprotocol)
    garden = hello["garden_id"]
    await client.next("FullStateSync")
    for _ in range(3):
        await client.next("StateDelta", garden_id=garden)
    client.track_state = False  # what arrives after this point is "lost"
    have = client.replicas[garden]
    await client.next("StateDelta", garden_id=garden)  # sent, never applied
    client.protocol.transport.abortConnection()  # the network drops
    await client.closed()
    for _ in range(50):
        if server.ws.counts()["detached"] == 1:
            break
        await sleep(0.02)
    assert server.ws.counts()["detached"] == 1

    expired = jwt.encode(claims(server, player, exp=int(time.time()) - 120), SECRET)
    late = await connect(reactor, "127.0.0.1", server.port, subprotocol)
    _, error, _ = await late.request(
        "Authenticate", {"token": expired, "resume_token": hello["resume_token"]}
    )
    assert error["code"] == "WS_AUTH_002"
    await late.close()

    again = await connect(reactor, "127.0.0.1", server.port, subprotocol)
    again.replicas[garden] = have
    had = have.sequence
    _, answer, _ = await again.request(
        "Authenticate",
        {
            "token": server.token(player),
            "resume_token": hello["resume_token"],
            "last_sequence": have.sequence,
        },
    )
    assert answer["resumed"] is True and answer["session_id"] == hello["session_id"]
    _kind, delta, _ = await again.next("StateDelta", garden_id=garden)
    assert delta["base"] == had and delta["sequence"] == had + 2  # continued, not restarted
    assert again.out_of_sync == 0
    assert not [m for m in again.inbox if m[0] == "FullStateSync"]
    assert have.sequence == delta["sequence"]
    await again.close()


@pytest_twisted.ensureDeferred
async def test_permessage_deflate_when_configured(server) -> None:
    deflating = await start_server(reactor, net={"compression": "deflate"})
    try:
        player = await deflating.player()
        client = await connect(reactor, "127.0.0.1", deflating.port, codecs.JSON, deflate=True)
        assert len(client.protocol.websocket_extensions_in_use) == 1
        (conn,) = deflating.ws.connections
        (pmce,) = conn.transport.websocket_extensions_in_use  # the server's side
        assert pmce.server_no_context_takeover and pmce.client_no_context_takeover
        assert (pmce.server_max_window_bits, pmce.client_max_window_bits) == (10, 10)
        assert pmce.mem_level == 4
        kind, _, _ = await client.request("Authenticate", {"token": deflating.token(player)})
        assert kind == "AuthenticateResponse"
        await client.next("FullStateSync")
        await client.close()
        lz4 = await connect(reactor, "127.0.0.1", deflating.port, codecs.MSGPACK_LZ4, deflate=True)
        assert lz4.protocol.websocket_extensions_in_use == []  # never on top of LZ4
        await lz4.close()
    finally:
        await deflating.stop()
    plain = await connect(reactor, "127.0.0.1", server.port, codecs.JSON, deflate=True)
    assert plain.protocol.websocket_extensions_in_use == []  # net.compression = lz4
    await plain.close()


@pytest_twisted.ensureDeferred
async def test_metrics_count_connections_messages_and_bytes(server) -> None:
    client, _, _ = await login(server, codecs.MSGPACK_LZ4)
    await client.next("FullStateSync")
    await client.next("StateDelta")
    ws = server.metrics.ws
    assert ws.connections.labels(codec="msgpack-lz4")._value.get() == 1
    assert ws.messages_in.labels(type="Authenticate")._value.get() == 1
    assert ws.messages_out.labels(type="FullStateSync")._value.get() == 1
    serialized = ws.payload_bytes.labels(codec="msgpack-lz4", direction="out", stage="serialized")
    encoded = ws.payload_bytes.labels(codec="msgpack-lz4", direction="out", stage="encoded")
    assert serialized._value.get() >= encoded._value.get() > 0
    http = server.metrics.http.requests.labels(method="GET", status="101")._value.get()
    assert http == 1
    await client.close()
    for _ in range(50):
        if ws.connections.labels(codec="msgpack-lz4")._value.get() == 0:
            break
        await sleep(0.02)
    assert ws.connections.labels(codec="msgpack-lz4")._value.get() == 0
    assert server.metrics.http.in_flight._value.get() == 0


@pytest_twisted.ensureDeferred
async def test_heartbeat_reports_the_measured_ping_round_trip() -> None:
    pinging = await start_server(reactor, ws={"ping_interval": 0.2, "ping_timeout": 5})
    try:
        client = await connect(reactor, "127.0.0.1", pinging.port, codecs.JSON)
        _, ack, _ = await client.request("Heartbeat", {"client_time": 5})
        assert ack["latency_ms"] is None and ack["client_time"] == 5
        for _ in range(50):
            await sleep(0.05)
            _, ack, _ = await client.request("Heartbeat", {})
            if ack["latency_ms"] is not None:
                break
        assert 0 <= ack["latency_ms"] < 1000
        await client.close()
    finally:
        await pinging.stop()
