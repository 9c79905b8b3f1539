"""Store records through the cache: session lookups and garden snapshots.

``SessionCache`` ("sessions"): the account an access token names, looked up
on every authenticated request.  The cached copy has no password hash (the
hash never leaves the database, so a shared Redis never holds one); its
``password_hash`` is empty, which the store refuses to write, so the copy
cannot be written back by mistake.

``SnapshotCache`` ("snapshots"): a stored garden and its bodies, read when
a garden is loaded.  Only *public* gardens are cached: a private garden is
read from the store every time, so no cache entry can show it to anyone, and
a garden made private is invalidated by the save that stores the change.

Values are JSON tagged with the record layout, so an entry written by a
daemon with other record fields is a miss, never a wrong record.  Both are
``ReadThrough`` caches: invalidate after every store write of the key.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Awaitable, Callable, Sequence

import attrs

from cosmic.cache.interface import CacheView
from cosmic.cache.readthrough import ReadThrough
from cosmic.store.records import AccountRecord, BodyRecord, GardenRecord

# Short: with the in-process cache, another daemon does not see this one's
# invalidations, so a rename or a deletion reaches it only when this expires.
SESSION_TTL = 10.0

_ACCOUNT_FIELDS = ("id", "username", "display_name", "created_at")
_GARDEN_FIELDS = tuple(f.name for f in attrs.fields(GardenRecord))
_BODY_FIELDS = tuple(f.name for f in attrs.fields(BodyRecord))


def _layout(*names: Sequence[str]) -> int:
    return zlib.crc32(";".join(",".join(n) for n in names).encode())


_ACCOUNT_LAYOUT = _layout(_ACCOUNT_FIELDS, tuple(f.name for f in attrs.fields(AccountRecord)))
_SNAPSHOT_LAYOUT = _layout(_GARDEN_FIELDS, _BODY_FIELDS)

Snapshot = tuple[GardenRecord, list[BodyRecord]]


def _dumps(document: object) -> bytes:
    # allow_nan=False: the store refuses non-finite numbers, so none can be here
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _loads(raw: bytes, layout: int) -> dict:
    document = json.loads(raw)
    if document.get("layout") != layout:
        raise ValueError(f"cached with another record layout ({document.get('layout')})")
    return document


def encode_account(record: AccountRecord) -> bytes:
    return _dumps(
        {"layout": _ACCOUNT_LAYOUT, "account": [getattr(record, f) for f in _ACCOUNT_FIELDS]}
    )


def decode_account(raw: bytes) -> AccountRecord:
    values = dict(zip(_ACCOUNT_FIELDS, _loads(raw, _ACCOUNT_LAYOUT)["account"], strict=True))
    return AccountRecord(password_hash="", **values)


def without_hash(record: AccountRecord) -> AccountRecord:
    return attrs.evolve(record, password_hash="")


def encode_snapshot(snapshot: Snapshot) -> bytes:
    garden, bodies = snapshot
    return _dumps(
        {
            "layout": _SNAPSHOT_LAYOUT,
            "garden": [getattr(garden, f) for f in _GARDEN_FIELDS],
            "bodies": [[getattr(b, f) for f in _BODY_FIELDS] for b in bodies],
        }
    )


def decode_snapshot(raw: bytes) -> Snapshot:
    document = _loads(raw, _SNAPSHOT_LAYOUT)
    garden = GardenRecord(**dict(zip(_GARDEN_FIELDS, document["garden"], strict=True)))
    bodies = [BodyRecord(**dict(zip(_BODY_FIELDS, row, strict=True))) for row in document["bodies"]]
    return garden, bodies


class SessionCache:
    """Accounts by id, for authenticated requests (see the module docstring)."""

    def __init__(self, view: CacheView, ttl: float = SESSION_TTL) -> None:
        self.cache: ReadThrough[AccountRecord] = ReadThrough(
            view, ttl, encode_account, decode_account
        )

    async def account(
        self, account_id: int, load: Callable[[], Awaitable[AccountRecord | None]]
    ) -> AccountRecord | None:
        async def stored() -> AccountRecord | None:
            record = await load()
            return None if record is None else without_hash(record)

        return await self.cache.get(str(account_id), stored)

    def invalidate(self, account_id: int) -> Awaitable[None]:
        return self.cache.invalidate(str(account_id))


class SnapshotCache:
    """Stored public gardens by id, for loading (see the module docstring)."""

    def __init__(self, view: CacheView, ttl: float) -> None:
        self.cache: ReadThrough[Snapshot] = ReadThrough(
            view, ttl, encode_snapshot, decode_snapshot, keep=lambda s: s[0].public
        )

    async def load(
        self, garden_id: int, load: Callable[[], Awaitable[Snapshot | None]]
    ) -> Snapshot | None:
        return await self.cache.get(str(garden_id), load)

    def put(self, snapshot: tuple[GardenRecord, Sequence[BodyRecord]]) -> Awaitable[None]:
        garden, bodies = snapshot
        return self.cache.put(str(garden.id), (garden, list(bodies)))

    def invalidate(self, *garden_ids: int) -> Awaitable[None]:
        return self.cache.invalidate(*(str(g) for g in garden_ids))
