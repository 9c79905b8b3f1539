"""The production store: PostgreSQL through txpostgres, behind ``Pool``.

Connections are txpostgres ``Connection`` objects (psycopg2 in asynchronous
mode: no threads).  Each is opened with ``statement_timeout`` and
``application_name`` as startup options, so a replacement connection has
them too, with a connect timeout of our own (libpq ignores
``connect_timeout`` in asynchronous mode).  Recovery is the pool's job (see
cosmic/store/pool.py): a dead connection is dropped and replaced, an
unreachable server is probed with backoff.  txpostgres' own
``DeadConnectionDetector`` is not used: it reconnects each connection on its
own schedule with no connect timeout, while the pool needs one view of the
server's health for readiness, fail-fast and metrics.

A connection the server closes while idle (restart, pg_terminate_backend)
would make txpostgres raise inside the reactor's read handler; ``_PgConnection``
turns that into an ordinary lost connection that the pool is told about.
"""

from __future__ import annotations

import contextlib
import json
import operator
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg2
import psycopg2.errors
from twisted.internet import defer, error, main, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from txpostgres import txpostgres

from cosmic.metrics import StoreMetrics
from cosmic.readiness import Check
from cosmic.store import records as r
from cosmic.store import rows, schema
from cosmic.store.backoff import Backoff
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
from cosmic.store.pool import Pool
from cosmic.store.records import (
    AccountRecord,
    BodyRecord,
    GardenRecord,
    GardenSnapshot,
    LeaderboardRow,
    RefreshTokenRecord,
    SaveResult,
)

log = Logger(namespace="cosmic.store.postgres")
T = TypeVar("T")

# SQLSTATEs that mean the session is gone: connection exceptions (class 08),
# admin/crash shutdown, cannot connect now.
_DEAD_STATES = ("57P01", "57P02", "57P03")
# Reconnection attempts: 0.1 s doubling to 2 s (minus jitter) while the server is down.
RECONNECT_BACKOFF = Backoff(initial=0.1, maximum=2.0)


def describe_dsn(dsn: str) -> str:
    """The DSN with any password hidden, for log lines and errors."""
    try:
        parsed = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "<unparsable dsn>"
    host = parsed.get("host", "localhost")
    port = parsed.get("port", "5432")
    user = parsed.get("user", "")
    name = parsed.get("dbname", "")
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{name}"


class _PgConnection(txpostgres.Connection):
    """A txpostgres connection that reports its loss instead of raising."""

    on_lost: Callable[[Any], None] | None = None
    _lost_reported = False

    def doRead(self) -> Any:
        try:
            txpostgres.Connection.doRead(self)
        except Exception:  # the server closed it; psycopg2 raised from poll()
            return main.CONNECTION_LOST
        return None

    def connectionLost(self, reason: Any) -> None:
        try:
            txpostgres.Connection.connectionLost(self, reason)
        finally:
            if self.on_lost is not None and not self._lost_reported:
                self._lost_reported = True
                self.on_lost(self)

    @property
    def broken(self) -> bool:
        return self._connection is None or bool(self._connection.closed)


class Session:
    """What an operation gets: one connection, queries that return rows."""

    def __init__(self, conn: _PgConnection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Any = None) -> Any:
        cursor = self.conn.cursor()
        try:
            await cursor.execute(sql, params)
        except BaseException:
            _close_quietly(cursor)
            raise
        return cursor

    async def all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        cursor = await self.execute(sql, params)
        try:
            return cursor.fetchall()
        finally:
            _close_quietly(cursor)

    async def one(self, sql: str, params: Any = None) -> tuple[Any, ...] | None:
        cursor = await self.execute(sql, params)
        try:
            return cursor.fetchone()
        finally:
            _close_quietly(cursor)

    async def count(self, sql: str, params: Any = None) -> int:
        cursor = await self.execute(sql, params)
        try:
            return cursor.rowcount
        finally:
            _close_quietly(cursor)

    async def transaction(self, work: Callable[[Session], Awaitable[T]], begin: str = "BEGIN") -> T:
        await self.count(begin)
        try:
            result = await work(self)
        except BaseException:
            if not self.conn.broken:
                # if even ROLLBACK fails the connection is broken; the pool drops it
                with contextlib.suppress(Exception):
                    await self.count("ROLLBACK")
            raise
        await self.count("COMMIT")
        return result


