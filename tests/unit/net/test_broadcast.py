"""The broadcaster's pacing: idle gardens, attribute refreshes, frame times."""

from __future__ import annotations

import attrs
import pytest
import pytest_twisted
from twisted.internet import defer

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


async def sliced(players: int) -> tuple[Harness, list]:
    """A harness whose broadcaster sees 3 ms of work pass at every clock
    reading (its 5 ms slices end every two gardens), with logged-in players."""
    h = Harness(idle_interval=0.0, broadcast_hz=10.0, broadcast_slice=0.005)
    conns = []
    for i in range(players):
        conn = h.connect()
        await h.login(conn, await h.player(f"player{i}"))
        conns.append(conn)
    now = [0.0]

    def perf() -> float:
        now[0] += 0.003
        return now[0]

    h.server.broadcaster.perf = perf
    return h, conns


@pytest_twisted.ensureDeferred
async def test_a_long_broadcast_yields_to_the_reactor_between_slices() -> None:
    h, conns = await sliced(6)
    try:
        broadcaster = h.server.broadcaster
        before = [len(deltas(c)) for c in conns]
        done = broadcaster.tick()
        assert done is not None  # over budget: the rest waits for the reactor
        first = sum(len(deltas(c)) - b for c, b in zip(conns, before, strict=True))
        assert 1 <= first < 6
        fired: list[object] = []
        done.addCallback(fired.append)
        conns[-1].lost()  # one leaves while the broadcast is under way
        for _ in range(10):
            h.clock.advance(0)
        assert fired == [None]
        sent = [len(deltas(c)) - b for c, b in zip(conns, before, strict=True)]
        assert sent[:-1] == [1] * 5  # everyone else got exactly one frame
        assert sent[-1] == 0  # and nobody is sent to after leaving
        count = h.metrics.registry.get_sample_value(
            "cosmic_gardener_ws_broadcast_duration_seconds_count"
        )
        assert count == 1  # one broadcast, however many slices

        broadcaster.options = attrs.evolve(broadcaster.options, broadcast_slice=0.0)
        assert broadcaster.tick() is None  # 0: in one go
    finally:
        h.stop()


@pytest_twisted.ensureDeferred
async def test_the_rest_of_a_broadcast_waits_for_a_physics_step_in_flight() -> None:
    h, conns = await sliced(4)
    try:
        broadcaster = h.server.broadcaster
        before = sum(len(deltas(c)) for c in conns)
        done = broadcaster.tick()
        assert done is not None
        partial = sum(len(deltas(c)) for c in conns) - before
        # A step takes the world between two slices and holds it.
        step = defer.Deferred()
        h.loop._stepping = step
        h.clock.advance(0)
        assert sum(len(deltas(c)) for c in conns) - before == partial
        h.loop._release()  # the step hands the world back
        for _ in range(10):
            h.clock.advance(0)
        assert sum(len(deltas(c)) for c in conns) - before == 4
        assert done.called
    finally:
        h.stop()


@pytest_twisted.ensureDeferred
async def test_a_client_that_missed_an_event_gets_it_at_once_even_at_rest(h) -> None:
    from cosmic.game.commands import BuyUpgrade, SetPublic

    owner, viewer = h.connect(), h.connect(address="10.0.0.2")
    ada, bob = await h.player("ada"), await h.player("bob")
    await h.login(owner, ada)
    await h.login(viewer, bob)
    garden = owner.session.garden_id
    h.world.apply_command(SetPublic(garden, ada, True))
    h.send(viewer, "ObserveGarden", {"garden_id": garden}, 1)
    await settle(h)
    for _ in range(12):  # both streams settle into the idle pacing
        h.clock.advance(0.1)
        h.server.broadcaster.tick()
    h.world.apply_command(BuyUpgrade(garden, ada, "cosmic_dust"))  # an event; still at rest
    seen = len([d for d in viewer.test_transport.of("StateDelta") if d["garden_id"] == garden])
    viewer.outbox.paused = True  # the viewer's socket is full (the transport paused it)
    h.clock.advance(0.1)
    h.server.broadcaster.tick()  # only the owner can take it now
    viewer.outbox.paused = False
    assert any("events" in d for d in owner.test_transport.of("StateDelta")[-1:])
    h.clock.advance(0.1)
    h.server.broadcaster.tick()  # the viewer drained: it gets the event now, not in 1 s
    frames = [d for d in viewer.test_transport.of("StateDelta") if d["garden_id"] == garden]
    assert len(frames) == seen + 1
    assert [e["type"] for e in frames[-1]["events"]] == ["UpgradeBought"]
