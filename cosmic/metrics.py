"""Every Prometheus metric the daemon exports, defined once.

Metrics live in a registry owned by one ``Metrics`` object (no module-level
collectors), so that two daemons in one test process, or a test and the code
it checks, never share counters.  Names start with the configured namespace.
"""

from __future__ import annotations

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

# Physics steps run from microseconds (a few bodies) to tens of milliseconds.
_PHYSICS_BUCKETS = (
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
    2.5e-2,
    5e-2,
    0.1,
    0.25,
)


@attrs.frozen
class PhysicsMetrics:
    duration: Histogram
    bodies: Counter
    pairs: Counter
    implementation: Gauge

    @classmethod
    def create(cls, namespace: str, registry: CollectorRegistry) -> PhysicsMetrics:
        return cls(
            duration=Histogram(
                "physics_calculation_duration_seconds",
                "Wall time of one physics kernel call, by algorithm.",
                ["algorithm"],
                namespace=namespace,
                registry=registry,
                buckets=_PHYSICS_BUCKETS,
            ),
            bodies=Counter(
                "physics_bodies_simulated",
                "Body-steps simulated (bodies times steps), by algorithm.",
                ["algorithm"],
                namespace=namespace,
                registry=registry,
            ),
            pairs=Counter(
                "physics_pair_interactions",
                "Pairwise force evaluations (or tree equivalents), by algorithm.",
                ["algorithm"],
                namespace=namespace,
                registry=registry,
            ),
            implementation=Gauge(
                "physics_kernel_info",
                "1 for the kernel implementation in use (compiled or reference).",
                ["implementation"],
                namespace=namespace,
                registry=registry,
            ),
        )


# Database statements run from sub-millisecond lookups to multi-second bulk saves.
_DB_BUCKETS = (
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
    2.5e-2,
    5e-2,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Cache calls: sub-millisecond normally, up to cache.timeout when Redis hangs.
_CACHE_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0)


@attrs.frozen
class StoreMetrics:
    """The store (any backend), its PostgreSQL pool and the write-behind saver."""

    query_duration: Histogram
    errors: Counter
    pool_connections: Gauge
    pool_waiting: Gauge
    reconnects: Counter
    available: Gauge
    backlog: Gauge
    flush_duration: Histogram
    flush_failures: Counter
    gardens_saved: Counter
    gardens_rejected: Counter

    @classmethod
    def create(cls, namespace: str, registry: CollectorRegistry) -> StoreMetrics:
        def make(kind, name, doc, labels=(), **kw):
            return kind(name, doc, list(labels), namespace=namespace, registry=registry, **kw)

        return cls(
            query_duration=make(
                Histogram,
                "db_query_duration_seconds",
                "Time of one store operation as its caller sees it (waiting for a "
                "connection included), by operation.",
                ["operation"],
                buckets=_DB_BUCKETS,
            ),
            errors=make(
                Counter,
                "db_errors",
                "Store operations that failed, by operation and error type.",
                ["operation", "error"],
            ),
            pool_connections=make(
                Gauge,
                "db_pool_connections",
                "PostgreSQL pool connections by state (in_use, idle, connecting).",
                ["state"],
            ),
            pool_waiting=make(
                Gauge, "db_pool_waiting", "Operations waiting for a free pool connection."
            ),
            reconnects=make(
                Counter,
                "db_reconnects",
                "Connections opened to replace a dead one or after an outage.",
            ),
            available=make(
                Gauge, "db_up", "1 while the database answers, 0 while it is unreachable."
            ),
            backlog=make(
                Gauge,
                "persistence_backlog_gardens",
                "Changed gardens not yet saved (write-behind backlog).",
            ),
            flush_duration=make(
                Histogram,
                "persistence_flush_duration_seconds",
                "Time of one write-behind flush (all batches).",
                buckets=_DB_BUCKETS,
            ),
            flush_failures=make(
                Counter,
                "persistence_flush_failures",
                "Write-behind batches that failed and will be retried.",
            ),
            gardens_saved=make(
                Counter, "persistence_gardens_saved", "Gardens written by the write-behind saver."
            ),
            gardens_rejected=make(
                Counter,
                "persistence_gardens_rejected",
                "Garden snapshots the store refused (invalid values); kept dirty and logged.",
            ),
        )


