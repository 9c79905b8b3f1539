"""Messages to game and back with a real world on task.Clock: auth, sync,
commands, observing, resume, broadcast and close_all."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
import pytest_twisted

from cosmic.game.commands import SetPublic
from cosmic.net.client import GardenReplica
from tests.unit.net.conftest import AUDIENCE, ISSUER, SECRET, Harness, settle


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(h: Harness, player: int, **over) -> dict:
    now = int(h.clock.seconds())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(player),
        "iat": now,
        "exp": now + 900,
        **over,
    }


def replay(transport, garden_id: int) -> GardenReplica:
    replica = GardenReplica()
    for kind, data, _ in transport.messages():
        if kind in ("FullStateSync", "StateDelta") and data["garden_id"] == garden_id:
            replica.apply(kind, data)
    return replica


@pytest.fixture
def h():
    harness = Harness()
    yield harness
    harness.stop()


@pytest_twisted.ensureDeferred
async def test_authenticate_then_a_full_sync_then_deltas(h) -> None:
    conn = h.connect()
    player = await h.player()
    await h.login(conn, player)
    got = conn.test_transport.messages()
    kind, data, rid = got[0]
    assert kind == "AuthenticateResponse" and rid == 1
    assert data["player_id"] == player and data["resumed"] is False
    assert data["resume_token"] and data["protocol"] == "cosmic.json.v1"
    assert data["quantum"] == {"position": 1e-4, "velocity": 1e-3}
    assert got[1][0] == "FullStateSync" and got[1][1]["garden_id"] == data["garden_id"]
    assert got[1][1]["bodies"]["kind"] == ["star"]
    for _ in range(3):
        h.server.broadcaster.tick()
        await settle(h, 1)
    deltas = conn.test_transport.of("StateDelta")
    assert [d["sequence"] for d in deltas] == [2, 3, 4]
    assert [d["base"] for d in deltas] == [1, 2, 3]
    assert h.server.counts() == {
        "connections": 1,
        "players": 1,
        "sessions": 1,
        "observers": 0,
        "detached": 0,
    }


@pytest_twisted.ensureDeferred
async def test_refused_tokens_are_typed_and_the_third_closes(h) -> None:
    conn = h.connect()
    player = await h.player()
    expired = jwt.encode(claims(h, player, exp=int(h.clock.seconds()) - 60), SECRET)
    forged = jwt.encode(claims(h, player), "another-secret-of-enough-length-for-hs256!")
    h.send(conn, "Authenticate", {"token": expired}, 1)
    h.send(conn, "Authenticate", {"token": forged}, 2)
    await settle(h)
    assert conn.test_transport.errors() == ["WS_AUTH_002", "WS_AUTH_003"]
    assert all(e["recoverable"] for e in conn.test_transport.of("Error"))
    none_token = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims(h, player)) + "."
    h.send(conn, "Authenticate", {"token": none_token}, 3)
    await settle(h)
    last = conn.test_transport.of("Error")[-1]
    assert last["code"] == "WS_AUTH_010" and last["cause"] == "WS_AUTH_004"
    assert conn.test_transport.closed_with[0] == 4110


@pytest_twisted.ensureDeferred
async def test_missing_and_malformed_tokens(h) -> None:
    conn = h.connect()
    h.send(conn, "Authenticate", {}, 1)
    h.send(conn, "Authenticate", {"token": "not.a.jwt"}, 2)
    await settle(h)
    assert conn.test_transport.errors() == ["WS_AUTH_001", "WS_AUTH_001"]


@pytest_twisted.ensureDeferred
async def test_commands_and_their_errors(h) -> None:
    conn = h.connect()
    player = await h.player()
    await h.login(conn, player)
    h.send(conn, "CreateCelestialBody", {"kind": "asteroid", "name": "Ceres"}, "a")
    h.send(conn, "CreateCelestialBody", {"kind": "planet"}, "b")
    h.send(conn, "CreateCelestialBody", {"kind": "unicorn"}, "c")
    h.send(conn, "DestroyCelestialBody", {"body_id": 999}, "d")
    h.send(conn, "StartResearch", {"research": "stellar_formation"}, "e")
    h.send(conn, "BuyUpgrade", {"resource": "nothing"}, "f")
    h.send(conn, "RenameCelestialBody", {"body_id": 2, "name": "Vesta"}, "g")
    h.send(conn, "SetGardenPublic", {"public": True}, "h")
    h.send(conn, "StartResearch", {"research": "orbital_mechanics"}, "i")
    await settle(h, 10)
    answers = {rid: (k, d) for k, d, rid in conn.test_transport.messages() if rid}
    assert answers["a"][0] == "CommandResult"
    assert answers["a"][1]["result"]["body"]["name"] == "Ceres"
    assert answers["b"][1]["code"] == "WS_GAME_001"  # 10000 dust needed
    assert answers["b"][1]["missing"]["cosmic_dust"] > 0
    assert answers["c"][1]["code"] == "WS_GAME_004"
    assert answers["d"][1]["code"] == "WS_GAME_007"
    # Requirements are checked before the price: locked, not unaffordable.
    assert answers["e"][1]["code"] == "WS_GAME_008"
    assert answers["e"][1]["requires"] == ["orbital_mechanics"]
    assert answers["i"][1]["code"] == "WS_GAME_001"  # 1000 dust, 400 left after Ceres
    assert answers["i"][1]["missing"]["cosmic_dust"] > 0
    assert answers["f"][1]["code"] == "WS_GAME_010"
    assert answers["g"][1]["result"] == {"body_id": 2, "name": "Vesta"}
    assert answers["h"][1]["result"] == {"public": True}


@pytest_twisted.ensureDeferred
async def test_a_full_command_queue_is_a_rate_error(h) -> None:
    h.loop.queue_size = 0
    conn = h.connect()
    player = await h.player()
    await h.login(conn, player)
    h.send(conn, "CreateCelestialBody", {"kind": "asteroid"}, 5)
    await settle(h)
    assert conn.test_transport.errors() == ["WS_RATE_002"]


@pytest_twisted.ensureDeferred
async def test_observing_public_gardens_only_and_read_only(h) -> None:
    owner_conn, viewer = h.connect(), h.connect(address="10.0.0.2")
    ada, bob = await h.player("ada"), await h.player("bob")
    await h.login(owner_conn, ada)
    await h.login(viewer, bob)
    garden = owner_conn.test_transport.of("AuthenticateResponse")[0]["garden_id"]
    h.send(viewer, "ObserveGarden", {"garden_id": garden}, 1)
    h.send(viewer, "ObserveGarden", {"garden_id": 999}, 2)
    await settle(h)
    assert viewer.test_transport.errors() == ["WS_SYNC_001", "WS_SYNC_001"]  # private, absent

    h.world.apply_command(SetPublic(garden, ada, True))
    h.send(viewer, "ObserveGarden", {"garden_id": garden}, 3)
    await settle(h)
    sync = [d for d in viewer.test_transport.of("FullStateSync") if d["garden_id"] == garden]
    assert sync and sync[0]["role"] == "observer"
    assert h.server.counts()["observers"] == 1
    h.send(viewer, "DestroyCelestialBody", {"body_id": 1}, 4)  # acts on bob's own garden
    await settle(h)
    assert h.world.garden(garden).bodies.count == 1
    h.server.broadcaster.tick()
    assert any(d["garden_id"] == garden for d in viewer.test_transport.of("StateDelta"))

    h.world.apply_command(SetPublic(garden, ada, False))
    h.server.broadcaster.tick()
    stopped = viewer.test_transport.of("ObservationStopped")
    assert stopped == [{"garden_ids": [garden], "reason": "private"}]
    h.send(viewer, "StopObserving", {"garden_id": garden}, 5)
    h.send(viewer, "SyncGameState", {"garden_id": garden}, 6)
    await settle(h)
    assert viewer.test_transport.errors()[-2:] == ["WS_SYNC_002", "WS_SYNC_002"]


@pytest_twisted.ensureDeferred
async def test_observing_is_bounded(h) -> None:
    h.server.options = h.options = h.server.handlers.options = h.options.__class__(max_observed=1)
    h.server.broadcaster.options = h.options
    conn = h.connect()
    ids = [await h.player(n) for n in ("ada", "bob", "cy")]
    await h.login(conn, ids[0])
    gardens = []
    for p in ids[1:]:
        gardens.append(await h.gardens.garden_for(p, "g"))
        h.world.apply_command(SetPublic(gardens[-1], p, True))
    for k, g in enumerate(gardens):
        h.send(conn, "ObserveGarden", {"garden_id": g}, k)
    await settle(h)
    assert conn.test_transport.errors() == ["WS_SYNC_003"]


@pytest_twisted.ensureDeferred
async def test_resume_continues_the_sequence_without_a_full_sync(h) -> None:
    conn = h.connect()
    player = await h.player()
    await h.login(conn, player)
    hello = conn.test_transport.of("AuthenticateResponse")[0]
    h.send(conn, "CreateCelestialBody", {"kind": "asteroid"}, 2)
    await settle(h)
    for _ in range(3):
        h.server.broadcaster.tick()
    client = replay(conn.test_transport, hello["garden_id"])
    assert client.sequence == 4
    h.server.broadcaster.tick()  # sequence 5 is lost with the connection
    conn.lost()
    assert h.server.counts()["detached"] == 1
    h.clock.advance(10)

    again = h.connect()
    await h.login(again, player, resume_token=hello["resume_token"], last_sequence=4)
    answer = again.test_transport.of("AuthenticateResponse")[0]
    assert answer["resumed"] is True and answer["session_id"] == hello["session_id"]
    assert answer["resume_token"] != hello["resume_token"]  # single use
    assert again.test_transport.of("FullStateSync") == []
    h.server.broadcaster.tick()
    delta = again.test_transport.of("StateDelta")[0]
    assert delta["base"] == 4 and delta["sequence"] == 6
    client.apply("StateDelta", delta)  # no OutOfSync: the client is whole
    assert h.server.counts()["detached"] == 0


@pytest_twisted.ensureDeferred
async def test_resume_after_the_grace_window_or_for_another_player_starts_afresh(h) -> None:
    conn = h.connect()
    ada, bob = await h.player("ada"), await h.player("bob")
    await h.login(conn, ada)
    token = conn.test_transport.of("AuthenticateResponse")[0]["resume_token"]
    conn.lost()
    other = h.connect()
    await h.login(other, bob, resume_token=token)
    assert other.test_transport.of("AuthenticateResponse")[0]["resumed"] is False
    h.clock.advance(h.options.resume_grace + 1)
    late = h.connect()
    await h.login(late, ada, resume_token=token)
    assert late.test_transport.of("AuthenticateResponse")[0]["resumed"] is False
    assert late.test_transport.of("FullStateSync")


@pytest_twisted.ensureDeferred
async def test_resuming_a_session_still_attached_takes_it_over(h) -> None:
    first = h.connect()
    player = await h.player()
    await h.login(first, player)
    token = first.test_transport.of("AuthenticateResponse")[0]["resume_token"]
    second = h.connect()
    await h.login(second, player, resume_token=token)
    assert first.test_transport.closed_with[0] == 4603
    first.lost()
    assert second.session.client is second


@pytest_twisted.ensureDeferred
async def test_sync_game_state_answers_a_delta_or_a_full_sync(h) -> None:
    conn = h.connect()
    player = await h.player()
    await h.login(conn, player)
    for _ in range(2):
        h.server.broadcaster.tick()
    h.send(conn, "SyncGameState", {"last_sequence": 2}, "s1")
    h.send(conn, "SyncGameState", {"last_sequence": 77}, "s2")
    h.send(conn, "SyncGameState", {}, "s3")
    await settle(h)
    answers = {rid: (k, d) for k, d, rid in conn.test_transport.messages() if rid}
    assert answers["s1"][0] == "StateDelta" and answers["s1"][1]["base"] == 2
    assert answers["s2"][0] == "FullStateSync" and answers["s3"][0] == "FullStateSync"
    assert h.metrics.ws.full_syncs.labels(reason="unknown_sequence")._value.get() == 1


@pytest_twisted.ensureDeferred
async def test_close_all_closes_every_connection_with_the_code_and_reason(h) -> None:
    conns = [h.connect(address=f"10.0.0.{i}") for i in range(3)]
    player = await h.player()
    await h.login(conns[0], player)
    done = h.server.close_all(1001, "maintenance")
    assert not done.called
    for conn in conns:
        assert conn.test_transport.closed_with == (1001, "WS_CONN_001: maintenance")
        assert conn.test_transport.of("Error")[-1]["recoverable"] is False
    for conn in conns:
        conn.lost()
    assert done.called
    assert h.server.counts()["detached"] == 1


@pytest_twisted.ensureDeferred
async def test_close_all_drops_stragglers_after_the_timeout(h) -> None:
    conn = h.connect()
    done = h.server.close_all(1001, "bye", timeout=2.0)
    h.clock.advance(2.1)
    assert done.called and conn.closed
