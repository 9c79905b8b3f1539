"""The store contract: the same assertions against PostgreSQL, SQLite and the
in-memory fake (the ``store`` fixture runs each test once per backend)."""

from __future__ import annotations

import math

import attrs
import pytest
import pytest_twisted
from twisted.internet import defer

from cosmic.store.errors import (
    Conflict,
    InvalidValue,
    NotFound,
    StoreUnavailable,
    UsernameTaken,
)
from cosmic.store.interface import Store
from cosmic.store.records import (
    BODY_NAME_MAX,
    DISPLAY_NAME_MAX,
    GARDEN_NAME_MAX,
    USERNAME_MAX,
    BodyRecord,
    GardenRecord,
    LeaderboardRow,
    RefreshTokenRecord,
    SaveResult,
)

HOSTILE = [
    "Robert'); DROP TABLE accounts;--",
    "' OR '1'='1",
    '"; DELETE FROM gardens; --',
    "\\x00 is not a NUL, but \\ and ' and \" are",
    "$1 %s %(name)s {0} ?",
    "🌌🪐✨ astral",
    "עברית مرحبا",  # right-to-left
    "e\u0301 combining",
    "\u200b zero width",
]

pytestmark = pytest.mark.integration


def body(garden_id: int, body_id: int, **changes) -> BodyRecord:
    base = BodyRecord(
        garden_id=garden_id,
        body_id=body_id,
        kind="planet",
        name=f"body {body_id}",
        mass=1.5 + body_id,
        radius=0.01,
        px=1.0 * body_id,
        py=-2.5,
        pz=0.125,
        vx=0.1,
        vy=6.283185307179586,
        vz=-1e-7,
        level=1,
        created_at=1000.5,
        life_stage=None,
        population=0.0,
        life_progress=0.0,
    )
    return attrs.evolve(base, **changes)


async def account(store: Store, name: str = "gardener", display: str = "Gardener"):
    return await store.create_account(name, display, "argon2$hash", 1_700_000_000.25)


async def garden(store: Store, owner_id: int, name: str = "Eden", public: bool = True):
    return await store.create_garden(owner_id, name, public, 1_700_000_100.5, {"dust": 1})


async def fails(d: defer.Deferred, error: type[Exception]) -> Exception:
    try:
        await d
    except error as exc:
        return exc
    raise AssertionError(f"expected {error.__name__}")


# --- accounts -----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_account_create_get_find(store: Store) -> None:
    created = await account(store, "Stella", "Stella N.")
    assert created.username == "Stella"
    assert created.created_at == 1_700_000_000.25
    assert await store.get_account(created.id) == created
    assert await store.find_account("stella") == created
    assert await store.find_account("STELLA") == created
    assert await store.find_account("nobody") is None
    assert await store.get_account(created.id + 1000) is None


@pytest_twisted.ensureDeferred
async def test_usernames_are_unique_case_insensitively(store: Store) -> None:
    await account(store, "Straße")
    error = await fails(store.create_account("STRASSE", "x", "h", 1.0), UsernameTaken)
    assert "STRASSE" in str(error)
    await fails(store.create_account("straße", "x", "h", 1.0), UsernameTaken)
    assert (await store.find_account("strasse")).username == "Straße"
    other = await account(store, "Other")
    assert other.id != (await store.find_account("Straße")).id


@pytest_twisted.ensureDeferred
async def test_update_account(store: Store) -> None:
    first = await account(store, "first")
    second = await account(store, "second")
    renamed = attrs.evolve(first, username="First-Renamed", display_name="F", password_hash="h2")
    updated = await store.update_account(renamed)
    assert updated == renamed
    assert await store.find_account("first-renamed") == renamed
    assert await store.find_account("first") is None
    await fails(store.update_account(attrs.evolve(second, username="FIRST-renamed")), UsernameTaken)
    await fails(store.update_account(attrs.evolve(first, id=first.id + 999)), NotFound)
    # created_at is not rewritten by an update
    kept = await store.update_account(attrs.evolve(renamed, created_at=5.0))
    assert kept.created_at == first.created_at