@attrs.frozen
class CacheMetrics:
    requests: Counter
    errors: Counter
    duration: Histogram
    available: Gauge

    @classmethod
    def create(cls, namespace: str, registry: CollectorRegistry) -> CacheMetrics:
        return cls(
            requests=Counter(
                "cache_requests",
                "Cache lookups by cache name and result (hit or miss).",
                ["cache", "result"],
                namespace=namespace,
                registry=registry,
            ),
            errors=Counter(
                "cache_errors",
                "Cache backend calls that failed or timed out (served as a miss), by operation.",
                ["operation"],
                namespace=namespace,
                registry=registry,
            ),
            duration=Histogram(
                "cache_call_duration_seconds",
                "Time of one cache backend call, by operation.",
                ["operation"],
                namespace=namespace,
                registry=registry,
                buckets=_CACHE_BUCKETS,
            ),
            available=Gauge(
                "cache_up",
                "1 while the cache backend answers, 0 during an outage.",
                namespace=namespace,
                registry=registry,
            ),
        )


@attrs.frozen
class GameMetrics:
    ticks: Counter
    overruns: Counter
    tick_errors: Counter
    commands: Counter
    commands_rejected: Counter
    gardens: Gauge
    bodies: Gauge
    queued: Gauge

    @classmethod
    def create(cls, namespace: str, registry: CollectorRegistry) -> GameMetrics:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, list(labels), namespace=namespace, registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, namespace=namespace, registry=registry)

        return cls(
            ticks=counter("game_ticks", "Ticks run, by loop.", ("loop",)),
            overruns=counter("game_tick_overruns", "Ticks missed because one ran late.", ("loop",)),
            tick_errors=counter("game_tick_errors", "Ticks that raised, by loop.", ("loop",)),
            commands=counter("game_commands", "Player commands applied, by outcome.", ("outcome",)),
            commands_rejected=counter(
                "game_commands_rejected", "Commands refused because the queue was full."
            ),
            gardens=gauge("game_gardens_loaded", "Gardens in memory."),
            bodies=gauge("game_bodies", "Bodies in memory, all gardens."),
            queued=gauge("game_commands_queued", "Commands waiting for the next tick."),
        )


