"""The embedded default store: one SQLite file, one dedicated worker thread.

The connection lives in, and is only ever touched by, one thread of its own;
the reactor thread hands it jobs through a queue and gets the results back
with ``callFromThread``, so nothing here blocks the reactor.  Values are
checked and the garden state is encoded to JSON on the reactor thread before
a job is queued: the worker never reads live game objects.

WAL journal (readers do not wait for the writer), foreign keys on,
``synchronous=NORMAL`` (a power cut can lose the last transactions, never
corrupt the file), ``busy_timeout`` = database.acquire_timeout for another
process holding the write lock, and statements interrupted after
database.statement_timeout.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from cosmic.metrics import StoreMetrics
from cosmic.readiness import Check
from cosmic.store import records as r
from cosmic.store import rows, schema
from cosmic.store.errors import (
    Conflict,
    InvalidValue,
    MigrationError,
    NotFound,
    QueryTimeout,
    StoreError,
    StoreUnavailable,
    UsernameTaken,
)
from cosmic.store.instrument import observe
from cosmic.store.records import (
    AccountRecord,
    BodyRecord,
    GardenRecord,
    GardenSnapshot,
    LeaderboardRow,
    RefreshTokenRecord,
    SaveResult,
)

log = Logger(namespace="cosmic.store.sqlite")
T = TypeVar("T")

_STOP = object()


def path_from_url(url: str, cwd: Path | None = None) -> Path:
    """sqlite:///var/x.db -> <cwd>/var/x.db; sqlite:////abs/x.db -> /abs/x.db."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite:/// URL: {url!r}")
    raw = unquote(url[len("sqlite:///") :].split("?", 1)[0])
    if not raw:
        raise ValueError("the sqlite URL names no file")
    path = Path(raw)
    return path if path.is_absolute() else (cwd or Path.cwd()) / path


class _Worker:
    """One thread that owns the connection and runs queued jobs in order."""

    def __init__(self, reactor: Any, name: str) -> None:
        self._reactor = reactor
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.pending = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        d: defer.Deferred[T] = defer.Deferred()
        self.pending += 1
        self._queue.put((job, args, d))
        return d

    def stop(self) -> None:
        self._queue.put(_STOP)

    def _deliver(self, d: defer.Deferred[Any], result: Any) -> None:
        self.pending -= 1
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            job, args, d = item
            try:
                result = job(*args)
            except BaseException:
                result = Failure()
            self._reactor.callFromThread(self._deliver, d, result)


