"""Broadcast fan-out side by side: the daemon, minimal ``websockets`` and Node ``ws`` servers.

    .venv/bin/python bench/fanout.py [--json FILE] [--quick]
        [--clients 100,300,1000,2000] [--repeat 3] [--duration 10]
        [--servers daemon,websockets,ws] [--bytes B] [--bodies 5]
        [--client-procs 2] [--warmup 3] [--workdir var/bench-fanout] [--fresh]
        [--profile FILE]
    .venv/bin/python bench/fanout.py --quick     # 100 and 500 clients, one run, ~2 min

Needs Node 20 and ``npm ci --prefix bench/peers`` (``ws``, ``@msgpack/msgpack``,
``lz4js``), and ``pip install websockets`` (the ``bench`` extra).

Three servers, each its own process, serve the same workload to the same
client processes: N clients, each receiving one binary message every
100 ms (10 Hz, the daemon's ``game.broadcast_hz``).

daemon
    A real ``twistd cosmic --env test`` (embedded SQLite in ``--workdir``,
    ``logging.level=info`` as in production; auth and handshake rate limits
    raised for one loopback address, ``ws.auth_timeout=120``).  N real
    players, registered and logged in over REST (``/api/v1/auth/...``; the
    test environment's cheap argon2 parameters), each with ``--bodies``
    asteroids bought over REST (``POST /api/v1/celestial-bodies``) around the
    star of their own garden.  The accounts and gardens stay in the workdir's
    SQLite and are reused by later runs (``--fresh`` starts over).  Each
    client opens /ws with cosmic.msgpack-lz4.v1, authenticates with its
    access token and receives the StateDelta of its garden every broadcast:
    the real game (physics at 60 ticks/s for N gardens, resources, per-client
    quantized deltas, msgpack + LZ4, write-behind flushes to SQLite).
websockets
    ``bench/peers/websockets_server.py``: Python ``websockets`` (asyncio,
    default event loop); every 100 ms one message of B bytes (timestamp
    inside) through ``websockets.broadcast`` to every connection.
ws
    ``bench/peers/ws_server.js``: Node ``ws``; every 100 ms one message of B
    bytes (timestamp inside) ``send`` to every client.

B is the daemon's mean StateDelta size (wire bytes) measured in its run at
the same N (or ``--bytes``).  The peers do no work but the fan-out; the
daemon's figures include the game.  That is the comparison the ratios make:
what the whole daemon delivers against what a bare server of either stack
delivers for the same bytes at the same rate.

Clients: ``bench/peers/client.js`` (Node ``ws``), ``--client-procs``
processes, each holding N / procs connections (at most 50 handshakes at a
time).  Node because one event loop with a JIT-compiled receive path is the
lightest client at hand that can decode the daemon's frames (LZ4 frame +
msgpack): measured here about 15 us of CPU per message, kernel time
included, about what the bare ``websockets`` server spends to *send* one,
so a Python asyncio client would need more of the two cores the servers
run on (client CPU is reported beside the server's).  Each client
records the messages arriving in the window and, per message, arrival
time minus the server time inside it (``server_time`` of the StateDelta:
when the broadcast tick that built it started; the peers' tick time):
delivery latency on one machine, one clock, including building and sending
every other client's message of that tick.

Per server and N, after the clients connected and a ``--warmup``: clients
held at the end of the window, state messages delivered per second (of the
N x 10 due), the distinct server ticks that reached the clients per second,
latency p50/p99, server CPU (% of one core, utime + stime from
/proc/PID/stat over the window; the peers are single-threaded, the
daemon's threads, physics included, are counted) and CPU per delivered
message, server RSS at the end and its growth per client over the idle
server; the clients' CPU and the rest of the machine's (everything else
running: on a shared machine, the noise).  For the daemon also the mean
broadcast tick, per client, and the game loop's overruns in the window
(/metrics).  Each (server, N) runs ``--repeat`` times, interleaved; tables
hold medians.  The ratios are daemon / peer: above 1 for msgs/s is better,
below 1 for latency, CPU and memory.  ``--profile FILE`` runs the daemon
under twistd's cProfile (main thread only) and saves FILE.<N>.pstats.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "peers"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import report  # noqa: E402

from tests.integration.daemon import base_environ  # noqa: E402

HZ = 10.0
PASSWORD = "fanout-bench-password"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVERS = ("daemon", "websockets", "ws")

DAEMON_SETTINGS = (
    "logging.level=info",
    "auth.rate_limit_burst=100000",
    "auth.rate_limit_per_minute=1000000",
    "auth.access_ttl=86400",
    "auth.hash_queue_max=100000",
    "ws.handshake_rate_burst=100000",
    "ws.handshake_rate_per_minute=1000000",
    "ws.max_connections_per_address=1000000",
    "ws.max_connections=100000",
    "ws.auth_timeout=120",
)


# -- processes ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK, sum(values[:8]) / CLK_TCK


def twistd() -> str:
    return str(Path(sys.executable).parent / "twistd")


class Server:
    """One server process: start it, learn its port, stop it."""

    def __init__(self, kind: str, workdir: Path, size: int, profile: str | None = None) -> None:
        self.kind = kind
        self.profile = profile
        self.workdir = workdir
        self.size = size
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.log = workdir / f"{kind}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> Server:
        deadline = time.monotonic() + timeout
        if self.kind == "daemon":
            sets = [f"--set={s}" for s in DAEMON_SETTINGS]
            profiling = []
            if self.profile:  # twistd's own profiler: cProfile stats saved at exit
                profiling = [f"--profile={self.profile}", "--profiler=cprofile", "--savestats"]
            with open(self.log, "w", encoding="utf-8") as out:
                self.proc = subprocess.Popen(
                    [
                        twistd(),
                        "--nodaemon",
                        "--pidfile=",
                        *profiling,
                        "cosmic",
                        "--env",
                        "test",
                        *sets,
                    ],
                    cwd=self.workdir,
                    env=base_environ(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited: see {self.log}")
                for line in self.log.read_text(encoding="utf-8").splitlines():
                    if line.startswith("{") and '"event":"listening"' in line:
                        self.port = int(json.loads(line)["port"])
                        return self
                time.sleep(0.1)
            raise RuntimeError(f"daemon not listening after {timeout} s: see {self.log}")
        if self.kind == "websockets":
            command = [sys.executable, str(PEERS / "websockets_server.py")]
        else:
            command = ["node", str(PEERS / "ws_server.js")]
        command += ["--port", "0", "--bytes", str(self.size), "--hz", str(HZ)]
        with open(self.log, "w", encoding="utf-8") as err:
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            raise RuntimeError(f"{self.kind} did not start: {line!r}, see {self.log}")
        self.port = int(line.split()[1])
        return self

    def url(self) -> str:
        return (
            f"ws://127.0.0.1:{self.port}/ws"
            if self.kind == "daemon"
            else (f"ws://127.0.0.1:{self.port}/")
        )

    def metrics(self) -> dict[str, float]:
        """The daemon's broadcast tick sum/count and loop overruns, from /metrics."""
        if self.kind != "daemon":
            return {}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            if "ws_broadcast_duration_seconds_sum" in name:
                found["tick_sum"] = float(value)
            elif "ws_broadcast_duration_seconds_count" in name:
                found["tick_count"] = float(value)
            elif "game_tick_overruns_total" in name and 'loop="' in name:
                loop = name.split('loop="', 1)[1].split('"', 1)[0]
                found[f"overruns:{loop}"] = float(value)
        return found

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# -- players (daemon) ----------------------------------------------------------------------------