# HTTP requests: health checks take microseconds, logins an argon2 verify (~0.2 s).
_HTTP_BUCKETS = (
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
    2.5e-2,
    5e-2,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# One argon2 hash or verify: tens to hundreds of milliseconds by design.
_HASH_BUCKETS = (1e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@attrs.frozen
class HttpMetrics:
    """Every HTTP request the Site answers (REST API, health, /metrics)."""

    requests: Counter
    duration: Histogram
    in_flight: Gauge
    rate_limited: Counter

    @classmethod
    def create(cls, namespace: str, registry: CollectorRegistry) -> HttpMetrics:
        return cls(
            requests=Counter(
                "http_requests",
                "HTTP requests answered, by method and status code.",
                ["method", "status"],
                namespace=namespace,
                registry=registry,
            ),
            duration=Histogram(
                "http_request_duration_seconds",
                "Time from the whole request received to the response finished, "
                "by method and route template (e.g. /api/v1/gardens/{garden_id}).",
                ["method", "route"],
                namespace=namespace,
                registry=registry,
                buckets=_HTTP_BUCKETS,
            ),
            in_flight=Gauge(
                "http_requests_in_flight",
                "Requests received and not yet answered.",
                namespace=namespace,
                registry=registry,
            ),
            rate_limited=Counter(
                "http_rate_limited",
                "Requests refused with 429 by the per-address limit, by route template.",
                ["route"],
                namespace=namespace,
                registry=registry,
            ),
        )


@attrs.frozen
class AuthMetrics:
    """Accounts, logins, tokens and the password hasher."""

    events: Counter
    hash_duration: Histogram
    hash_waiting: Gauge

    @classmethod
    def create(cls, namespace: str, registry: CollectorRegistry) -> AuthMetrics:
        return cls(
            events=Counter(
                "auth_events",
                "Account and token events by kind (register, login_ok, login_failed, "
                "refresh_ok, refresh_failed, refresh_reused, logout, rehash, delete, "
                "hash_busy).",
                ["event"],
                namespace=namespace,
                registry=registry,
            ),
            hash_duration=Histogram(
                "auth_password_hash_duration_seconds",
                "Time of one argon2 hash or verify in the worker thread, by operation.",
                ["operation"],
                namespace=namespace,
                registry=registry,
                buckets=_HASH_BUCKETS,
            ),
            hash_waiting=Gauge(
                "auth_password_hash_waiting",
                "Password hashes waiting for a free slot (auth.hash_concurrency).",
                namespace=namespace,
                registry=registry,
            ),
        )


# One broadcast tick: encoding and sending every client's frame.
_BROADCAST_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5)


@attrs.frozen
class WebSocketMetrics:
    """The WebSocket protocol at /ws (cosmic.net).  Label values come from
    fixed sets (message types, codecs, reasons), never from client input."""

    connections: Gauge
    sessions: Gauge
    messages_in: Counter
    messages_out: Counter
    payload_bytes: Counter
    rate_limited: Counter
    coalesced: Counter
    dropped: Counter
    handshake_failures: Counter
    closed: Counter
    full_syncs: Counter
    broadcast_duration: Histogram

    @classmethod
    def create(cls, namespace: str, registry: CollectorRegistry) -> WebSocketMetrics:
        def make(kind, name, doc, labels=(), **kw):
            return kind(name, doc, list(labels), namespace=namespace, registry=registry, **kw)

        return cls(
            connections=make(
                Gauge, "ws_connections", "Open WebSocket connections, by subprotocol.", ["codec"]
            ),
            sessions=make(
                Gauge,
                "ws_sessions",
                "WebSocket sessions: players (distinct, connected), sessions (connected), "
                "observers (connected and observing another garden), detached (resumable).",
                ["kind"],
            ),
            messages_in=make(
                Counter,
                "ws_messages_received",
                "Client messages received, by type (invalid: could not be decoded or validated).",
                ["type"],
            ),
            messages_out=make(
                Counter, "ws_messages_sent", "Server messages sent, by type.", ["type"]
            ),
            payload_bytes=make(
                Counter,
                "ws_payload_bytes",
                "Message bytes by codec, direction (in, out) and stage: serialized "
                "(before compression) or encoded (what the WebSocket carries).",
                ["codec", "direction", "stage"],
            ),
            rate_limited=make(
                Counter,
                "ws_rate_limited",
                "Messages or handshakes refused by a rate limit, by scope "
                "(message, pending, handshake, connections).",
                ["scope"],
            ),
            coalesced=make(
                Counter,
                "ws_deltas_coalesced",
                "State frames skipped for a congested client (folded into its next one).",
            ),
            dropped=make(
                Counter,
                "ws_messages_dropped",
                "Non-critical messages dropped for a congested client, by type.",
                ["type"],
            ),
            handshake_failures=make(
                Counter,
                "ws_handshake_failures",
                "Opening handshakes refused, by reason.",
                ["reason"],
            ),
            closed=make(
                Counter,
                "ws_connections_closed",
                "Connections closed by the server, by error code (e.g. WS_CONN_002).",
                ["code"],
            ),
            full_syncs=make(
                Counter, "ws_full_syncs", "FullStateSync messages sent, by reason.", ["reason"]
            ),
            broadcast_duration=make(
                Histogram,
                "ws_broadcast_duration_seconds",
                "Time of one broadcast tick (every client's frame built and written).",
                buckets=_BROADCAST_BUCKETS,
            ),
        )


# Young collections take microseconds; a full one over a million objects, a second.
_GC_BUCKETS = (1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5)


@attrs.frozen
class GcMetrics:
    """The garbage collector's pauses (cosmic.ops.gcpolicy)."""

    pause: Histogram
    collected: Counter

    @classmethod
    def create(cls, namespace: str, registry: CollectorRegistry) -> GcMetrics:
        return cls(
            pause=Histogram(
                "gc_pause_seconds",
                "Time of one garbage collection (every thread stops), by generation.",
                ["generation"],
                namespace=namespace,
                registry=registry,
                buckets=_GC_BUCKETS,
            ),
            collected=Counter(
                "gc_collected_objects",
                "Objects the garbage collector freed, by generation.",
                ["generation"],
                namespace=namespace,
                registry=registry,
            ),
        )


@attrs.frozen
class Metrics:
    namespace: str
    registry: CollectorRegistry
    physics: PhysicsMetrics
    store: StoreMetrics
    cache: CacheMetrics
    game: GameMetrics
    http: HttpMetrics
    auth: AuthMetrics
    ws: WebSocketMetrics
    gc: GcMetrics


def create(namespace: str = "cosmic_gardener") -> Metrics:
    registry = CollectorRegistry(auto_describe=True)
    # CPU, memory, open files and start time of this process, under the namespace.
    ProcessCollector(namespace=namespace, registry=registry)
    return Metrics(
        namespace=namespace,
        registry=registry,
        physics=PhysicsMetrics.create(namespace, registry),
        store=StoreMetrics.create(namespace, registry),
        cache=CacheMetrics.create(namespace, registry),
        game=GameMetrics.create(namespace, registry),
        http=HttpMetrics.create(namespace, registry),
        auth=AuthMetrics.create(namespace, registry),
        ws=WebSocketMetrics.create(namespace, registry),
        gc=GcMetrics.create(namespace, registry),
    )
