"""The session and snapshot caches: encodings, and Accounts reading through
the "sessions" cache, invalidated by every change of the account."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task

from cosmic.accounts import AccountGone, Accounts
from cosmic.auth import Argon2Parameters, PasswordHasher, TokenIssuer
from cosmic.cache.interface import CacheView
from cosmic.cache.memory import MemoryCache
from cosmic.cache.resilient import ResilientCache
from cosmic.metrics import create as create_metrics
from cosmic.store import cached
from cosmic.store.cached import SessionCache, SnapshotCache
from cosmic.store.errors import InvalidValue
from cosmic.store.memory import MemoryStore
from cosmic.store.records import AccountRecord, BodyRecord, GardenRecord
from tests.unit.cache.test_resilient import Flaky

SECRET = "s" * 40
FAST = Argon2Parameters(time_cost=1, memory_kib=8, parallelism=1)


def garden(public: bool = True, **fields: Any) -> GardenRecord:
    values: dict[str, Any] = dict(
        id=7,
        owner_id=3,
        name="Zoë's 🌌 'garden'; DROP TABLE gardens",
        public=public,
        created_at=1.5,
        saved_at=1_700_000_000.25,
        game_time=12.0,
        state={"resources": {"cosmic_dust": 0.1 + 0.2}, "completed": ["x"], "n": None},
        total_mass=6.02e23,
        thought_points=1e-300,
        transcended_at=None,
        version=41,
    )
    values.update(fields)
    return GardenRecord(**values)


def bodies() -> list[BodyRecord]:
    return [
        BodyRecord(7, 1, "star", "", 1.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1, 1.5),
        BodyRecord(
            *(7, 2, "planet", "Γη", 3e-6, 4e-5, 1.0, -2.0, 0.5, 0.1, 6.2, -0.0, 3, 2.5),
            *("life", 12.5, 0.75),
        ),
    ]


def test_snapshots_round_trip_exactly() -> None:
    snapshot = (garden(), bodies())
    assert cached.decode_snapshot(cached.encode_snapshot(snapshot)) == snapshot


def test_a_cached_account_carries_no_password_hash() -> None:
    record = AccountRecord(3, "ada", "Ada ✨", "$argon2id$v=19$secret", 1.25)
    raw = cached.encode_account(record)
    assert b"argon2" not in raw and b"secret" not in raw
    back = cached.decode_account(raw)
    assert back == cached.without_hash(record) and back.password_hash == ""


def test_an_entry_of_another_layout_is_refused() -> None:
    raw = cached.encode_snapshot((garden(), bodies())).replace(b'"layout":', b'"layout":1', 1)
    with pytest.raises(ValueError, match="layout"):
        cached.decode_snapshot(raw)


def test_the_snapshot_cache_keeps_public_gardens_only() -> None:
    clock = task.Clock()
    memory = MemoryCache(100, clock=clock)
    snapshots = SnapshotCache(CacheView(memory, "snapshots"), 30.0)
    reads: list[int] = []

    def load(record: GardenRecord):
        async def stored() -> Any:
            reads.append(record.id)
            return record, bodies()

        return stored

    out: list[Any] = []
    for record in (garden(id=1, public=True), garden(id=2, public=False)):
        for _ in range(2):
            defer.ensureDeferred(snapshots.load(record.id, load(record))).addBoth(out.append)
    assert [snap[0].id for snap in out] == [1, 1, 2, 2]
    assert reads == [1, 2, 2]
    assert len(memory) == 1


# -- Accounts through the "sessions" cache ------------------------------------------------


class Setup:
    def __init__(self, cache: Any = None) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.store = MemoryStore()
        self.metrics = create_metrics("t")
        self.cache = cache if cache is not None else MemoryCache(100, clock=self.clock)
        self.view = CacheView(self.cache, "sessions", self.metrics.cache)
        self.accounts = Accounts(
            self.store,
            PasswordHasher(FAST, run_in_thread=defer.maybeDeferred),
            TokenIssuer(SECRET, issuer="cosmic", audience="players", clock=self.clock),
            clock=self.clock,
            refresh_ttl=3600.0,
            sessions=SessionCache(self.view, 10.0),
        )

    async def login(self, name: str = "ada") -> Any:
        await self.accounts.register(name, "correct horse battery", "Ada")
        return await self.accounts.login(name, "correct horse battery")

    def reads(self) -> int:
        return self.store.calls["get_account"]

    def counted(self, result: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "t_cache_requests_total", {"cache": "sessions", "result": result}
        )


@pytest_twisted.ensureDeferred
async def test_authenticate_reads_the_store_once_per_ttl() -> None:
    s = Setup()
    session = await s.login()
    before = s.reads()
    for _ in range(5):
        claims, account = await s.accounts.authenticate(session.access.token)
        assert claims.account_id == account.id == session.account.id
        assert account.display_name == "Ada"
        assert account.password_hash == ""
    assert s.reads() == before + 1
    assert (s.counted("hit"), s.counted("miss")) == (4, 1)
    s.clock.advance(10.0)
    await s.accounts.authenticate(session.access.token)
    assert s.reads() == before + 2


@pytest_twisted.ensureDeferred
async def test_a_cached_account_cannot_be_written_back() -> None:
    s = Setup()
    session = await s.login()
    _, account = await s.accounts.authenticate(session.access.token)
    with pytest.raises(InvalidValue, match="password_hash"):
        await s.store.update_account(account)


@pytest_twisted.ensureDeferred
async def test_rename_is_seen_at_once() -> None:
    s = Setup()
    session = await s.login()
    await s.accounts.authenticate(session.access.token)
    await s.accounts.rename(session.account.id, "Lovelace")
    _, account = await s.accounts.authenticate(session.access.token)
    assert account.display_name == "Lovelace"
    stored = await s.store.get_account(session.account.id)
    assert stored.password_hash.startswith("$argon2")  # rename kept the real hash


@pytest_twisted.ensureDeferred
async def test_a_deleted_account_is_gone_at_once() -> None:
    s = Setup()
    session = await s.login()
    await s.accounts.authenticate(session.access.token)
    assert await s.accounts.delete(session.account.id)
    with pytest.raises(AccountGone):
        await s.accounts.authenticate(session.access.token)
    with pytest.raises(AccountGone):  # and nothing of it was cached on the way
        await s.accounts.authenticate(session.access.token)


@pytest_twisted.ensureDeferred
async def test_logout_and_token_reuse_invalidate_the_session() -> None:
    s = Setup()
    session = await s.login()
    await s.accounts.authenticate(session.access.token)
    key = f"sessions:{session.account.id}"
    assert await s.cache.get(key) is not None
    await s.accounts.logout(session.refresh_token)
    assert await s.cache.get(key) is None

    again = await s.accounts.login("ada", "correct horse battery")
    await s.accounts.refresh(again.refresh_token)
    await s.accounts.authenticate(again.access.token)
    assert await s.cache.get(key) is not None
    with pytest.raises(Exception, match="already used"):
        await s.accounts.refresh(again.refresh_token)  # reuse revokes the family
    assert await s.cache.get(key) is None


@pytest_twisted.ensureDeferred
async def test_redis_down_falls_back_to_the_store_silently() -> None:
    clock = task.Clock()
    flaky = Flaky(clock)
    s = Setup(ResilientCache(flaky, clock=clock))
    session = await s.login()
    await s.accounts.authenticate(session.access.token)
    flaky.up = False
    before = s.reads()
    for _ in range(3):
        _, account = await s.accounts.authenticate(session.access.token)
        assert account.id == session.account.id
    assert s.reads() >= before + 2  # served by the store while the cache is out
    await s.accounts.rename(session.account.id, "Countess")  # invalidation dropped...
    flaky.up = True
    clock.advance(60.0)  # ...and replayed when the cache is back
    _, account = await s.accounts.authenticate(session.access.token)
    assert account.display_name == "Countess"


@pytest_twisted.ensureDeferred
async def test_without_a_session_cache_nothing_changes() -> None:
    s = Setup()
    s.accounts.sessions = None
    session = await s.login()
    before = s.reads()
    _, account = await s.accounts.authenticate(session.access.token)
    _, account = await s.accounts.authenticate(session.access.token)
    assert s.reads() == before + 2
    assert account.password_hash.startswith("$argon2")
    assert len(s.cache) == 0
