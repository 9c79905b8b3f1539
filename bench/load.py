"""Load: N real players against one real ``twistd cosmic`` process.

    .venv/bin/python bench/load.py [--players 10000] [--active 1000]
        [--workers 2] [--rate 500] [--hold 30] [--keep DIR] [--json FILE]
        [--set section.key=value ...]

(``cd bench/load && npm ci`` once: the players are Node processes.)

The daemon runs in its own process on the embedded default (SQLite,
in-process cache) with the ``test`` environment's cheap password hashing and
these bench-only limits raised, since every player comes from 127.0.0.1:
auth and handshake rate limits, ``ws.max_connections`` and
``ws.max_connections_per_address`` (N + 64), ``auth.access_ttl`` (a day, so
that ``--keep`` can reuse tokens) and ``ws.auth_timeout`` (the sockets are
all opened before any authenticates).  Everything else is the default:
60 physics ticks/s, 10 broadcasts/s.

Phases, each timed:

accounts
    N accounts registered and logged in over the REST API (16 threads), or
    read back from ``--keep DIR`` (which also keeps the daemon's database).
open
    ``--workers`` Node processes (bench/load/client.js, the ``ws`` package)
    open N WebSockets at ``--rate`` per second in all, without
    authenticating: the handshake rate and the daemon's memory per open
    connection ((RSS now - RSS before) / N).
auth
    every socket authenticates (cosmic.json.v1), which loads (or creates)
    the player's garden and starts its stream: memory per playing player.
hold
    ``--hold`` seconds of play: ``--active`` players make their garden public,
    create ``--initial-bodies`` asteroids (the starting dust buys four) and
    every ``--action-interval`` s (jittered) create an asteroid, start a
    research, observe another active player's garden, stop observing; the
    others just receive their garden's deltas.  Delivery latency is each
    StateDelta's ``server_time`` (when the broadcast tick that built it
    started) to its arrival (same machine, same clock), so it includes the
    time to build and send every other player's frame of that tick.
    Messages in and out are counted by the players; CPU from /proc; tick
    overruns and broadcast tick durations from /metrics.
stop
    SIGTERM with every player connected: how long the graceful stop took.

With ``--players 1000 --active 1000`` it is the "1,000 active gardens"
scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import report
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon import TWISTD, Daemon, base_environ

CLIENT = Path(__file__).resolve().parent / "load" / "client.js"
PASSWORD = "bench-load-password-0"
TICKS = os.sysconf("SC_CLK_TCK")


# -- the daemon ----------------------------------------------------------------------------------


def daemon_args(players: int, extra: list[str] = ()) -> list[str]:
    limit = str(players + 64)
    sets = {
        "logging.level": "info",
        "auth.rate_limit_burst": "100000",
        "auth.rate_limit_per_minute": "1000000",
        "auth.hash_queue_max": "100000",
        "auth.access_ttl": "86400",
        "ws.max_connections": limit,
        "ws.max_connections_per_address": limit,
        "ws.handshake_rate_burst": "100000",
        "ws.handshake_rate_per_minute": "1000000",
        "ws.auth_timeout": "600",
    }
    for item in extra:  # --set KEY=VALUE from the command line, last wins
        key, _, value = item.partition("=")
        sets[key] = value
    return [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def metrics(d: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(d.url("/metrics"), timeout=30) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def metric_delta(before: dict, after: dict, name: str) -> dict[str, float]:
    """``name``'s increase by label set (labels joined), for counters."""
    out = {}
    for (metric, labels), value in after.items():
        if metric == name:
            key = ",".join(v for _, v in labels) or "-"
            out[key] = value - before.get((metric, labels), 0.0)
    return out


# -- accounts ------------------------------------------------------------------------------------