@pytest_twisted.ensureDeferred
async def test_delete_account_cascades(store: Store) -> None:
    owner = await account(store, "owner")
    keep = await account(store, "keep")
    g = await garden(store, owner.id)
    kept_garden = await garden(store, keep.id)
    await store.save_gardens([(attrs.evolve(g, version=1), [body(g.id, 1)])])
    await store.add_refresh_token(token("t-owner", owner.id))
    await store.add_refresh_token(token("t-keep", keep.id))
    assert await store.delete_account(owner.id) is True
    assert await store.delete_account(owner.id) is False
    assert await store.get_account(owner.id) is None
    assert await store.load_garden(g.id) is None
    assert await store.gardens_of(owner.id) == []
    assert await store.get_refresh_token("t-owner") is None
    assert await store.get_refresh_token("t-keep") is not None
    assert (await store.load_garden(kept_garden.id))[0] == kept_garden
    # the name is free again
    assert (await account(store, "OWNER")).username == "OWNER"


# --- refresh tokens ---------------------------------------------------------------


def token(token_hash: str, account_id: int, family: str = "fam-1", **changes):
    base = RefreshTokenRecord(
        token_hash=token_hash,
        account_id=account_id,
        family_id=family,
        issued_at=100.0,
        expires_at=10_000.0,
        used_at=None,
        revoked=False,
    )
    return attrs.evolve(base, **changes)


@pytest_twisted.ensureDeferred
async def test_refresh_token_lifecycle(store: Store) -> None:
    owner = await account(store)
    record = token("hash-a", owner.id)
    await store.add_refresh_token(record)
    assert await store.get_refresh_token("hash-a") == record
    assert await store.get_refresh_token("hash-b") is None
    await fails(store.add_refresh_token(record), Conflict)
    await fails(store.add_refresh_token(token("hash-x", owner.id + 999)), NotFound)
    assert await store.use_refresh_token("hash-a", 200.0) is True
    assert await store.use_refresh_token("hash-a", 201.0) is False
    assert (await store.get_refresh_token("hash-a")).used_at == 200.0
    assert await store.use_refresh_token("unknown", 200.0) is False


@pytest_twisted.ensureDeferred
async def test_refresh_token_revoked_or_expired_cannot_be_used(store: Store) -> None:
    owner = await account(store)
    other = await account(store, "other")
    await store.add_refresh_token(token("a1", owner.id, "A"))
    await store.add_refresh_token(token("a2", owner.id, "A"))
    await store.add_refresh_token(token("b1", owner.id, "B", expires_at=150.0))
    await store.add_refresh_token(token("c1", other.id, "C"))
    assert await store.revoke_token_family("A") == 2
    assert await store.revoke_token_family("A") == 0
    assert await store.use_refresh_token("a1", 120.0) is False
    assert (await store.get_refresh_token("a2")).revoked is True
    assert await store.use_refresh_token("b1", 150.0) is False  # expires_at > when is required
    assert await store.use_refresh_token("b1", 149.0) is True
    assert await store.revoke_account_tokens(owner.id) == 1  # b1; a1, a2 already revoked
    assert await store.use_refresh_token("c1", 120.0) is True


@pytest_twisted.ensureDeferred
async def test_refresh_token_use_is_atomic(store: Store) -> None:
    owner = await account(store)
    await store.add_refresh_token(token("race", owner.id))
    results = await defer.gatherResults(
        [store.use_refresh_token("race", 300.0 + i) for i in range(8)]
    )
    assert sorted(results) == [False] * 7 + [True]


# --- gardens ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_create_and_load_garden(store: Store) -> None:
    owner = await account(store)
    state = {"resources": {"cosmic_dust": 12.5, "energy": 0}, "research": ["a", "b"], "n": None}
    created = await store.create_garden(owner.id, "Eden", False, 1234.5, state)
    assert created == GardenRecord(
        id=created.id,
        owner_id=owner.id,
        name="Eden",
        public=False,
        created_at=1234.5,
        saved_at=1234.5,
        game_time=0.0,
        state=state,
        total_mass=0.0,
        thought_points=0.0,
        transcended_at=None,
        version=0,
    )
    loaded, bodies = await store.load_garden(created.id)
    assert loaded == created
    assert bodies == []
    assert await store.load_garden(created.id + 999) is None
    await fails(store.create_garden(owner.id + 999, "x", True, 1.0, {}), NotFound)


@pytest_twisted.ensureDeferred
async def test_gardens_of_and_public_gardens(store: Store) -> None:
    alice = await account(store, "alice")
    bob = await account(store, "bob")
    a1 = await garden(store, alice.id, "a1", public=True)
    a2 = await garden(store, alice.id, "a2", public=False)
    b1 = await garden(store, bob.id, "b1", public=True)
    b2 = await garden(store, bob.id, "b2", public=True)
    assert [g.id for g in await store.gardens_of(alice.id)] == [a1.id, a2.id]
    assert await store.gardens_of(bob.id + alice.id + 999) == []
    assert [g.id for g in await store.public_gardens(10)] == [a1.id, b1.id, b2.id]
    assert [g.id for g in await store.public_gardens(2)] == [a1.id, b1.id]
    assert [g.id for g in await store.public_gardens(2, 2)] == [b2.id]
    assert await store.public_gardens(0) == []


