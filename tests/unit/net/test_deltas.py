"""Quantized deltas: what a client rebuilds equals the server's state, exactly."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmic.game.commands import CreateBody, DestroyBody, RenameBody
from cosmic.net import codec as codecs
from cosmic.net import messages
from cosmic.net.client import GardenReplica, OutOfSync
from cosmic.net.deltas import (
    ATTRIBUTES,
    Frame,
    Quanta,
    Stream,
    dequantize,
    frame_from_delta,
    frame_from_snapshot,
    quantize,
)
from tests.unit.game.conftest import OWNER, make_world, rich, step

Q = Quanta(position=1e-4, velocity=1e-3)


def wire(kind: str, data: dict) -> tuple[str, dict]:
    """Through a real codec, as a client would get it."""
    codec = codecs.MsgpackLz4Codec(1 << 24, min_bytes=0)
    encoded = codec.encode(messages.envelope(kind, data))
    back = codec.decode_envelope(encoded.payload, True)
    return back["type"], back["data"]


def matches(replica: GardenReplica, frame: Frame) -> None:
    order = np.argsort(frame.ids)
    assert replica.ids() == sorted(frame.ids.tolist())
    assert np.array_equal(replica.steps("position"), frame.position[order])
    assert np.array_equal(replica.steps("velocity"), frame.velocity[order])
    for name in ATTRIBUTES:
        got = [replica.bodies[i][name] for i in replica.ids()]
        assert got == frame.attributes[name][order].tolist(), name


def test_quantization_error_is_at_most_half_a_step() -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(-200, 200, size=(1000, 3))
    back = dequantize(quantize(values, 1e-4), 1e-4)
    assert np.max(np.abs(back - values)) <= 0.5e-4 + 1e-12
    assert quantize([[np.nan, np.inf, -np.inf]], 1e-4).tolist() == [[0, 0, 0]]


class World:
    """A real game world with one garden, frames built as the broadcaster does."""

    def __init__(self) -> None:
        self.world, self.now = make_world()
        self.world.create_garden(1, OWNER, "Eden")
        rich(self.world)
        self.previous: Frame | None = None

    def command(self, command) -> dict:
        return self.world.apply_command(command)

    def frame(self, snapshot: bool = False) -> Frame:
        if snapshot or self.previous is None:
            frame = frame_from_snapshot(1, self.world.snapshot(1), Q)
        else:
            delta = self.world.delta(1, self.world.garden(1).seq)
            try:
                frame = frame_from_delta(1, delta, self.previous, Q)
            except ValueError:
                frame = frame_from_snapshot(1, self.world.snapshot(1), Q)
        self.previous = frame
        return frame

    def events(self, since: int) -> list | None:
        delta = self.world.delta(1, since)
        return None if delta is None else delta["events"]


def send(stream: Stream, w: World, replica: GardenReplica, snapshot: bool = False) -> tuple:
    frame = w.frame(snapshot)
    events = w.events(stream.base.garden_seq) if stream.base is not None else None
    kind, data = wire(*stream.message(frame, events, Q))
    replica.apply(kind, data)
    matches(replica, frame)
    return kind, data


def test_full_sync_then_deltas_rebuild_the_garden_exactly() -> None:
    w = World()
    stream, replica = Stream(1, "owner"), GardenReplica()
    kind, data = send(stream, w, replica)
    assert kind == "FullStateSync" and data["sequence"] == 1 and data["role"] == "owner"
    for k in range(6):
        w.command(CreateBody(1, OWNER, "asteroid"))
        step(w.world, 3)
        kind, data = send(stream, w, replica, snapshot=True)
        assert kind == "StateDelta" and data["base"] == data["sequence"] - 1
        assert data["added"]["ids"] == [k + 2]
        assert [e["type"] for e in data["events"]] == ["BodyCreated"]
    for _ in range(5):  # motion only: frames from world.delta, attributes reused
        step(w.world, 2)
        kind, data = send(stream, w, replica)
        assert set(data) <= {"garden_id", "sequence", "base", "garden_seq", "game_time", "motion"}
        assert data["motion"]["ids"]
    w.command(DestroyBody(1, OWNER, 3))
    w.command(RenameBody(1, OWNER, 4, "Vesta"))
    step(w.world)
    kind, data = send(stream, w, replica, snapshot=True)
    assert data["removed"] == [3]
    assert data["changed"] == {"ids": [4], "name": ["Vesta"]}
    assert replica.sequence == stream.sequence


def test_only_changed_fields_are_sent() -> None:
    w = World()
    stream, replica = Stream(1, "owner"), GardenReplica()
    send(stream, w, replica)
    kind, data = send(stream, w, replica)  # nothing happened at all
    assert kind == "StateDelta"
    assert set(data) == {"garden_id", "sequence", "base", "garden_seq", "game_time"}
    before = dict(w.world.garden(1).resources)
    w.world.resource_tick(1.0)  # resources change, bodies do not
    kind, data = send(stream, w, replica, snapshot=True)
    assert "resources" in data and "motion" not in data and "added" not in data
    now = w.world.garden(1).resources
    assert data["resources"] == {k: v for k, v in now.items() if v != before[k]}


def test_a_congested_client_gets_one_delta_covering_the_skipped_frames() -> None:
    w = World()
    stream, replica = Stream(1, "owner"), GardenReplica()
    send(stream, w, replica)
    for _ in range(4):
        w.command(CreateBody(1, OWNER, "comet"))
        step(w.world, 5)
        w.frame(snapshot=True)  # built for others; this client is skipped
    kind, data = send(stream, w, replica)
    assert kind == "StateDelta" and data["base"] == 1 and data["sequence"] == 2
    assert len(data["events"]) == 4 and len(data["added"]["ids"]) == 4


def test_a_client_too_far_behind_gets_a_full_sync() -> None:
    w = World()
    stream, replica = Stream(1, "owner"), GardenReplica()
    send(stream, w, replica)
    garden = w.world.garden(1)
    for _ in range(garden.events.maxlen + 5):
        w.command(RenameBody(1, OWNER, 1, "Sun"))
    assert w.events(stream.base.garden_seq) is None
    kind, _data = send(stream, w, replica)
    assert kind == "FullStateSync"


def test_rebase_to_a_kept_frame_and_full_sync_for_an_unknown_one() -> None:
    w = World()
    stream, replica = Stream(1, "owner", keep=3), GardenReplica()
    send(stream, w, replica)
    older = copy.deepcopy(replica)
    for _ in range(2):
        w.command(CreateBody(1, OWNER, "asteroid"))
        step(w.world, 2)
        send(stream, w, replica, snapshot=True)
    # The client lost the last two frames (a dropped connection): it has 1.
    assert stream.rebase(1)
    kind, data = send(stream, w, older)
    assert kind == "StateDelta" and data["base"] == 1 and data["sequence"] == 4
    for _ in range(3):
        send(stream, w, older)
    assert not stream.rebase(1)  # fell out of the kept frames
    kind, _ = send(stream, w, older)
    assert kind == "FullStateSync"


def test_the_replica_refuses_a_delta_on_another_base() -> None:
    w = World()
    stream, replica = Stream(1, "owner"), GardenReplica()
    send(stream, w, replica)
    stream.message(w.frame(), w.events(stream.base.garden_seq), Q)  # lost in transit
    kind, data = wire(*stream.message(w.frame(), w.events(stream.base.garden_seq), Q))
    with pytest.raises(OutOfSync):
        replica.apply(kind, data)


# -- a property over arbitrary frame sequences --------------------------------------------

KINDS = ["asteroid", "comet", "planet"]


def synthetic(seq: int, ids: list[int], rng: np.random.Generator, header: dict) -> Frame:
    n = len(ids)
    attributes = {
        "kind": np.array([KINDS[i % 3] for i in ids], dtype=object),
        "name": np.array([f"b{i}" for i in ids], dtype=object),
        "mass": rng.choice([1.0, 2.0], size=n),
        "radius": np.full(n, 0.01),
        "level": rng.integers(0, 3, size=n),
        "life_stage": np.array(["none"] * n, dtype=object),
        "population": rng.choice([0.0, 5.0], size=n),
        "created_at": np.array([float(i) for i in ids]),
    }
    return Frame(
        1,
        seq,
        float(seq),
        np.array(ids, dtype=np.int64),
        quantize(rng.uniform(-100, 100, size=(n, 3)), Q.position),
        quantize(rng.uniform(-10, 10, size=(n, 3)), Q.velocity),
        attributes,
        {
            "resources": {"dust": float(seq % 3)},
            "rates": {"dust": 1.0},
            "upgrades": {},
            "research": {"completed": [], "active": None},
        },
        header,
    )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sets(st.integers(1, 40), max_size=25), st.booleans(), st.integers(0, 2**31)),
        min_size=1,
        max_size=12,
    )
)
def test_any_sequence_of_frames_and_skips_rebuilds_exactly(plan) -> None:
    stream, replica = Stream(1, "observer"), GardenReplica()
    header = {"id": 1, "seq": 0, "game_time": 0.0, "name": "G"}
    for seq, (ids, skipped, seed) in enumerate(plan, start=1):
        frame = synthetic(seq, sorted(ids), np.random.default_rng(seed), header)
        if skipped and stream.base is not None:
            continue  # congested: coalesced into the next one
        kind, data = wire(*stream.message(frame, [] if stream.base is not None else None, Q))
        replica.apply(kind, data)
        matches(replica, frame)
