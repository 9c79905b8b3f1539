"""Services and the one function that builds persistence from the settings.

For ``makeService``::

    persistence = build_persistence(settings, reactor, metrics, readiness)
    persistence.store_service.setServiceParent(root)   # starts first
    persistence.cache_service.setServiceParent(root)
    writer = persistence.write_behind(world)           # the game's GardenSource
    writer.setServiceParent(root)                      # before the game loop service
    reloader.subscribe(persistence.on_reload)
    root.on_stopping.append(persistence.stopping)      # the saver's deadline starts

and for ``--migrate-only``: ``migrate(settings, reactor)`` (a Deferred of the
names of the migrations applied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from cosmic.cache.interface import Cache, CacheView
from cosmic.cache.memory import MemoryCache
from cosmic.cache.redis import RedisCache
from cosmic.cache.resilient import ResilientCache
from cosmic.cache.service import CacheService
from cosmic.config import shown_value
from cosmic.metrics import Metrics
from cosmic.readiness import Check, Readiness
from cosmic.settings import Settings
from cosmic.store.cached import SESSION_TTL, SessionCache, SnapshotCache
from cosmic.store.interface import Store
from cosmic.store.leaderboards import Leaderboards
from cosmic.store.postgres import PostgresStore
from cosmic.store.sqlite import SQLiteStore, path_from_url
from cosmic.store.writebehind import GardenSource, WriteBehind

log = Logger(namespace="cosmic.store")

DEFAULT_KEY_PREFIX = "cosmic:"
# The saver's share of server.shutdown_timeout: the rest is for what stops
# before it (sessions, the game loop) and after it (cache, pool), so that its
# "not saved" report is logged before the root's deadline ends the process.
WRITER_SHUTDOWN_SHARE = 0.8


class StoreService(service.Service):
    """Opens the store and brings its schema up to date before anything else
    starts; a store that cannot be opened fails the daemon's start."""

    name = "store"

    def __init__(
        self, store: Store, readiness: Readiness | None = None, run_migrations: bool = True
    ) -> None:
        self.store = store
        self.run_migrations = run_migrations
        self._state = "stopped"
        if readiness is not None:
            readiness.add("store", self.check)

    def check(self) -> Check:
        if self._state != "running":
            return Check.fail(f"store {self._state}")
        return self.store.check()

    def startService(self) -> defer.Deferred[None]:
        super().startService()
        self._state = "starting"
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        await self.store.open()
        try:
            migrate = getattr(self.store, "migrate", None)
            if self.run_migrations and migrate is not None:
                applied = await migrate()
                if applied:
                    log.info("schema migrated: {applied}", applied=", ".join(applied))
        except BaseException:
            await self.store.close()
            self._state = "stopped"
            raise
        self._state = "running"

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        self._state = "stopped"
        return self.store.close()


def make_store(
    settings: Settings,
    reactor: Any = None,
    metrics: Metrics | None = None,
    cwd: Path | None = None,
) -> Store:
    """The backend database.url names (not opened yet)."""
    db = settings.database
    store_metrics = metrics.store if metrics is not None else None
    if db.url.startswith(("postgresql:", "postgres:")):
        return PostgresStore(
            db.url,
            reactor=reactor,
            metrics=store_metrics,
            min_size=db.pool_min_size,
            max_size=db.pool_max_size,
            connect_timeout=db.connect_timeout,
            statement_timeout=db.statement_timeout,
            acquire_timeout=db.acquire_timeout,
            health_check_interval=db.health_check_interval,
            max_lifetime=db.max_lifetime,
        )
    return SQLiteStore(
        path_from_url(db.url, cwd),
        reactor=reactor,
        metrics=store_metrics,
        busy_timeout=db.acquire_timeout,
        statement_timeout=db.statement_timeout,
    )


def make_cache(
    settings: Settings,
    reactor: Any = None,
    metrics: Metrics | None = None,
    key_prefix: str = DEFAULT_KEY_PREFIX,
) -> Cache:
    """ResilientCache(RedisCache) when cache.redis_url is set, else MemoryCache."""
    if reactor is None:
        from twisted.internet import reactor
    cache_metrics = metrics.cache if metrics is not None else None
    if settings.cache.redis_url:
        redis = RedisCache(
            settings.cache.redis_url,
            reactor=reactor,
            timeout=settings.cache.timeout,
            prefix=key_prefix,
            metrics=cache_metrics,
        )
        return ResilientCache(redis, clock=reactor, metrics=cache_metrics)
    return MemoryCache(settings.cache.memory_max_entries, clock=reactor)