@pytest_twisted.ensureDeferred
async def test_save_replaces_the_body_set_exactly(store: Store) -> None:
    owner = await account(store)
    g = await garden(store, owner.id)
    v1 = attrs.evolve(g, version=1, game_time=10.0, saved_at=2000.25, total_mass=7.5)
    result = await store.save_gardens([(v1, [body(g.id, i) for i in (1, 2, 3)])])
    assert result == SaveResult(saved=(g.id,))
    loaded, bodies = await store.load_garden(g.id)
    assert loaded == v1
    assert [b.body_id for b in bodies] == [1, 2, 3]
    # body 2 goes, 3 changes, 4 comes
    moved = body(g.id, 3, px=99.0, kind="gas_giant", life_stage="microbial", population=1e6)
    v2 = attrs.evolve(v1, version=2, state={"dust": 2, "new": [1, 2.5]}, name="Eden II")
    await store.save_gardens([(v2, [body(g.id, 1), moved, body(g.id, 4)])])
    loaded, bodies = await store.load_garden(g.id)
    assert loaded == v2
    assert bodies == [body(g.id, 1), moved, body(g.id, 4)]
    # an empty body set empties the garden
    await store.save_gardens([(attrs.evolve(v2, version=3), [])])
    assert (await store.load_garden(g.id))[1] == []


@pytest_twisted.ensureDeferred
async def test_save_many_gardens_in_one_call(store: Store) -> None:
    owner = await account(store)
    gardens = [await garden(store, owner.id, f"g{i}") for i in range(5)]
    snapshots = [
        (attrs.evolve(g, version=1, total_mass=float(i)), [body(g.id, j) for j in range(i * 40)])
        for i, g in enumerate(gardens)
    ]
    result = await store.save_gardens(snapshots)
    assert sorted(result.saved) == sorted(g.id for g in gardens)
    for i, g in enumerate(gardens):
        loaded, bodies = await store.load_garden(g.id)
        assert loaded.total_mass == float(i)
        assert len(bodies) == i * 40
        assert {b.garden_id for b in bodies} <= {g.id}
    assert await store.save_gardens([]) == SaveResult()


@pytest_twisted.ensureDeferred
async def test_save_respects_versions_and_reports_missing(store: Store) -> None:
    owner = await account(store)
    g = await garden(store, owner.id)
    other = await garden(store, owner.id, "other")
    await store.save_gardens([(attrs.evolve(g, version=5, game_time=5.0), [body(g.id, 1)])])
    stale = attrs.evolve(g, version=4, game_time=4.0)
    same = attrs.evolve(other, version=0, game_time=1.0)
    ghost = attrs.evolve(g, id=g.id + other.id + 1000, version=9)
    result = await store.save_gardens(
        [(stale, [body(g.id, 9)]), (same, [body(other.id, 1)]), (ghost, [])]
    )
    assert result == SaveResult(saved=(other.id,), stale=(g.id,), missing=(ghost.id,))
    loaded, bodies = await store.load_garden(g.id)
    assert loaded.version == 5 and loaded.game_time == 5.0
    assert [b.body_id for b in bodies] == [1]  # the stale snapshot's bodies were not written
    assert (await store.load_garden(other.id))[0].game_time == 1.0
    assert await store.load_garden(ghost.id) is None  # not recreated


@pytest_twisted.ensureDeferred
async def test_save_never_changes_owner_or_creation_time(store: Store) -> None:
    owner = await account(store)
    thief = await account(store, "thief")
    g = await garden(store, owner.id)
    await store.save_gardens([(attrs.evolve(g, owner_id=thief.id, created_at=1.0, version=1), [])])
    loaded, _ = await store.load_garden(g.id)
    assert loaded.owner_id == owner.id
    assert loaded.created_at == g.created_at
    assert loaded.version == 1


