"""Persistence benchmark: cache vs database reads, pooled vs connect-per-query,
bulk vs row-by-row saves, txpostgres vs asyncpg on the same queries.

    .venv/bin/python bench/database.py [--json FILE] [--quick]
        [--dsn "host=127.0.0.1 user=postgres"] [--redis redis://127.0.0.1:6379/0]

Needs PostgreSQL (a throwaway database is created and dropped) and, for the
Redis rows, Redis; asyncpg for the peer comparison (without it that part is
reported as NOT RUN, in the table, on stderr and in the JSON).
Latencies are sequential round trips (p50/p99 of --n calls); throughput rows
run 8 callers at once on 8-connection pools.  Prints a table; --json writes
every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import attrs
import psycopg2
from twisted.internet import defer

from cosmic.cache.memory import MemoryCache
from cosmic.cache.redis import RedisCache
from cosmic.store import records as rec
from cosmic.store.postgres import SAVE_SQL, Connector, PostgresStore, Session, bulk_payload
from cosmic.store.records import BodyRecord
from cosmic.store.sqlite import SQLiteStore

CONCURRENCY = 8


def body(garden_id: int, body_id: int, step: int = 0) -> BodyRecord:
    return BodyRecord(
        garden_id, body_id, "asteroid", f"rock {body_id}", 1.0 + body_id, 0.01,
        body_id * 0.5 + step, -1.25, 0.5, 0.1, 6.28 + step, 0.0, 1, 1000.0,
        None, 0.0, 0.0,
    )  # fmt: skip


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": p99 * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
        "n": len(ordered),
    }


async def latency(call: Callable[[], Awaitable[Any]], n: int, warmup: int = 50) -> dict:
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


async def throughput(call: Callable[[], Awaitable[Any]], total: int, twisted: bool) -> dict:
    per_worker = total // CONCURRENCY

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    start = time.perf_counter()
    if twisted:
        await defer.gatherResults(
            [defer.ensureDeferred(worker()) for _ in range(CONCURRENCY)], consumeErrors=True
        )
    else:
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - start
    return {"ops_per_s": per_worker * CONCURRENCY / elapsed, "seconds": elapsed}


async def timed(call: Callable[[], Awaitable[Any]], repeats: int) -> dict:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return {"median_s": statistics.median(samples), "best_s": min(samples), "runs": repeats}


# --- the Twisted side -------------------------------------------------------------


async def twisted_benchmarks(reactor: Any, args: argparse.Namespace, dsn: str) -> dict:
    out: dict[str, Any] = {}
    n = args.n
    store = PostgresStore(dsn, reactor=reactor, min_size=CONCURRENCY, max_size=CONCURRENCY)
    await store.migrate()
    await store.open()
    owner = await store.create_account("bench", "Bench", "h", time.time())
    garden = await store.create_garden(owner.id, "bench", True, time.time(), {"dust": 1.0})
    snapshot_bodies = [body(garden.id, i) for i in range(50)]
    await store.save_gardens([(attrs.evolve(garden, version=1), snapshot_bodies)])
    big = await store.create_garden(owner.id, "big", True, time.time(), {"dust": 1.0})

    # 1. cache vs database reads of one garden snapshot (50 bodies)
    loaded = await store.load_garden(garden.id)
    blob = json.dumps(
        {"garden": attrs.asdict(loaded[0]), "bodies": [attrs.asdict(b) for b in loaded[1]]}
    ).encode()
    reads: dict[str, Any] = {}
    reads["postgresql load_garden"] = await latency(lambda: store.load_garden(garden.id), n)
    lite_dir = Path(args.tmp) / f"bench-{secrets.token_hex(4)}"
    lite = SQLiteStore(lite_dir / "bench.sqlite3", reactor=reactor)
    await lite.open()
    await lite.migrate()
    lite_owner = await lite.create_account("bench", "Bench", "h", 1.0)
    lite_garden = await lite.create_garden(lite_owner.id, "bench", True, 1.0, {"dust": 1.0})
    await lite.save_gardens(
        [(attrs.evolve(lite_garden, version=1), [body(lite_garden.id, i) for i in range(50)])]
    )
    reads["sqlite load_garden"] = await latency(lambda: lite.load_garden(lite_garden.id), n)
    redis = None
    if args.redis:
        prefix = f"bench-{secrets.token_hex(4)}:"
        redis = RedisCache(args.redis, reactor=reactor, timeout=2.0, prefix=prefix)
        await redis.open()
        if await redis.when_connected(3.0):
            await redis.set("snapshot", blob, ttl=600)
            reads["redis get snapshot"] = await latency(lambda: redis.get("snapshot"), n)
        else:
            print(f"(Redis at {args.redis} not reachable: its rows are skipped)", file=sys.stderr)
            redis = None
    memory = MemoryCache(1000, clock=reactor)
    await memory.set("snapshot", blob, ttl=600)
    reads["memory get snapshot"] = await latency(lambda: memory.get("snapshot"), n)
    out["reads"] = reads
    out["snapshot_bytes"] = len(blob)

    # 2. pooled vs connect-per-query (the same point query)
    connector = Connector(dsn, reactor=reactor)

    point_sql = "SELECT id, username FROM accounts WHERE id = %s"

    async def per_query() -> Any:
        conn = await connector.connect()
        try:
            return await Session(conn).one(point_sql, (owner.id,))
        finally:
            connector.close(conn)

    async def pooled() -> Any:
        return await store.pool.run(lambda conn: Session(conn).one(point_sql, (owner.id,)))

    out["pooling"] = {
        "pooled": await latency(pooled, n),
        "connect per query": await latency(per_query, max(50, n // 10), warmup=10),
    }

    # 3. bulk vs row-by-row save of 10,000 bodies
    count = args.bodies
    version = [1]

    def snapshot() -> tuple:
        version[0] += 1
        bodies = [body(big.id, i, version[0]) for i in range(count)]
        return attrs.evolve(big, version=version[0]), bodies

    async def bulk() -> None:
        result = await store.save_gardens([snapshot()])
        assert result.saved == (big.id,)

    async def row_by_row() -> None:
        garden_record, bodies = snapshot()
        state = rec.encode_state(garden_record.state)

        async def work(s: Session) -> None:
            await s.count(
                "UPDATE gardens SET saved_at = %s, game_time = %s, state = %s::json, version = %s "
                "WHERE id = %s AND version <= %s",
                (garden_record.saved_at, garden_record.game_time, state, garden_record.version,
                 garden_record.id, garden_record.version),
            )  # fmt: skip
            for b in bodies:
                await s.count(ROW_UPSERT, attrs.astuple(b))
            await s.count(
                "DELETE FROM bodies WHERE garden_id = %s AND NOT (body_id = ANY(%s))",
                (big.id, [b.body_id for b in bodies]),
            )

        await store.pool.run(lambda conn: Session(conn).transaction(work))

    await bulk()  # the first save inserts; the timed ones update, as the game does
    saves = {
        "bulk (one statement)": await timed(bulk, args.repeats),
        "row by row": await timed(row_by_row, max(1, args.repeats // 2)),
    }
    lite_big = await lite.create_garden(lite_owner.id, "big", True, 1.0, {})
    lite_version = [1]

    async def lite_bulk() -> None:
        lite_version[0] += 1
        bodies = [body(lite_big.id, i, lite_version[0]) for i in range(count)]
        await lite.save_gardens([(attrs.evolve(lite_big, version=lite_version[0]), bodies)])

    await lite_bulk()
    saves["sqlite bulk (executemany)"] = await timed(lite_bulk, args.repeats)
    out["saves"] = saves
    out["bodies"] = count

    # 4. the peer comparison, txpostgres side: the same SQL as the asyncpg side
    async def point() -> Any:
        return await store.pool.run(
            lambda conn: Session(conn).one(PEER_POINT.replace("$1", "%s"), (owner.id,))
        )

    async def garden_read() -> Any:
        async def work(conn: Any) -> Any:
            s = Session(conn)
            g = await s.one(PEER_GARDEN.replace("$1", "%s"), (garden.id,))
            b = await s.all(PEER_BODIES.replace("$1", "%s"), (garden.id,))
            return g, b

        return await store.pool.run(work)

    peer_version = [10_000]

    async def peer_save() -> Any:
        peer_version[0] += 1
        bodies = [body(big.id, i, peer_version[0]) for i in range(count)]
        snapshot = (attrs.evolve(big, version=peer_version[0]), bodies)
        payload = bulk_payload(rec.check_snapshots([snapshot]))
        return await store.pool.run(lambda conn: Session(conn).all(SAVE_SQL, payload))

    out["peer_txpostgres"] = {
        "point select": await latency(point, n),
        "point select x8": await throughput(point, n * 2, twisted=True),
        "garden + 50 bodies": await latency(garden_read, n),
        "bulk save 10k bodies": await timed(peer_save, args.repeats),
    }
    out["ids"] = {"owner": owner.id, "garden": garden.id, "big": big.id, "version": peer_version[0]}
    await lite.close()
    if redis is not None:
        await redis.delete_prefixed()
        await redis.close()
    await store.close()
    return out


ROW_UPSERT = (
    "INSERT INTO bodies (garden_id, body_id, kind, name, mass, radius, px, py, pz, vx, vy, vz, "
    "level, created_at, life_stage, population, life_progress) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (garden_id, body_id) DO UPDATE SET px = EXCLUDED.px, py = EXCLUDED.py, "
    "pz = EXCLUDED.pz, vx = EXCLUDED.vx, vy = EXCLUDED.vy, vz = EXCLUDED.vz, mass = EXCLUDED.mass"
)
PEER_POINT = (
    "SELECT id, username, display_name, password_hash, created_at FROM accounts WHERE id = $1"
)
PEER_GARDEN = (
    "SELECT id, owner_id, name, public, created_at, saved_at, game_time, state, total_mass, "
    "thought_points, transcended_at, version FROM gardens WHERE id = $1"
)
PEER_BODIES = (
    "SELECT garden_id, body_id, kind, name, mass, radius, px, py, pz, vx, vy, vz, level, "
    "created_at, life_stage, population, life_progress FROM bodies WHERE garden_id = $1 "
    "ORDER BY body_id"
)


# --- the asyncio side (asyncpg) -------------------------------------------------------


async def asyncpg_benchmarks(args: argparse.Namespace, dsn: str, ids: dict) -> dict | None:
    try:
        import asyncpg
    except ImportError as exc:
        reason = f"asyncpg is not installed ({exc}); install it to compare: pip install asyncpg"
        print(f"WARNING: txpostgres vs asyncpg is NOT RUN: {reason}", file=sys.stderr)
        return {"skipped": reason}
    params = psycopg2.extensions.parse_dsn(dsn)
    pool = await asyncpg.create_pool(
        host=params.get("host"),
        port=int(params.get("port", 5432)),
        user=params.get("user"),
        password=params.get("password"),
        database=params.get("dbname"),
        min_size=CONCURRENCY,
        max_size=CONCURRENCY,
    )
    n, count = args.n, args.bodies
    version = [ids["version"] + 10_000]
    # the same statement; asyncpg binds typed parameters, so the literals go in as text
    save_sql = SAVE_SQL
    for number in range(1, SAVE_SQL.count("%s") + 1):
        save_sql = save_sql.replace("%s::", f"${number}::text::", 1)

    async def point() -> Any:
        async with pool.acquire() as conn:
            return await conn.fetchrow(PEER_POINT, ids["owner"])

    async def garden_read() -> Any:
        async with pool.acquire() as conn:
            g = await conn.fetchrow(PEER_GARDEN, ids["garden"])
            b = await conn.fetch(PEER_BODIES, ids["garden"])
            return g, b

    async def peer_save() -> Any:
        version[0] += 1
        garden = rec.GardenRecord(
            ids["big"], 0, "big", True, 1.0, 2.0, 3.0, {"dust": 1.0}, version=version[0]
        )
        payload = bulk_payload(
            rec.check_snapshots([(garden, [body(ids["big"], i, version[0]) for i in range(count)])])
        )
        async with pool.acquire() as conn:
            return await conn.fetch(save_sql, *payload)

    try:
        return {
            "point select": await latency(point, n),
            "point select x8": await throughput(point, n * 2, twisted=False),
            "garden + 50 bodies": await latency(garden_read, n),
            "bulk save 10k bodies": await timed(peer_save, args.repeats),
        }
    finally:
        await pool.close()


# --- running and reporting ----------------------------------------------------------------


def run_twisted(args: argparse.Namespace, dsn: str) -> dict:
    from twisted.internet import reactor

    box: dict[str, Any] = {}

    def finish(result: Any) -> None:
        box["result"] = result
        reactor.stop()

    def start() -> None:
        defer.ensureDeferred(twisted_benchmarks(reactor, args, dsn)).addBoth(finish)

    reactor.callWhenRunning(start)
    reactor.run()
    result = box["result"]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


def table(results: dict) -> str:
    lines = []

    def row(name: str, a: str, b: str, c: str = "") -> None:
        lines.append(f"{name:<44} {a:>12} {b:>12} {c:>14}")

    machine = results.get("machine")
    if machine:
        lines.append(
            f"PostgreSQL {machine['server_version']}, Python {machine['python']}, "
            f"{machine['cpus']} CPUs"
        )
        lines.append("")
    tw = results["twisted"]
    calls = tw["reads"]["postgresql load_garden"]["n"]
    lines.append(f"Snapshot reads ({tw['snapshot_bytes']} bytes, {calls} sequential calls)")
    row("", "p50 ms", "p99 ms")
    for name, r in tw["reads"].items():
        row("  " + name, f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}")
    lines.append("")
    lines.append("Pooled vs connect-per-query (SELECT one account by id)")
    row("", "p50 ms", "p99 ms")
    for name, r in tw["pooling"].items():
        row("  " + name, f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}")
    pooled = tw["pooling"]["pooled"]["p50_ms"]
    direct = tw["pooling"]["connect per query"]["p50_ms"]
    lower = 100 * (1 - pooled / direct)
    lines.append(f"  pooling: p50 {lower:.0f}% lower ({direct / pooled:.1f}x faster)")
    lines.append("")
    lines.append(f"Saving {tw['bodies']} bodies of one garden (an update of every row)")
    row("", "median s", "best s")
    for name, r in tw["saves"].items():
        row("  " + name, f"{r['median_s']:.3f}", f"{r['best_s']:.3f}")
    ratio = tw["saves"]["row by row"]["median_s"] / tw["saves"]["bulk (one statement)"]["median_s"]
    verdict = "met" if ratio >= 10 else "MISSED"
    lines.append(f"  bulk is {ratio:.1f}x faster than row by row (target >= 10x: {verdict})")
    results["summary"] = {"pooling_p50_reduction": 1 - pooled / direct, "bulk_speedup": ratio}
    peer = results.get("asyncpg")
    if peer and "skipped" in peer:
        lines.append("")
        lines.append("txpostgres (our pool) vs asyncpg (its pool), same SQL")
        lines.append(f"  NOT RUN: {peer['skipped']}")
        lines.append("  target within 1.5x: UNKNOWN")
        results["summary"]["peer_worst_ratio"] = None
    elif peer:
        lines.append("")
        lines.append("txpostgres (our pool) vs asyncpg (its pool), same SQL")
        row("", "txpostgres", "asyncpg", "ratio tx/apg")
        worst = 0.0
        for name, r in tw["peer_txpostgres"].items():
            p = peer[name]
            if "p50_ms" in r:
                a, b, unit = r["p50_ms"], p["p50_ms"], " ms p50"
                ratio_peer = a / b
            elif "ops_per_s" in r:
                a, b, unit = r["ops_per_s"], p["ops_per_s"], " ops/s"
                ratio_peer = b / a
            else:
                a, b, unit = r["median_s"], p["median_s"], " s"
                ratio_peer = a / b
            worst = max(worst, ratio_peer)
            row("  " + name + unit, f"{a:.3f}", f"{b:.3f}", f"{ratio_peer:.2f}")
        verdict = "met" if worst <= 1.5 else "MISSED"
        lines.append(f"  worst ratio {worst:.2f} (target within 1.5x: {verdict})")
        results["summary"]["peer_worst_ratio"] = worst
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_dsn = os.environ.get("BENCH_PG", "host=127.0.0.1 port=5432 user=postgres")
    parser.add_argument("--dsn", default=default_dsn, help="server (no dbname)")
    parser.add_argument("--admin-db", default="test", help="where to CREATE/DROP the bench db")
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--n", type=int, default=2000, help="calls per latency figure")
    parser.add_argument("--bodies", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 200, 2
    name = f"cosmic_bench_{secrets.token_hex(4)}"
    admin = psycopg2.connect(f"{args.dsn} dbname={args.admin_db}")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server_version = cursor.fetchone()[0]
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    dsn = f"{args.dsn} dbname={name}"
    try:
        results: dict[str, Any] = {"twisted": run_twisted(args, dsn)}
        results["asyncpg"] = asyncio.run(asyncpg_benchmarks(args, dsn, results["twisted"]["ids"]))
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    results["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "server_version": server_version,
    }
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
