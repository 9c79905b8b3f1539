"""Every REST route over real HTTP: success and error paths."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
import pytest_twisted

from cosmic.game.commands import SetPublic
from cosmic.game.loop import QueueFull
from tests.unit.web.conftest import PASSWORD, Served

V1 = "/api/v1"


def assert_error(reply, status: int, code: str) -> dict:
    assert reply.code == status, reply
    assert reply.error == code, reply.body
    assert isinstance(reply.body["error"]["message"], str)
    assert "Traceback" not in reply.raw.decode("utf-8", "replace")
    return reply.body["error"]


# -- register -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_register(api: Served) -> None:
    reply = await api.call(
        "POST",
        f"{V1}/auth/register",
        {"username": "Ada_Lovelace-1", "password": PASSWORD, "display_name": "  Ada  "},
    )
    assert reply.code == 201
    assert reply.body["username"] == "Ada_Lovelace-1"
    assert reply.body["display_name"] == "Ada"
    assert reply.header("Location") == f"{V1}/players/me"
    assert "password" not in reply.raw.decode() and PASSWORD not in reply.raw.decode()
    stored = await api.store.find_account("ada_lovelace-1")
    assert stored.password_hash.startswith("$argon2id$")


@pytest_twisted.ensureDeferred
async def test_register_refuses_taken_names_ignoring_case(api: Served) -> None:
    await api.register("ada")
    reply = await api.call("POST", f"{V1}/auth/register", {"username": "ADA", "password": PASSWORD})
    assert_error(reply, 409, "ACCOUNT_USERNAME_TAKEN")


@pytest_twisted.ensureDeferred
async def test_register_validates_every_field(api: Served) -> None:
    cases = [
        ({"username": "ab", "password": PASSWORD}, "body.username"),
        ({"username": "a" * 33, "password": PASSWORD}, "body.username"),
        ({"username": "adä", "password": PASSWORD}, "body.username"),
        ({"username": "ada'; DROP TABLE accounts;--", "password": PASSWORD}, "body.username"),
        ({"username": "ada", "password": "short"}, "body.password"),
        ({"username": "ada", "password": "p" * 129}, "body.password"),
        ({"username": "ada", "password": 123456789012345}, "body.password"),
        ({"username": "ada", "password": PASSWORD, "admin": True}, "body.'admin'"),
        ({"username": "ada"}, "body.password"),
        ({"username": "ada", "password": PASSWORD, "display_name": "\u0007bell"}, "display_name"),
        ({"username": "ada", "password": PASSWORD, "display_name": "   "}, "display_name"),
        ({"username": "ada", "password": PASSWORD, "display_name": "\ud800"}, None),
    ]
    for body, field in cases:
        reply = await api.call("POST", f"{V1}/auth/register", body)
        error = assert_error(reply, 422, "REQUEST_INVALID")
        if field is not None:
            assert error["field"] == field, (body, error)
    assert await api.store.find_account("ada") is None


@pytest_twisted.ensureDeferred
async def test_display_names_keep_unicode_and_injection_strings_verbatim(api: Served) -> None:
    for index, name in enumerate(["Robert'); DROP TABLE accounts;--", "星の庭 🌌", "<script>"]):
        body = await api.register(f"user{index}", display_name=name)
        assert body["display_name"] == name
    assert (await api.store.find_account("user0")).display_name.startswith("Robert'")


# -- login, refresh, logout ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_login_gives_a_token_pair(api: Served) -> None:
    await api.register("ada")
    session = await api.login("ADA")  # usernames ignore case
    assert session["token_type"] == "Bearer"
    assert session["expires_in"] == api.settings.auth.access_ttl
    assert session["account"]["username"] == "ada"
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    assert claims["sub"] == str(session["account"]["id"])
    assert claims["iss"] == api.settings.auth.issuer
    assert claims["aud"] == api.settings.auth.audience
    reply = await api.call("GET", f"{V1}/players/me", token=session["access_token"])
    assert reply.code == 200 and reply.body["username"] == "ada"


@pytest_twisted.ensureDeferred
async def test_login_failures_look_alike(api: Served) -> None:
    await api.register("ada")
    wrong = await api.call("POST", f"{V1}/auth/login", {"username": "ada", "password": "x" * 20})
    unknown = await api.call("POST", f"{V1}/auth/login", {"username": "bob", "password": "x" * 20})
    odd = await api.call("POST", f"{V1}/auth/login", {"username": "a b", "password": "short"})
    bodies = [assert_error(r, 401, "AUTH_INVALID_CREDENTIALS") for r in (wrong, unknown, odd)]
    assert bodies[0] == bodies[1] == bodies[2]
    assert wrong.header("WWW-Authenticate").startswith("Bearer")


@pytest_twisted.ensureDeferred
async def test_login_rehashes_after_a_parameter_change(api: Served) -> None:
    await api.register("ada")
    before = (await api.store.find_account("ada")).password_hash
    api.site.accounts.hasher.configure(
        type(api.site.accounts.hasher.parameters)(time_cost=2, memory_kib=8, parallelism=1)
    )
    await api.login("ada")
    after = (await api.store.find_account("ada")).password_hash
    assert before != after and "t=2" in after
    await api.login("ada")  # the new hash verifies
    assert api.metrics.auth.events.labels(event="rehash")._value.get() == 1


@pytest_twisted.ensureDeferred
async def test_refresh_rotates_and_reuse_revokes_the_family(api: Served) -> None:
    await api.register("ada")
    first = await api.login("ada")
    other_device = await api.login("ada")
    reply = await api.call("POST", f"{V1}/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert reply.code == 200
    second = reply.body
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    me = await api.call("GET", f"{V1}/players/me", token=second["access_token"])
    assert me.code == 200

    # The old token again: someone else has a copy.  Its whole family goes.
    reused = await api.call("POST", f"{V1}/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert_error(reused, 401, "AUTH_REFRESH_REUSED")
    revoked = await api.call(
        "POST", f"{V1}/auth/refresh", {"refresh_token": second["refresh_token"]}
    )
    assert_error(revoked, 401, "AUTH_REFRESH_INVALID")
    # Another login's family is untouched.
    fine = await api.call(
        "POST", f"{V1}/auth/refresh", {"refresh_token": other_device["refresh_token"]}
    )
    assert fine.code == 200


@pytest_twisted.ensureDeferred
async def test_refresh_errors(api: Served) -> None:
    await api.register("ada")
    session = await api.login("ada")
    unknown = await api.call("POST", f"{V1}/auth/refresh", {"refresh_token": "nope"})
    assert_error(unknown, 401, "AUTH_REFRESH_INVALID")
    api.clock.advance(api.settings.auth.refresh_ttl + 1)
    expired = await api.call(
        "POST", f"{V1}/auth/refresh", {"refresh_token": session["refresh_token"]}
    )
    assert_error(expired, 401, "AUTH_REFRESH_EXPIRED")
    for bad in ({}, {"refresh_token": ""}, {"refresh_token": 5}, {"refresh_token": "x" * 300}):
        assert_error(await api.call("POST", f"{V1}/auth/refresh", bad), 422, "REQUEST_INVALID")


@pytest_twisted.ensureDeferred
async def test_logout_revokes_the_session(api: Served) -> None:
    await api.register("ada")
    session = await api.login("ada")
    reply = await api.call("POST", f"{V1}/auth/logout", {"refresh_token": session["refresh_token"]})
    assert reply.code == 204 and reply.raw == b""
    again = await api.call(
        "POST", f"{V1}/auth/refresh", {"refresh_token": session["refresh_token"]}
    )
    assert_error(again, 401, "AUTH_REFRESH_INVALID")
    unknown = await api.call("POST", f"{V1}/auth/logout", {"refresh_token": "unknown"})
    assert unknown.code == 204
    assert_error(await api.call("POST", f"{V1}/auth/logout", {}), 422, "REQUEST_INVALID")


# -- access tokens on the wire ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_missing_malformed_tampered_expired_and_alg_none_tokens(api: Served) -> None:
    token = await api.player("ada")
    me = f"{V1}/players/me"
    missing = await api.call("GET", me)
    assert_error(missing, 401, "AUTH_MISSING_TOKEN")
    assert missing.header("WWW-Authenticate") == 'Bearer realm="cosmic-gardener"'
    basic = await api.call("GET", me, headers={"Authorization": "Basic YWRhOnB3"})
    assert_error(basic, 401, "AUTH_MISSING_TOKEN")
    assert_error(await api.call("GET", me, token="not.a.jwt"), 401, "AUTH_TOKEN_MALFORMED")

    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "999"
    tampered = ".".join(
        [
            head,
            base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode(),
            signature,
        ]
    )
    reply = await api.call("GET", me, token=tampered)
    assert_error(reply, 401, "AUTH_TOKEN_SIGNATURE")
    assert 'error="invalid_token"' in reply.header("WWW-Authenticate")

    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    unsigned = f"{none_header}.{payload}."
    assert_error(await api.call("GET", me, token=unsigned), 401, "AUTH_TOKEN_ALGORITHM")

    api.clock.advance(api.settings.auth.access_ttl + api.settings.auth.leeway + 1)
    assert_error(await api.call("GET", me, token=token), 401, "AUTH_TOKEN_EXPIRED")


# -- players/me ------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_players_me_get_and_patch(api: Served) -> None:
    token = await api.player("ada")
    reply = await api.call("GET", f"{V1}/players/me", token=token)
    assert reply.body == {
        "id": reply.body["id"],
        "username": "ada",
        "display_name": "ada",
        "created_at": api.clock.seconds(),
        "garden_id": None,
    }
    patched = await api.call(
        "PATCH", f"{V1}/players/me", {"display_name": " Countess of Lovelace "}, token=token
    )
    assert patched.code == 200 and patched.body["display_name"] == "Countess of Lovelace"
    again = await api.call("GET", f"{V1}/players/me", token=token)
    assert again.body["display_name"] == "Countess of Lovelace"
    for bad in ({"display_name": ""}, {"display_name": "x" * 65}, {"display_name": None}, {}):
        reply = await api.call("PATCH", f"{V1}/players/me", bad, token=token)
        assert_error(reply, 422, "REQUEST_INVALID")
    assert_error(
        await api.call("PATCH", f"{V1}/players/me", {"display_name": "x"}),
        401,
        "AUTH_MISSING_TOKEN",
    )


@pytest_twisted.ensureDeferred
async def test_delete_me_removes_account_garden_and_sessions(api: Served) -> None:
    token = await api.player("ada")
    session = await api.login("ada")
    created = await api.call("POST", f"{V1}/celestial-bodies", {"kind": "asteroid"}, token=token)
    assert created.code == 201
    me = await api.call("GET", f"{V1}/players/me", token=token)
    garden_id = me.body["garden_id"]
    assert garden_id in api.game.world.gardens
    await api.call("GET", f"{V1}/leaderboards/total_mass")  # cache the board

    reply = await api.call("DELETE", f"{V1}/players/me", token=token)
    assert reply.code == 204
    assert garden_id not in api.game.world.gardens
    assert await api.store.load_garden(garden_id) is None
    assert await api.store.find_account("ada") is None
    assert_error(await api.call("GET", f"{V1}/players/me", token=token), 401, "AUTH_ACCOUNT_GONE")
    refresh = await api.call(
        "POST", f"{V1}/auth/refresh", {"refresh_token": session["refresh_token"]}
    )
    assert_error(refresh, 401, "AUTH_REFRESH_INVALID")
    board = await api.call("GET", f"{V1}/leaderboards/total_mass")
    assert all(e["garden_id"] != garden_id for e in board.body["entries"])
    # The name is free again, and the new account gets a new garden.
    token2 = await api.player("ada")
    page = await api.call("GET", f"{V1}/celestial-bodies", token=token2)
    assert page.body["total"] == 1
    assert (await api.call("GET", f"{V1}/players/me", token=token2)).body["garden_id"] != garden_id


@pytest_twisted.ensureDeferred
async def test_authenticated_requests_read_the_account_through_the_session_cache(
    api: Served,
) -> None:
    token = await api.player("ada")
    view = api.persistence.cache_view("sessions")
    hits, misses = view.hits, view.misses
    for _ in range(3):
        assert (await api.call("GET", f"{V1}/players/me", token=token)).code == 200
    # One store read at most fills the cache; the rest are served from it.
    assert view.misses - misses <= 1
    assert view.hits - hits >= 2
    # A change of the account invalidates its entry: no stale name is served.
    patched = await api.call("PATCH", f"{V1}/players/me", {"display_name": "Countess"}, token=token)
    assert patched.code == 200
    again = await api.call("GET", f"{V1}/players/me", token=token)
    assert again.body["display_name"] == "Countess"


# -- gardens --------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_gardens_are_private_unless_public(api: Served) -> None:
    ada = await api.player("ada")
    bob = await api.player("bob")
    await api.call("GET", f"{V1}/celestial-bodies", token=ada)  # creates the garden
    garden_id = (await api.call("GET", f"{V1}/players/me", token=ada)).body["garden_id"]
    url = f"{V1}/gardens/{garden_id}"

    own = await api.call("GET", url, token=ada)
    assert own.code == 200
    assert own.body["garden"]["id"] == garden_id and own.body["garden"]["public"] is False
    assert own.body["bodies"]["ids"] == [1]
    assert own.body["resources"]["cosmic_dust"] >= 400
    not_yours = await api.call("GET", url, token=bob)
    anonymous = await api.call("GET", url)
    missing = await api.call("GET", f"{V1}/gardens/99999")
    for reply in (not_yours, anonymous, missing):
        assert_error(reply, 404, "HTTP_404")
    assert not_yours.body == anonymous.body == missing.body  # no existence oracle

    owner_id = own.body["garden"]["owner_id"]
    await api.game.loop.submit(SetPublic(garden_id, owner_id, True))
    assert (await api.call("GET", url)).code == 200
    assert (await api.call("GET", url, token=bob)).code == 200
    assert_error(await api.call("GET", url, token="bad"), 401, "AUTH_TOKEN_MALFORMED")


@pytest_twisted.ensureDeferred
async def test_garden_ids_that_cannot_be_ids_are_404(api: Served) -> None:
    for raw in (
        "abc",
        "0",
        "-1",
        "1.5",
        "9" * 30,
        "%ff",
        "%31%00",
        "1;DROP%20TABLE",
        "%F0%9F%8C%8C",
    ):
        assert_error(await api.call("GET", f"{V1}/gardens/{raw}"), 404, "HTTP_404")


@pytest_twisted.ensureDeferred
async def test_an_unloaded_garden_is_loaded_to_read_it(api: Served) -> None:
    ada = await api.player("ada")
    await api.call("POST", f"{V1}/celestial-bodies", {"kind": "comet"}, token=ada)
    garden_id = (await api.call("GET", f"{V1}/players/me", token=ada)).body["garden_id"]
    api.game.gardens.capture([garden_id])
    snapshot = api.game.gardens.snapshot(garden_id)
    await api.store.save_gardens([snapshot])
    api.game.gardens.saved(garden_id, snapshot[0].version)
    await api.game.loop.when_idle(lambda: api.game.world.detach(garden_id))
    api.game.gardens._player_gardens.clear()
    page = await api.call("GET", f"{V1}/celestial-bodies", token=ada)
    assert page.code == 200 and [b["kind"] for b in page.body["items"]] == ["star", "comet"]


# -- celestial bodies ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_create_and_page_bodies(api: Served) -> None:
    token = await api.player("ada")
    first = await api.call("GET", f"{V1}/celestial-bodies", token=token)
    assert first.code == 200
    assert [b["kind"] for b in first.body["items"]] == ["star"]
    created = []
    for name in ("Ceres", "Vesta", "Pallas"):
        reply = await api.call(
            "POST", f"{V1}/celestial-bodies", {"kind": "asteroid", "name": name}, token=token
        )
        assert reply.code == 201, reply
        assert reply.body["body"]["name"] == name
        created.append(reply.body["body"]["id"])
    assert reply.body["resources"]["cosmic_dust"] < 300
    placed = await api.call(
        "POST",
        f"{V1}/celestial-bodies",
        {"kind": "asteroid", "position": [5, 0, 0], "velocity": [0, 2.8, 0]},
        token=token,
    )
    assert placed.code == 201 and placed.body["body"]["position"] == [5.0, 0.0, 0.0]

    page = await api.call("GET", f"{V1}/celestial-bodies?limit=2", token=token)
    assert page.body["total"] == 5 and page.body["limit"] == 2
    assert [b["id"] for b in page.body["items"]] == [1, created[0]]
    after = page.body["next_after"]
    rest = await api.call("GET", f"{V1}/celestial-bodies?limit=2&after={after}", token=token)
    assert [b["id"] for b in rest.body["items"]] == created[1:]
    last = await api.call(
        "GET", f"{V1}/celestial-bodies?limit=2&after={rest.body['next_after']}", token=token
    )
    assert len(last.body["items"]) == 1 and last.body["next_after"] is None


# The world's placement check overflows (harmlessly: inf is outside) on 1.7e308.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest_twisted.ensureDeferred
async def test_create_body_errors_are_the_game_errors(api: Served) -> None:
    token = await api.player("ada")
    url = f"{V1}/celestial-bodies"
    cases = [
        ({"kind": "planet"}, 409, "WS_GAME_001"),
        ({"kind": "star"}, 409, "WS_GAME_005"),
        ({"kind": "unicorn"}, 422, "WS_GAME_004"),
        ({"kind": "asteroid", "position": [500, 0, 0]}, 422, "WS_GAME_003"),
        ({"kind": "asteroid", "position": [0, 0, 0]}, 422, "WS_GAME_003"),
        ({"kind": "asteroid", "velocity": [1e6, 0, 0]}, 422, "WS_GAME_003"),
        ({"kind": "moon"}, 422, "WS_GAME_006"),
        ({"kind": "asteroid", "parent_id": 1}, 422, "WS_GAME_003"),
        ({"kind": "asteroid", "name": "x" * 65}, 422, "WS_GAME_011"),
        ({"kind": "asteroid", "name": "  "}, 422, "WS_GAME_011"),
        ({"kind": "asteroid", "position": [1, 2]}, 422, "REQUEST_INVALID"),
        ({"kind": "asteroid", "position": [1, 2, "3"]}, 422, "REQUEST_INVALID"),
        ({"kind": "asteroid", "position": [10**400, 0, 0]}, 400, "REQUEST_MALFORMED_JSON"),
        ({"kind": "asteroid", "position": [1.7e308, 0, 0]}, 422, "WS_GAME_003"),
        ({"kind": "asteroid", "position": [10**30, 0, 0]}, 422, "WS_GAME_003"),
        ({"kind": 7}, 422, "REQUEST_INVALID"),
        ({"kind": "asteroid", "parent_id": 2**64}, 422, "REQUEST_INVALID"),
        ({}, 422, "REQUEST_INVALID"),
    ]
    for body, status, code in cases:
        reply = await api.call("POST", url, body, token=token)
        assert_error(reply, status, code)
    locked = await api.call("POST", url, {"kind": "star"}, token=token)
    assert locked.body["error"]["research"] == "stellar_formation"
    page = await api.call("GET", url, token=token)
    assert page.body["total"] == 1  # nothing was created, nothing paid
    assert (await api.call("GET", f"{V1}/players/me", token=token)).code == 200


@pytest_twisted.ensureDeferred
async def test_a_full_command_queue_is_503_with_retry_after(api: Served) -> None:
    token = await api.player("ada")
    await api.call("GET", f"{V1}/celestial-bodies", token=token)
    api.game.loop.queue_size = 0
    reply = await api.call("POST", f"{V1}/celestial-bodies", {"kind": "asteroid"}, token=token)
    assert_error(reply, 503, QueueFull.code)
    assert reply.header("Retry-After") == "1"


@pytest_twisted.ensureDeferred
async def test_body_paging_parameters_are_checked(api: Served) -> None:
    token = await api.player("ada")
    url = f"{V1}/celestial-bodies"
    for query in ("limit=0", "limit=501", "limit=x", "after=-1", "limit=1&limit=2", "limit=1e3"):
        assert_error(await api.call("GET", f"{url}?{query}", token=token), 422, "REQUEST_INVALID")
    assert_error(await api.call("GET", url), 401, "AUTH_MISSING_TOKEN")
    assert (await api.call("GET", f"{url}?unknown=1", token=token)).code == 200


# -- leaderboards ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_leaderboards(api: Served) -> None:
    for name in ("ada", "bob"):
        token = await api.player(name)
        await api.call("GET", f"{V1}/celestial-bodies", token=token)
    await api.call("PATCH", f"{V1}/players/me", {"display_name": "Robert"}, token=token)
    for kind in ("total_mass", "thought_points", "transcendence"):
        reply = await api.call("GET", f"{V1}/leaderboards/{kind}?limit=5")
        assert reply.code == 200 and reply.body["kind"] == kind
    board = await api.call("GET", f"{V1}/leaderboards/total_mass")
    entries = board.body["entries"]
    assert [e["rank"] for e in entries] == [1, 2]
    assert {e["owner_id"] for e in entries} == {1, 2}
    assert all(e["score"] == 1.0 for e in entries)  # one sun each
    transcended = await api.call("GET", f"{V1}/leaderboards/transcendence")
    assert transcended.body["entries"] == []
    assert_error(await api.call("GET", f"{V1}/leaderboards/nope"), 404, "HTTP_404")
    assert_error(
        await api.call("GET", f"{V1}/leaderboards/total_mass?limit=101"), 422, "REQUEST_INVALID"
    )


@pytest_twisted.ensureDeferred
async def test_store_outage_is_503_not_500(api: Served) -> None:
    await api.register("ada")
    api.store.available = False
    reply = await api.call("POST", f"{V1}/auth/login", {"username": "ada", "password": PASSWORD})
    assert_error(reply, 503, "SERVICE_UNAVAILABLE")
    assert reply.header("Retry-After") == "2"
    api.store.available = True
    assert (await api.login("ada"))["access_token"]