def post(d: Daemon, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        d.url(path),
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    for attempt in range(5):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 409:  # registered by an earlier run
                return {}
            if exc.code not in (429, 503) or attempt == 4:
                raise
        except OSError:
            if attempt == 4:
                raise
        time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def account(d: Daemon, n: int) -> str:
    username = f"load{n:05d}"
    post(d, "/api/v1/auth/register", {"username": username, "password": PASSWORD})
    return post(d, "/api/v1/auth/login", {"username": username, "password": PASSWORD})[
        "access_token"
    ]


def tokens(d: Daemon, players: int, keep: Path) -> tuple[list[str], dict[str, Any]]:
    saved_path = keep / "tokens.json"
    saved: dict[str, Any] = {}
    if saved_path.exists():
        saved = json.loads(saved_path.read_text())
    fresh_until = time.time() + 3600
    have = [t for t in saved.get("tokens", []) if saved.get("expires", 0) > fresh_until]
    started = time.perf_counter()
    missing = range(len(have), players)
    with ThreadPoolExecutor(16) as pool:
        made = list(pool.map(lambda n: account(d, n), missing))
    elapsed = time.perf_counter() - started
    every = (have + made)[:players]
    if made:
        saved_path.write_text(json.dumps({"tokens": every, "expires": time.time() + 86000}))
    row = {"accounts": players, "new": len(made), "seconds": elapsed}
    if made:
        row["per_s"] = len(made) / elapsed
    return every, row


# -- the players ---------------------------------------------------------------------------------


class Workers:
    """The Node player processes and their per-second reports."""

    def __init__(self, url: str, tokens: list[str], active: int, args: argparse.Namespace) -> None:
        self.reports: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.procs: list[subprocess.Popen[str]] = []
        self.configs = tempfile.mkdtemp(prefix="cosmic-load-")
        n = args.workers
        for w in range(n):
            mine = [[t, i < active] for i, t in enumerate(tokens) if i % n == w]
            path = Path(self.configs) / f"worker{w}.json"
            path.write_text(
                json.dumps(
                    {
                        "url": url,
                        "tokens": mine,
                        "rate": args.rate / n,
                        "waitForAuth": True,
                        "actionInterval": args.action_interval,
                        "initialBodies": args.initial_bodies,
                        "seed": w + 1,
                    }
                )
            )
            proc = subprocess.Popen(
                ["node", str(CLIENT), str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(w, proc), daemon=True).start()

    def _read(self, w: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                item = json.loads(line)
                item["worker"] = w
                with self.lock:
                    self.reports.append(item)

    def latest(self) -> dict[str, int]:
        """Totals over the workers' latest reports."""
        last: dict[int, dict[str, Any]] = {}
        with self.lock:
            for r in self.reports:
                last[r["worker"]] = r
        keys = ("opened", "authed", "closed", "failed", "open")
        return {k: sum(r[k] for r in last.values()) for k in keys} | {"reporting": len(last)}

    def wait(self, key: str, target: int, stall: float = 30.0) -> float:
        """Seconds until ``latest()[key]`` reaches ``target`` (or stops growing)."""
        started = time.perf_counter()
        best, best_at = -1, started
        while True:
            value = self.latest()[key]
            if value >= target:
                return time.perf_counter() - started
            if value > best:
                best, best_at = value, time.perf_counter()
            if time.perf_counter() - best_at > stall:
                print(f"  {key} stalled at {value} of {target}", file=sys.stderr)
                return time.perf_counter() - started
            time.sleep(0.2)

    def command(self, line: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(line + "\n")
            proc.stdin.flush()

    def window(self, since: float, until: float) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.reports if since < r["t"] / 1000.0 <= until]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(30)


def percentile(histogram: dict[int, int], q: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = q * (total - 1), 0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen > rank:
            return float(ms)
    return float(max(histogram))


def summarise(reports: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    histogram: dict[int, int] = {}
    errors: dict[str, int] = {}
    closes: dict[str, int] = {}
    sums = {"msgsIn": 0, "bytesIn": 0, "msgsOut": 0, "states": 0, "fullSyncs": 0}
    for r in reports:
        for ms, count in r["latency"].items():
            histogram[int(ms)] = histogram.get(int(ms), 0) + count
        for key in sums:
            sums[key] += r[key]
        for code, count in r["errors"].items():
            errors[code] = errors.get(code, 0) + count
        for code, count in r["closes"].items():
            closes[code] = closes.get(code, 0) + count
    return {
        "latency_p50_ms": percentile(histogram, 0.50),
        "latency_p99_ms": percentile(histogram, 0.99),
        "latency_max_ms": float(max(histogram)) if histogram else None,
        "states_per_s": sums["states"] / seconds,
        "full_syncs": sums["fullSyncs"],
        "msgs_in_per_s": sums["msgsIn"] / seconds,
        "bytes_in_per_s": sums["bytesIn"] / seconds,
        "msgs_out_per_s": sums["msgsOut"] / seconds,
        "errors": errors,
        "closes": closes,
    }


# -- the run -------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    keep = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cosmic-load-"))
    (keep / "var").mkdir(parents=True, exist_ok=True)
    d = Daemon(keep, *daemon_args(args.players, args.set), env=base_environ())
    if args.profile:  # the same twistd under cProfile (written when it stops)
        d.args = ["-m", "cProfile", "-o", str(Path(args.profile).resolve()), TWISTD, *d.args]
        d_start = d.start

        def start(**kw: Any) -> Daemon:
            with mock.patch("tests.integration.daemon.TWISTD", sys.executable):
                return d_start(**kw)

        d.start = start  # type: ignore[method-assign]
    d.start(timeout=60)
    deadline = time.monotonic() + 60
    while d.get("/health/ready")[0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit("the daemon did not become ready")
        time.sleep(0.2)
    pid = d.proc.pid
    out: dict[str, Any] = {"players": args.players, "active": args.active}
    try:
        tokens_, out["accounts"] = tokens(d, args.players, keep)
        print(f"accounts: {out['accounts']}", flush=True)
        rss_base = rss_bytes(pid)
        workers = Workers(f"ws://127.0.0.1:{d.port}/ws", tokens_, args.active, args)
        try:
            seconds = workers.wait("opened", args.players)
            time.sleep(3)
            rss_open = rss_bytes(pid)
            held = workers.latest()
            out["open"] = {
                "seconds": seconds,
                "per_s": held["opened"] / seconds if seconds else None,
                "opened": held["opened"],
                "failed": held["failed"],
                "rss_mib": rss_open / 2**20,
                "kib_per_connection": (rss_open - rss_base) / max(1, held["opened"]) / 1024,
            }
            print(f"open: {out['open']}", flush=True)

            workers.command("auth")
            seconds = workers.wait("authed", args.players, stall=60)
            time.sleep(args.settle)
            rss_auth = rss_bytes(pid)
            held = workers.latest()
            out["auth"] = {
                "seconds": seconds,
                "per_s": held["authed"] / seconds if seconds else None,
                "authed": held["authed"],
                "rss_mib": rss_auth / 2**20,
                "kib_per_player": (rss_auth - rss_base) / max(1, held["authed"]) / 1024,
            }
            print(f"auth: {out['auth']}", flush=True)

            before, cpu0, client0 = metrics(d), cpu_seconds(pid), workers.cpu_seconds()
            t0 = time.time()
            time.sleep(args.hold)
            t1 = time.time()
            after, cpu1, client1 = metrics(d), cpu_seconds(pid), workers.cpu_seconds()
            held = workers.latest()
            hold = summarise(workers.window(t0, t1), t1 - t0)
            broadcast = metric_delta(
                before, after, "cosmic_gardener_ws_broadcast_duration_seconds_sum"
            )
            ticks = metric_delta(
                before, after, "cosmic_gardener_ws_broadcast_duration_seconds_count"
            )
            hold.update(
                {
                    "seconds": t1 - t0,
                    "connections_held": held["open"],
                    "states_per_player_s": hold["states_per_s"] / max(1, held["authed"]),
                    "daemon_cpu_percent": 100.0 * (cpu1 - cpu0) / (t1 - t0),
                    "clients_cpu_percent": 100.0 * (client1 - client0) / (t1 - t0),
                    "rss_mib": rss_bytes(pid) / 2**20,
                    "tick_overruns": metric_delta(
                        before, after, "cosmic_gardener_game_tick_overruns_total"
                    ),
                    "broadcast_tick_ms": 1000.0
                    * sum(broadcast.values())
                    / max(1.0, sum(ticks.values())),
                    "broadcasts_per_s": sum(ticks.values()) / (t1 - t0),
                }
            )
            out["hold"] = hold
            print(f"hold: {hold}", flush=True)

            started = time.perf_counter()
            d.signal(15)
            code = d.proc.wait(120)
            out["stop"] = {"seconds": time.perf_counter() - started, "exit": code}
            time.sleep(1)
            out["stop"]["closes"] = summarise(workers.window(t1, time.time() + 10), 1.0)["closes"]
            print(f"stop: {out['stop']}", flush=True)
        finally:
            workers.stop()
    finally:
        d.kill()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--players", type=int, default=10000)
    parser.add_argument("--active", type=int, default=1000, help="players who also act")
    parser.add_argument("--workers", type=int, default=2, help="Node player processes")
    parser.add_argument("--rate", type=float, default=500.0, help="connections opened per s")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds of play measured")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after auth")
    parser.add_argument("--action-interval", type=float, default=5.0)
    parser.add_argument(
        "--initial-bodies", type=int, default=4, help="asteroids each active player makes first"
    )
    parser.add_argument("--keep", metavar="DIR", help="keep accounts and database here")
    parser.add_argument("--profile", metavar="FILE", help="run the daemon under cProfile")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a daemon setting (section.key=value), e.g. ws.idle_interval=5",
    )
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    if not (CLIENT.parent / "node_modules" / "ws").exists():
        raise SystemExit("run `npm ci` in bench/load first")
    result = run(args)
    if args.json:
        report.write_json(args.json, "load", {"load": result})


if __name__ == "__main__":
    main()
