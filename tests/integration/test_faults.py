"""Faults while loaded: a real ``twistd cosmic`` on a private PostgreSQL and a
private Redis (own data directory and port, started and stopped here; the
shared servers are never touched), several real WebSocket players playing.

* PostgreSQL stopped and restarted, Redis stopped and restarted: players
  stay connected, deltas keep coming, every command works (the world lives
  in memory), readiness names what is missing and recovers, and what was
  done during a database outage reaches the database afterwards.
* SIGKILL: what a restart finds is no older than the write-behind bound,
  F + MARGIN, with F = ``database.flush_interval``.  One flush interval is
  the bound because the copy and the write happen in the same flush: every
  flush (the saver's timer, every F) first captures the live gardens
  (``Gardens.refresh``, as soon as no physics step runs) and then writes that
  capture.  A change made just after one flush's capture is in the next
  flush's capture, F later, and is in the database one save after that;
  there is no second timer whose copies could be up to F older.  MARGIN
  covers that save and a loaded machine.  The test measures the loss from
  times it recorded itself (acknowledged commands, the kill) and from the
  saved rows (the star's name ``m<seq>``, the garden's game time).
* SIGTERM: nothing acknowledged is lost, and the game time saved is at
  least the last one any player saw; players get close code 1001.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.integration.players import (
    Player,
    Stack,
    Team,
    all_ok,
    check_status,
    daemon_args,
    mark_of,
    ready_when,
    until,
)

pytestmark = pytest.mark.integration

PLAYERS = 4
TIME_SCALE = 0.02  # game years per second of play (set explicitly below)
# Room for the save in flight and for a busy 2-core machine on top of the
# bound: one flush interval (every flush captures the world first).
MARGIN = 2.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    try:
        made = Stack(tmp_path)
    except (RuntimeError, OSError, KeyError) as exc:
        pytest.skip(f"cannot run a private PostgreSQL and Redis: {exc}")
    try:
        made.start()
        yield made
    finally:
        made.cleanup()


def args(flush_interval: float) -> tuple[str, ...]:
    return daemon_args(flush_interval, "--set", f"game.time_scale={TIME_SCALE}")


def failed(outcomes) -> Counter:
    """Error codes of the answered commands that failed (pending ones aside)."""
    return Counter(o.code or o.kind for o in outcomes if not o.ok and not o.pending)


def exit_code(daemon) -> int:
    """Wait for a daemon already signalled to exit (Daemon.stop would signal
    again, and a SIGTERM after the reactor has let go of its handlers, while
    the interpreter exits, kills the process with -15)."""
    daemon.drain(60)
    return daemon.proc.wait(10)


async def db_until(stack: Stack, predicate, timeout: float, what: str):
    """Poll the database (in a thread) until ``predicate(saved_gardens)``."""
    deadline = time.monotonic() + timeout
    while True:
        saved = await threads.deferToThread(stack.saved_gardens)
        if predicate(saved):
            return saved
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; database has {saved}")
        await threads.deferToThread(time.sleep, 0.2)


# -- outages ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_postgresql_outage_keeps_players_playing_and_saves_it_all_after(stack) -> None:
    d = stack.daemon(*args(0.5)).start()
    base = d.url("")
    await ready_when(base, all_ok, 30, "every check ok at start")
    team = await Team.join(base, d.port, PLAYERS, "pg")
    assert all(o.ok for o in await team.create_all("before"))
    team.start()
    await team.deltas(3)

    stopped_at = time.time()
    await threads.deferToThread(stack.pg.stop, "fast")
    status, body, _ = await ready_when(
        base,
        lambda s, b: (
            check_status(b, "store") == "degraded" and check_status(b, "persistence") == "degraded"
        ),
        60,
        "store and persistence degraded",
    )
    assert (status, body["status"]) == (200, "degraded")  # still serving players
    assert "saving fails" in body["checks"]["persistence"]["detail"]
    assert body["checks"]["store"]["detail"]
    game_time_at_outage = min(p.replica.game_time for p in team.players)
    created = await team.create_all("during the outage")
    assert all(o.ok for o in created), failed(created)
    for player in team.players:  # a body nothing renames afterwards
        body_id = player.created[0][0]
        renamed = await player.command(
            "RenameCelestialBody", {"body_id": body_id, "name": "renamed in the outage"}
        )
        assert renamed.ok, renamed
    await team.deltas(10)
    marks_in_outage = [len(p.acknowledged_marks()) for p in team.players]
    await until(
        lambda: all(
            len(p.acknowledged_marks()) >= n + 5
            for p, n in zip(team.players, marks_in_outage, strict=True)
        ),
        30,
        "five more marks each during the outage",
    )
    restarting_at = time.time()
    outage = team.outcomes_between(stopped_at, restarting_at)
    assert outage and not failed(outage), failed(outage)
    assert team.connected == PLAYERS

    await threads.deferToThread(stack.pg.start)
    _, body, _ = await ready_when(base, all_ok, 90, "every check ok after the restart")
    assert body["status"] == "ready"
    assert team.connected == PLAYERS

    def outage_saved(saved) -> bool:
        return all(
            p.garden_id in saved
            and "during the outage" in saved[p.garden_id].get("bodies", {}).values()
            and saved[p.garden_id]["bodies"][p.created[0][0]] == "renamed in the outage"
            and saved[p.garden_id]["game_time"] > game_time_at_outage
            for p in team.players
        )

    await db_until(stack, outage_saved, 30, "the outage's bodies in the database")
    await team.deltas(3)
    await team.stop()
    assert team.connected == PLAYERS
    assert all(p.client.out_of_sync == 0 for p in team.players)
    everything = [o for p in team.players for o in p.outcomes]
    assert everything and all(o.ok for o in everything), failed(everything)
    await team.close()
    assert await threads.deferToThread(d.stop) == 0


@pytest_twisted.ensureDeferred
async def test_redis_outage_keeps_players_playing_and_readiness_recovers(stack) -> None:
    d = stack.daemon(*args(0.5)).start()
    base = d.url("")
    await ready_when(base, all_ok, 30, "every check ok at start")
    team = await Team.join(base, d.port, PLAYERS, "rd")
    team.start()
    await team.deltas(3)

    stopped_at = time.time()
    await threads.deferToThread(stack.redis.stop)
    status, body, _ = await ready_when(
        base, lambda s, b: check_status(b, "cache") == "degraded", 60, "cache degraded"
    )
    assert (status, body["status"]) == (200, "degraded")
    assert "not connected" in body["checks"]["cache"]["detail"]
    assert check_status(body, "store") == "ok"
    # A newcomer signs in and plays while the cache is out.
    newcomer = Player("rd-newcomer")
    await newcomer.sign_in(base)
    await newcomer.connect(d.port)
    assert (await newcomer.create("no cache")).ok
    assert (await newcomer.mark()).ok
    created = await team.create_all("during the cache outage")
    assert all(o.ok for o in created), failed(created)
    await team.deltas(10)
    outage = team.outcomes_between(stopped_at, time.time())
    assert outage and not failed(outage), failed(outage)
    assert team.connected == PLAYERS

    await threads.deferToThread(stack.redis.start)
    _, body, _ = await ready_when(base, all_ok, 60, "every check ok after Redis is back")
    assert "redis" in body["checks"]["cache"]["detail"].lower()
    await team.deltas(3)
    await team.stop()
    assert team.connected == PLAYERS and newcomer.connected
    assert all(p.client.out_of_sync == 0 for p in [*team.players, newcomer])
    everything = [o for p in [*team.players, newcomer] for o in p.outcomes]
    assert everything and all(o.ok for o in everything), failed(everything)
    await team.close()
    await newcomer.close()
    assert await threads.deferToThread(d.stop) == 0


# -- the daemon dies ------------------------------------------------------------------------


async def reconnect(team: Team, port: int, base: str) -> None:
    for player in team.players:
        await player.sign_in(base, register=False)
        await player.connect(port)


@pytest_twisted.ensureDeferred
async def test_sigkill_loses_at_most_the_write_behind_bound(stack) -> None:
    flush = 1.0
    bound = flush + MARGIN
    d = stack.daemon(*args(flush)).start()
    base = d.url("")
    team = await Team.join(base, d.port, PLAYERS, "kill")
    for name in ("Ceres", "Pallas"):
        assert all(o.ok for o in await team.create_all(name))
    team.start()
    started = time.time()
    # Play well past the bound, so that a daemon that stopped saving fails.
    await until(lambda: time.time() > started + bound + 3 * flush, 60, "some play")
    await until(lambda: all(len(p.acknowledged_marks()) >= 10 for p in team.players), 30, "marks")
    seen = {p.garden_id: p.replica.game_time for p in team.players}
    killed_at = time.time()
    d.kill()  # SIGKILL
    await until(lambda: team.connected == 0, 30, "every player dropped")
    await team.stop()

    saved = await threads.deferToThread(stack.saved_gardens)
    for player in team.players:
        garden = saved[player.garden_id]
        kept = mark_of(garden["star"])
        acked = player.acknowledged_marks()
        assert kept <= player.next_seq  # nothing the player did not send
        old_enough = [o.seq for o in acked if o.answered_at <= killed_at - bound]
        assert old_enough, "no mark older than the bound: the check could not fail"
        assert kept >= max(old_enough), (player.name, kept, max(old_enough))
        assert killed_at - garden["saved_at"] <= bound, (killed_at, garden["saved_at"])
        lost_play = (seen[player.garden_id] - garden["game_time"]) / TIME_SCALE
        assert lost_play <= bound, lost_play
        assert {"Ceres", "Pallas"} <= set(garden["bodies"].values())

    again = stack.daemon(*args(flush)).start()
    await reconnect(team, again.port, again.url(""))
    for player in team.players:
        replica, garden = player.replica, saved[player.garden_id]
        assert replica.bodies[1]["name"] == garden["star"]
        assert replica.game_time >= garden["game_time"]
        assert {"Ceres", "Pallas"} <= {b["name"] for b in replica.bodies.values()}
        assert (await player.mark()).ok
    await team.close()
    assert await threads.deferToThread(again.stop) == 0


@pytest_twisted.ensureDeferred
async def test_sigterm_under_load_loses_nothing_and_closes_with_1001(stack) -> None:
    # Nothing is flushed while playing: the final flush at stop saves it all.
    d = stack.daemon(*args(600)).start()
    base = d.url("")
    team = await Team.join(base, d.port, PLAYERS, "term")
    for name in ("Juno", "Hygiea"):
        assert all(o.ok for o in await team.create_all(name))
    team.start()
    await until(lambda: all(len(p.acknowledged_marks()) >= 10 for p in team.players), 30, "marks")
    d.signal(signal.SIGTERM)
    await until(lambda: team.connected == 0, 30, "every player closed")
    await team.stop()
    assert [p.client.close_code for p in team.players] == [1001] * PLAYERS
    assert await threads.deferToThread(exit_code, d) == 0

    saved = await threads.deferToThread(stack.saved_gardens)
    for player in team.players:
        garden = saved[player.garden_id]
        kept = mark_of(garden["star"])
        last_acked = max(o.seq for o in player.acknowledged_marks())
        assert last_acked <= kept <= player.next_seq, (last_acked, kept, player.next_seq)
        assert garden["game_time"] >= player.replica.game_time
        assert {"Juno", "Hygiea"} <= set(garden["bodies"].values())

    again = stack.daemon(*args(600)).start()
    await reconnect(team, again.port, again.url(""))
    for player in team.players:
        garden = saved[player.garden_id]
        assert player.replica.bodies[1]["name"] == garden["star"]
        assert player.replica.game_time >= garden["game_time"]
    await team.close()
    assert await threads.deferToThread(again.stop) == 0
