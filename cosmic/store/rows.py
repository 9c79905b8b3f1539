"""Column lists and row <-> record conversion shared by the SQL backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cosmic.store.records import (
    AccountRecord,
    BodyRecord,
    GardenRecord,
    LeaderboardRow,
    RefreshTokenRecord,
    decode_state,
)

ACCOUNT_COLUMNS = "id, username, display_name, password_hash, created_at"
TOKEN_COLUMNS = "token_hash, account_id, family_id, issued_at, expires_at, used_at, revoked"
GARDEN_COLUMNS = (
    "id, owner_id, name, public, created_at, saved_at, game_time, state, "
    "total_mass, thought_points, transcended_at, version"
)
BODY_FIELDS = (
    "garden_id",
    "body_id",
    "kind",
    "name",
    "mass",
    "radius",
    "px",
    "py",
    "pz",
    "vx",
    "vy",
    "vz",
    "level",
    "created_at",
    "life_stage",
    "population",
    "life_progress",
)
BODY_COLUMNS = ", ".join(BODY_FIELDS)

# ORDER BY and score column per leaderboard kind; ties by garden id.
LEADERBOARD_SQL = {
    "total_mass": ("g.total_mass", "g.total_mass DESC, g.id", ""),
    "thought_points": ("g.thought_points", "g.thought_points DESC, g.id", ""),
    "transcendence": (
        "g.transcended_at",
        "g.transcended_at, g.id",
        "WHERE g.transcended_at IS NOT NULL",
    ),
}


def leaderboard_query(kind: str, placeholder: str) -> str:
    score, order, where = LEADERBOARD_SQL[kind]
    return (
        f"SELECT g.id, g.owner_id, a.display_name, {score} FROM gardens g "
        f"JOIN accounts a ON a.id = g.owner_id {where} ORDER BY {order} LIMIT {placeholder}"
    )


def account(row: Sequence[Any]) -> AccountRecord:
    return AccountRecord(int(row[0]), row[1], row[2], row[3], float(row[4]))


def token(row: Sequence[Any]) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        row[0],
        int(row[1]),
        row[2],
        float(row[3]),
        float(row[4]),
        None if row[5] is None else float(row[5]),
        bool(row[6]),
    )


def garden(row: Sequence[Any]) -> GardenRecord:
    return GardenRecord(
        id=int(row[0]),
        owner_id=int(row[1]),
        name=row[2],
        public=bool(row[3]),
        created_at=float(row[4]),
        saved_at=float(row[5]),
        game_time=float(row[6]),
        state=decode_state(row[7]),
        total_mass=float(row[8]),
        thought_points=float(row[9]),
        transcended_at=None if row[10] is None else float(row[10]),
        version=int(row[11]),
    )


def body(row: Sequence[Any]) -> BodyRecord:
    return BodyRecord(
        garden_id=int(row[0]),
        body_id=int(row[1]),
        kind=row[2],
        name=row[3],
        mass=float(row[4]),
        radius=float(row[5]),
        px=float(row[6]),
        py=float(row[7]),
        pz=float(row[8]),
        vx=float(row[9]),
        vy=float(row[10]),
        vz=float(row[11]),
        level=int(row[12]),
        created_at=float(row[13]),
        life_stage=row[14],
        population=float(row[15]),
        life_progress=float(row[16]),
    )


def body_values(record: BodyRecord) -> tuple[Any, ...]:
    return tuple(getattr(record, field) for field in BODY_FIELDS)


def leaderboard(row: Sequence[Any]) -> LeaderboardRow:
    return LeaderboardRow(int(row[0]), int(row[1]), row[2], float(row[3]))
