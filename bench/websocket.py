"""WebSocket protocol: compression of real game deltas, serialization, N clients.

    .venv/bin/python bench/websocket.py [--json FILE] [--quick]
        [--bodies 200] [--clients 10,100,300] [--duration 5]

compression
    A garden of ``--bodies`` bodies (asteroids and comets on orbits around
    its star) is stepped by the real world and physics at the default rates
    (60 ticks/s, time_scale 0.02) and a delta taken every broadcast (10 Hz).
    Each is encoded four ways: ``none`` is the world's delta as plain JSON
    (every body's float position and velocity: what a server without this
    protocol sends), ``deflate`` that JSON through permessage-deflate as this
    server configures it (no context takeover, 10 window bits, memory level
    4) and with zlib's defaults (15/8, what the seed used), ``lz4`` that
    delta as msgpack in an LZ4 frame, and ``quantized+lz4`` the per-client
    delta of cosmic.net (quantized integer differences against the
    client's last frame, only what changed) in cosmic.msgpack-lz4.v1.
    Bytes per message are means; CPU per message is the median (minimum
    beside it) of encoding, the delta computation included for quantized.

serialization
    json vs msgpack encode and decode of one quantized delta and one full
    sync of the same garden.

clients
    An in-process server (cosmic.net.testing: the real Site, world, loop
    and endpoint) with N players, each in their own garden of 20 bodies;
    the clients run in 2 separate processes (real Autobahn clients over
    loopback, cosmic.msgpack-lz4.v1) and record when each StateDelta
    arrives.  Delivery latency is from the start of the broadcast tick that
    built the frame to its arrival (same machine, same clock), so it
    includes building and sending every other client's frame of that tick.
    ``tick ms`` is the mean broadcast tick (ws_broadcast_duration_seconds);
    ``loop overruns`` the game loop's missed ticks, by loop, while measuring
    (the server, its physics and the client processes share the machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import report

from cosmic.game.commands import CreateBody
from cosmic.game.world import World
from cosmic.net import codec as codecs
from cosmic.net import messages
from cosmic.net.deltas import (
    Quanta,
    Stream,
    frame_from_delta,
    frame_from_snapshot,
)
from cosmic.physics.engine import PhysicsEngine

TPS = 60
BROADCAST_HZ = 10
STEPS_PER_BROADCAST = TPS // BROADCAST_HZ
QUANTA = Quanta()


# -- a real garden -------------------------------------------------------------------------


def garden(bodies: int, seed: int = 3) -> World:
    import random

    world = World(PhysicsEngine(), now=time.time, seed=seed, time_scale=0.02)
    world.create_garden(1, 1, "bench").credit({"cosmic_dust": 1e12, "energy": 1e9})
    rng = random.Random(seed)
    made = 1
    while made < bodies:
        r, a = rng.uniform(2.0, 40.0), rng.uniform(0.0, 2.0 * math.pi)
        position = (r * math.cos(a), r * math.sin(a), rng.uniform(-0.5, 0.5))
        kind = "asteroid" if made % 3 else "comet"
        try:
            world.apply_command(CreateBody(1, 1, kind, position=position))
            made += 1
        except Exception:  # a spot inside another body: try another
            continue
    step(world, TPS)  # one second of motion before measuring
    return world


def step(world: World, ticks: int) -> None:
    for _ in range(ticks):
        job = world.prepare_step(1.0 / TPS)
        job.run()
        world.finish_step(job)


def deltas(world: World, count: int) -> list[dict[str, Any]]:
    """``count`` consecutive broadcasts' world deltas (with the garden's events)."""
    out = []
    seq = world.garden(1).seq
    for _ in range(count):
        step(world, STEPS_PER_BROADCAST)
        out.append(world.delta(1, seq))
        seq = world.garden(1).seq
    return out


# -- compression -------------------------------------------------------------------------------


def _deflate(window_bits: int, mem_level: int):
    def encode(text: bytes) -> bytes:
        # permessage-deflate without context takeover: a fresh compressor per
        # message, flushed with Z_SYNC_FLUSH, the 4-byte tail stripped.
        z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits, mem_level)
        return (z.compress(text) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]

    return encode


def compression(bodies: int, count: int, repeats: int) -> list[dict[str, Any]]:
    world = garden(bodies)
    snapshot = frame_from_snapshot(1, world.snapshot(1), QUANTA)
    frames = deltas(world, count)
    json_codec = codecs.JsonCodec(1 << 26)
    lz4_codec = codecs.MsgpackLz4Codec(1 << 26)
    plain = [json_codec.encode(messages.envelope("StateDelta", d)).payload for d in frames]

    def none(i: int) -> bytes:
        return json_codec.encode(messages.envelope("StateDelta", frames[i])).payload

    def deflate_with(window_bits: int, mem_level: int):
        squeeze = _deflate(window_bits, mem_level)
        return lambda i: squeeze(none(i))

    def lz4(i: int) -> bytes:
        return lz4_codec.encode(messages.envelope("StateDelta", frames[i])).payload

    # The per-client path, as the broadcaster runs it: one stream, a frame
    # per broadcast, its delta against the previous one, encoded.
    prepared = []
    previous = snapshot
    for d in frames:
        frame = frame_from_delta(1, d, previous, QUANTA)
        prepared.append((previous, frame, d["events"]))
        previous = frame

    def quantized(i: int) -> bytes:
        base, frame, events = prepared[i]
        stream = Stream(1, "owner")
        stream.base, stream.base_sequence, stream.full_reason = base, 1, None
        kind, data = stream.message(frame, events, QUANTA)
        return lz4_codec.encode(messages.envelope(kind, data)).payload

    methods = [
        ("none (JSON)", none, json_codec, False),
        ("deflate 10/4 (server)", deflate_with(10, 4), None, False),
        ("deflate 15/8 (zlib default)", deflate_with(15, 8), None, False),
        ("lz4 (msgpack)", lz4, lz4_codec, True),
        ("quantized+lz4", quantized, lz4_codec, True),
    ]
    baseline = statistics.fmean(len(p) for p in plain)
    rows = []
    for name, encode, decoder, binary in methods:
        sizes = [len(encode(i)) for i in range(count)]
        timing = report.time_call(lambda e=encode: [e(i) for i in range(count)], repeats=repeats)
        row = {
            "method": name,
            "bytes/msg": round(statistics.fmean(sizes)),
            "saved vs JSON %": round(100.0 * (1 - statistics.fmean(sizes) / baseline), 1),
            "encode us/msg": timing["median"] / count * 1e6,
            "encode min us": timing["min"] / count * 1e6,
        }
        if decoder is not None:
            payloads = [encode(i) for i in range(count)]
            decode = report.time_call(
                lambda d=decoder, b=binary, ps=payloads: [d.decode_envelope(p, b) for p in ps],
                repeats=repeats,
            )
            row["decode us/msg"] = decode["median"] / count * 1e6
        rows.append(row)
    return rows


# -- serialization ------------------------------------------------------------------------------


def serialization(bodies: int, repeats: int) -> list[dict[str, Any]]:
    world = garden(bodies)
    stream = Stream(1, "owner")
    full_kind, full = stream.message(
        frame_from_snapshot(1, world.snapshot(1), QUANTA), None, QUANTA
    )
    d = deltas(world, 1)[0]
    frame = frame_from_delta(1, d, stream.base, QUANTA)
    delta_kind, delta = stream.message(frame, d["events"], QUANTA)
    rows = []
    for label, kind, data in (
        ("quantized delta", delta_kind, delta),
        ("full sync", full_kind, full),
    ):
        envelope = messages.envelope(kind, data)
        for codec in (codecs.JsonCodec(1 << 26), codecs.MsgpackCodec(1 << 26)):
            encoded = codec.encode(envelope)
            enc = report.time_call(
                lambda c=codec, v=envelope: c.encode(v), repeats=repeats, inner=20
            )
            dec = report.time_call(
                lambda c=codec, e=encoded: c.decode_envelope(e.payload, e.binary),
                repeats=repeats,
                inner=20,
            )
            rows.append(
                {
                    "message": label,
                    "codec": codec.label,
                    "bytes": len(encoded.payload),
                    "encode us": enc["median"] * 1e6,
                    "decode us": dec["median"] * 1e6,
                }
            )
    return rows


# -- N clients over loopback --------------------------------------------------------------------


def worker(path: str) -> None:
    """A client process: connect, authenticate, record StateDelta arrivals."""
    from twisted.internet import defer, reactor

    from cosmic.net.client import connect

    job = json.loads(Path(path).read_text())
    arrivals: list[tuple[int, float, float]] = []
    opened = []

    async def one(token: str) -> None:
        client = await connect(reactor, "127.0.0.1", job["port"], codecs.MSGPACK_LZ4, timeout=60)
        client.track_state = False
        opened.append(client)

        def received(payload: bytes, binary: bool, c=client) -> None:
            now = time.time()
            envelope = c.codec.decode_envelope(payload, binary)
            if envelope["type"] == "StateDelta" and now >= job["start"]:
                data = envelope["data"]
                arrivals.append((data["garden_id"], data["game_time"], now))
            elif envelope["type"] not in ("StateDelta", "FullStateSync"):
                c.inbox.append((envelope["type"], envelope["data"], envelope.get("id")))

        client._received = received
        client.send("Authenticate", {"token": token}, 1)

    async def run() -> None:
        await defer.gatherResults([defer.ensureDeferred(one(t)) for t in job["tokens"]])
        wait = job["start"] + job["duration"] - time.time()
        d: defer.Deferred = defer.Deferred()
        reactor.callLater(max(0.0, wait), d.callback, None)
        await d
        Path(job["out"]).write_text(json.dumps(arrivals))
        for c in opened:
            c.protocol.transport.abortConnection()

    def done(result: Any) -> None:
        if hasattr(result, "printTraceback"):
            result.printTraceback()
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(run()).addBoth(done))
    reactor.run()


def _clients_once(n: int, duration: float, bodies: int) -> dict[str, Any]:
    from twisted.internet import defer, reactor, threads

    from cosmic.net.testing import start_server

    result: dict[str, Any] = {}

    async def run() -> None:
        server = await start_server(
            reactor,
            ws={
                "handshake_rate_burst": 100000,
                "max_connections_per_address": 100000,
                "auth_timeout": 120,
            },
        )
        try:
            ticks: dict[tuple[int, float], float] = {}

            def record(started: float, feeds: dict) -> None:
                for gid, feed in feeds.items():
                    ticks.setdefault((gid, feed.frame.game_time), started)

            server.ws.broadcaster.listeners.append(record)
            tokens = []
            for k in range(n):
                player = await server.player(f"p{k}")
                gid = await server.game.gardens.garden_for(player, f"g{k}")

                def fill(gid: int = gid, player: int = player) -> None:
                    world = server.game.world
                    world.garden(gid).credit({"cosmic_dust": 1e9})
                    for i in range(bodies - 1):
                        a = 2 * math.pi * i / (bodies - 1)
                        r = 3.0 + 0.7 * i
                        world.apply_command(
                            CreateBody(
                                gid,
                                player,
                                "asteroid",
                                position=(r * math.cos(a), r * math.sin(a), 0.0),
                            )
                        )

                await server.game.loop.when_idle(fill)
                tokens.append(server.token(player))
            start = time.time() + 3.0 + n / 200.0  # connect and warm up first
            tmp = Path(tempfile.mkdtemp(prefix="wsbench"))
            procs = []
            workers = 2 if n > 1 else 1
            for w in range(workers):
                job = {
                    "port": server.port,
                    "tokens": tokens[w::workers],
                    "start": start,
                    "duration": duration,
                    "out": str(tmp / f"out{w}.json"),
                }
                path = tmp / f"job{w}.json"
                path.write_text(json.dumps(job))
                procs.append(
                    subprocess.Popen(
                        [sys.executable, __file__, "--worker", str(path)],
                        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                    )
                )
            await threads.deferToThread(lambda: [p.wait(duration + 120) for p in procs])
            arrivals = []
            for w in range(workers):
                out = tmp / f"out{w}.json"
                if out.exists():
                    arrivals += json.loads(out.read_text())
            histogram = server.metrics.ws.broadcast_duration
            samples = {s.name: s.value for s in histogram.collect()[0].samples}
            ticks_run = samples.get(histogram._name + "_count", 0.0) or 1.0
            tick_ms = samples.get(histogram._name + "_sum", 0.0) / ticks_run * 1000.0
            overruns = ", ".join(
                f"{name} {rate.overruns}"
                for name, rate in server.game.loop.rates.items()
                if rate.overruns
            )
            latencies = sorted(
                (now - ticks[(gid, gt)]) * 1000.0 for gid, gt, now in arrivals if (gid, gt) in ticks
            )
            result.update(
                {
                    "clients": n,
                    "bodies/garden": bodies,
                    "msgs/s": round(len(arrivals) / duration, 1),
                    "expected msgs/s": n * BROADCAST_HZ,
                    "p50 ms": statistics.median(latencies) if latencies else None,
                    "p99 ms": latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
                    "max ms": latencies[-1] if latencies else None,
                    "unmatched": len(arrivals) - len(latencies),
                    "tick ms": tick_ms,
                    "loop overruns": overruns,
                }
            )
        finally:
            await server.stop()

    def stop(outcome: Any) -> None:
        if hasattr(outcome, "printTraceback"):
            outcome.printTraceback()
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(run()).addBoth(stop))
    reactor.run()
    return result


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--quick", action="store_true", help="smaller and shorter")
    parser.add_argument("--bodies", type=int, default=200, help="bodies in the compression garden")
    parser.add_argument("--clients", default=None, help="client counts, e.g. 10,100,300")
    parser.add_argument("--duration", type=float, default=None, help="seconds measured per count")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--clients-once", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if args.clients_once:
        n, duration = args.clients_once.split(":")
        print(json.dumps(_clients_once(int(n), float(duration), 20)))
        return

    counts = [
        int(c) for c in (args.clients or ("10,50" if args.quick else "10,100,300")).split(",")
    ]
    duration = args.duration or (3.0 if args.quick else 5.0)
    repeats = 3 if args.quick else 7
    sections: dict[str, Any] = {}

    rows = compression(args.bodies, 20 if args.quick else 50, repeats)
    sections["compression"] = {"bodies": args.bodies, "broadcast_hz": BROADCAST_HZ, "rows": rows}
    print(f"Compression of real deltas ({args.bodies} bodies, one per broadcast at 10 Hz)")
    print(report.table(rows))

    rows = serialization(args.bodies, repeats)
    sections["serialization"] = rows
    print(f"\nSerialization ({args.bodies} bodies)")
    print(report.table(rows))

    rows = []
    for n in counts:  # each count in its own process: a reactor runs once
        out = subprocess.run(
            [sys.executable, __file__, "--clients-once", f"{n}:{duration}"],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode != 0 or not lines:
            print(out.stdout[-2000:], out.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"clients={n} failed")
        rows.append(json.loads(lines[-1]))
    sections["clients"] = {"duration_s": duration, "rows": rows}
    print(f"\nN clients over loopback ({duration:g} s each, 20 bodies per garden, 10 Hz)")
    print(report.table(rows))

    if args.json:
        report.write_json(args.json, "websocket", sections)


if __name__ == "__main__":
    main()