@pytest_twisted.ensureDeferred
async def test_invalid_snapshot_refuses_the_whole_batch(store: Store) -> None:
    owner = await account(store)
    good = await garden(store, owner.id, "good")
    bad = await garden(store, owner.id, "bad")
    snapshots = [
        (attrs.evolve(good, version=1), [body(good.id, 1)]),
        (attrs.evolve(bad, version=1), [body(bad.id, 1, px=math.nan)]),
    ]
    error = await fails(store.save_gardens(snapshots), InvalidValue)
    assert error.garden_id == bad.id
    assert error.field == "body.px"
    assert (await store.load_garden(good.id))[0].version == 0  # nothing written
    duplicate = [(attrs.evolve(good, version=1), [body(good.id, 1), body(good.id, 1)])]
    assert (await fails(store.save_gardens(duplicate), InvalidValue)).garden_id == good.id
    wrong_garden = [(attrs.evolve(good, version=1), [body(bad.id, 1)])]
    await fails(store.save_gardens(wrong_garden), InvalidValue)
    twice = [(attrs.evolve(good, version=1), []), (attrs.evolve(good, version=2), [])]
    await fails(store.save_gardens(twice), InvalidValue)
    bad_state = [(attrs.evolve(good, state={"x": math.inf}), [])]
    await fails(store.save_gardens(bad_state), InvalidValue)


@pytest_twisted.ensureDeferred
async def test_delete_garden(store: Store) -> None:
    owner = await account(store)
    g = await garden(store, owner.id)
    await store.save_gardens([(attrs.evolve(g, version=1), [body(g.id, 1)])])
    assert await store.delete_garden(g.id) is True
    assert await store.delete_garden(g.id) is False
    assert await store.load_garden(g.id) is None
    # a new garden never reuses the id
    assert (await garden(store, owner.id)).id != g.id


@pytest_twisted.ensureDeferred
async def test_floats_round_trip_exactly(store: Store) -> None:
    owner = await account(store)
    g = await garden(store, owner.id)
    values = [0.1, 1 / 3, 1e-300, 1.7976931348623157e308, -2.5e-7, 6.02214076e23, 5e-324]
    bodies = [
        body(g.id, i, mass=v, px=-v, vy=v * 0.5, population=v, life_progress=v)
        for i, v in enumerate(values)
    ]
    state = {"values": values, "nested": {"deep": [values]}}
    saved = attrs.evolve(g, version=1, game_time=1 / 7, total_mass=1e308, state=state)
    await store.save_gardens([(saved, bodies)])
    loaded, got = await store.load_garden(g.id)
    assert loaded == saved
    assert got == bodies


# --- leaderboards source --------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_top_gardens(store: Store) -> None:
    alice = await account(store, "alice", "Alice 🌟")
    bob = await account(store, "bob", "Bob")
    g = [await garden(store, (alice if i % 2 else bob).id, f"g{i}") for i in range(5)]
    scores = [
        (5.0, 1.0, None),
        (9.0, 3.0, 300.0),
        (9.0, 0.0, 100.0),
        (1.0, 7.0, None),
        (2.0, 3.0, 100.0),
    ]
    await store.save_gardens(
        [
            (attrs.evolve(x, version=1, total_mass=m, thought_points=t, transcended_at=tr), [])
            for x, (m, t, tr) in zip(g, scores, strict=True)
        ]
    )
    mass = await store.top_gardens("total_mass", 3)
    assert mass == [
        LeaderboardRow(g[1].id, alice.id, "Alice 🌟", 9.0),
        LeaderboardRow(g[2].id, bob.id, "Bob", 9.0),  # tie: lower garden id first
        LeaderboardRow(g[0].id, bob.id, "Bob", 5.0),
    ]
    thought = await store.top_gardens("thought_points", 10)
    assert [(r.garden_id, r.score) for r in thought] == [
        (g[3].id, 7.0),
        (g[1].id, 3.0),
        (g[4].id, 3.0),
        (g[0].id, 1.0),
        (g[2].id, 0.0),
    ]
    transcended = await store.top_gardens("transcendence", 10)
    assert [(r.garden_id, r.score) for r in transcended] == [
        (g[2].id, 100.0),
        (g[4].id, 100.0),
        (g[1].id, 300.0),
    ]
    assert await store.top_gardens("total_mass", 0) == []
    await fails(store.top_gardens("mass; DROP TABLE gardens", 3), InvalidValue)


