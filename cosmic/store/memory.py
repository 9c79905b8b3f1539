"""An in-process store with the exact behaviour of the real backends.

For game and web tests: no threads, no I/O, every Deferred already fired.
Values go through the same checks, and the state through a JSON round trip,
so a test sees what PostgreSQL or SQLite would give back.  ``available`` can
be switched off to simulate an outage (every call then fails with
StoreUnavailable), and ``calls`` counts calls by method name.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
from twisted.internet import defer

from cosmic.readiness import Check
from cosmic.store import records as r
from cosmic.store.errors import Conflict, NotFound, StoreUnavailable, UsernameTaken
from cosmic.store.records import (
    AccountRecord,
    BodyRecord,
    GardenRecord,
    GardenSnapshot,
    LeaderboardRow,
    RefreshTokenRecord,
    SaveResult,
)

T = TypeVar("T")


def _deferred(method: Callable[..., T]) -> Callable[..., defer.Deferred[T]]:
    @functools.wraps(method)
    def wrapper(self: MemoryStore, *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        self.calls[method.__name__] += 1
        if not self.available:
            return defer.fail(StoreUnavailable("memory store switched off (simulated outage)"))
        if self._closed and method.__name__ != "open":
            return defer.fail(StoreUnavailable("store is closed"))
        return defer.maybeDeferred(method, self, *args, **kwargs)

    return wrapper


class MemoryStore:
    backend = "memory"

    def __init__(self) -> None:
        self.available = True
        self.calls: Counter[str] = Counter()
        self._closed = False
        self._next_account = 1
        self._next_garden = 1
        self._accounts: dict[int, AccountRecord] = {}
        self._by_key: dict[str, int] = {}
        self._tokens: dict[str, RefreshTokenRecord] = {}
        self._gardens: dict[int, tuple[GardenRecord, str]] = {}  # record, state JSON
        self._bodies: dict[int, dict[int, BodyRecord]] = {}

    # lifecycle
    @_deferred
    def open(self) -> None:
        self._closed = False

    def close(self) -> defer.Deferred[None]:
        self._closed = True
        return defer.succeed(None)

    @_deferred
    def ping(self) -> None:
        return None

    def check(self) -> Check:
        if self._closed:
            return Check.fail("memory store closed")
        if not self.available:
            return Check.degraded("memory store switched off (simulated outage)")
        return Check.ok(f"memory: {len(self._accounts)} accounts, {len(self._gardens)} gardens")

    # accounts
    @_deferred
    def create_account(
        self, username: str, display_name: str, password_hash: str, now: float
    ) -> AccountRecord:
        r.check_account_fields(username, display_name, password_hash)
        now = r.check_float("created_at", now)
        key = r.username_key(username)
        if key in self._by_key:
            raise UsernameTaken(username)
        record = AccountRecord(self._next_account, username, display_name, password_hash, now)
        self._next_account += 1
        self._accounts[record.id] = record
        self._by_key[key] = record.id
        return record

    @_deferred
    def get_account(self, account_id: int) -> AccountRecord | None:
        return self._accounts.get(r.check_int("account_id", account_id))

    @_deferred
    def find_account(self, username: str) -> AccountRecord | None:
        r.check_text("username", username, max_len=r.USERNAME_MAX, min_len=1)
        account_id = self._by_key.get(r.username_key(username))
        return None if account_id is None else self._accounts[account_id]

    @_deferred
    def update_account(self, record: AccountRecord) -> AccountRecord:
        r.check_account(record)
        old = self._accounts.get(record.id)
        if old is None:
            raise NotFound(f"account {record.id} does not exist")
        key, old_key = r.username_key(record.username), r.username_key(old.username)
        if key != old_key and key in self._by_key:
            raise UsernameTaken(record.username)
        del self._by_key[old_key]
        self._by_key[key] = record.id
        new = attrs.evolve(record, created_at=old.created_at)
        self._accounts[record.id] = new
        return new

    @_deferred
    def delete_account(self, account_id: int) -> bool:
        record = self._accounts.pop(r.check_int("account_id", account_id), None)
        if record is None:
            return False
        del self._by_key[r.username_key(record.username)]
        for token_hash in [h for h, t in self._tokens.items() if t.account_id == account_id]:
            del self._tokens[token_hash]
        for garden_id in [g for g, (rec, _) in self._gardens.items() if rec.owner_id == account_id]:
            del self._gardens[garden_id]
            self._bodies.pop(garden_id, None)
        return True

    # refresh tokens
    @_deferred
    def add_refresh_token(self, record: RefreshTokenRecord) -> None:
        r.check_token(record)
        if record.account_id not in self._accounts:
            raise NotFound(f"account {record.account_id} does not exist")
        if record.token_hash in self._tokens:
            raise Conflict("refresh token hash already stored")
        self._tokens[record.token_hash] = record

    @_deferred
    def get_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        r.check_text("token_hash", token_hash, max_len=r.TOKEN_MAX, min_len=1)
        return self._tokens.get(token_hash)

    @_deferred
    def use_refresh_token(self, token_hash: str, when: float) -> bool:
        r.check_text("token_hash", token_hash, max_len=r.TOKEN_MAX, min_len=1)
        when = r.check_float("when", when)
        token = self._tokens.get(token_hash)
        if token is None or token.used_at is not None or token.revoked:
            return False
        if token.expires_at <= when:
            return False
        self._tokens[token_hash] = attrs.evolve(token, used_at=when)
        return True

    def _revoke(self, match: Callable[[RefreshTokenRecord], bool]) -> int:
        count = 0
        for token_hash, token in list(self._tokens.items()):
            if match(token) and not token.revoked:
                self._tokens[token_hash] = attrs.evolve(token, revoked=True)
                count += 1
        return count

    @_deferred
    def revoke_token_family(self, family_id: str) -> int:
        r.check_text("family_id", family_id, max_len=r.TOKEN_MAX, min_len=1)
        return self._revoke(lambda t: t.family_id == family_id)

    @_deferred
    def revoke_account_tokens(self, account_id: int) -> int:
        r.check_int("account_id", account_id)
        return self._revoke(lambda t: t.account_id == account_id)

    # gardens
    def _garden(self, garden_id: int) -> GardenRecord:
        record, state = self._gardens[garden_id]
        return attrs.evolve(record, state=r.decode_state(state))

    @_deferred
    def create_garden(
        self, owner_id: int, name: str, public: bool, now: float, state: dict
    ) -> GardenRecord:
        r.check_garden_fields(owner_id, name, public, None)
        now = r.check_float("now", now)
        text = r.encode_state(state)
        if owner_id not in self._accounts:
            raise NotFound(f"account {owner_id} does not exist")
        record = GardenRecord(
            id=self._next_garden,
            owner_id=owner_id,
            name=name,
            public=public,
            created_at=now,
            saved_at=now,
            game_time=0.0,
            state={},
        )
        self._next_garden += 1
        self._gardens[record.id] = (record, text)
        self._bodies[record.id] = {}
        return self._garden(record.id)

    @_deferred
    def load_garden(self, garden_id: int) -> tuple[GardenRecord, list[BodyRecord]] | None:
        r.check_int("garden_id", garden_id)
        if garden_id not in self._gardens:
            return None
        bodies = self._bodies.get(garden_id, {})
        return self._garden(garden_id), [bodies[k] for k in sorted(bodies)]

    @_deferred
    def gardens_of(self, owner_id: int) -> list[GardenRecord]:
        r.check_int("owner_id", owner_id)
        return [
            self._garden(gid)
            for gid in sorted(self._gardens)
            if self._gardens[gid][0].owner_id == owner_id
        ]

    @_deferred
    def public_gardens(self, limit: int, offset: int = 0) -> list[GardenRecord]:
        r.check_limit("limit", limit)
        r.check_int("offset", offset, None, 0)
        ids = [gid for gid in sorted(self._gardens) if self._gardens[gid][0].public]
        return [self._garden(gid) for gid in ids[offset : offset + limit]]

    @_deferred
    def save_gardens(self, snapshots: Sequence[GardenSnapshot]) -> SaveResult:
        checked = r.check_snapshots(snapshots)
        saved, stale, missing = [], [], []
        for garden, state, bodies in checked:
            current = self._gardens.get(garden.id)
            if current is None:
                missing.append(garden.id)
                continue
            old = current[0]
            if old.version > garden.version:
                stale.append(garden.id)
                continue
            record = attrs.evolve(
                garden, owner_id=old.owner_id, created_at=old.created_at, state={}
            )
            self._gardens[garden.id] = (record, state)
            self._bodies[garden.id] = {b.body_id: b for b in bodies}
            saved.append(garden.id)
        return SaveResult(tuple(saved), tuple(stale), tuple(missing))

    @_deferred
    def delete_garden(self, garden_id: int) -> bool:
        r.check_int("garden_id", garden_id)
        self._bodies.pop(garden_id, None)
        return self._gardens.pop(garden_id, None) is not None

    @_deferred
    def top_gardens(self, kind: str, limit: int) -> list[LeaderboardRow]:
        r.check_leaderboard_kind(kind)
        r.check_limit("limit", limit)
        rows = []
        for gid, (record, _) in self._gardens.items():
            owner = self._accounts[record.owner_id]
            if kind == "transcendence":
                if record.transcended_at is None:
                    continue
                score, order = record.transcended_at, record.transcended_at
            else:
                score = getattr(record, kind)
                order = -score
            rows.append(((order, gid), LeaderboardRow(gid, owner.id, owner.display_name, score)))
        rows.sort(key=lambda pair: pair[0])
        return [row for _, row in rows[:limit]]
