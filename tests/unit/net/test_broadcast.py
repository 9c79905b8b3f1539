"""The broadcaster's pacing: idle gardens, attribute refreshes, frame times."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.unit.net.conftest import Harness, settle


@pytest.fixture
def h():
    harness = Harness(idle_interval=1.0, broadcast_hz=10.0)
    yield harness
    harness.stop()


def deltas(conn) -> list[dict]:
    return conn.test_transport.of("StateDelta")


@pytest_twisted.ensureDeferred
async def test_a_garden_at_rest_is_sent_once_per_idle_interval_until_it_changes(h) -> None:
    conn = h.connect()
    await h.login(conn, await h.player())
    assert h.world.garden(conn.session.garden_id).bodies.count == 1  # its star, at rest
    for _ in range(30):  # three seconds of broadcasts at 10 Hz
        h.clock.advance(0.1)
        h.server.broadcaster.tick()
    quiet = deltas(conn)
    assert 3 <= len(quiet) <= 4  # about one a second, not thirty
    assert all("resources" in d for d in quiet)  # what still moves is in them

    h.send(conn, "CreateCelestialBody", {"kind": "asteroid"}, 2)
    await settle(h)
    before = len(deltas(conn))
    h.server.broadcaster.tick()
    created = deltas(conn)[before:]
    assert len(created) == 1 and "added" in created[0]  # the event goes out at once
    for _ in range(5):  # a garden with bodies in motion: every broadcast
        h.clock.advance(0.1)
        h.server.broadcaster.tick()
    assert len(deltas(conn)) == before + 6


@pytest_twisted.ensureDeferred
async def test_idle_interval_zero_sends_every_broadcast() -> None:
    h = Harness(idle_interval=0.0, broadcast_hz=10.0)
    try:
        conn = h.connect()
        await h.login(conn, await h.player())
        for _ in range(10):
            h.clock.advance(0.1)
            h.server.broadcaster.tick()
        assert len(deltas(conn)) == 10
    finally:
        h.stop()


@pytest_twisted.ensureDeferred
async def test_frames_carry_the_time_their_broadcast_started(h) -> None:
    conn = h.connect()
    await h.login(conn, await h.player())
    h.send(conn, "CreateCelestialBody", {"kind": "asteroid"}, 2)
    await settle(h)
    h.clock.advance(0.1)
    started = h.clock.seconds()
    h.server.broadcaster.tick()
    assert deltas(conn)[-1]["server_time"] == pytest.approx(started * 1000.0)
    sync = conn.test_transport.of("FullStateSync")[0]
    assert sync["server_time"] <= started * 1000.0


@pytest_twisted.ensureDeferred
async def test_late_broadcasts_do_not_rebuild_every_garden_from_a_snapshot(h) -> None:
    conn = h.connect()
    await h.login(conn, await h.player())
    h.send(conn, "CreateCelestialBody", {"kind": "asteroid"}, 2)
    await settle(h)
    world = h.world
    calls = []
    snapshot = world.snapshot
    world.snapshot = lambda garden_id: calls.append(garden_id) or snapshot(garden_id)
    h.server.broadcaster.tick()  # refreshes after the new body
    calls.clear()
    for _ in range(5):  # each broadcast two seconds late
        h.clock.advance(2.0)
        h.server.broadcaster.tick()
    assert calls == []  # attributes refresh every 10 broadcasts, however late
    for _ in range(5):
        h.server.broadcaster.tick()
    assert len(calls) == 1