# --- hostile and unusual input -----------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
@pytest_twisted.ensureDeferred
async def test_hostile_and_unicode_text_round_trips(store: Store, text: str) -> None:
    owner = await store.create_account(text, text, text, 1.0)
    assert await store.find_account(text) == owner
    assert await store.get_account(owner.id) == owner
    g = await store.create_garden(owner.id, text, True, 2.0, {text: [text], "k": {text: text}})
    b = body(g.id, 1, name=text, kind=text[:32], life_stage=text[:32])
    saved = attrs.evolve(g, version=1)
    await store.save_gardens([(saved, [b])])
    loaded, bodies = await store.load_garden(g.id)
    assert loaded == saved
    assert bodies == [b]
    await store.add_refresh_token(token(text, owner.id, family=text))
    assert (await store.get_refresh_token(text)).family_id == text
    assert await store.revoke_token_family(text) == 1
    rows = await store.top_gardens("total_mass", 5)
    assert rows[0].owner_name == text


@pytest_twisted.ensureDeferred
async def test_longest_allowed_names_round_trip_and_longer_are_refused(store: Store) -> None:
    username = "🌱" * USERNAME_MAX  # astral characters count as one each
    display = "d" * DISPLAY_NAME_MAX
    owner = await store.create_account(username, display, "h", 1.0)
    assert await store.find_account(username) == owner
    g = await store.create_garden(owner.id, "g" * GARDEN_NAME_MAX, True, 1.0, {})
    long_body = body(g.id, 1, name="b" * BODY_NAME_MAX)
    await store.save_gardens([(attrs.evolve(g, version=1), [long_body])])
    assert (await store.load_garden(g.id))[1] == [long_body]

    error = await fails(store.create_account("u" * (USERNAME_MAX + 1), "d", "h", 1.0), InvalidValue)
    assert error.field == "username" and "limit is 64" in str(error)
    await fails(store.create_account("ok", "d" * (DISPLAY_NAME_MAX + 1), "h", 1.0), InvalidValue)
    long_name = "g" * (GARDEN_NAME_MAX + 1)
    await fails(store.create_garden(owner.id, long_name, True, 1.0, {}), InvalidValue)
    too_long = body(g.id, 2, name="b" * (BODY_NAME_MAX + 1))
    await fails(store.save_gardens([(attrs.evolve(g, version=2), [too_long])]), InvalidValue)
    await fails(store.find_account("x" * 10_000), InvalidValue)


@pytest.mark.parametrize(
    "bad",
    ["nul\x00byte", "lone \ud800 surrogate", "", 42],
    ids=["nul", "surrogate", "empty", "not-text"],
)
@pytest_twisted.ensureDeferred
async def test_unstorable_text_is_refused_cleanly(store: Store, bad: object) -> None:
    await fails(store.create_account(bad, "d", "h", 1.0), InvalidValue)
    owner = await account(store)
    if bad != "":  # an empty garden name is allowed
        await fails(store.create_garden(owner.id, bad, True, 1.0, {}), InvalidValue)
    if isinstance(bad, str) and bad:
        await fails(store.create_garden(owner.id, "g", True, 1.0, {"k": bad}), InvalidValue)
        await fails(store.create_garden(owner.id, "g", True, 1.0, {bad: 1}), InvalidValue)
    assert await store.gardens_of(owner.id) == []


@pytest.mark.parametrize(
    "state",
    [{"x": math.nan}, {"x": {1, 2}}, {1: "int key"}, {"x": object()}, ["not", "a", "dict"]],
    ids=["nan", "set", "int-key", "object", "list"],
)
@pytest_twisted.ensureDeferred
async def test_state_that_would_not_round_trip_is_refused(store: Store, state: object) -> None:
    owner = await account(store)
    await fails(store.create_garden(owner.id, "g", True, 1.0, state), InvalidValue)


@pytest_twisted.ensureDeferred
async def test_ping_and_closed_store(store: Store) -> None:
    await store.ping()
    assert store.check().status == "ok"
    await store.close()
    await fails(store.ping(), StoreUnavailable)
    await fails(store.get_account(1), StoreUnavailable)
    assert store.check().status == "fail"


@pytest_twisted.ensureDeferred
async def test_a_large_garden_round_trips(store: Store) -> None:
    # large enough for the PostgreSQL backend to check and encode it in a thread
    owner = await account(store)
    g = await garden(store, owner.id)
    bodies = [
        body(g.id, i, name=f'b"\\{i}', life_stage="plant" if i % 3 else None) for i in range(2500)
    ]
    await store.save_gardens([(attrs.evolve(g, version=1), bodies)])
    assert (await store.load_garden(g.id))[1] == bodies
    broken = [*bodies[:-1], body(g.id, 2499, vz=math.inf)]
    error = await fails(store.save_gardens([(attrs.evolve(g, version=2), broken)]), InvalidValue)
    assert error.field == "body.vz" and error.garden_id == g.id
    assert (await store.load_garden(g.id))[0].version == 1
