"""BodyBuffers: growth and compaction keep every body's data under its id."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cosmic.physics import (
    BodyBuffers,
    DuplicateBodyError,
    UnknownBodyError,
    UnknownGardenError,
)


class BuffersMachine(RuleBasedStateMachine):
    """Random adds, removes and compactions against a dict model."""

    def __init__(self) -> None:
        super().__init__()
        self.buf = BodyBuffers(capacity=4, gardens=1)
        self.model: dict[int, dict[int, tuple]] = {}
        self.next_id = 1
        self.next_garden = 0

    @rule()
    def add_garden(self) -> None:
        g = self.next_garden
        self.next_garden += 1
        self.buf.add_garden(g, radius=10.0 + g)
        self.model[g] = {}

    @precondition(lambda self: self.model)
    @rule(data=st.data(), n=st.integers(1, 9))
    def add_bodies(self, data, n) -> None:
        g = data.draw(st.sampled_from(sorted(self.model)))
        ids = np.arange(self.next_id, self.next_id + n)
        self.next_id += n
        mass = ids * 1.0
        pos = np.column_stack([ids, -ids, 2.0 * ids]).astype(float)
        vel = pos * 0.5
        radius = ids * 1e-3
        if n == 1:
            self.buf.add_body(
                g, int(ids[0]), mass=mass[0], radius=radius[0], position=pos[0], velocity=vel[0]
            )
        else:
            self.buf.add_bodies(g, ids, mass=mass, radius=radius, position=pos, velocity=vel)
        for k, i in enumerate(ids.tolist()):
            self.model[g][i] = (mass[k], radius[k], pos[k].tolist(), vel[k].tolist())

    @precondition(lambda self: any(self.model.values()))
    @rule(data=st.data())
    def remove_bodies(self, data) -> None:
        g = data.draw(st.sampled_from([g for g in sorted(self.model) if self.model[g]]))
        ids = data.draw(st.lists(st.sampled_from(sorted(self.model[g])), min_size=1, unique=True))
        removed = self.buf.remove_bodies(g, [*ids, 10**9])  # an unknown id is ignored
        assert removed == len(ids)
        for i in ids:
            del self.model[g][i]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove_garden(self, data) -> None:
        g = data.draw(st.sampled_from(sorted(self.model)))
        self.buf.remove_garden(g)
        del self.model[g]

    @rule()
    def compact(self) -> None:
        self.buf.compact()
        assert self.buf.holes == 0

    @invariant()
    def every_body_is_where_its_id_says(self) -> None:
        assert len(self.buf) == len(self.model)
        for g, bodies in self.model.items():
            view = self.buf.garden(g)
            assert sorted(view.ids.tolist()) == sorted(bodies)
            assert view.garden_radius == 10.0 + g
            for i, (mass, radius, pos, vel) in bodies.items():
                k = self.buf.index_of(g, i)
                assert self.buf.ids[k] == i
                assert self.buf.mass[k] == mass and self.buf.radius[k] == radius
                assert self.buf.pos[:, k].tolist() == pos
                assert self.buf.vel[:, k].tolist() == vel

    @invariant()
    def segments_do_not_overlap(self) -> None:
        b = self.buf
        spans = sorted(
            (int(b.seg_start[s]), int(b.seg_start[s] + b.seg_cap[s]))
            for s in np.flatnonzero(b.seg_alive)
            if b.seg_cap[s] > 0
        )
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start
        assert all(end <= b.used <= b.capacity for _, end in spans)
        assert (b.capacity & (b.capacity - 1)) == 0  # grown by doubling from 4


TestBuffers = BuffersMachine.TestCase
TestBuffers.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


def test_growth_is_geometric_and_order_is_kept():
    buf = BodyBuffers(capacity=4)
    buf.add_garden("a")
    buf.add_garden("b")
    capacities = set()
    for i in range(1, 200):
        garden = "a" if i % 3 else "b"
        buf.add_body(garden, i, mass=1.0, radius=0.0, position=(i, 0, 0))
        capacities.add(buf.capacity)
    assert capacities <= {4 * 2**k for k in range(10)}
    assert buf.garden("a").ids.tolist() == [i for i in range(1, 200) if i % 3]
    buf.remove_bodies("a", [1, 2, 4])
    assert buf.garden("a").ids.tolist()[:3] == [5, 7, 8]
    assert buf.garden("a").position[0].tolist() == [float(i) for i in buf.garden("a").ids]


def test_lookup_errors_and_duplicates():
    buf = BodyBuffers()
    with pytest.raises(UnknownGardenError):
        buf.add_body("nope", 1, mass=1.0, radius=0.0, position=(0, 0, 0))
    buf.add_garden("g")
    with pytest.raises(ValueError, match="already"):
        buf.add_garden("g")
    buf.add_body("g", 1, mass=1.0, radius=0.0, position=(0, 0, 0))
    with pytest.raises(DuplicateBodyError):
        buf.add_body("g", 1, mass=1.0, radius=0.0, position=(0, 0, 0))
    with pytest.raises(DuplicateBodyError):
        buf.add_bodies(
            "g", [5, 5], mass=[1, 1], radius=[0, 0], position=np.zeros((2, 3)),
            velocity=np.zeros((2, 3)),
        )  # fmt: skip
    with pytest.raises(UnknownBodyError):
        buf.index_of("g", 2)
    buf.add_garden("h")
    buf.add_body("h", 1, mass=2.0, radius=0.0, position=(0, 0, 0))  # ids are per garden
    assert buf.mass[buf.index_of("h", 1)] == 2.0
    with pytest.raises(ValueError, match="radius"):
        buf.add_garden("bad", radius=0.0)


def test_views_see_the_buffers_and_touch_marks_stale():
    buf = BodyBuffers()
    buf.add_garden("g")
    buf.add_body("g", 1, mass=1.0, radius=0.0, position=(1, 2, 3))
    buf.seg_fresh[:] = 0
    view = buf.garden("g")
    view.position[0, 0] = 9.0
    assert buf.pos[0, buf.index_of("g", 1)] == 9.0
    buf.touch("g")
    assert buf.seg_fresh[buf.slot_of("g")] == 1