def _close_quietly(cursor: Any) -> None:
    with contextlib.suppress(Exception):
        cursor.close()


class Connector:
    """Opens txpostgres connections for the pool."""

    def __init__(
        self,
        dsn: str,
        *,
        reactor: Any,
        connect_timeout: float = 5.0,
        statement_timeout: float | None = 10.0,
        application_name: str = "cosmic-gardener",
    ) -> None:
        self.dsn = dsn
        self._reactor = reactor
        self.connect_timeout = connect_timeout
        options = []
        if statement_timeout:
            options.append(f"-c statement_timeout={int(statement_timeout * 1000)}")
        self._kwargs: dict[str, Any] = {"application_name": application_name}
        if options:
            self._kwargs["options"] = " ".join(options)

    def connect(self, on_lost: Callable[[Any], None] | None = None) -> defer.Deferred[Any]:
        """A new connection, or StoreUnavailable; cancelling closes it."""
        conn = _PgConnection(reactor=self._reactor)
        timed_out = []
        where = describe_dsn(self.dsn)
        # not txpostgres' own Deferred: cancelling that one raises from its canceller
        result: defer.Deferred[Any] = defer.Deferred(lambda _: self.close(conn))

        def expire() -> None:
            timed_out.append(True)
            self.close(conn)

        timer = self._reactor.callLater(self.connect_timeout, expire)

        def connected(_: Any) -> None:
            if timer.active():
                timer.cancel()
            if result.called:  # cancelled meanwhile
                self.close(conn)
                return
            conn.on_lost = on_lost
            result.callback(conn)

        def failed(failure: Failure) -> None:
            if timer.active():
                timer.cancel()
            self.close(conn)
            if result.called:
                return
            if timed_out:
                reason = f"no connection to {where} within {self.connect_timeout:g} s"
            else:
                reason = f"cannot connect to {where}: {failure.getErrorMessage().strip()}"
            result.errback(StoreUnavailable(reason))

        conn.connect(self.dsn, **self._kwargs).addCallbacks(connected, failed)
        return result

    def close(self, conn: Any) -> None:
        try:
            if conn._connection is not None:
                conn.close()
        except Exception:
            pass

    def ping(self, conn: Any) -> defer.Deferred[Any]:
        return defer.ensureDeferred(Session(conn).one("SELECT 1"))

    def is_broken(self, conn: Any, failure: Failure) -> bool:
        if conn.broken:
            return True
        if failure.check(error.ConnectionDone, error.ConnectionLost, psycopg2.InterfaceError):
            return True
        exc = failure.value
        if isinstance(exc, psycopg2.OperationalError):
            code = getattr(exc, "pgcode", None)
            return code is None or code.startswith("08") or code in _DEAD_STATES
        return False


def translate(failure: Failure, operation: str) -> Failure:
    """A psycopg2 failure as a typed store error."""
    exc = failure.value
    if isinstance(exc, StoreError):
        return failure
    if isinstance(exc, defer.CancelledError):
        # txpostgres reports the server cancelling a statement (57014) this way
        return Failure(
            QueryTimeout(f"{operation} cancelled by the server (database.statement_timeout)")
        )
    if isinstance(exc, psycopg2.Error):
        code = getattr(exc, "pgcode", None) or ""
        diag = getattr(exc, "diag", None)
        message = (getattr(diag, "message_primary", None) or str(exc)).strip()
        if isinstance(exc, psycopg2.errors.QueryCanceled):
            return Failure(QueryTimeout(f"{operation} cancelled: {message}"))
        if code == "23505":
            return Failure(Conflict(f"{operation}: {message}"))
        if code == "23503":
            return Failure(NotFound(f"{operation}: a referenced record does not exist"))
        if code.startswith("22") or code == "23514":
            return Failure(InvalidValue(operation, message))
        if code.startswith(("08", "53", "57P")) or isinstance(exc, psycopg2.OperationalError):
            return Failure(StoreUnavailable(f"{operation}: {message}"))
        return Failure(StoreError(f"{operation}: {message}"))
    return failure


