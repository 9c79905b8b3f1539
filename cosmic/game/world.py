"""The world: every loaded garden, the commands that change them, and the ticks.

Bodies live in the physics buffers (``engine.bodies``) plus the game's
columns (``GardenBodies``); a body is an index and a stable id, never a
Python object.  Every command either changes nothing and raises a GameError,
or applies completely and emits events.  Nothing here knows about Twisted,
sockets or databases: the loop service calls in, the protocol reads out.
"""

from __future__ import annotations

import math
import random
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import numpy as np

from cosmic.game import economy, events, rules
from cosmic.game.commands import (
    BuyUpgrade,
    CreateBody,
    DestroyBody,
    RenameBody,
    SetPublic,
    StartResearch,
)
from cosmic.game.errors import (
    BodyNotFound,
    CapReached,
    InvalidCommand,
    InvalidName,
    InvalidPlacement,
    Locked,
    ParentRequired,
    ResearchBusy,
    ResearchUnavailable,
    UnknownKind,
    UpgradeUnavailable,
)
from cosmic.game.garden import ActiveResearch, Garden
from cosmic.physics.engine import PhysicsEngine

STAR = rules.KINDS["star"].code
BLACK_HOLE = rules.KINDS["black_hole"].code
MOON_PARENTS = frozenset({rules.KINDS["planet"].code, rules.KINDS["gas_giant"].code})
_PLACEMENT_TRIES = 32


@attrs.define
class StepJob:
    """One physics step: ``run`` is the only part that may leave the reactor thread."""

    engine: PhysicsEngine
    dt_years: float
    result: Any = None

    def run(self) -> None:
        self.result = self.engine.step(self.dt_years)


def _vector(value: Iterable[float] | None, what: str) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (3,) or not np.all(np.isfinite(array)):
        raise InvalidPlacement(f"{what} must be three finite numbers")
    return array


def clean_name(name: str) -> str:
    """A body name as stored: trimmed, printable, 1..NAME_MAX characters."""
    text = unicodedata.normalize("NFC", name).strip()
    if not 1 <= len(text) <= rules.NAME_MAX:
        raise InvalidName(f"a name needs 1 to {rules.NAME_MAX} characters")
    if any(unicodedata.category(ch)[0] == "C" for ch in text):
        raise InvalidName("a name may not contain control characters")
    return text


