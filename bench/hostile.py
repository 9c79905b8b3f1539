"""Hostile input under load: does one flooding client hurt the well-behaved ones?

    .venv/bin/python bench/hostile.py [--json FILE] [--quick]
        [--clients 50] [--duration 20] [--warmup 5] [--slowloris 200]
        [--fuzz-examples 0]

A real daemon (``twistd cosmic``, SQLite in a temporary directory, the
default [ws] limits) and, in separate processes, ``--clients`` well-behaved
players: real ``websockets`` (asyncio) clients speaking
cosmic.msgpack-lz4.v1, each from its own loopback address (127.0.1.x), each
in its own garden with two asteroids in orbit, receiving its StateDeltas at
the default broadcast rate.  Delivery latency of a frame is its arrival time
minus its ``server_time`` (when the broadcast tick built it; same machine,
same clock).  The run has phases of ``--duration`` seconds each:

quiet
    only the well-behaved players.
cpu-hog
    a control: one process that only burns a CPU core for the phase (what
    the flooder's own process costs this 2-core machine), so that the
    flood's effect through the daemon can be told from plain CPU
    contention between processes.
flood
    plus one hostile client (another process, from 127.0.0.2) that, over and
    over, as fast as it can: floods Heartbeats (rate-limited, then closed
    with WS_RATE_003), sends oversized frames (closed with 1009), LZ4 bombs
    (12 MiB of zeros in 48 KiB: closed with WS_PROTO_006), and garbage
    frames (closed with WS_PROTO_008); reconnecting after each close (the
    per-address handshake limit then answers most of its handshakes 429).
slowloris
    (when ``slowhttptest`` is installed, Debian package ``slowhttptest``)
    instead of the flooder, ``--slowloris`` slow-header connections against
    /ws and the HTTP site; the daemon cuts each off after its header
    deadline (cosmic.web.middleware.HEADER_TIMEOUT, 408).

The target (issue 10): the well-behaved players' p99 under attack stays
within 2x of the quiet run's.  Reported per phase: delivery latency p50 /
p99 / max, frames received, the daemon's CPU, game-loop tick overruns and
broadcast tick time (from /metrics), and what the attacker achieved.

``--fuzz-examples N`` also runs the fuzzers with N examples per test (the
longer fuzz run; the test suite runs a few hundred)::

    COSMIC_TEST_FUZZ_EXAMPLES=N .venv/bin/python -m pytest -q \\
        tests/unit/net/test_codec_fuzz.py tests/integration/test_api_fuzz.py

and reports their outcome and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import report

from cosmic.net import codec as codecs
from cosmic.net import messages

ROOT = Path(__file__).resolve().parents[1]
SUBPROTOCOL = codecs.MSGPACK_LZ4
PASSWORD = "a bench password, long enough"
FLOODER_ADDRESS = "127.0.0.2"
TWISTD = str(Path(sys.executable).parent / "twistd")


# -- the daemon ----------------------------------------------------------------------------


class Daemon:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log = workdir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> Daemon:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("COSMIC_")
            and k not in ("ENVIRONMENT", "CONFIG_FILE", "LOG_LEVEL", "LOG_FORMAT", "SERVER_PORT")
        }
        args = [
            TWISTD,
            "--nodaemon",
            "--pidfile=",
            "cosmic",
            "--env",
            "test",
            "--set",
            "logging.level=info",
            # Setup only: the bench registers every player from one address.
            "--set",
            "auth.rate_limit_burst=100000",
        ]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                args, cwd=self.workdir, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    event = json.loads(line)
                    if event.get("event") == "listening":
                        self.port = int(event["port"])
                        return self
            if self.proc.poll() is not None:
                raise RuntimeError("the daemon exited:\n" + self.log.read_text()[-3000:])
            time.sleep(0.1)
        raise RuntimeError("the daemon did not start listening")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def call(self, method: str, path: str, body: Any) -> Any:
        request = urllib.request.Request(
            self.url(path),
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def token(self, name: str) -> str:
        self.call("POST", "/api/v1/auth/register", {"username": name, "password": PASSWORD})
        return self.call("POST", "/api/v1/auth/login", {"username": name, "password": PASSWORD})[
            "access_token"
        ]

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self) -> dict[str, float]:
        """The counters this bench reads, summed over labels where it says so."""
        with urllib.request.urlopen(self.url("/metrics"), timeout=30) as response:
            text = response.read().decode()
        wanted = {
            "cosmic_gardener_game_tick_overruns_total": "overruns",
            "cosmic_gardener_ws_broadcast_duration_seconds_sum": "broadcast_s",
            "cosmic_gardener_ws_broadcast_duration_seconds_count": "broadcasts",
            "cosmic_gardener_ws_rate_limited_total": "ws_rate_limited",
            "cosmic_gardener_ws_connections_closed_total": "ws_closed",
            "cosmic_gardener_ws_handshake_failures_total": "handshakes_refused",
            "cosmic_gardener_http_requests_total": "http_requests",
        }
        out = dict.fromkeys(wanted.values(), 0.0)
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in wanted:
                value = float(line.rsplit(" ", 1)[1])
                out[wanted[name]] += value
                if "{" in line and wanted[name].startswith(("ws_", "handshakes")):
                    labels = line.split("{", 1)[1].rsplit("}", 1)[0]
                    key = f"{wanted[name]}{{{labels}}}"
                    out[key] = out.get(key, 0.0) + value
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# -- the well-behaved players (a worker process) ------------------------------------------------


async def player(index: int, cfg: dict[str, Any], samples: list[list[float]]) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    codec = codecs.codec_for(SUBPROTOCOL)
    uri = f"ws://127.0.0.1:{cfg['port']}/ws"
    local = (f"127.0.1.{index % 250 + 1}", 0)
    errors = 0
    async with connect(
        uri,
        subprotocols=[SUBPROTOCOL],
        compression=None,
        max_size=None,
        ping_interval=None,
        open_timeout=60,
        local_addr=local,
    ) as ws:

        async def send(kind: str, data: dict[str, Any], rid: int) -> None:
            await ws.send(codec.encode(messages.envelope(kind, data, rid)).payload)

        async def answer(rid: int) -> tuple[str, Any]:
            while True:
                frame = await asyncio.wait_for(ws.recv(), timeout=60)
                envelope = codec.decode_envelope(frame, isinstance(frame, bytes))
                if envelope.get("id") == rid:
                    return envelope["type"], envelope["data"]

        await send("Authenticate", {"token": cfg["tokens"][index]}, 1)
        kind, data = await answer(1)
        if kind != messages.AUTHENTICATE_RESPONSE:
            raise RuntimeError(f"authentication refused: {data}")
        # Two asteroids in orbit: the garden moves, so every broadcast has a delta.
        for n, x in enumerate((3.0, -5.0)):
            await send("CreateCelestialBody", {"kind": "asteroid", "position": [x, 0.5, 0]}, 2 + n)
            kind, data = await answer(2 + n)
            if kind != messages.COMMAND_RESULT:
                raise RuntimeError(f"cannot create an asteroid: {data}")
        end = cfg["end"]
        while time.time() < end:
            try:
                frame = await asyncio.wait_for(ws.recv(), timeout=max(0.1, end - time.time()))
            except TimeoutError:
                break
            now = time.time() * 1000.0
            envelope = codec.decode_envelope(frame, isinstance(frame, bytes))
            kind = envelope["type"]
            if kind in (messages.STATE_DELTA, messages.FULL_STATE_SYNC):
                built = envelope["data"].get("server_time")
                if built is None:
                    raise RuntimeError(f"{kind} without server_time: the daemon is too old")
                samples.append([now, now - built])
            elif kind == messages.ERROR:
                errors += 1
    return {"errors": errors}


def players_worker(config_path: str) -> None:
    cfg = json.loads(Path(config_path).read_text())
    samples: list[list[float]] = []

    async def run() -> list[Any]:
        tasks = []
        for i in range(cfg["first"], cfg["first"] + cfg["count"]):
            tasks.append(asyncio.create_task(player(i, cfg, samples)))
            await asyncio.sleep(0.02)  # a gentle ramp: the handshake limit is per address
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(run())
    failed = [repr(r) for r in results if isinstance(r, BaseException)]
    out = {"samples": samples, "failed": failed}
    Path(cfg["out"]).write_text(json.dumps(out))


# -- the flooder (a worker process) ------------------------------------------------------------


def bomb() -> bytes:
    import lz4.frame

    return lz4.frame.compress(b"\x00" * (12 * 1024 * 1024))


async def flood_once(mode: str, cfg: dict[str, Any], stats: dict[str, Any], payloads: dict) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    codec = codecs.codec_for(SUBPROTOCOL)
    uri = f"ws://127.0.0.1:{cfg['port']}/ws"
    try:
        ws = await connect(
            uri,
            subprotocols=[SUBPROTOCOL],
            compression=None,
            max_size=None,
            max_queue=4,
            ping_interval=None,
            open_timeout=10,
            local_addr=(FLOODER_ADDRESS, 0),
        )
    except InvalidStatus as refused:
        status = refused.response.status_code
        stats["handshake_refused"][str(status)] = stats["handshake_refused"].get(str(status), 0) + 1
        await asyncio.sleep(0.01)
        return
    except (OSError, TimeoutError) as exc:
        stats["connect_errors"] += 1
        stats["last_error"] = repr(exc)
        await asyncio.sleep(0.05)
        return
    stats["connections"] += 1
    try:
        await ws.send(
            codec.encode(messages.envelope("Authenticate", {"token": cfg["token"]})).payload
        )
        while time.time() < cfg["end"]:
            if mode == "flood":
                frame = payloads["heartbeat"]
            elif mode == "oversized":
                frame = payloads["oversized"]
            elif mode == "bomb":
                frame = payloads["bomb"]
            else:
                frame = os.urandom(64)
            await ws.send(frame)
            stats["frames"] += 1
            stats["bytes"] += len(frame)
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd is not None else 1006
        stats["closed"][str(code)] = stats["closed"].get(str(code), 0) + 1
    finally:
        await ws.close()


def flooder_worker(config_path: str) -> None:
    cfg = json.loads(Path(config_path).read_text())
    codec = codecs.codec_for(SUBPROTOCOL)
    payloads = {
        "heartbeat": codec.encode(messages.envelope("Heartbeat", {})).payload,
        "oversized": b"\x81" + os.urandom(70_000),
        "bomb": bomb(),
    }
    stats: dict[str, Any] = {
        "connections": 0,
        "frames": 0,
        "bytes": 0,
        "closed": {},
        "handshake_refused": {},
        "connect_errors": 0,
    }

    async def run() -> None:
        modes = ("flood", "oversized", "bomb", "garbage")
        n = 0
        while time.time() < cfg["end"]:
            await flood_once(modes[n % len(modes)], cfg, stats, payloads)
            n += 1

    asyncio.run(run())
    Path(cfg["out"]).write_text(json.dumps(stats))


# -- phases ---------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100.0 * len(ordered)) - 1))]


def spawn(role: str, cfg: dict[str, Any], workdir: Path, name: str) -> subprocess.Popen[bytes]:
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return subprocess.Popen([sys.executable, __file__, role, str(path)], cwd=ROOT)


def slowloris(
    port: int, connections: int, seconds: float, workdir: Path
) -> subprocess.Popen | None:
    tool = shutil.which("slowhttptest")
    if tool is None or connections <= 0:
        return None
    return subprocess.Popen(
        [
            tool,
            "-H",
            "-c",
            str(connections),
            "-r",
            str(min(connections, 200)),
            "-i",
            "2",
            "-l",
            str(int(seconds)),
            "-u",
            f"http://127.0.0.1:{port}/ws",
            "-g",
            "-o",
            str(workdir / "slowloris"),
            "-p",
            "3",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def slowloris_summary(workdir: Path) -> dict[str, Any]:
    """From slowhttptest's CSV: the most connections it held at once, and
    whether its probe ever found the service unavailable."""
    csv = workdir / "slowloris.csv"
    if not csv.exists():
        return {}
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:] if line.strip()]
    connected = [int(r[3]) for r in rows if len(r) >= 5 and r[3].isdigit()]
    available = [r[4].strip() for r in rows if len(r) >= 5]
    return {
        "slowloris_max_held": max(connected, default=0),
        "slowloris_unavailable_s": sum(1 for a in available if a in ("0", "NO", "no")),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="cosmic-hostile-"))
    daemon = Daemon(workdir).start()
    try:
        tokens = [daemon.token(f"player{i}") for i in range(args.clients)]
        flooder_token = daemon.token("flooder")
        phases = ["quiet", "cpu-hog", "flood"]
        if args.slowloris and shutil.which("slowhttptest"):
            phases.append("slowloris")
        elif args.slowloris:
            print(
                "NOT RUN: the slowloris phase needs slowhttptest (apt-get install slowhttptest)",
                file=sys.stderr,
                flush=True,
            )
        start = time.time() + 2.0
        bounds = {}
        t = start + args.warmup
        for phase in phases:
            bounds[phase] = (t, t + args.duration)
            t += args.duration + args.gap
        end = t
        per_worker = max(1, -(-args.clients // 2))  # two worker processes
        workers = []
        outs = []
        for w, first in enumerate(range(0, args.clients, per_worker)):
            out = workdir / f"players{w}.out.json"
            outs.append(out)
            cfg = {
                "port": daemon.port,
                "tokens": tokens,
                "first": first,
                "count": min(per_worker, args.clients - first),
                "end": end,
                "out": str(out),
            }
            workers.append(spawn("--players", cfg, workdir, f"players{w}"))
        observed: dict[str, dict[str, Any]] = {}
        flood_out = workdir / "flooder.out.json"
        for phase in phases:
            begin, finish = bounds[phase]
            while time.time() < begin - (args.gap / 2 if phase != "quiet" else 0):
                time.sleep(0.05)
            attacker = None
            if phase == "flood":
                cfg = {
                    "port": daemon.port,
                    "token": flooder_token,
                    "end": finish,
                    "out": str(flood_out),
                }
                attacker = spawn("--flooder", cfg, workdir, "flooder")
            elif phase == "cpu-hog":
                attacker = subprocess.Popen(
                    [sys.executable, "-c", f"import time\nwhile time.time() < {finish}: pass"]
                )
            elif phase == "slowloris":
                attacker = slowloris(daemon.port, args.slowloris, finish - time.time(), workdir)
            while time.time() < begin:
                time.sleep(0.05)
            cpu0, m0 = daemon.cpu_seconds(), daemon.metrics()
            while time.time() < finish:
                time.sleep(0.05)
            cpu1, m1 = daemon.cpu_seconds(), daemon.metrics()
            if attacker is not None:
                try:
                    attacker.wait(args.gap + 30)
                except subprocess.TimeoutExpired:
                    attacker.kill()
            observed[phase] = {
                "cpu": (cpu1 - cpu0) / args.duration,
                **{k: m1[k] - m0.get(k, 0.0) for k in m1 if m1[k] - m0.get(k, 0.0)},
            }
        for worker in workers:
            worker.wait(120)
        samples: list[list[float]] = []
        failed: list[str] = []
        for out in outs:
            got = json.loads(out.read_text())
            samples.extend(got["samples"])
            failed.extend(got["failed"])
        rows = []
        for phase in phases:
            begin, finish = bounds[phase]
            latencies = [lat for at, lat in samples if begin <= at / 1000.0 < finish]
            o = observed[phase]
            row = {
                "phase": phase,
                "frames": len(latencies),
                "p50 ms": percentile(latencies, 50),
                "p99 ms": percentile(latencies, 99),
                "max ms": max(latencies, default=None),
                "daemon cpu": o["cpu"],
                "overruns": o.get("overruns", 0.0),
                "tick ms": 1000.0 * o["broadcast_s"] / o["broadcasts"]
                if o.get("broadcasts")
                else None,
                "rate limited": o.get("ws_rate_limited", 0.0),
                "closed": o.get("ws_closed", 0.0),
                "refused": o.get("handshakes_refused", 0.0),
            }
            rows.append(row)
        quiet = rows[0]["p99 ms"]
        for row in rows:
            row["p99 / quiet"] = (
                row["p99 ms"] / quiet if quiet and row["p99 ms"] is not None else None
            )
        result: dict[str, Any] = {
            "rows": rows,
            "daemon": observed,
            "clients": args.clients,
            "duration": args.duration,
            "failed_clients": failed,
            "target_ratio": 2.0,
        }
        if flood_out.exists():
            result["flooder"] = json.loads(flood_out.read_text())
        result.update(slowloris_summary(workdir))
        return result
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def fuzz(examples: int) -> dict[str, Any]:
    files = ["tests/unit/net/test_codec_fuzz.py", "tests/integration/test_api_fuzz.py"]
    env = {**os.environ, "COSMIC_TEST_FUZZ_EXAMPLES": str(examples)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    return {
        "examples": examples,
        "files": files,
        "exit": done.returncode,
        "summary": tail[0],
        "seconds": time.monotonic() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--quick", action="store_true", help="10 clients, 8 s phases")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between phases")
    parser.add_argument(
        "--slowloris", type=int, default=200, help="slowhttptest connections (0: skip)"
    )
    parser.add_argument("--fuzz-examples", type=int, default=0, help="also run the fuzzers")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.duration, args.warmup = 10, 8.0, 3.0
        args.slowloris = min(args.slowloris, 50)
    result = run(args)
    print(report.table(result["rows"]))
    ratio = next(r["p99 / quiet"] for r in result["rows"] if r["phase"] == "flood")
    verdict = "meets" if ratio is not None and ratio <= 2.0 else "misses"
    print(f"flood p99 / quiet p99 = {ratio:.2f} ({verdict} the 2x target)" if ratio else "no data")
    if "flooder" in result:
        print("flooder:", json.dumps(result["flooder"], sort_keys=True))
        print("daemon during the flood:", json.dumps(result["daemon"]["flood"], sort_keys=True))
    if result["failed_clients"]:
        print("well-behaved clients that failed:", result["failed_clients"][:5])
    sections: dict[str, Any] = {"hostile": result}
    if args.fuzz_examples:
        sections["fuzz"] = fuzz(args.fuzz_examples)
        print("fuzz:", json.dumps(sections["fuzz"]))
    if args.json:
        report.write_json(args.json, "hostile", sections)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--players":
        players_worker(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--flooder":
        flooder_worker(sys.argv[2])
    else:
        main()