class Rest:
    """A keep-alive JSON client of the daemon's REST API (one per thread)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def call(self, method: str, path: str, body: Any = None, token: str | None = None):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self.local.conn = None
            raise
        return response.status, (json.loads(payload) if payload else None)


def player(rest: Rest, k: int, bodies: int) -> str:
    """Player ``k``'s access token, after making sure the account and its asteroids exist."""
    name = f"fanout{k:05d}"
    status, answer = rest.call(
        "POST", "/api/v1/auth/login", {"username": name, "password": PASSWORD}
    )
    if status == 401:
        status, answer = rest.call(
            "POST", "/api/v1/auth/register", {"username": name, "password": PASSWORD}
        )
        if status not in (201, 409):
            raise RuntimeError(f"register {name}: {status} {answer}")
        status, answer = rest.call(
            "POST", "/api/v1/auth/login", {"username": name, "password": PASSWORD}
        )
    if status != 200:
        raise RuntimeError(f"login {name}: {status} {answer}")
    token = answer["access_token"]
    status, page = rest.call("GET", "/api/v1/celestial-bodies?limit=500", token=token)
    if status != 200:
        raise RuntimeError(f"bodies of {name}: {status} {page}")
    have = sum(1 for b in page["items"] if b["kind"] != "star")
    for _ in range(bodies - have):
        status, answer = rest.call("POST", "/api/v1/celestial-bodies", {"kind": "asteroid"}, token)
        if status != 201:
            raise RuntimeError(f"asteroid for {name}: {status} {answer}")
    return token


