"""Faults while loaded: PostgreSQL, Redis, SIGKILL and SIGTERM under M players.

    .venv/bin/python bench/faults.py [--json FILE] [--quick]
        [--players 20] [--outage 5] [--flush-interval 1.0]

A real ``twistd cosmic`` (a separate process) runs on a private PostgreSQL
cluster (initdb and pg_ctl, its own data directory and port) and a private
redis-server (its own port), so the shared servers are never touched.  M
players (tests/integration/players.py: REST login, then /ws with
cosmic.msgpack-lz4.v1) each rename their garden's star to ``m<seq>`` every
0.1 s, receive StateDeltas at the default 10 Hz, and create an asteroid
during each outage.  The faults, in turn, on the same daemon and players:

postgresql
    ``pg_ctl stop -m fast``, ``--outage`` seconds of play, ``pg_ctl start``.
redis
    redis-server terminated, ``--outage`` seconds of play, started again on
    the same port.
sigkill
    ``kill -9`` after a few flush intervals of play; the daemon is started
    again on the same database and the players sign in again.
sigterm
    SIGTERM while everyone plays; started again the same way.

Columns:

disconnected
    players whose WebSocket closed during the fault (should be 0 for the
    database and cache outages; all of them for the daemon's death).
commands, failed
    commands sent from the fault until the service was back, and those not
    answered with a CommandResult, counted by error code.
unanswered
    the daemon's death: commands in flight, by outcome (ConnectionError:
    the connection closed before the answer came).
deltas
    StateDeltas per player during the outage (mean).
degraded_s
    seconds from the fault until /health/ready named it (a check degraded
    or failed).
recover_s
    seconds from starting the service (or the daemon) again until
    /health/ready had every check ok.
saved_s
    database outage: seconds from the restart until everything done during
    the outage was in the database.
lost_play_s
    seconds of play lost: the last game time a player saw before the fault
    minus the game time the database holds afterwards, over time_scale
    (worst garden).
lost_acked, oldest_lost_s
    acknowledged commands the database does not have after the fault, and
    how long before the kill the oldest of them was acknowledged.
bound_s
    what the write-behind promises at most: one ``database.flush_interval``
    (every flush first copies the changed gardens, then writes them) plus
    the save in flight.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import report
from twisted.internet import defer, task, threads

from tests.integration.players import (
    Stack,
    Team,
    all_ok,
    check_status,
    daemon_args,
    mark_of,
    ready_when,
    sleep,
    until,
)

TIME_SCALE = 0.02


def failures(outcomes: list[Any]) -> str:
    counts = Counter(o.code or o.kind or "no answer yet" for o in outcomes if not o.ok)
    return ", ".join(f"{code} x{n}" for code, n in sorted(counts.items())) or "0"


def degraded(name: str):
    return lambda status, body: check_status(body, name) in ("degraded", "fail")


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.flush = args.flush_interval
        self.stack = Stack(workdir).start()
        self.daemon: Any = None
        self.team: Team | None = None
        self.rows: list[dict[str, Any]] = []

    @property
    def base(self) -> str:
        return self.daemon.url("")

    def start_daemon(self) -> float:
        """Start the daemon; seconds until /health/ready had every check ok."""
        started = time.time()
        self.daemon = self.stack.daemon(
            *daemon_args(self.flush, "--set", f"game.time_scale={TIME_SCALE}")
        ).start(timeout=60)
        return started

    async def players(self, register: bool) -> None:
        if register:
            self.team = await Team.join(self.base, self.daemon.port, self.args.players, "bench")
        else:
            assert self.team is not None
            for player in self.team.players:
                await player.sign_in(self.base, register=False)
            await defer.gatherResults(
                [defer.ensureDeferred(p.connect(self.daemon.port)) for p in self.team.players]
            )
        self.team.start()
        await self.team.deltas(3)

    # -- the faults -------------------------------------------------------------------

    async def outage(self, name: str, check: str, stop: Any, start: Any) -> None:
        team = self.team
        assert team is not None
        sequences = team.sequences()
        seen = {p.garden_id: p.replica.game_time for p in team.players}
        began = time.time()
        await threads.deferToThread(stop)
        _, body, named = await ready_when(self.base, degraded(check), 60, f"{check} degraded")
        label = f"{name} outage"
        created = await team.create_all(label)
        await sleep(max(0.0, began + self.args.outage - time.time()))
        restarting = time.time()
        deltas = [p.replica.sequence - s for p, s in zip(team.players, sequences, strict=True)]
        await threads.deferToThread(start)
        _, _, recovered = await ready_when(self.base, all_ok, 120, "every check ok")
        disconnected = len(team.players) - team.connected  # nobody reconnects by itself
        row = {
            "fault": name,
            "players": len(team.players),
            "outage_s": round(restarting - began, 2),
            "disconnected": disconnected,
            "commands": len(team.outcomes_between(began, restarting)),
            "failed": failures(team.outcomes_between(began, restarting)),
            "deltas": round(sum(deltas) / len(deltas), 1),
            "degraded_s": round(named - began, 2),
            "reason": body["checks"][check]["detail"],
            "recover_s": round(recovered - restarting, 2),
        }
        if name == "postgresql":
            ok = {p.garden_id for p, o in zip(team.players, created, strict=True) if o.ok}
            deadline = time.monotonic() + 60
            while True:
                saved = await threads.deferToThread(self.stack.saved_gardens)
                if all(
                    label in saved[g].get("bodies", {}).values() and saved[g]["game_time"] > seen[g]
                    for g in ok
                ):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("the outage's changes never reached the database")
                await sleep(0.1)
            row["saved_s"] = round(time.time() - restarting, 2)
        self.rows.append(row)

    async def death(self, name: str) -> None:
        team = self.team
        assert team is not None
        await sleep(max(3 * self.flush, 3.0))
        began = time.time()
        seen = {p.garden_id: p.replica.game_time for p in team.players}
        if name == "sigkill":
            self.daemon.kill()
        else:
            self.daemon.signal(signal.SIGTERM)
        await until(lambda: team.connected == 0, 60, "every player closed")
        await team.stop()
        codes = Counter(p.client.close_code for p in team.players)
        if name == "sigterm":
            self.daemon.drain(60)
            exit_code = self.daemon.proc.wait(10)
        else:
            exit_code = self.daemon.proc.returncode
        saved = await threads.deferToThread(self.stack.saved_gardens)
        lost, oldest, lost_play = 0, 0.0, 0.0
        for player in team.players:
            garden = saved[player.garden_id]
            kept = mark_of(garden["star"])
            gone = [o for o in player.acknowledged_marks() if o.seq > kept]
            lost += len(gone)
            if gone:
                oldest = max(oldest, began - min(o.answered_at for o in gone))
            behind = (seen[player.garden_id] - garden["game_time"]) / TIME_SCALE
            lost_play = max(lost_play, behind)
        restarted = self.start_daemon()
        _, _, recovered = await ready_when(self.base, all_ok, 120, "every check ok")
        self.rows.append(
            {
                "fault": name,
                "players": len(team.players),
                "disconnected": len(team.players) - team.connected,
                "close_codes": ", ".join(f"{c} x{n}" for c, n in sorted(codes.items(), key=str)),
                "exit": exit_code,
                "unanswered": failures(team.outcomes_between(began - 30.0, time.time())),
                "recover_s": round(recovered - restarted, 2),
                "lost_play_s": round(max(0.0, lost_play), 2),
                "lost_acked": lost,
                "oldest_lost_s": round(oldest, 2),
                "bound_s": self.flush,
            }
        )
        await self.players(register=False)

    async def run(self) -> None:
        self.start_daemon()
        await ready_when(self.base, all_ok, 60, "every check ok at start")
        await self.players(register=True)
        pg, redis = self.stack.pg, self.stack.redis
        await self.outage("postgresql", "store", lambda: pg.stop("fast"), pg.start)
        await self.outage("redis", "cache", redis.stop, redis.start)
        await self.death("sigkill")
        await self.death("sigterm")
        assert self.team is not None
        await self.team.stop()
        await self.team.close()
        await threads.deferToThread(self.daemon.stop)

    def cleanup(self) -> None:
        self.stack.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--quick", action="store_true", help="fewer players, shorter outages")
    parser.add_argument("--players", type=int, default=None, help="players (default 20)")
    parser.add_argument("--outage", type=float, default=None, help="seconds each outage lasts")
    parser.add_argument("--flush-interval", type=float, default=1.0, help="database.flush_interval")
    args = parser.parse_args()
    args.players = args.players or (8 if args.quick else 20)
    args.outage = args.outage or (3.0 if args.quick else 5.0)

    with tempfile.TemporaryDirectory(prefix="cosmic-faults-") as tmp:
        bench = Bench(args, Path(tmp))

        async def go(reactor: Any) -> None:
            try:
                await bench.run()
            finally:
                bench.cleanup()

        try:
            task.react(lambda reactor: defer.ensureDeferred(go(reactor)))
        except SystemExit as exit:
            if exit.code:
                raise
    rows = bench.rows
    print(
        f"Faults with {args.players} players playing (flush interval {args.flush_interval:g} s, "
        f"outages of {args.outage:g} s)"
    )
    outages = [r for r in rows if r["fault"] in ("postgresql", "redis")]
    deaths = [r for r in rows if r["fault"] in ("sigkill", "sigterm")]
    print(report.table(outages, [c for c in outages[0] if c != "reason"]))
    for row in outages:
        print(f"  {row['fault']} reason: {row['reason']}")
    print()
    print(report.table(deaths))
    if args.json:
        report.write_json(
            args.json,
            "faults",
            {"outages": outages, "deaths": deaths},
            players=args.players,
            outage_s=args.outage,
            flush_interval_s=args.flush_interval,
        )


if __name__ == "__main__":
    main()
