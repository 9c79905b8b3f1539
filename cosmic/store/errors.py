"""Typed store errors.  Callers catch these, never a driver's exceptions.

``StoreUnavailable`` (and its subclasses) are transient: the same call may
succeed later, and the write-behind saver retries them.  Everything else is
about the request itself and retrying it unchanged will fail the same way.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached now (down, closed, timed out); transient."""


class PoolExhausted(StoreUnavailable):
    """Every pooled connection stayed busy for the whole acquire timeout."""

    def __init__(self, timeout: float, max_size: int, waiting: int) -> None:
        super().__init__(
            f"no database connection became free within {timeout:g} s "
            f"(database.acquire_timeout): all {max_size} connections of the pool "
            f"(database.pool_max_size) are in use and {waiting} more queries are waiting"
        )
        self.timeout = timeout
        self.max_size = max_size
        self.waiting = waiting


class QueryTimeout(StoreUnavailable):
    """A statement ran longer than database.statement_timeout and was cancelled."""


class InvalidValue(StoreError, ValueError):
    """A value the store refuses (too long, NUL character, not finite, ...).

    ``field`` names the offending field; ``garden_id`` is set when the value
    belongs to one garden of a bulk save, so a caller can set that garden
    aside and save the others.
    """

    def __init__(self, field: str, reason: str, garden_id: int | None = None) -> None:
        where = f" (garden {garden_id})" if garden_id is not None else ""
        super().__init__(f"{field}{where}: {reason}")
        self.field = field
        self.reason = reason
        self.garden_id = garden_id


class Conflict(StoreError):
    """The write contradicts what is stored (a duplicate key)."""


class UsernameTaken(Conflict):
    def __init__(self, username: str) -> None:
        super().__init__(f"username {username!r} is taken")
        self.username = username


class NotFound(StoreError):
    """A record the call depends on does not exist."""


class MigrationError(StoreError):
    """The schema cannot be brought to the version this code needs."""
