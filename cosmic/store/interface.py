"""The one store interface.  Every method returns a Deferred.

Backends: ``PostgresStore`` (production), ``SQLiteStore`` (the embedded
default) and ``MemoryStore`` (an in-process fake for tests).  The contract
suite in tests/contract runs the same assertions against all three.

Failures are typed (cosmic.store.errors): ``InvalidValue`` for refused input,
``UsernameTaken``/``Conflict`` for duplicates, ``NotFound`` when a referenced
record is missing, ``StoreUnavailable`` (``PoolExhausted``, ``QueryTimeout``)
when the backend cannot answer now.  A driver exception never escapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from twisted.internet.defer import Deferred

from cosmic.readiness import Check
from cosmic.store.records import (
    AccountRecord,
    BodyRecord,
    GardenRecord,
    GardenSnapshot,
    LeaderboardRow,
    RefreshTokenRecord,
    SaveResult,
)


@runtime_checkable
class Store(Protocol):
    backend: str  # "postgresql", "sqlite" or "memory"

    def open(self) -> Deferred[None]:
        """Connect (and nothing else: migrations are separate, see migrate())."""

    def close(self) -> Deferred[None]:
        """Release every connection; later calls fail with StoreUnavailable."""

    def ping(self) -> Deferred[None]:
        """A round trip to the backend; fails with StoreUnavailable when it is down."""

    def check(self) -> Check:
        """Readiness: ok, degraded (backend unreachable, recovering) or fail."""

    # accounts
    def create_account(
        self, username: str, display_name: str, password_hash: str, now: float
    ) -> Deferred[AccountRecord]:
        """UsernameTaken if the name collides case-insensitively (NFC + casefold)."""

    def get_account(self, account_id: int) -> Deferred[AccountRecord | None]: ...

    def find_account(self, username: str) -> Deferred[AccountRecord | None]:
        """By username, case-insensitively."""

    def update_account(self, record: AccountRecord) -> Deferred[AccountRecord]:
        """Replace username, display_name and password_hash; NotFound, UsernameTaken."""

    def delete_account(self, account_id: int) -> Deferred[bool]:
        """True if it existed; its gardens, bodies and tokens go with it."""

    # refresh tokens
    def add_refresh_token(self, record: RefreshTokenRecord) -> Deferred[None]:
        """Conflict if the hash exists; NotFound if the account does not."""

    def get_refresh_token(self, token_hash: str) -> Deferred[RefreshTokenRecord | None]: ...

    def use_refresh_token(self, token_hash: str, when: float) -> Deferred[bool]:
        """Atomically mark used at ``when``: true only for the first use of a token
        that exists, is unused, unrevoked and not expired (expires_at > when)."""

    def revoke_token_family(self, family_id: str) -> Deferred[int]:
        """Revoke every token of the family; returns how many were not revoked yet."""

    def revoke_account_tokens(self, account_id: int) -> Deferred[int]: ...

    # gardens
    def create_garden(
        self, owner_id: int, name: str, public: bool, now: float, state: dict
    ) -> Deferred[GardenRecord]:
        """A new garden (created_at = saved_at = now, game_time 0, version 0);
        NotFound if the owner does not exist."""

    def load_garden(self, garden_id: int) -> Deferred[tuple[GardenRecord, list[BodyRecord]] | None]:
        """The garden and its bodies (ordered by body_id), or None."""

    def gardens_of(self, owner_id: int) -> Deferred[list[GardenRecord]]:
        """The owner's gardens, by id."""

    def public_gardens(self, limit: int, offset: int = 0) -> Deferred[list[GardenRecord]]:
        """Public gardens by id, a page at a time."""

    def save_gardens(self, snapshots: Sequence[GardenSnapshot]) -> Deferred[SaveResult]:
        """Bulk save in one transaction.  Each garden's row is updated (name,
        public, saved_at, game_time, state, scores, transcended_at, version;
        owner_id and created_at never change) only if its version is at least
        the stored one; its body set is then replaced exactly (bodies not listed
        are deleted).  Gardens that no longer exist are reported, not recreated.
        InvalidValue (naming the garden) refuses the whole call before writing."""

    def delete_garden(self, garden_id: int) -> Deferred[bool]: ...

    def top_gardens(self, kind: str, limit: int) -> Deferred[list[LeaderboardRow]]:
        """Leaderboard source rows: ``total_mass`` and ``thought_points`` highest
        first; ``transcendence`` earliest transcended_at first, transcended
        gardens only.  Ties by garden id ascending."""