class Persistence:
    """What build_persistence returns: the store, the cache, their services,
    named cache views, leaderboards, the session and snapshot caches, and
    the write-behind saver factory."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        cache: Cache,
        reactor: Any,
        metrics: Metrics | None,
        readiness: Readiness | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.cache = cache
        self.reactor = reactor
        self.metrics = metrics
        self.readiness = readiness
        self.store_service = StoreService(store, readiness)
        self.cache_service = CacheService(cache, readiness)
        self._views: dict[str, CacheView] = {}
        self.leaderboards = Leaderboards(
            store, self.cache_view("leaderboards"), settings.cache.leaderboard_ttl
        )
        self.sessions = SessionCache(self.cache_view("sessions"), SESSION_TTL)
        self.snapshots = SnapshotCache(self.cache_view("snapshots"), settings.cache.snapshot_ttl)
        self.writers: list[WriteBehind] = []

    def cache_view(self, name: str) -> CacheView:
        """The cache named ``name`` (e.g. "sessions", "snapshots"): its own key
        space and hit/miss counters.  One view per name."""
        view = self._views.get(name)
        if view is None:
            view = CacheView(self.cache, name, self.metrics.cache if self.metrics else None)
            self._views[name] = view
        return view

    def write_behind(self, source: GardenSource) -> WriteBehind:
        """A write-behind saver for ``source`` (add it to the root before the
        game loop's service, so it stops after it and flushes last)."""
        writer = WriteBehind(
            self.store,
            source,
            clock=self.reactor,
            interval=self.settings.database.flush_interval,
            batch_size=self.settings.database.save_batch_size,
            stop_timeout=WRITER_SHUTDOWN_SHARE * self.settings.server.shutdown_timeout,
            metrics=self.metrics.store if self.metrics else None,
            readiness=self.readiness,
            check_name="persistence" if not self.writers else f"persistence_{len(self.writers)}",
        )
        self.writers.append(writer)
        return writer

    def stopping(self) -> None:
        """The root's on_stopping hook: the savers' deadlines count from here."""
        for writer in self.writers:
            writer.stopping()

    def on_reload(self, settings: Settings, changed: tuple[str, ...]) -> None:
        """Reloader subscriber: database.flush_interval and health_check_interval."""
        if "database.flush_interval" in changed:
            for writer in self.writers:
                writer.set_interval(settings.database.flush_interval)
        if "database.health_check_interval" in changed and isinstance(self.store, PostgresStore):
            self.store.pool.set_health_check_interval(settings.database.health_check_interval)
        self.settings = settings


def build_persistence(
    settings: Settings,
    reactor: Any = None,
    metrics: Metrics | None = None,
    readiness: Readiness | None = None,
    *,
    cwd: Path | None = None,
    key_prefix: str = DEFAULT_KEY_PREFIX,
) -> Persistence:
    """Store and cache from the settings, their services, views, leaderboards."""
    if reactor is None:
        from twisted.internet import reactor
    store = make_store(settings, reactor, metrics, cwd)
    cache = make_cache(settings, reactor, metrics, key_prefix)
    log.info(
        "persistence: {backend} at {url}, cache {cache}",
        backend=store.backend,
        url=shown_value("database.url", settings.database.url),
        cache=(
            shown_value("cache.redis_url", settings.cache.redis_url)
            if settings.cache.redis_url
            else "in-process"
        ),
    )
    return Persistence(settings, store, cache, reactor, metrics, readiness)


def migrate(settings: Settings, reactor: Any = None, cwd: Path | None = None) -> defer.Deferred:
    """Bring the configured database's schema up to date and disconnect.

    Fires with the names of the migrations applied (empty when up to date);
    fails with StoreUnavailable or MigrationError.  For ``--migrate-only``.
    """
    return defer.ensureDeferred(_migrate(settings, reactor, cwd))


async def _migrate(settings: Settings, reactor: Any, cwd: Path | None) -> list[str]:
    store = make_store(settings, reactor, None, cwd)
    if isinstance(store, PostgresStore):
        return await store.migrate()  # a connection of its own; no pool needed
    await store.open()
    try:
        return await store.migrate()
    finally:
        await store.close()