def players(workdir: Path, count: int, bodies: int) -> list[str]:
    """Access tokens of ``count`` players with ``bodies`` asteroids each (a setup daemon)."""
    server = Server("daemon", workdir, 0).start()
    try:
        rest = Rest(server.port)
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            tokens = list(pool.map(lambda k: player(rest, k, bodies), range(count)))
        print(f"  {count} players ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        return tokens
    finally:
        server.stop()


# -- one measurement -----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def measure(
    kind: str,
    n: int,
    size: int,
    tokens: list[str],
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    profile = None
    if args.profile and kind == "daemon":
        profile = str(Path(args.profile).resolve().with_suffix(f".{n}.pstats"))
    server = Server(kind, workdir, size, profile).start()
    procs: list[subprocess.Popen[str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="fanout", dir=workdir))
    try:
        time.sleep(1.0)
        idle_rss = rss_kib(server.pid)
        count = max(1, min(args.client_procs, n))
        for w in range(count):
            share = list(range(w, n, count))
            job: dict[str, Any] = {
                "url": server.url(),
                "mode": "cosmic" if kind == "daemon" else "raw",
                "clients": len(share),
                "concurrency": 50,
                "out": str(tmp / f"out{w}.json"),
            }
            if kind == "daemon":
                job["tokens"] = [tokens[i] for i in share]
            path = tmp / f"job{w}.json"
            path.write_text(json.dumps(job))
            procs.append(
                subprocess.Popen(
                    ["node", str(PEERS / "client.js"), str(path)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    bufsize=1,
                )
            )
        connect_started = time.monotonic()
        ready = []
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()  # blocks until that process connected all its clients
            if not line.startswith("{"):
                raise RuntimeError(f"{kind} N={n}: a client process failed ({line!r})")
            ready.append(json.loads(line))
        connect_s = time.monotonic() - connect_started
        t0 = time.time() + args.warmup
        t1 = t0 + args.duration
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(f"go {t0 * 1000.0:.3f} {t1 * 1000.0:.3f}\n")
            p.stdin.flush()
        time.sleep(max(0.0, t0 - time.time()))
        cpu0, clients0 = cpu_seconds(server.pid), sum(cpu_seconds(p.pid) for p in procs)
        busy0 = machine_busy()[0]
        wall0 = time.monotonic()
        metrics0 = server.metrics()
        time.sleep(max(0.0, t1 - time.time()))
        cpu1, clients1 = cpu_seconds(server.pid), sum(cpu_seconds(p.pid) for p in procs)
        busy1 = machine_busy()[0]
        wall = time.monotonic() - wall0
        rss = rss_kib(server.pid)
        metrics1 = server.metrics()
        for p in procs:
            p.wait(120)
        outs = [json.loads((tmp / f"out{w}.json").read_text()) for w in range(count)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    latencies = sorted(v for o in outs for v in o["latencies"])
    messages = sum(o["messages"] for o in outs)
    ticks = len({stamp for o in outs for stamp in o["stamps"]})
    window = args.duration
    row: dict[str, Any] = {
        "server": kind,
        "clients": n,
        "held": sum(o["held"] for o in outs),
        "bytes/msg": round(sum(o["bytes"] for o in outs) / messages, 1) if messages else None,
        "msgs/s": round(messages / window, 1),
        "of sent %": round(100.0 * messages / (window * n * HZ), 1),
        "ticks/s": round(ticks / window, 1),
        "p50 ms": percentile(latencies, 0.5),
        "p99 ms": percentile(latencies, 0.99),
        "max ms": latencies[-1] if latencies else None,
        "CPU %": round(100.0 * (cpu1 - cpu0) / wall, 1),
        "CPU us/msg": round(1e6 * (cpu1 - cpu0) / messages, 1) if messages else None,
        "RSS MiB": round(rss / 1024.0, 1),
        "KiB/client": round((rss - idle_rss) / n, 1),
        "client CPU %": round(100.0 * (clients1 - clients0) / wall, 1),
        "other CPU %": round(
            100.0 * ((busy1 - busy0) - (cpu1 - cpu0) - (clients1 - clients0)) / wall, 1
        ),
        "connect s": round(connect_s, 1),
    }
    failed = sum(r["failed"] for r in ready)
    errors: dict[str, int] = {}
    for o in [*ready, *outs]:
        for code, times in o.get("errors", {}).items():
            errors[code] = errors.get(code, 0) + times
    notes = []
    if failed:
        notes.append(f"{failed} failed to connect")
    closed = sum(o["closed_in_window"] for o in outs)
    if closed:
        notes.append(f"{closed} closed")
    full = sum(o["full_syncs"] for o in outs)
    if full:
        notes.append(f"{full} full syncs")
    if errors:
        notes.append("errors " + ", ".join(f"{k} {v}" for k, v in sorted(errors.items())))
    if kind == "daemon":
        ticks = metrics1.get("tick_count", 0.0) - metrics0.get("tick_count", 0.0)
        spent = metrics1.get("tick_sum", 0.0) - metrics0.get("tick_sum", 0.0)
        row["tick ms"] = round(1000.0 * spent / ticks, 2) if ticks else None
        row["tick us/client"] = round(1e6 * spent / ticks / n, 1) if ticks else None
        overruns = {
            key.split(":", 1)[1]: int(value - metrics0.get(key, 0.0))
            for key, value in metrics1.items()
            if key.startswith("overruns:") and value - metrics0.get(key, 0.0)
        }
        row["overruns"] = ", ".join(f"{k} {v}" for k, v in sorted(overruns.items()))
    row["notes"] = "; ".join(notes)
    return row


# -- summary -------------------------------------------------------------------------------------


NUMERIC = (
    "held",
    "bytes/msg",
    "msgs/s",
    "of sent %",
    "ticks/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "CPU %",
    "CPU us/msg",
    "RSS MiB",
    "KiB/client",
    "client CPU %",
    "other CPU %",
    "connect s",
    "tick ms",
    "tick us/client",
)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row = {"server": runs[0]["server"], "clients": runs[0]["clients"], "runs": len(runs)}
    for key in NUMERIC:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            row[key] = statistics.median(values)
    if runs[0]["server"] == "daemon":
        row["overruns"] = " | ".join(r.get("overruns") or "0" for r in runs)
    row["notes"] = " | ".join(r["notes"] for r in runs if r["notes"])
    return row


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    by = {(r["server"], r["clients"]): r for r in rows}
    for n in sorted({r["clients"] for r in rows}):
        daemon = by.get(("daemon", n))
        if daemon is None:
            continue
        for peer in ("websockets", "ws"):
            other = by.get((peer, n))
            if other is None:
                continue
            row: dict[str, Any] = {"clients": n, "daemon / peer": f"daemon / {peer}"}
            for key in ("msgs/s", "p50 ms", "p99 ms", "CPU %", "CPU us/msg", "RSS MiB"):
                a, b = daemon.get(key), other.get(key)
                row[key] = round(a / b, 2) if a is not None and b else None
            out.append(row)
    return out


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--quick", action="store_true", help="100,500 clients, 1 run, 5 s")
    parser.add_argument("--clients", default=None, help="client counts, e.g. 100,300,1000,2000")
    parser.add_argument("--repeat", type=int, default=None, help="runs per (server, N)")
    parser.add_argument("--duration", type=float, default=None, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after connecting")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument(
        "--bytes",
        type=int,
        default=None,
        help="peer message size (default: the daemon's mean delta)",
    )
    parser.add_argument("--bodies", type=int, default=5, help="asteroids per player's garden")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench-fanout"))
    parser.add_argument("--fresh", action="store_true", help="new accounts and gardens")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="run the daemon under cProfile (twistd --profile); stats to FILE.<N>.pstats",
    )
    args = parser.parse_args()

    counts = [
        int(c)
        for c in (args.clients or ("100,500" if args.quick else "100,300,1000,2000")).split(",")
    ]
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.duration = args.duration or (5.0 if args.quick else 10.0)
    servers = [s for s in args.servers.split(",") if s]
    unknown = set(servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    if not (PEERS / "node_modules" / "ws").exists():
        raise SystemExit("run `npm ci --prefix bench/peers` first")
    if "daemon" not in servers and args.bytes is None:
        parser.error("--bytes is needed without the daemon")

    workdir = Path(args.workdir)
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tokens: list[str] = []
    if "daemon" in servers:
        print(f"players: {max(counts)} with {args.bodies} asteroids each", file=sys.stderr)
        tokens = players(workdir, max(counts), args.bodies)

    sizes: dict[int, int] = {}
    runs: list[dict[str, Any]] = []
    for r in range(args.repeat):
        for n in counts:
            for kind in servers:
                size = args.bytes or sizes.get(n) or 100
                row = measure(kind, n, size, tokens, args, workdir)
                row["run"] = r + 1
                if kind == "daemon" and args.bytes is None and n not in sizes and row["bytes/msg"]:
                    sizes[n] = max(8, round(row["bytes/msg"]))
                runs.append(row)
                print(
                    f"  run {r + 1} {kind:10} N={n:5}: {row['msgs/s']:8.1f} msgs/s"
                    f" p50 {row['p50 ms']} p99 {row['p99 ms']} ms CPU {row['CPU %']} %"
                    f" RSS {row['RSS MiB']} MiB {row['notes']}",
                    file=sys.stderr,
                )

    rows = [
        medians([x for x in runs if x["server"] == kind and x["clients"] == n])
        for n in counts
        for kind in servers
    ]
    compared = ratios(rows)
    columns = [
        "server",
        "clients",
        "runs",
        "held",
        "bytes/msg",
        "msgs/s",
        "of sent %",
        "ticks/s",
        "p50 ms",
        "p99 ms",
        "CPU %",
        "CPU us/msg",
        "RSS MiB",
        "KiB/client",
    ]
    print(
        f"\nBroadcast fan-out at {HZ:g} Hz, medians of {args.repeat} run(s) of "
        f"{args.duration:g} s ({args.client_procs} Node client processes)"
    )
    print(report.table(rows, columns))
    print(
        "\nThe rest of the machine (CPU % of one core, medians) and the daemon's broadcast tick;"
        " overruns and notes per run"
    )
    extras = ["server", "clients", "client CPU %", "other CPU %", "connect s", "tick ms"]
    extras.append("tick us/client")
    print(report.table(rows, [*extras, "overruns", "notes"]))
    if compared:
        print("\nRatios daemon / peer (msgs/s: higher is better; the rest: lower is better)")
        print(report.table(compared))
    if args.json:
        report.write_json(
            args.json,
            "fanout",
            {
                "medians": rows,
                "ratios": compared,
                "runs": runs,
                "settings": {
                    "hz": HZ,
                    "duration_s": args.duration,
                    "warmup_s": args.warmup,
                    "repeat": args.repeat,
                    "client_procs": args.client_procs,
                    "bodies": args.bodies,
                    "bytes": args.bytes or sizes,
                    "daemon_settings": list(DAEMON_SETTINGS),
                },
            },
        )


if __name__ == "__main__":
    main()