class PostgresStore:
    backend = "postgresql"

    def __init__(
        self,
        dsn: str,
        *,
        reactor: Any = None,
        metrics: StoreMetrics | None = None,
        min_size: int = 2,
        max_size: int = 20,
        connect_timeout: float = 5.0,
        statement_timeout: float = 10.0,
        acquire_timeout: float = 5.0,
        health_check_interval: float = 30.0,
        max_lifetime: float = 1800.0,
        backoff: Backoff = RECONNECT_BACKOFF,
        migration_lock_timeout: float = 60.0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.dsn = dsn
        self._reactor = reactor
        self._metrics = metrics
        self.statement_timeout = statement_timeout
        self.migration_lock_timeout = migration_lock_timeout
        self.connector = Connector(
            dsn,
            reactor=reactor,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
        )
        self.pool: Pool[_PgConnection] = Pool(
            self.connector,
            reactor=reactor,
            min_size=min_size,
            max_size=max_size,
            acquire_timeout=acquire_timeout,
            # the server cancels a statement after statement_timeout; a server
            # that does not answer at all is given as long again, plus slack
            operation_timeout=statement_timeout * 2 + 1.0,
            health_check_interval=health_check_interval,
            max_lifetime=max_lifetime,
            backoff=backoff,
            metrics=metrics,
            name=f"PostgreSQL at {describe_dsn(dsn)}",
        )

    # --- lifecycle --------------------------------------------------------

    def open(self) -> defer.Deferred[None]:
        d = self.pool.start()

        def opened(_: Any) -> None:
            log.info(
                "postgresql store open at {where}: {pool}",
                where=describe_dsn(self.dsn),
                pool=self.pool.describe(),
            )

        return d.addCallback(opened)

    def close(self) -> defer.Deferred[None]:
        return self.pool.close(drain_timeout=self.statement_timeout)

    def check(self) -> Check:
        state = self.pool.state
        if state == "up":
            return Check.ok(f"postgresql: {self.pool.describe()}")
        if state == "down":
            return Check.degraded(self.pool.down_message())
        return Check.fail(f"postgresql pool {state}")

    def _run(
        self,
        operation: str,
        work: Callable[[Session], Awaitable[T]],
        *,
        idempotent: bool = False,
    ) -> defer.Deferred[T]:
        d = self.pool.run(lambda conn: work(Session(conn)), idempotent=idempotent)
        d.addErrback(translate, operation)
        return observe(self._metrics, operation, d)

    # --- migrations -----------------------------------------------------------

    def migrate(self) -> defer.Deferred[list[str]]:
        """Apply pending migrations on a connection of their own, under
        pg_advisory_lock; returns the names applied."""
        return defer.ensureDeferred(self._migrate())

    async def _migrate(self) -> list[str]:
        known = schema.migrations("postgresql")
        conn = await self.connector.connect()
        session = Session(conn)
        try:
            await session.count("SET statement_timeout = 0")
            await session.count(f"SET lock_timeout = {int(self.migration_lock_timeout * 1000)}")
            try:
                await session.one("SELECT pg_advisory_lock(%s)", (schema.ADVISORY_LOCK_KEY,))
            except psycopg2.errors.LockNotAvailable:
                raise MigrationError(
                    f"another process held the migration lock for more than "
                    f"{self.migration_lock_timeout:g} s"
                ) from None
            try:
                await session.count(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                    "name text NOT NULL, checksum text NOT NULL, applied_at float8 NOT NULL)"
                )
                applied = dict(await session.all("SELECT version, checksum FROM schema_migrations"))
                todo = schema.pending(known, applied)
                for migration in todo:

                    async def apply(s: Session, m: schema.Migration = migration) -> None:
                        await s.count(m.sql)
                        await s.count(
                            "INSERT INTO schema_migrations VALUES (%s, %s, %s, %s)",
                            (m.version, m.name, m.checksum, time.time()),
                        )

                    await session.transaction(apply)
                    log.info("applied migration {name}", name=migration.name)
                newer = schema.unknown_versions(known, applied)
                if newer:
                    log.warn(
                        "the database has schema versions {versions} this code does not know",
                        versions=newer,
                    )
                return [m.name for m in todo]
            finally:
                if not conn.broken:
                    await session.one("SELECT pg_advisory_unlock(%s)", (schema.ADVISORY_LOCK_KEY,))
        except psycopg2.Error as exc:
            raise MigrationError(f"migration failed: {str(exc).strip()}") from None
        finally:
            self.connector.close(conn)

    # --- the interface ----------------------------------------------------------

    def ping(self) -> defer.Deferred[None]:
        async def work(s: Session) -> None:
            await s.one("SELECT 1")

        return self._run("ping", work, idempotent=True)

    def create_account(
        self, username: str, display_name: str, password_hash: str, now: float
    ) -> defer.Deferred[AccountRecord]:
        try:
            r.check_account_fields(username, display_name, password_hash)
            now = r.check_float("created_at", now)
        except InvalidValue as exc:
            return defer.fail(exc)

        async def work(s: Session) -> AccountRecord:
            row = await s.one(
                "INSERT INTO accounts (username, username_key, display_name, password_hash, "
                "created_at) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (username, r.username_key(username), display_name, password_hash, now),
            )
            assert row is not None
            return AccountRecord(int(row[0]), username, display_name, password_hash, now)

        return self._run("create_account", work).addErrback(_username_taken, username)

    def get_account(self, account_id: int) -> defer.Deferred[AccountRecord | None]:
        return self._one(
            "get_account",
            f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE id = %s",
            (account_id,),
            rows.account,
            lambda: r.check_int("account_id", account_id),
        )

    def find_account(self, username: str) -> defer.Deferred[AccountRecord | None]:
        try:
            r.check_text("username", username, max_len=r.USERNAME_MAX, min_len=1)
        except InvalidValue as exc:
            return defer.fail(exc)
        return self._one(
            "find_account",
            f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE username_key = %s",
            (r.username_key(username),),
            rows.account,
        )

    def update_account(self, record: AccountRecord) -> defer.Deferred[AccountRecord]:
        try:
            r.check_account(record)
        except InvalidValue as exc:
            return defer.fail(exc)

        async def work(s: Session) -> AccountRecord:
            row = await s.one(
                "UPDATE accounts SET username = %s, username_key = %s, display_name = %s, "
                f"password_hash = %s WHERE id = %s RETURNING {rows.ACCOUNT_COLUMNS}",
                (
                    record.username,
                    r.username_key(record.username),
                    record.display_name,
                    record.password_hash,
                    record.id,
                ),
            )
            if row is None:
                raise NotFound(f"account {record.id} does not exist")
            return rows.account(row)

        return self._run("update_account", work).addErrback(_username_taken, record.username)

    def delete_account(self, account_id: int) -> defer.Deferred[bool]:
        try:
            r.check_int("account_id", account_id)
        except InvalidValue as exc:
            return defer.fail(exc)

        async def work(s: Session) -> bool:
            return await s.count("DELETE FROM accounts WHERE id = %s", (account_id,)) > 0

        return self._run("delete_account", work)

    def add_refresh_token(self, record: RefreshTokenRecord) -> defer.Deferred[None]:
        try:
            r.check_token(record)
        except InvalidValue as exc:
            return defer.fail(exc)

        async def work(s: Session) -> None:
            await s.count(
                f"INSERT INTO refresh_tokens ({rows.TOKEN_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    record.token_hash,
                    record.account_id,
                    record.family_id,
                    record.issued_at,
                    record.expires_at,
                    record.used_at,
                    record.revoked,
                ),
            )

        def conflict(failure: Failure) -> Failure:
            if failure.check(Conflict):
                return Failure(Conflict("refresh token hash already stored"))
            return failure

        return self._run("add_refresh_token", work).addErrback(conflict)

    def get_refresh_token(self, token_hash: str) -> defer.Deferred[RefreshTokenRecord | None]:
        return self._one(
            "get_refresh_token",
            f"SELECT {rows.TOKEN_COLUMNS} FROM refresh_tokens WHERE token_hash = %s",
            (token_hash,),
            rows.token,
            lambda: r.check_text("token_hash", token_hash, max_len=r.TOKEN_MAX, min_len=1),
        )

    def use_refresh_token(self, token_hash: str, when: float) -> defer.Deferred[bool]:
        try:
            r.check_text("token_hash", token_hash, max_len=r.TOKEN_MAX, min_len=1)
            when = r.check_float("when", when)
        except InvalidValue as exc:
            return defer.fail(exc)

        async def work(s: Session) -> bool:
            # one statement: the row lock makes the first caller win, a
            # concurrent one re-checks used_at after it and matches nothing
            return (
                await s.count(
                    "UPDATE refresh_tokens SET used_at = %s WHERE token_hash = %s "
                    "AND used_at IS NULL AND NOT revoked AND expires_at > %s",
                    (when, token_hash, when),
                )
                == 1
            )

        return self._run("use_refresh_token", work)

    def revoke_token_family(self, family_id: str) -> defer.Deferred[int]:
        try:
            r.check_text("family_id", family_id, max_len=r.TOKEN_MAX, min_len=1)
        except InvalidValue as exc:
            return defer.fail(exc)

        async def work(s: Session) -> int:
            return await s.count(
                "UPDATE refresh_tokens SET revoked = true WHERE family_id = %s AND NOT revoked",
                (family_id,),
            )

        return self._run("revoke_token_family", work, idempotent=True)

    def revoke_account_tokens(self, account_id: int) -> defer.Deferred[int]:
        try:
            r.check_int("account_id", account_id)
        except InvalidValue as exc:
            return defer.fail(exc)

        async def work(s: Session) -> int:
            return await s.count(
                "UPDATE refresh_tokens SET revoked = true WHERE account_id = %s AND NOT revoked",
                (account_id,),
            )

        return self._run("revoke_account_tokens", work, idempotent=True)

    def create_garden(
        self, owner_id: int, name: str, public: bool, now: float, state: dict
    ) -> defer.Deferred[GardenRecord]:
        try:
            r.check_garden_fields(owner_id, name, public, None)
            now = r.check_float("now", now)
            text = r.encode_state(state)
        except InvalidValue as exc:
            return defer.fail(exc)

        async def work(s: Session) -> GardenRecord:
            row = await s.one(
                "INSERT INTO gardens (owner_id, name, public, created_at, saved_at, game_time, "
                f"state) VALUES (%s, %s, %s, %s, %s, 0, %s::json) RETURNING {rows.GARDEN_COLUMNS}",
                (owner_id, name, public, now, now, text),
            )
            assert row is not None
            return rows.garden(row)

        def owner_missing(failure: Failure) -> Failure:
            if failure.check(NotFound):
                return Failure(NotFound(f"account {owner_id} does not exist"))
            return failure

        return self._run("create_garden", work).addErrback(owner_missing)

    def load_garden(
        self, garden_id: int
    ) -> defer.Deferred[tuple[GardenRecord, list[BodyRecord]] | None]:
        try:
            r.check_int("garden_id", garden_id)
        except InvalidValue as exc:
            return defer.fail(exc)

        async def read(s: Session) -> tuple[GardenRecord, list[BodyRecord]] | None:
            row = await s.one(
                f"SELECT {rows.GARDEN_COLUMNS} FROM gardens WHERE id = %s", (garden_id,)
            )
            if row is None:
                return None
            bodies = await s.all(
                f"SELECT {rows.BODY_COLUMNS} FROM bodies WHERE garden_id = %s ORDER BY body_id",
                (garden_id,),
            )
            return rows.garden(row), [rows.body(b) for b in bodies]

        async def work(s: Session) -> tuple[GardenRecord, list[BodyRecord]] | None:
            # one snapshot for the garden row and its bodies
            return await s.transaction(read, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

        return self._run("load_garden", work, idempotent=True)

    def gardens_of(self, owner_id: int) -> defer.Deferred[list[GardenRecord]]:
        return self._all(
            "gardens_of",
            f"SELECT {rows.GARDEN_COLUMNS} FROM gardens WHERE owner_id = %s ORDER BY id",
            (owner_id,),
            rows.garden,
            lambda: r.check_int("owner_id", owner_id),
        )

    def public_gardens(self, limit: int, offset: int = 0) -> defer.Deferred[list[GardenRecord]]:
        def check() -> None:
            r.check_limit("limit", limit)
            r.check_int("offset", offset, None, 0)

        return self._all(
            "public_gardens",
            f"SELECT {rows.GARDEN_COLUMNS} FROM gardens WHERE public ORDER BY id "
            "LIMIT %s OFFSET %s",
            (limit, offset),
            rows.garden,
            check,
        )

    def save_gardens(self, snapshots: Sequence[GardenSnapshot]) -> defer.Deferred[SaveResult]:
        try:
            snapshots = [(garden, list(bodies)) for garden, bodies in snapshots]
        except (TypeError, ValueError) as exc:
            return defer.fail(InvalidValue("snapshots", f"must be (garden, bodies) pairs: {exc}"))
        bodies = sum(len(b) for _, b in snapshots)
        pool = getattr(self._reactor, "getThreadPool", None)
        if bodies >= OFFLOAD_BODIES and pool is not None:
            # checking and encoding thousands of bodies takes tens of ms: keep
            # that off the reactor thread (the records are immutable)
            prepared = threads.deferToThreadPool(self._reactor, pool(), _prepare_save, snapshots)
        else:
            prepared = defer.maybeDeferred(_prepare_save, snapshots)
        return prepared.addCallback(self._save_prepared)

    def _save_prepared(self, prepared: tuple[list[int], tuple[str, ...]]) -> Any:
        ids, payload = prepared
        if not ids:
            return SaveResult()

        async def work(s: Session) -> SaveResult:
            saved = {row[0] for row in await s.all(SAVE_SQL, payload)}
            rest = [gid for gid in ids if gid not in saved]
            existing: set[int] = set()
            if rest:
                existing = {
                    row[0]
                    for row in await s.all("SELECT id FROM gardens WHERE id = ANY(%s)", (rest,))
                }
            return SaveResult(
                tuple(gid for gid in ids if gid in saved),
                tuple(gid for gid in rest if gid in existing),
                tuple(gid for gid in rest if gid not in existing),
            )

        # idempotent: saving the same versions again writes the same rows
        return self._run("save_gardens", work, idempotent=True)

    def delete_garden(self, garden_id: int) -> defer.Deferred[bool]:
        try:
            r.check_int("garden_id", garden_id)
        except InvalidValue as exc:
            return defer.fail(exc)

        async def work(s: Session) -> bool:
            return await s.count("DELETE FROM gardens WHERE id = %s", (garden_id,)) > 0

        return self._run("delete_garden", work)

    def top_gardens(self, kind: str, limit: int) -> defer.Deferred[list[LeaderboardRow]]:
        try:
            r.check_leaderboard_kind(kind)
            r.check_limit("limit", limit)
        except InvalidValue as exc:
            return defer.fail(exc)
        return self._all(
            "top_gardens", rows.leaderboard_query(kind, "%s"), (limit,), rows.leaderboard
        )

    # --- helpers ----------------------------------------------------------------

    def _one(
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

        async def work(s: Session) -> T | None:
            row = await s.one(sql, params)
            return None if row is None else convert(row)

        return self._run(operation, work, idempotent=True)

    def _all(
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

        async def work(s: Session) -> list[T]:
            return [convert(row) for row in await s.all(sql, params)]

        return self._run(operation, work, idempotent=True)


def _username_taken(failure: Failure, username: str) -> Failure:
    if failure.check(Conflict):
        return Failure(UsernameTaken(username))
    return failure


_GARDEN_INPUT = (
    "id bigint, name text, public boolean, saved_at float8, game_time float8, state json, "
    "total_mass float8, thought_points float8, transcended_at float8, version bigint"
)
# Body columns travel as one PostgreSQL array literal each (text parsed by
# array_in at C speed on both ends), in BODY_FIELDS order.
_BODY_TYPES = (
    "bigint", "bigint", "text", "text", "float8", "float8", "float8", "float8", "float8",
    "float8", "float8", "float8", "integer", "float8", "text", "float8", "float8",
)  # fmt: skip
_BODY_UNNEST = ", ".join(f"%s::{t}[]" for t in _BODY_TYPES)
# One statement (so one transaction and one round trip) per batch: update the
# garden rows whose stored version is not newer, then upsert the bodies of
# exactly those gardens and delete their bodies that are not listed.
SAVE_SQL = f"""
WITH g_in AS (
    SELECT * FROM json_to_recordset(%s::json) AS x({_GARDEN_INPUT})
), upd AS (
    UPDATE gardens g SET name = i.name, public = i.public, saved_at = i.saved_at,
        game_time = i.game_time, state = i.state, total_mass = i.total_mass,
        thought_points = i.thought_points, transcended_at = i.transcended_at,
        version = i.version
    FROM g_in i WHERE g.id = i.id AND g.version <= i.version
    RETURNING g.id
), b_in AS MATERIALIZED (
    SELECT * FROM unnest({_BODY_UNNEST}) AS x({rows.BODY_COLUMNS})
), ins AS (
    INSERT INTO bodies ({rows.BODY_COLUMNS})
    SELECT {rows.BODY_COLUMNS} FROM b_in WHERE garden_id IN (SELECT id FROM upd)
    ON CONFLICT (garden_id, body_id) DO UPDATE SET
        {", ".join(f"{f} = EXCLUDED.{f}" for f in rows.BODY_FIELDS[2:])}
), del AS (
    DELETE FROM bodies d USING upd WHERE d.garden_id = upd.id
    AND NOT EXISTS (
        SELECT 1 FROM b_in WHERE b_in.garden_id = d.garden_id AND b_in.body_id = d.body_id
    )
)
SELECT id FROM upd
"""

_BODY_GETTER = operator.attrgetter(*rows.BODY_FIELDS)
# Saves of at least this many bodies are checked and encoded in a thread.
OFFLOAD_BODIES = 2000


def _prepare_save(snapshots: Sequence[GardenSnapshot]) -> tuple[list[int], tuple[str, ...]]:
    checked = r.check_snapshots(snapshots)
    return [g.id for g, _, _ in checked], bulk_payload(checked) if checked else ()


def _array_of_numbers(column: Sequence[Any]) -> str:
    return "{" + ",".join(map(repr, column)) + "}"


def _quote_element(text: str | None) -> str:
    if text is None:
        return "NULL"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array_of_texts(column: Sequence[str | None]) -> str:
    if not column:
        return "{}"
    if None not in column:
        joined = "".join(column)  # type: ignore[arg-type]
        if '"' not in joined and "\\" not in joined:
            return '{"' + '","'.join(column) + '"}'  # type: ignore[arg-type]
    return "{" + ",".join(map(_quote_element, column)) + "}"


def bulk_payload(
    checked: list[tuple[GardenRecord, str, list[BodyRecord]]],
) -> tuple[str, ...]:
    """The parameters of SAVE_SQL: the gardens as JSON (states spliced in, not
    re-encoded), then one array literal per body column."""
    garden_parts = []
    bodies: list[BodyRecord] = []
    for garden, state, body_list in checked:
        head = json.dumps(
            {
                "id": garden.id,
                "name": garden.name,
                "public": garden.public,
                "saved_at": garden.saved_at,
                "game_time": garden.game_time,
                "total_mass": garden.total_mass,
                "thought_points": garden.thought_points,
                "transcended_at": garden.transcended_at,
                "version": garden.version,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        garden_parts.append(f'{head[:-1]},"state":{state}}}')
        bodies.extend(body_list)
    if bodies:
        columns = list(zip(*map(_BODY_GETTER, bodies), strict=True))
    else:
        columns = [()] * len(rows.BODY_FIELDS)
    arrays = [
        _array_of_texts(column) if kind == "text" else _array_of_numbers(column)
        for column, kind in zip(columns, _BODY_TYPES, strict=True)
    ]
    return ("[" + ",".join(garden_parts) + "]", *arrays)