class World:
    def __init__(
        self,
        engine: PhysicsEngine,
        *,
        now: Callable[[], float],
        time_scale: float = rules.TIME_SCALE,
        offline_cap: float = rules.OFFLINE_CAP_SECONDS,
        seed: int = 0,
    ) -> None:
        self.engine = engine
        self.buffers = engine.bodies
        self.now = now
        self.time_scale = time_scale
        self.offline_cap = offline_cap
        self.seed = seed
        self.gardens: dict[int, Garden] = {}
        # Resource slot per garden, dealt round-robin as gardens arrive and
        # kept while loaded: the loop advances a slot's gardens together.
        self._slots: dict[int, int] = {}
        # slices -> garden ids per slice index, rebuilt after gardens change,
        # so that a slice walks its own gardens, not every garden.
        self._slot_groups: dict[int, list[list[int]]] = {}
        self._next_slot = 0

    # -- gardens in and out ----------------------------------------------------------

    def _rng(self, garden_id: int) -> random.Random:
        return random.Random(self.seed * 1_000_003 + garden_id)

    def create_garden(
        self, garden_id: int, owner_id: int, name: str, public: bool = False
    ) -> Garden:
        """A brand-new garden: a young star in a cloud of dust."""
        now = self.now()
        garden = Garden(
            garden_id,
            owner_id,
            name,
            public,
            created_at=now,
            rng=self._rng(garden_id),
            last_watched=now,
        )
        garden.credit(rules.STARTING_RESOURCES)
        self._register(garden)
        star = rules.KINDS["star"]
        self._add_body(garden, star, np.zeros(3), np.zeros(3), star.mass, star.radius, now)
        garden.bodies.names[1] = "Sun"
        garden.rates = self._rates(garden)
        return garden

    def _register(self, garden: Garden) -> None:
        if garden.id in self.gardens:
            raise ValueError(f"garden {garden.id} is already loaded")
        self.buffers.add_garden(garden.id, radius=rules.GARDEN_RADIUS)
        self.gardens[garden.id] = garden
        self._slots[garden.id] = self._next_slot
        self._next_slot += 1
        self._slot_groups.clear()

    def attach(self, garden: Garden, columns: dict[str, np.ndarray], saved_at: float) -> Garden:
        """Load a saved garden and credit its owner for the time away (capped)."""
        self._register(garden)
        try:
            self.buffers.add_bodies(
                garden.id,
                columns["ids"],
                mass=columns["mass"],
                radius=columns["radius"],
                position=columns["position"],
                velocity=columns["velocity"],
            )
        except Exception:
            self.detach(garden.id)
            raise
        garden.bodies.append(
            columns["ids"],
            columns["kind"],
            columns["created_at"],
            level=columns["level"],
            stage=columns["stage"],
            population=columns["population"],
            stage_time=columns["stage_time"],
        )
        garden.rng = self._rng(garden.id)
        garden.last_watched = self.now()
        self._offline(garden, self.now() - saved_at)
        return garden

    def _offline(self, garden: Garden, away: float) -> None:
        seconds = min(max(away, 0.0), self.offline_cap)
        if seconds <= 0:
            return
        credited = {name: rate * seconds for name, rate in garden.rates.items() if rate}
        garden.credit(credited)
        garden.emit(
            events.OFFLINE_PROGRESS,
            seconds=seconds,
            away=max(away, 0.0),
            capped=away > self.offline_cap,
            credited=credited,
        )
        self._finish_research(garden, garden.advance_research(seconds))

    def detach(self, garden_id: int) -> Garden:
        garden = self.gardens.pop(garden_id)
        self._slots.pop(garden_id, None)
        self._slot_groups.clear()
        self.buffers.remove_garden(garden_id)
        return garden

    def garden(self, garden_id: int) -> Garden:
        try:
            return self.gardens[garden_id]
        except KeyError:
            raise InvalidCommand(f"garden {garden_id} is not loaded") from None

    def load(self) -> dict[str, int]:
        return {"gardens": len(self.gardens), "bodies": self.buffers.total_bodies}

    # -- commands ----------------------------------------------------------------

    def apply_command(self, command: Any) -> dict[str, Any]:
        handler = self._handlers.get(type(command))
        if handler is None:
            raise InvalidCommand(f"unknown command {type(command).__name__}")
        garden = self.garden(command.garden_id)
        if garden.owner_id != command.player_id:
            raise InvalidCommand("only the garden's owner can change it")
        return handler(self, garden, command)

    def _create(self, garden: Garden, cmd: CreateBody) -> dict[str, Any]:
        kind = rules.KINDS.get(cmd.kind)
        if kind is None:
            raise UnknownKind(f"no body kind {cmd.kind!r}", kinds=sorted(rules.KINDS))
        if kind.requires and not garden.has(kind.requires):
            raise Locked(
                f"creating a {kind.name} needs the research {kind.requires}", research=kind.requires
            )
        counts = garden.kind_counts()
        if garden.bodies.count >= rules.MAX_BODIES:
            raise CapReached(f"a garden holds at most {rules.MAX_BODIES} bodies")
        if counts[kind.name] >= kind.cap:
            raise CapReached(
                f"a garden holds at most {kind.cap} of kind {kind.name}",
                kind=kind.name,
                cap=kind.cap,
            )
        name = clean_name(cmd.name) if cmd.name is not None else None
        position = _vector(cmd.position, "position")
        velocity = _vector(cmd.velocity, "velocity")
        view = self.buffers.garden(garden.id)
        parent = None
        if kind.name == "moon":
            parent = self._parent(garden, view, cmd.parent_id)
        elif cmd.parent_id is not None:
            raise InvalidPlacement("only moons take a parent")
        garden.check_affordable(kind.cost, f"a {kind.name}")
        if velocity is not None and float(np.linalg.norm(velocity)) > rules.MAX_SPEED:
            raise InvalidPlacement(f"speed is limited to {rules.MAX_SPEED:g} AU/year")
        # Every check that can fail comes before the placement draws: a
        # failed command must leave the garden's rng where it was.
        if position is None:
            position = self._free_spot(garden, view, kind, parent)
        else:
            self._check_position(view, position, kind.radius)
        if velocity is None:
            velocity = self._circular_velocity(view, position, parent)
        body_id = self._add_body(
            garden, kind, position, velocity, kind.mass, kind.radius, self.now()
        )
        garden.pay(kind.cost)
        if name is not None:
            garden.bodies.names[body_id] = name
        body = self.body(garden, body_id)
        garden.emit(events.BODY_CREATED, body=body)
        return {"body": body, "resources": dict(garden.resources)}

    def _add_body(
        self,
        garden: Garden,
        kind: rules.BodyKind,
        position: np.ndarray,
        velocity: np.ndarray,
        mass: float,
        radius: float,
        now: float,
    ) -> int:
        body_id = garden.next_body_id
        self.buffers.add_body(
            garden.id, body_id, mass=mass, radius=radius, position=position, velocity=velocity
        )
        garden.bodies.append([body_id], [kind.code], [now])
        garden.next_body_id += 1
        return body_id

    def _parent(self, garden: Garden, view: Any, parent_id: int | None) -> int:
        if parent_id is None:
            raise ParentRequired("a moon needs parent_id: the planet it orbits")
        row = garden.bodies.row(parent_id)
        if row is None:
            raise ParentRequired(f"no body {parent_id} to orbit")
        if int(garden.bodies.kind[row]) not in MOON_PARENTS:
            raise ParentRequired("a moon orbits a planet or a gas giant")
        return row

    def _check_position(self, view: Any, position: np.ndarray, radius: float) -> None:
        if (
            np.any(np.abs(position - view.origin) > view.garden_radius)
            or float(np.linalg.norm(position - view.origin)) > view.garden_radius
        ):
            raise InvalidPlacement(
                f"position is outside the garden (radius {view.garden_radius:g} AU)"
            )
        if view.ids.shape[0]:
            gap = np.sqrt(((view.position - position[:, None]) ** 2).sum(axis=0))
            inside = np.flatnonzero(gap < view.radius + radius)
            if inside.shape[0]:
                raise InvalidPlacement(
                    f"position is inside body {int(view.ids[inside[0]])}",
                    body_id=int(view.ids[inside[0]]),
                )

    def _free_spot(
        self, garden: Garden, view: Any, kind: rules.BodyKind, parent: int | None
    ) -> np.ndarray:
        state = garden.rng.getstate()
        for _ in range(_PLACEMENT_TRIES):
            angle = garden.rng.uniform(0.0, 2.0 * math.pi)
            if parent is not None:
                centre = view.position[:, parent]
                distance = 3.0 * float(view.radius[parent]) + garden.rng.uniform(0.02, 0.1)
            else:
                centre = self._heaviest(view, None)[0]
                distance = garden.rng.uniform(*kind.orbit)
            spot = centre + distance * np.array([math.cos(angle), math.sin(angle), 0.0])
            try:
                self._check_position(view, spot, kind.radius)
            except InvalidPlacement:
                continue
            return spot
        garden.rng.setstate(state)  # the command fails: as if never drawn
        raise InvalidPlacement("found no free place for the body; give a position")

    @staticmethod
    def _heaviest(view: Any, exclude: int | None) -> tuple[np.ndarray, np.ndarray, float]:
        if view.ids.shape[0] == 0:
            return np.zeros(3), np.zeros(3), 0.0
        mass = view.mass.copy()
        if exclude is not None:
            mass[exclude] = -1.0
        k = int(np.argmax(mass))
        return view.position[:, k].copy(), view.velocity[:, k].copy(), float(view.mass[k])

    def _circular_velocity(self, view: Any, position: np.ndarray, parent: int | None) -> np.ndarray:
        """A circular orbit around the parent, else around the heaviest body."""
        if parent is not None:
            centre, centre_v = view.position[:, parent].copy(), view.velocity[:, parent].copy()
            mass = float(view.mass[parent])
        else:
            centre, centre_v, mass = self._heaviest(view, None)
        offset = position - centre
        distance = float(np.linalg.norm(offset))
        if mass <= 0.0 or distance == 0.0:
            return centre_v
        axis = np.array([0.0, 0.0, 1.0])
        direction = np.cross(axis, offset)
        if float(np.linalg.norm(direction)) < 1e-12 * distance:
            direction = np.cross(np.array([1.0, 0.0, 0.0]), offset)
        direction /= np.linalg.norm(direction)
        return centre_v + math.sqrt(rules.G * mass / distance) * direction

    def _destroy(self, garden: Garden, cmd: DestroyBody) -> dict[str, Any]:
        if garden.bodies.row(cmd.body_id) is None:
            raise BodyNotFound(f"no body {cmd.body_id} in this garden", body_id=cmd.body_id)
        self._remove(garden, [cmd.body_id])
        garden.emit(events.BODY_DESTROYED, body_id=cmd.body_id, reason=events.MANUAL)
        return {"body_id": cmd.body_id}

    def _remove(self, garden: Garden, body_ids: list[int]) -> None:
        self.buffers.remove_bodies(garden.id, body_ids)
        garden.bodies.remove(body_ids)

    def _rename(self, garden: Garden, cmd: RenameBody) -> dict[str, Any]:
        if garden.bodies.row(cmd.body_id) is None:
            raise BodyNotFound(f"no body {cmd.body_id} in this garden", body_id=cmd.body_id)
        name = clean_name(cmd.name)
        garden.bodies.names[cmd.body_id] = name
        garden.emit(events.BODY_UPDATED, body_id=cmd.body_id, name=name)
        return {"body_id": cmd.body_id, "name": name}

    def _research(self, garden: Garden, cmd: StartResearch) -> dict[str, Any]:
        research = rules.RESEARCH.get(cmd.research)
        if research is None:
            raise ResearchUnavailable(
                f"no research {cmd.research!r}", research=sorted(rules.RESEARCH)
            )
        if garden.has(research.name):
            raise ResearchUnavailable(f"{research.name} is already done")
        missing = [r for r in research.requires if not garden.has(r)]
        if missing:
            raise ResearchUnavailable(
                f"{research.name} needs {', '.join(missing)} first", requires=missing
            )
        if garden.research is not None:
            raise ResearchBusy(
                f"{garden.research.name} is still running; one at a time",
                active=garden.research.name,
            )
        garden.check_affordable(research.cost, research.name)
        garden.pay(research.cost)
        garden.research = ActiveResearch(research.name, research.seconds)
        garden.emit(events.RESEARCH_STARTED, research=research.name, seconds=research.seconds)
        return {
            "research": research.name,
            "seconds": research.seconds,
            "resources": dict(garden.resources),
        }

    def _upgrade(self, garden: Garden, cmd: BuyUpgrade) -> dict[str, Any]:
        upgrade = rules.UPGRADES.get(cmd.resource)
        if upgrade is None:
            raise UpgradeUnavailable(
                f"no upgrade for {cmd.resource!r}", upgrades=sorted(rules.UPGRADES)
            )
        level = garden.upgrades[upgrade.resource]
        if level >= upgrade.max_level:
            raise UpgradeUnavailable(f"{upgrade.resource} is at its top level {level}")
        cost = {upgrade.resource: upgrade.cost(level)}
        garden.check_affordable(cost, f"{upgrade.resource} level {level + 1}")
        garden.pay(cost)
        garden.upgrades[upgrade.resource] = level + 1
        garden.rates = self._rates(garden)
        garden.emit(
            events.UPGRADE_BOUGHT,
            resource=upgrade.resource,
            level=level + 1,
            next_cost=upgrade.cost(level + 1),
        )
        return {
            "resource": upgrade.resource,
            "level": level + 1,
            "resources": dict(garden.resources),
        }

    def _public(self, garden: Garden, cmd: SetPublic) -> dict[str, Any]:
        if garden.public != bool(cmd.public):
            garden.public = bool(cmd.public)
            garden.emit(events.GARDEN_UPDATED, public=garden.public)
        return {"public": garden.public}

    _handlers: dict[type, Callable[..., dict[str, Any]]] = {
        CreateBody: _create,
        DestroyBody: _destroy,
        RenameBody: _rename,
        StartResearch: _research,
        BuyUpgrade: _upgrade,
        SetPublic: _public,
    }

    # -- physics -----------------------------------------------------------------

    def prepare_step(self, dt_seconds: float) -> StepJob:
        return StepJob(self.engine, dt_seconds * self.time_scale)

    def finish_step(self, job: StepJob) -> None:
        result = job.result
        for garden in self.gardens.values():
            garden.game_time += job.dt_years
            garden.touch()
        for collision in result.collisions:
            garden = self.gardens.get(collision.garden_id)
            if garden is not None:
                self._collide(garden, collision.body_a, collision.body_b)
        by_garden: dict[int, list[int]] = {}
        for escape in result.escapes:
            by_garden.setdefault(escape.garden_id, []).append(escape.body_id)
        for garden_id, body_ids in by_garden.items():
            garden = self.gardens.get(garden_id)
            if garden is None:
                continue
            present = [b for b in body_ids if garden.bodies.row(b) is not None]
            view = self.buffers.garden(garden_id)
            masses = {
                int(i): float(m)
                for i, m in zip(view.ids, view.mass, strict=True)
                if int(i) in present
            }
            self._remove(garden, present)
            for body_id in present:
                garden.emit(
                    events.BODY_DESTROYED,
                    body_id=body_id,
                    reason=events.ESCAPED,
                    mass=masses[body_id],
                )

    def _collide(self, garden: Garden, body_a: int, body_b: int) -> None:
        cols = garden.bodies
        row_a, row_b = cols.row(body_a), cols.row(body_b)
        if row_a is None or row_b is None:
            return  # merged away earlier this tick
        view = self.buffers.garden(garden.id)
        mass_a, mass_b = float(view.mass[row_a]), float(view.mass[row_b])
        merge = self.engine.merge(garden.id, body_a, body_b)
        survivor, absorbed = merge.survivor, merge.absorbed
        s_row, a_row = (row_a, row_b) if survivor == body_a else (row_b, row_a)
        absorbed_mass = mass_b if survivor == body_a else mass_a
        survivor_kind = int(cols.kind[s_row])
        absorbed_life = int(cols.stage[a_row])
        if cols.stage[s_row] > 0:
            cols.population[s_row] *= rules.MERGER_POPULATION_FACTOR
        cols.remove([absorbed])
        s_row = cols.row(survivor)
        swallowed = survivor_kind == BLACK_HOLE
        garden.emit(
            events.COLLISION, survivor=survivor, absorbed=absorbed, absorbed_mass=absorbed_mass
        )
        garden.emit(
            events.BODY_DESTROYED,
            body_id=absorbed,
            reason=events.SWALLOWED if swallowed else events.COLLIDED,
            into=survivor,
            life_lost=rules.LIFE_STAGES[absorbed_life].name if absorbed_life else None,
        )
        if swallowed:
            dark = (
                absorbed_mass
                / rules.EARTH_MASS
                * rules.DARK_MATTER_PER_ACCRETED_EARTH_MASS
                * garden.multipliers()["dark_matter"]
            )
            garden.credit({"dark_matter": dark})
            garden.accreted += absorbed_mass
        cols.level[s_row] += 1
        promoted_from = self._promote(garden, s_row)
        garden.emit(
            events.LEVEL_UP,
            body_id=survivor,
            level=int(cols.level[s_row]),
            kind=rules.KIND_BY_CODE[int(cols.kind[s_row])].name,
            promoted_from=promoted_from,
        )

    def _promote(self, garden: Garden, row: int) -> str | None:
        """Move a grown body up the kinds while its mass allows and caps permit."""
        cols = garden.bodies
        view = self.buffers.garden(garden.id)
        start = rules.KIND_BY_CODE[int(cols.kind[row])].name
        counts = garden.kind_counts()
        current = start
        while current in rules.PROMOTIONS:
            target, threshold = rules.PROMOTIONS[current]
            if float(view.mass[row]) < threshold or counts[target] >= rules.KINDS[target].cap:
                break
            counts[current] -= 1
            counts[target] += 1
            current = target
        if current == start:
            return None
        kind = rules.KINDS[current]
        cols.kind[row] = kind.code
        if kind.code != rules.KINDS["planet"].code and cols.stage[row]:
            lost = rules.LIFE_STAGES[int(cols.stage[row])].name
            cols.stage[row] = 0  # only planets carry life
            cols.population[row] = 0.0
            cols.stage_time[row] = 0.0
            cols.outside_time[row] = 0.0
            garden.emit(
                events.EVOLUTION,
                body_id=int(cols.ids[row]),
                stage=rules.LIFE_STAGES[0].name,
                previous=lost,
                reason="merger",
                kind=current,
            )
        view.radius[row] = max(float(view.radius[row]), kind.radius)
        self.buffers.touch(garden.id)
        return start

    # -- resources, life, research -----------------------------------------------------

    def _rates(self, garden: Garden) -> dict[str, float]:
        view = self.buffers.garden(garden.id)
        cols = garden.bodies
        return economy.rates(
            cols.kind, view.mass, cols.stage, cols.population, garden.multipliers()
        )

    def resource_tick(self, dt_seconds: float) -> None:
        """Advance every garden by ``dt_seconds``."""
        for garden in self.gardens.values():
            self._resource_tick(garden, dt_seconds)

    def resource_tick_slice(self, index: int, slices: int, dt_seconds: float) -> None:
        """Advance by ``dt_seconds`` only the gardens whose slot is ``index``
        modulo ``slices``: called for each index in turn, every garden is
        advanced once per round."""
        groups = self._slot_groups.get(slices)
        if groups is None:  # gardens came or went since the last round
            groups = self._slot_groups[slices] = [[] for _ in range(slices)]
            for garden_id, slot in self._slots.items():
                groups[slot % slices].append(garden_id)
        for garden_id in groups[index]:
            self._resource_tick(self.gardens[garden_id], dt_seconds)

    def _resource_tick(self, garden: Garden, dt: float) -> None:
        # Bodies, upgrades and research change only with an event (a new
        # seq): between events only life moves the rates, so most gardens
        # skip the numpy work every second.
        if garden.rates_seq != garden.seq:
            garden.has_planets = bool((garden.bodies.kind == economy.PLANET).any())
            garden.rates = self._rates(garden)
            garden.rates_seq = garden.seq
        if garden.has_planets:
            self._advance_life(garden, dt)
            garden.rates = self._rates(garden)
        garden.produce(dt)
        self._finish_research(garden, garden.advance_research(dt))
        garden.touch()

    def _advance_life(self, garden: Garden, dt: float) -> None:
        view = self.buffers.garden(garden.id)
        cols = garden.bodies
        flux = economy.stellar_flux(cols.kind, view.mass, view.position.T)
        zone = economy.habitable(cols.kind, flux, economy.zone_width(garden.completed))
        changes = economy.advance_life(
            cols.kind,
            zone,
            cols.stage,
            cols.population,
            cols.stage_time,
            cols.outside_time,
            dt,
            economy.life_growth(garden.completed),
        )
        for change in changes:
            garden.emit(
                events.EVOLUTION,
                body_id=int(cols.ids[change.index]),
                stage=rules.LIFE_STAGES[change.new].name,
                previous=rules.LIFE_STAGES[change.old].name,
                reason=change.reason,
            )

    def _finish_research(self, garden: Garden, finished: list[str]) -> None:
        for name in finished:
            garden.emit(events.RESEARCH_DONE, research=name)
            if rules.RESEARCH[name].transcends and garden.transcended_at is None:
                garden.transcended_at = self.now()
                garden.emit(events.TRANSCENDED, at=garden.transcended_at)
        if finished:
            garden.rates = self._rates(garden)

    # -- reading -------------------------------------------------------------------

    def body(self, garden: Garden, body_id: int) -> dict[str, Any]:
        row = garden.bodies.row(body_id)
        if row is None:
            raise BodyNotFound(f"no body {body_id} in this garden", body_id=body_id)
        view = self.buffers.garden(garden.id)
        cols = garden.bodies
        kind = rules.KIND_BY_CODE[int(cols.kind[row])].name
        return {
            "id": body_id,
            "kind": kind,
            "name": cols.names.get(body_id, f"{kind}-{body_id}"),
            "mass": float(view.mass[row]),
            "radius": float(view.radius[row]),
            "position": view.position[:, row].tolist(),
            "velocity": view.velocity[:, row].tolist(),
            "level": int(cols.level[row]),
            "created_at": float(cols.created_at[row]),
            "life_stage": rules.LIFE_STAGES[int(cols.stage[row])].name,
            "population": float(cols.population[row]),
        }

    def bodies(self, garden: Garden) -> dict[str, Any]:
        """All bodies as columns (arrays copied: safe to hand to the network)."""
        view = self.buffers.garden(garden.id)
        cols = garden.bodies
        cols.check_aligned(view.ids)
        kinds = [rules.KIND_BY_CODE[k].name for k in cols.kind.tolist()]
        return {
            "ids": view.ids.copy(),
            "kind": kinds,
            "name": [
                cols.names.get(i, f"{k}-{i}") for i, k in zip(view.ids.tolist(), kinds, strict=True)
            ],
            "mass": view.mass.copy(),
            "radius": view.radius.copy(),
            "position": view.position.T.copy(),
            "velocity": view.velocity.T.copy(),
            "level": cols.level.copy(),
            "life_stage": [rules.LIFE_STAGES[s].name for s in cols.stage.tolist()],
            "population": cols.population.copy(),
            "created_at": cols.created_at.copy(),
        }

    def _header(self, garden: Garden) -> dict[str, Any]:
        return {
            "id": garden.id,
            "owner_id": garden.owner_id,
            "name": garden.name,
            "public": garden.public,
            "created_at": garden.created_at,
            "game_time": garden.game_time,
            "transcended_at": garden.transcended_at,
            "seq": garden.seq,
        }

    def _progress(self, garden: Garden) -> dict[str, Any]:
        active = garden.research
        return {
            "resources": dict(garden.resources),
            "rates": dict(garden.rates),
            "upgrades": {
                name: {"level": level, "next_cost": rules.UPGRADES[name].cost(level)}
                for name, level in garden.upgrades.items()
            },
            "research": {
                "completed": list(garden.completed),
                "active": None
                if active is None
                else {
                    "name": active.name,
                    "remaining": max(active.remaining, 0.0),
                    "total": rules.RESEARCH[active.name].seconds,
                },
            },
        }

    def snapshot(self, garden_id: int) -> dict[str, Any]:
        garden = self.garden(garden_id)
        return {
            "garden": self._header(garden),
            **self._progress(garden),
            "bodies": self.bodies(garden),
        }

    def delta(self, garden_id: int, since_seq: int) -> dict[str, Any] | None:
        """Events after ``since_seq`` plus the current motion and resources, or
        None when the event log no longer reaches back (send a snapshot)."""
        garden = self.garden(garden_id)
        log = garden.events_since(since_seq)
        if log is None:
            return None
        view = self.buffers.garden(garden.id)
        return {
            "from_seq": since_seq,
            "seq": garden.seq,
            "game_time": garden.game_time,
            "events": [e.as_dict() for e in log],
            **self._progress(garden),
            "motion": {
                "ids": view.ids.copy(),
                "position": view.position.T.copy(),
                "velocity": view.velocity.T.copy(),
            },
        }

    def watch(self, garden_id: int) -> None:
        """Someone is looking at this garden: keep it loaded."""
        garden = self.gardens.get(garden_id)
        if garden is not None:
            garden.last_watched = self.now()

    def idle_gardens(self, grace: float) -> list[int]:
        limit = self.now() - grace
        return [g.id for g in self.gardens.values() if g.last_watched < limit]
