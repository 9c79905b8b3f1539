"""One garden's state outside the physics buffers, and its event log."""

from __future__ import annotations

import collections
import random
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from cosmic.game import economy, rules
from cosmic.game.bodies import GardenBodies
from cosmic.game.errors import InsufficientResources
from cosmic.game.events import Event

EVENT_LOG = 512  # events kept for deltas; older clients get a full sync


@attrs.define
class ActiveResearch:
    name: str
    remaining: float  # seconds of play


@attrs.define(eq=False)
class Garden:
    id: int
    owner_id: int
    name: str
    public: bool
    created_at: float
    game_time: float = 0.0
    resources: dict[str, float] = attrs.field(factory=lambda: dict.fromkeys(rules.RESOURCES, 0.0))
    upgrades: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(rules.RESOURCES, 0))
    completed: list[str] = attrs.field(factory=list)
    research: ActiveResearch | None = None
    transcended_at: float | None = None
    next_body_id: int = 1
    seq: int = 0
    version: int = 0
    accreted: float = 0.0  # M☉ swallowed by black holes, lifetime
    produced_thought: float = 0.0  # lifetime: the leaderboard's measure
    rates: dict[str, float] = attrs.field(factory=lambda: dict.fromkeys(rules.RESOURCES, 0.0))
    bodies: GardenBodies = attrs.field(factory=GardenBodies)
    rng: random.Random = attrs.field(factory=random.Random)
    events: collections.deque[Event] = attrs.field(
        factory=lambda: collections.deque(maxlen=EVENT_LOG)
    )
    last_watched: float = 0.0
    _multipliers: tuple[Any, dict[str, float]] | None = attrs.field(
        default=None, init=False, repr=False
    )
    # The seq ``rates`` were last computed at: bodies, upgrades and research
    # change only with an event, so without planets (whose life grows every
    # tick) the rates hold until the next one.
    rates_seq: int = attrs.field(default=-1, init=False, repr=False)
    has_planets: bool = attrs.field(default=False, init=False, repr=False)

    # -- events ------------------------------------------------------------------

    def emit(self, type_: str, **data: Any) -> Event:
        self.seq += 1
        self.version += 1
        event = Event(self.seq, type_, data)
        self.events.append(event)
        return event

    def events_since(self, seq: int) -> list[Event] | None:
        """Events after ``seq``, or None when the log no longer reaches back that far."""
        if seq >= self.seq:
            return []
        if seq < 0 or not self.events or self.events[0].seq > seq + 1:
            return None
        return [e for e in self.events if e.seq > seq]

    def touch(self) -> None:
        """Record a change that emits no event (positions, resources)."""
        self.version += 1

    # -- resources ---------------------------------------------------------------

    def check_affordable(self, cost: Mapping[str, float], what: str) -> None:
        short = {
            name: round(amount - self.resources[name], 6)
            for name, amount in cost.items()
            if self.resources[name] < amount
        }
        if short:
            missing = ", ".join(f"{amount:g} more {name}" for name, amount in short.items())
            raise InsufficientResources(
                f"{what} needs {missing}",
                cost=dict(cost),
                missing=short,
            )

    def pay(self, cost: Mapping[str, float]) -> None:
        for name, amount in cost.items():
            self.resources[name] -= amount

    def credit(self, amounts: Mapping[str, float]) -> None:
        for name, amount in amounts.items():
            self.resources[name] += amount
        self.produced_thought += amounts.get("thought_points", 0.0)

    def produce(self, seconds: float) -> None:
        """Credit ``rates`` for ``seconds`` of play."""
        resources = self.resources
        for name, rate in self.rates.items():
            resources[name] += rate * seconds
        self.produced_thought += self.rates.get("thought_points", 0.0) * seconds

    def multipliers(self) -> dict[str, float]:
        # Computed once per change of upgrades or research, not every second.
        key = (tuple(self.upgrades.values()), len(self.completed))
        if self._multipliers is None or self._multipliers[0] != key:
            self._multipliers = (key, economy.multipliers(self.upgrades, self.completed))
        return self._multipliers[1]

    # -- research ----------------------------------------------------------------

    def has(self, research: str) -> bool:
        return research in self.completed

    def advance_research(self, seconds: float) -> list[str]:
        """Progress the active research; return what finished (at most one)."""
        if self.research is None or seconds <= 0:
            return []
        self.research.remaining -= seconds
        if self.research.remaining > 0:
            return []
        done = self.research.name
        self.research = None
        self.completed.append(done)
        return [done]

    def kind_counts(self) -> dict[str, int]:
        per_code = np.bincount(self.bodies.kind, minlength=len(rules.KIND_BY_CODE))
        return {kind.name: int(per_code[kind.code]) for kind in rules.KIND_BY_CODE}
