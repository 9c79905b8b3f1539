"""Versioned SQL migrations: ``migrations/<backend>/NNNN_name.sql``.

Each backend applies the files it has not recorded in ``schema_migrations``,
in version order, under a lock (an advisory lock on PostgreSQL, the write
lock of ``BEGIN IMMEDIATE`` on SQLite), so concurrent starts apply each file
once.  A file changed after it was applied is refused (its checksum is
recorded); a database with versions this code does not know is only logged.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from functools import cache
from pathlib import Path

import attrs

from cosmic.store.errors import MigrationError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql\Z")

# pg_advisory_lock key for migrations: "cosmic" in ASCII.
ADVISORY_LOCK_KEY = 0x636F736D6963


@attrs.frozen
class Migration:
    version: int
    name: str  # e.g. "0001_initial"
    sql: str
    checksum: str


@cache
def migrations(backend: str) -> tuple[Migration, ...]:
    """Every migration of ``backend`` ("postgresql" or "sqlite"), by version."""
    folder = MIGRATIONS_DIR / backend
    if not folder.is_dir():
        raise MigrationError(f"no migrations for backend {backend!r} in {folder}")
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations have version {version}")
        sql = path.read_text(encoding="utf-8")
        found[version] = Migration(
            version, path.stem, sql, hashlib.sha256(sql.encode("utf-8")).hexdigest()
        )
    if not found:
        raise MigrationError(f"no migration files in {folder}")
    return tuple(found[v] for v in sorted(found))


def pending(
    known: tuple[Migration, ...], applied: dict[int, str], log_newer: object = None
) -> list[Migration]:
    """The migrations still to apply, after checking the applied ones' checksums."""
    for migration in known:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"migration {migration.name} was changed after it was applied "
                f"(recorded checksum {recorded[:12]}..., file {migration.checksum[:12]}...); "
                "add a new migration instead of editing an applied one"
            )
    return [m for m in known if m.version not in applied]


def unknown_versions(known: tuple[Migration, ...], applied: dict[int, str]) -> list[int]:
    versions = {m.version for m in known}
    return sorted(v for v in applied if v not in versions)


def split_sqlite(sql: str) -> list[str]:
    """Split a script into statements (sqlite3's executescript would COMMIT)."""
    statements: list[str] = []
    buffer = ""
    for part in sql.split(";"):
        buffer += part + ";"
        if sqlite3.complete_statement(buffer):
            text = _strip_comments(buffer)
            if text:
                statements.append(buffer.strip())
            buffer = ""
    return statements


def _strip_comments(text: str) -> str:
    lines = [line.split("--", 1)[0] for line in text.splitlines()]
    return "".join(lines).strip().strip(";").strip()
