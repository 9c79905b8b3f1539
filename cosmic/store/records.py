"""What the store keeps: frozen records, their limits, and the checks every
backend applies before writing (so all backends refuse the same values).

The store knows nothing of game rules.  ``GardenRecord.state`` is the game's
opaque JSON document; the store only requires that it is JSON that comes back
equal (string keys, finite numbers, no NUL character).

``GardenRecord`` and ``BodyRecord`` are defined in ``cosmic.game.records``, so
that the domain can build them without importing the store (and Twisted);
they are re-exported here.
"""

from __future__ import annotations

import json
import math
import operator
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from cosmic.game.records import BodyRecord, GardenRecord
from cosmic.store.errors import InvalidValue

# Limits, in Unicode code points (an astral character such as an emoji counts
# as one).  Longer values are refused with InvalidValue, never truncated.
USERNAME_MAX = 64
DISPLAY_NAME_MAX = 128
PASSWORD_HASH_MAX = 1024
TOKEN_MAX = 256
GARDEN_NAME_MAX = 128
BODY_NAME_MAX = 128
KIND_MAX = 32
STATE_MAX_BYTES = 16 * 1024 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

LEADERBOARD_KINDS = ("total_mass", "thought_points", "transcendence")


@attrs.frozen
class AccountRecord:
    id: int
    username: str
    display_name: str
    password_hash: str
    created_at: float


@attrs.frozen
class RefreshTokenRecord:
    token_hash: str
    account_id: int
    family_id: str
    issued_at: float
    expires_at: float
    used_at: float | None = None
    revoked: bool = False


@attrs.frozen
class LeaderboardRow:
    garden_id: int
    owner_id: int
    owner_name: str  # the owner's display name
    score: float


@attrs.frozen
class SaveResult:
    """What one ``save_gardens`` call did, by garden id.

    ``stale``: the stored version is newer than the one offered (nothing written).
    ``missing``: no such garden any more (deleted meanwhile; nothing written).
    """

    saved: tuple[int, ...] = ()
    stale: tuple[int, ...] = ()
    missing: tuple[int, ...] = ()


GardenSnapshot = tuple[GardenRecord, Sequence[BodyRecord]]

# --- checks ---------------------------------------------------------------


def check_text(
    field: str,
    value: object,
    *,
    max_len: int,
    min_len: int = 0,
    garden_id: int | None = None,
) -> str:
    if not isinstance(value, str):
        raise InvalidValue(field, f"must be text, not {type(value).__name__}", garden_id)
    if "\x00" in value:
        raise InvalidValue(field, "contains a NUL character", garden_id)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(field, "is not valid Unicode (lone surrogate)", garden_id) from None
    if len(value) > max_len:
        raise InvalidValue(
            field, f"is {len(value)} characters long; the limit is {max_len}", garden_id
        )
    if len(value) < min_len:
        raise InvalidValue(field, "must not be empty", garden_id)
    return value