class SQLiteStore:
    backend = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        reactor: Any = None,
        metrics: StoreMetrics | None = None,
        busy_timeout: float = 5.0,
        statement_timeout: float = 10.0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.path = Path(path)
        self._reactor = reactor
        self._metrics = metrics
        self._busy_timeout = busy_timeout
        self._statement_timeout = statement_timeout
        self._worker = _Worker(reactor, f"cosmic-sqlite:{self.path.name}")
        self._conn: sqlite3.Connection | None = None  # touched only by the worker
        self._deadline = 0.0  # likewise
        self._state = "closed"

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SQLiteStore:
        return cls(path_from_url(url), **kwargs)

    # --- lifecycle ------------------------------------------------------

    def open(self) -> defer.Deferred[None]:
        if self._state == "open":
            return defer.succeed(None)
        self._worker = _Worker(self._reactor, f"cosmic-sqlite:{self.path.name}")
        self._worker.start()
        self._state = "opening"
        d = self._worker.submit(self._open_in_thread)

        def opened(_: Any) -> None:
            self._state = "open"
            log.info("sqlite store open at {path}", path=str(self.path))

        def failed(failure: Failure) -> Failure:
            self._worker.stop()
            self._state = "closed"
            return Failure(
                StoreUnavailable(f"cannot open SQLite database {self.path}: {failure.value}")
            )

        return d.addCallbacks(opened, failed)

    def _open_in_thread(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.path),
            isolation_level=None,  # explicit BEGIN/COMMIT only
            timeout=self._busy_timeout,
            check_same_thread=True,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            conn.set_progress_handler(self._interrupt_if_late, 20_000)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _interrupt_if_late(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def close(self) -> defer.Deferred[None]:
        if self._state == "closed":
            return defer.succeed(None)
        self._state = "closing"
        d = self._worker.submit(self._close_in_thread)
        self._worker.stop()

        def closed(result: Any) -> Any:
            self._state = "closed"
            return None if not isinstance(result, Failure) else result

        return d.addBoth(closed)

    def _close_in_thread(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def check(self) -> Check:
        if self._state != "open":
            return Check.fail(f"sqlite store {self._state}")
        return Check.ok(f"sqlite {self.path} ({self._worker.pending} queued)")

    # --- running jobs -----------------------------------------------------

    def _run(self, operation: str, job: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        if self._state != "open":
            d: defer.Deferred[T] = defer.fail(StoreUnavailable(f"sqlite store is {self._state}"))
        else:
            d = self._worker.submit(self._guarded, job, args)
            d.addErrback(self._translate, operation)
        return observe(self._metrics, operation, d)

    def _guarded(self, job: Callable[..., T], args: tuple[Any, ...]) -> T:
        assert self._conn is not None
        self._deadline = time.monotonic() + self._statement_timeout
        try:
            return job(self._conn, *args)
        except BaseException:
            if self._conn.in_transaction:
                self._conn.rollback()
            raise

    def _translate(self, failure: Failure, operation: str) -> Failure:
        exc = failure.value
        if isinstance(exc, StoreError):
            return failure
        if isinstance(exc, sqlite3.IntegrityError):
            text = str(exc)
            if "accounts.username_key" in text:
                return Failure(UsernameTaken("?"))
            if "FOREIGN KEY" in text:
                return Failure(NotFound(f"{operation}: a referenced record does not exist"))
            return Failure(Conflict(f"{operation}: {text}"))
        if isinstance(exc, sqlite3.OperationalError):
            text = str(exc)
            if "interrupted" in text:
                return Failure(
                    QueryTimeout(
                        f"{operation} ran longer than {self._statement_timeout:g} s "
                        "(database.statement_timeout)"
                    )
                )
            if "locked" in text or "busy" in text:
                return Failure(StoreUnavailable(f"{operation}: {text}"))
            return Failure(StoreError(f"{operation}: {text}"))
        if isinstance(exc, sqlite3.Error):
            return Failure(StoreError(f"{operation}: {exc}"))
        return failure

    @staticmethod
    def _write(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        result = work(conn)
        conn.execute("COMMIT")
        return result

    # --- migrations ---------------------------------------------------------

    def migrate(self) -> defer.Deferred[list[str]]:
        """Apply pending migrations under the database write lock; their names."""
        if self._state != "open":
            return defer.fail(StoreUnavailable(f"sqlite store is {self._state}"))
        known = schema.migrations("sqlite")
        d = self._worker.submit(self._migrate_in_thread, known)

        def translate(failure: Failure) -> Failure:
            if failure.check(StoreError):
                return failure
            return Failure(MigrationError(f"sqlite migration failed: {failure.value}"))

        return d.addErrback(translate)

    def _migrate_in_thread(self, known: tuple[schema.Migration, ...]) -> list[str]:
        conn = self._conn
        assert conn is not None
        self._deadline = float("inf")  # a migration may take long; busy_timeout still applies
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            applied = dict(conn.execute("SELECT version, checksum FROM schema_migrations"))
            todo = schema.pending(known, applied)
            newer = schema.unknown_versions(known, applied)
            for migration in todo:
                for statement in schema.split_sqlite(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, migration.checksum, time.time()),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        if newer:
            log.warn(
                "the database has schema versions {versions} this code does not know",
                versions=newer,
            )
        return [m.name for m in todo]

    # --- the interface ------------------------------------------------------

    def ping(self) -> defer.Deferred[None]:
        return self._run("ping", lambda conn: conn.execute("SELECT 1").fetchone() and None)

    def create_account(
        self, username: str, display_name: str, password_hash: str, now: float
    ) -> defer.Deferred[AccountRecord]:
        try:
            r.check_account_fields(username, display_name, password_hash)
            now = r.check_float("created_at", now)
        except InvalidValue as exc:
            return defer.fail(exc)
        key = r.username_key(username)

        def job(conn: sqlite3.Connection) -> AccountRecord:
            cur = conn.execute(
                "INSERT INTO accounts (username, username_key, display_name, password_hash, "
                "created_at) VALUES (?, ?, ?, ?, ?)",
                (username, key, display_name, password_hash, now),
            )
            return AccountRecord(int(cur.lastrowid), username, display_name, password_hash, now)

        return self._run("create_account", job).addErrback(_name_taken, username)

    def get_account(self, account_id: int) -> defer.Deferred[AccountRecord | None]:
        return self._select_one(
            "get_account",
            f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE id = ?",
            (account_id,),
            rows.account,
            check=lambda: r.check_int("account_id", account_id),
        )

    def find_account(self, username: str) -> defer.Deferred[AccountRecord | None]:
        def check() -> None:
            r.check_text("username", username, max_len=r.USERNAME_MAX, min_len=1)

        try:
            check()
        except InvalidValue as exc:
            return defer.fail(exc)
        return self._select_one(
            "find_account",
            f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE username_key = ?",
            (r.username_key(username),),
            rows.account,
        )

    def update_account(self, record: AccountRecord) -> defer.Deferred[AccountRecord]:
        try:
            r.check_account(record)
        except InvalidValue as exc:
            return defer.fail(exc)

        def job(conn: sqlite3.Connection) -> AccountRecord:
            cur = conn.execute(
                "UPDATE accounts SET username = ?, username_key = ?, display_name = ?, "
                "password_hash = ? WHERE id = ?",
                (
                    record.username,
                    r.username_key(record.username),
                    record.display_name,
                    record.password_hash,
                    record.id,
                ),
            )
            if cur.rowcount == 0:
                raise NotFound(f"account {record.id} does not exist")
            row = conn.execute(
                f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (record.id,)
            ).fetchone()
            return rows.account(row)

        return self._run("update_account", job).addErrback(_name_taken, record.username)

    def delete_account(self, account_id: int) -> defer.Deferred[bool]:
        try:
            r.check_int("account_id", account_id)
        except InvalidValue as exc:
            return defer.fail(exc)

        def job(conn: sqlite3.Connection) -> bool:
            return self._write(
                conn,
                lambda c: (
                    c.execute("DELETE FROM accounts WHERE id = ?", (account_id,)).rowcount > 0
                ),
            )

        return self._run("delete_account", job)

    def add_refresh_token(self, record: RefreshTokenRecord) -> defer.Deferred[None]:
        try:
            r.check_token(record)
        except InvalidValue as exc:
            return defer.fail(exc)

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO refresh_tokens ({rows.TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.token_hash,
                    record.account_id,
                    record.family_id,
                    record.issued_at,
                    record.expires_at,
                    record.used_at,
                    int(record.revoked),
                ),
            )

        def translate(failure: Failure) -> Failure:
            if failure.check(Conflict) and not failure.check(UsernameTaken):
                return Failure(Conflict("refresh token hash already stored"))
            return failure

        return self._run("add_refresh_token", job).addErrback(translate)

    def get_refresh_token(self, token_hash: str) -> defer.Deferred[RefreshTokenRecord | None]:
        return self._select_one(
            "get_refresh_token",
            f"SELECT {rows.TOKEN_COLUMNS} FROM refresh_tokens WHERE token_hash = ?",
            (token_hash,),
            rows.token,
            check=lambda: r.check_text("token_hash", token_hash, max_len=r.TOKEN_MAX, min_len=1),
        )

    def use_refresh_token(self, token_hash: str, when: float) -> defer.Deferred[bool]:
        try:
            r.check_text("token_hash", token_hash, max_len=r.TOKEN_MAX, min_len=1)
            when = r.check_float("when", when)
        except InvalidValue as exc:
            return defer.fail(exc)

        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL "
                "AND revoked = 0 AND expires_at > ?",
                (when, token_hash, when),
            )
            return cur.rowcount == 1

        return self._run("use_refresh_token", job)

    def revoke_token_family(self, family_id: str) -> defer.Deferred[int]:
        try:
            r.check_text("family_id", family_id, max_len=r.TOKEN_MAX, min_len=1)
        except InvalidValue as exc:
            return defer.fail(exc)
        return self._run(
            "revoke_token_family",
            lambda conn: (
                conn.execute(
                    "UPDATE refresh_tokens SET revoked = 1 WHERE family_id = ? AND revoked = 0",
                    (family_id,),
                ).rowcount
            ),
        )

    def revoke_account_tokens(self, account_id: int) -> defer.Deferred[int]:
        try:
            r.check_int("account_id", account_id)
        except InvalidValue as exc:
            return defer.fail(exc)
        return self._run(
            "revoke_account_tokens",
            lambda conn: (
                conn.execute(
                    "UPDATE refresh_tokens SET revoked = 1 WHERE account_id = ? AND revoked = 0",
                    (account_id,),
                ).rowcount
            ),
        )

    def create_garden(
        self, owner_id: int, name: str, public: bool, now: float, state: dict
    ) -> defer.Deferred[GardenRecord]:
        try:
            r.check_garden_fields(owner_id, name, public, None)
            now = r.check_float("now", now)
            text = r.encode_state(state)
        except InvalidValue as exc:
            return defer.fail(exc)

        def job(conn: sqlite3.Connection) -> GardenRecord:
            cur = conn.execute(
                "INSERT INTO gardens (owner_id, name, public, created_at, saved_at, game_time, "
                "state) VALUES (?, ?, ?, ?, ?, 0, ?)",
                (owner_id, name, int(public), now, now, text),
            )
            row = conn.execute(
                f"SELECT {rows.GARDEN_COLUMNS} FROM gardens WHERE id = ?", (cur.lastrowid,)
            ).fetchone()
            return rows.garden(row)

        def translate(failure: Failure) -> Failure:
            if failure.check(NotFound):
                return Failure(NotFound(f"account {owner_id} does not exist"))
            return failure

        return self._run("create_garden", job).addErrback(translate)

    def load_garden(
        self, garden_id: int
    ) -> defer.Deferred[tuple[GardenRecord, list[BodyRecord]] | None]:
        try:
            r.check_int("garden_id", garden_id)
        except InvalidValue as exc:
            return defer.fail(exc)

        def job(conn: sqlite3.Connection) -> tuple[GardenRecord, list[BodyRecord]] | None:
            conn.execute("BEGIN")  # one snapshot for both reads
            try:
                row = conn.execute(
                    f"SELECT {rows.GARDEN_COLUMNS} FROM gardens WHERE id = ?", (garden_id,)
                ).fetchone()
                if row is None:
                    return None
                bodies = conn.execute(
                    f"SELECT {rows.BODY_COLUMNS} FROM bodies WHERE garden_id = ? ORDER BY body_id",
                    (garden_id,),
                ).fetchall()
                return rows.garden(row), [rows.body(b) for b in bodies]
            finally:
                conn.execute("COMMIT")

        return self._run("load_garden", job)

    def gardens_of(self, owner_id: int) -> defer.Deferred[list[GardenRecord]]:
        return self._select_all(
            "gardens_of",
            f"SELECT {rows.GARDEN_COLUMNS} FROM gardens WHERE owner_id = ? ORDER BY id",
            (owner_id,),
            rows.garden,
            check=lambda: r.check_int("owner_id", owner_id),
        )

    def public_gardens(self, limit: int, offset: int = 0) -> defer.Deferred[list[GardenRecord]]:
        def check() -> None:
            r.check_limit("limit", limit)
            r.check_int("offset", offset, None, 0)

        return self._select_all(
            "public_gardens",
            f"SELECT {rows.GARDEN_COLUMNS} FROM gardens WHERE public = 1 ORDER BY id "
            "LIMIT ? OFFSET ?",
            (limit, offset),
            rows.garden,
            check=check,
        )

    def save_gardens(self, snapshots: Sequence[GardenSnapshot]) -> defer.Deferred[SaveResult]:
        # checked and encoded in the worker thread (the records are immutable)
        try:
            snapshots = [(garden, list(bodies)) for garden, bodies in snapshots]
        except (TypeError, ValueError) as exc:
            return defer.fail(InvalidValue("snapshots", f"must be (garden, bodies) pairs: {exc}"))
        if not snapshots:
            return defer.succeed(SaveResult())

        def job(conn: sqlite3.Connection) -> SaveResult:
            gardens, bodies, keep = _save_rows(snapshots)
            saved, stale, missing = [], [], []
            conn.execute("BEGIN IMMEDIATE")
            for values in gardens:
                garden_id = values[-2]
                cur = conn.execute(
                    "UPDATE gardens SET name = ?, public = ?, saved_at = ?, game_time = ?, "
                    "state = ?, total_mass = ?, thought_points = ?, transcended_at = ?, "
                    "version = ? WHERE id = ? AND version <= ?",
                    values,
                )
                if cur.rowcount == 0:
                    exists = conn.execute(
                        "SELECT 1 FROM gardens WHERE id = ?", (garden_id,)
                    ).fetchone()
                    (stale if exists else missing).append(garden_id)
                    continue
                saved.append(garden_id)
                body_rows = bodies[garden_id]
                conn.executemany(_SQLITE_UPSERT_BODY, body_rows)
                conn.execute(
                    "DELETE FROM bodies WHERE garden_id = ? AND body_id NOT IN "
                    "(SELECT value FROM json_each(?))",
                    (garden_id, keep[garden_id]),
                )
            conn.execute("COMMIT")
            return SaveResult(tuple(saved), tuple(stale), tuple(missing))

        return self._run("save_gardens", job)

    def delete_garden(self, garden_id: int) -> defer.Deferred[bool]:
        try:
            r.check_int("garden_id", garden_id)
        except InvalidValue as exc:
            return defer.fail(exc)

        def job(conn: sqlite3.Connection) -> bool:
            return self._write(
                conn,
                lambda c: c.execute("DELETE FROM gardens WHERE id = ?", (garden_id,)).rowcount > 0,
            )

        return self._run("delete_garden", job)

    def top_gardens(self, kind: str, limit: int) -> defer.Deferred[list[LeaderboardRow]]:
        def check() -> None:
            r.check_leaderboard_kind(kind)
            r.check_limit("limit", limit)

        try:
            check()
        except InvalidValue as exc:
            return defer.fail(exc)
        return self._select_all(
            "top_gardens", rows.leaderboard_query(kind, "?"), (limit,), rows.leaderboard
        )

    # --- helpers --------------------------------------------------------------

    def _select_one(
        self,
        operation: str,
        sql: str,
        params: tuple[Any, ...],
        convert: Callable[[Any], T],
        check: Callable[[], object] | None = None,
    ) -> defer.Deferred[T | None]:
        if check is not None:
            try:
                check()
            except InvalidValue as exc:
                return defer.fail(exc)

        def job(conn: sqlite3.Connection) -> T | None:
            row = conn.execute(sql, params).fetchone()
            return None if row is None else convert(row)

        return self._run(operation, job)

    def _select_all(
        self,
        operation: str,
        sql: str,
        params: tuple[Any, ...],
        convert: Callable[[Any], T],
        check: Callable[[], object] | None = None,
    ) -> defer.Deferred[list[T]]:
        if check is not None:
            try:
                check()
            except InvalidValue as exc:
                return defer.fail(exc)
        return self._run(operation, lambda conn: [convert(x) for x in conn.execute(sql, params)])


_SQLITE_UPSERT_BODY = (
    f"INSERT INTO bodies ({rows.BODY_COLUMNS}) VALUES ({', '.join('?' * len(rows.BODY_FIELDS))}) "
    "ON CONFLICT (garden_id, body_id) DO UPDATE SET "
    + ", ".join(f"{f} = excluded.{f}" for f in rows.BODY_FIELDS[2:])
)


def _save_rows(
    snapshots: Sequence[GardenSnapshot],
) -> tuple[list[tuple[Any, ...]], dict[int, list[tuple[Any, ...]]], dict[int, str]]:
    checked = r.check_snapshots(snapshots)
    gardens = [
        (
            g.name,
            int(g.public),
            g.saved_at,
            g.game_time,
            state,
            g.total_mass,
            g.thought_points,
            g.transcended_at,
            g.version,
            g.id,
            g.version,
        )
        for g, state, _ in checked
    ]
    bodies = {g.id: [rows.body_values(b) for b in body_list] for g, _, body_list in checked}
    keep = {g.id: json.dumps([b.body_id for b in body_list]) for g, _, body_list in checked}
    return gardens, bodies, keep


def _name_taken(failure: Failure, username: str) -> Failure:
    if failure.check(UsernameTaken):
        return Failure(UsernameTaken(username))
    return failure
