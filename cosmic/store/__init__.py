"""Persistence: one store interface (cosmic.store.interface) with PostgreSQL,
SQLite and in-memory backends, migrations, write-behind saving, leaderboards.

The wiring entry points are in cosmic.store.service (build_persistence,
migrate); the game uses the records and errors re-exported here.
"""

from cosmic.store.errors import (
    Conflict,
    InvalidValue,
    MigrationError,
    NotFound,
    PoolExhausted,
    QueryTimeout,
    StoreError,
    StoreUnavailable,
    UsernameTaken,
)
from cosmic.store.interface import Store
from cosmic.store.records import (
    LEADERBOARD_KINDS,
    AccountRecord,
    BodyRecord,
    GardenRecord,
    LeaderboardRow,
    RefreshTokenRecord,
    SaveResult,
)

__all__ = [
    "LEADERBOARD_KINDS",
    "AccountRecord",
    "BodyRecord",
    "Conflict",
    "GardenRecord",
    "InvalidValue",
    "LeaderboardRow",
    "MigrationError",
    "NotFound",
    "PoolExhausted",
    "QueryTimeout",
    "RefreshTokenRecord",
    "SaveResult",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UsernameTaken",
]