def check_float(field: str, value: object, garden_id: int | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(field, f"must be a number, not {type(value).__name__}", garden_id)
    result = float(value)
    if not math.isfinite(result):
        raise InvalidValue(field, f"must be finite, not {result!r}", garden_id)
    return result


def check_optional_float(field: str, value: object, garden_id: int | None = None) -> float | None:
    return None if value is None else check_float(field, value, garden_id)


def check_int(
    field: str,
    value: object,
    garden_id: int | None = None,
    low: int = INT64_MIN,
    high: int = INT64_MAX,
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(field, f"must be a whole number, not {type(value).__name__}", garden_id)
    if not low <= value <= high:
        raise InvalidValue(field, f"{value} is out of range {low}..{high}", garden_id)
    return value


def check_bool(field: str, value: object, garden_id: int | None = None) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(field, f"must be true or false, not {type(value).__name__}", garden_id)
    return value


def username_key(username: str) -> str:
    """The form usernames are unique in: NFC, then case-folded.

    Computed here rather than by each database's lower(), so that every
    backend agrees on which names collide ("Straße" and "STRASSE" do).
    """
    return unicodedata.normalize("NFC", username).casefold()


def check_account_fields(username: object, display_name: object, password_hash: object) -> None:
    check_text("username", username, max_len=USERNAME_MAX, min_len=1)
    check_text("display_name", display_name, max_len=DISPLAY_NAME_MAX)
    check_text("password_hash", password_hash, max_len=PASSWORD_HASH_MAX, min_len=1)


def check_account(record: AccountRecord) -> None:
    check_int("id", record.id)
    check_account_fields(record.username, record.display_name, record.password_hash)
    check_float("created_at", record.created_at)


def check_token(record: RefreshTokenRecord) -> None:
    check_text("token_hash", record.token_hash, max_len=TOKEN_MAX, min_len=1)
    check_int("account_id", record.account_id)
    check_text("family_id", record.family_id, max_len=TOKEN_MAX, min_len=1)
    check_float("issued_at", record.issued_at)
    check_float("expires_at", record.expires_at)
    check_optional_float("used_at", record.used_at)
    check_bool("revoked", record.revoked)


def encode_state(state: object, garden_id: int | None = None) -> str:
    """The state as compact JSON text, or InvalidValue if it would not round-trip."""
    if not isinstance(state, dict):
        raise InvalidValue("state", f"must be a dict, not {type(state).__name__}", garden_id)
    try:
        text = json.dumps(state, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidValue("state", f"is not JSON: {exc}", garden_id) from None
    _check_state_keys(state, garden_id)
    if "\\u0000" in text or "\x00" in text:
        raise InvalidValue("state", "contains a NUL character", garden_id)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidValue("state", "is not valid Unicode (lone surrogate)", garden_id) from None
    if size > STATE_MAX_BYTES:
        raise InvalidValue("state", f"is {size} bytes; the limit is {STATE_MAX_BYTES}", garden_id)
    return text


def _check_state_keys(value: object, garden_id: int | None) -> None:
    # json.dumps turns int keys into strings, which would not come back equal.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidValue(
                        "state", f"has a non-string key {key!r} (JSON keys are text)", garden_id
                    )
                stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(item)


def decode_state(text: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    return json.loads(text)


def check_garden_fields(owner_id: object, name: object, public: object, garden_id: int | None):
    check_int("owner_id", owner_id, garden_id)
    check_text("name", name, max_len=GARDEN_NAME_MAX, garden_id=garden_id)
    check_bool("public", public, garden_id)


def check_garden(record: GardenRecord) -> str:
    """Check a garden record; returns its state encoded as JSON text."""
    gid = record.id
    check_int("id", gid)
    check_garden_fields(record.owner_id, record.name, record.public, gid)
    for field in ("created_at", "saved_at", "game_time", "total_mass", "thought_points"):
        check_float(field, getattr(record, field), gid)
    check_optional_float("transcended_at", record.transcended_at, gid)
    check_int("version", record.version, gid)
    return encode_state(record.state, gid)


_BODY_FLOATS = (
    "mass",
    "radius",
    "px",
    "py",
    "pz",
    "vx",
    "vy",
    "vz",
    "created_at",
    "population",
    "life_progress",
)


def check_body(record: BodyRecord, garden_id: int) -> None:
    if record.garden_id != garden_id:
        raise InvalidValue(
            "body.garden_id", f"body {record.body_id} names garden {record.garden_id}", garden_id
        )
    check_int("body.body_id", record.body_id, garden_id)
    check_text("body.kind", record.kind, max_len=KIND_MAX, min_len=1, garden_id=garden_id)
    check_text("body.name", record.name, max_len=BODY_NAME_MAX, garden_id=garden_id)
    for field in _BODY_FLOATS:
        check_float(f"body.{field}", getattr(record, field), garden_id)
    check_int("body.level", record.level, garden_id, INT32_MIN, INT32_MAX)
    if record.life_stage is not None:
        check_text("body.life_stage", record.life_stage, max_len=KIND_MAX, garden_id=garden_id)


def check_snapshots(snapshots: Iterable[GardenSnapshot]) -> list[tuple[GardenRecord, str, list]]:
    """Check every garden of a bulk save; returns (garden, state_json, bodies).

    Refuses the whole call (InvalidValue naming the garden) on the first bad
    value, before anything is written; duplicate gardens or body ids are
    refused too.
    """
    checked: list[tuple[GardenRecord, str, list]] = []
    seen: set[int] = set()
    for garden, bodies in snapshots:
        if not isinstance(garden, GardenRecord):
            raise InvalidValue("garden", f"must be a GardenRecord, not {type(garden).__name__}")
        state = check_garden(garden)
        if garden.id in seen:
            raise InvalidValue("id", "appears twice in one save", garden.id)
        seen.add(garden.id)
        body_list = list(bodies)
        if not _bodies_look_valid(body_list, garden.id):
            # the slow path names the first offending body and field
            body_ids: set[int] = set()
            for body in body_list:
                if not isinstance(body, BodyRecord):
                    raise InvalidValue("body", f"must be a BodyRecord, not {type(body).__name__}")
                check_body(body, garden.id)
                if body.body_id in body_ids:
                    raise InvalidValue("body.body_id", f"{body.body_id} appears twice", garden.id)
                body_ids.add(body.body_id)
        checked.append((garden, state, body_list))
    return checked


_BODY_COLUMNS_GETTER = operator.attrgetter(
    "garden_id", "body_id", "kind", "name", "level", "life_stage", *_BODY_FLOATS
)
_NUMBER_TYPES = frozenset({float, int})


def _bodies_look_valid(bodies: list, garden_id: int) -> bool:
    """The common case, checked column-wise at C speed (a 10,000-body garden
    in a few milliseconds on the reactor thread).  False means "look closer":
    ``check_body`` then finds and names the problem, if there is one."""
    if not bodies:
        return True
    if not all(type(b) is BodyRecord for b in bodies):
        return False
    columns = list(zip(*map(_BODY_COLUMNS_GETTER, bodies), strict=True))
    garden_ids, body_ids, kinds, names, levels, stages = columns[:6]
    try:
        if set(garden_ids) != {garden_id} or set(map(type, body_ids)) != {int}:
            return False
        if len(set(body_ids)) != len(body_ids):
            return False
        if min(body_ids) < INT64_MIN or max(body_ids) > INT64_MAX:
            return False
        if set(map(type, levels)) != {int} or min(levels) < INT32_MIN or max(levels) > INT32_MAX:
            return False
        present_stages = [s for s in stages if s is not None]
        text_columns = (
            (kinds, 1, KIND_MAX),
            (names, 0, BODY_NAME_MAX),
            (present_stages, 0, KIND_MAX),
        )
        for texts, low, high in text_columns:
            if not texts:
                continue
            if set(map(type, texts)) != {str}:
                return False
            lengths = list(map(len, texts))
            if min(lengths) < low or max(lengths) > high:
                return False
            joined = "".join(texts)
            if "\x00" in joined:
                return False
            joined.encode("utf-8")  # a lone surrogate raises
        for column in columns[6:]:
            if not set(map(type, column)) <= _NUMBER_TYPES:
                return False
            if not math.isfinite(math.fsum(column)):
                return False
    except (UnicodeEncodeError, OverflowError, TypeError, ValueError):
        return False
    return True


def check_leaderboard_kind(kind: object) -> str:
    if kind not in LEADERBOARD_KINDS:
        raise InvalidValue("kind", f"must be one of {', '.join(LEADERBOARD_KINDS)}, not {kind!r}")
    return kind  # type: ignore[return-value]


def check_limit(field: str, value: object, high: int = 10_000) -> int:
    return check_int(field, value, None, 0, high)
