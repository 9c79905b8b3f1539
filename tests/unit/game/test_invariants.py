"""Random command sequences against the world, checking its invariants.

After every step: no resource is negative; no cap is exceeded; the game's
columns agree with the physics segment; total mass changes only by bodies
created, destroyed or escaped (merges conserve it); and a command that
fails changes nothing at all.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cosmic.game import errors, events, rules
from cosmic.game.commands import (
    BuyUpgrade,
    CreateBody,
    DestroyBody,
    RenameBody,
    SetPublic,
    StartResearch,
)
from tests.unit.game.conftest import OWNER, fingerprint, make_world, step

finite = st.floats(min_value=-150.0, max_value=150.0, allow_nan=False)
coordinates = st.one_of(
    st.none(),
    st.tuples(finite, finite, st.floats(min_value=-5, max_value=5)),
    st.just((math.nan, 0.0, 0.0)),
)
speeds = st.one_of(st.none(), st.tuples(*[st.floats(min_value=-300, max_value=300)] * 3))
kinds = st.sampled_from([*rules.KINDS, "wormhole"])
names = st.one_of(st.none(), st.text(max_size=70))


class WorldMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world, self.now = make_world(seed=1)
        self.garden = self.world.create_garden(1, OWNER, "home")
        self.mass = self._total_mass()

    def _total_mass(self) -> float:
        return float(np.sum(self.world.buffers.garden(1).mass))

    def _command(self, command) -> None:
        before = fingerprint(self.world)
        mass = self._total_mass()
        try:
            result = self.world.apply_command(command)
        except errors.GameError as exc:
            assert exc.code.startswith("WS_GAME_")
            assert fingerprint(self.world) == before, f"{command} failed but changed the world"
            return
        if isinstance(command, CreateBody):
            self.mass = mass + result["body"]["mass"]
        elif isinstance(command, DestroyBody):
            self.mass = self._total_mass()

    @rule(
        kind=kinds,
        position=coordinates,
        velocity=speeds,
        name=names,
        parent=st.one_of(st.none(), st.integers(0, 40)),
    )
    def create(self, kind, position, velocity, name, parent) -> None:
        self._command(CreateBody(1, OWNER, kind, position, velocity, name, parent))

    @rule(body=st.integers(0, 40))
    def destroy(self, body) -> None:
        self._command(DestroyBody(1, OWNER, body))

    @rule(body=st.integers(0, 40), name=st.text(max_size=70))
    def rename(self, body, name) -> None:
        self._command(RenameBody(1, OWNER, body, name))

    @rule(research=st.sampled_from([*rules.RESEARCH, "alchemy"]))
    def research(self, research) -> None:
        self._command(StartResearch(1, OWNER, research))

    @rule(resource=st.sampled_from([*rules.RESOURCES, "gold"]))
    def upgrade(self, resource) -> None:
        self._command(BuyUpgrade(1, OWNER, resource))

    @rule(public=st.booleans())
    def public(self, public) -> None:
        self._command(SetPublic(1, OWNER, public))

    @rule(amount=st.sampled_from([1e3, 1e5, 1e7]))
    def windfall(self, amount) -> None:
        self.garden.credit(dict.fromkeys(rules.RESOURCES, amount))

    @rule(ticks=st.integers(1, 120))
    def physics(self, ticks) -> None:
        seq = self.garden.seq
        step(self.world, ticks)
        escaped = sum(
            e["data"]["mass"]
            for e in self.world.delta(1, seq)["events"]
            if e["type"] == events.BODY_DESTROYED and e["data"]["reason"] == events.ESCAPED
        )
        assert math.isclose(self._total_mass(), self.mass - escaped, rel_tol=1e-9, abs_tol=1e-15)
        self.mass = self._total_mass()

    @precondition(lambda self: self.garden.bodies.count > 0)
    @rule(seconds=st.sampled_from([1.0, 1.0, 60.0, 600.0]))
    def resources(self, seconds) -> None:
        mass = self._total_mass()
        self.world.resource_tick(seconds)
        assert self._total_mass() == mass
        # Rates are kept between events: they must be what a fresh count gives.
        assert self.garden.rates == pytest.approx(self.world._rates(self.garden))

    @invariant()
    def resources_never_negative(self) -> None:
        assert all(v >= 0.0 for v in self.garden.resources.values()), self.garden.resources

    @invariant()
    def caps_hold(self) -> None:
        counts = self.garden.kind_counts()
        assert sum(counts.values()) <= rules.MAX_BODIES
        for name, count in counts.items():
            assert count <= rules.KINDS[name].cap, name

    @invariant()
    def columns_match_physics(self) -> None:
        view = self.world.buffers.garden(1)
        self.garden.bodies.check_aligned(view.ids)
        assert np.all(np.isfinite(view.position)) and np.all(view.mass > 0)


WorldMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestWorldInvariants = WorldMachine.TestCase
