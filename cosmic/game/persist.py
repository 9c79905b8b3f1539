"""Gardens to store records and back.

The store keeps a garden row (with the game's state as an opaque JSON
document) and one row per body; this module is the only place that knows
both shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cosmic.game import rules
from cosmic.game.garden import ActiveResearch, Garden
from cosmic.game.records import BodyRecord, GardenRecord

STATE_FORMAT = 1
_STAGE_CODE = {stage.name: stage.code for stage in rules.LIFE_STAGES}


def garden_state(garden: Garden) -> dict[str, Any]:
    active = garden.research
    return {
        "format": STATE_FORMAT,
        "resources": dict(garden.resources),
        "rates": dict(garden.rates),
        "upgrades": dict(garden.upgrades),
        "completed": list(garden.completed),
        "research": None
        if active is None
        else {"name": active.name, "remaining": active.remaining},
        "next_body_id": garden.next_body_id,
        "seq": garden.seq,
        "accreted": garden.accreted,
        "produced_thought": garden.produced_thought,
    }


def to_records(garden: Garden, view: Any, saved_at: float) -> tuple[GardenRecord, list[BodyRecord]]:
    """A consistent copy of one garden (call only while no physics step runs)."""
    cols = garden.bodies
    cols.check_aligned(view.ids)
    record = GardenRecord(
        id=garden.id,
        owner_id=garden.owner_id,
        name=garden.name,
        public=garden.public,
        created_at=garden.created_at,
        saved_at=saved_at,
        game_time=garden.game_time,
        state=garden_state(garden),
        total_mass=float(view.mass.sum()),
        thought_points=garden.produced_thought,
        transcended_at=garden.transcended_at,
        version=garden.version,
    )
    pos, vel = view.position.T.tolist(), view.velocity.T.tolist()
    bodies = []
    for row, body_id in enumerate(view.ids.tolist()):
        kind = rules.KIND_BY_CODE[int(cols.kind[row])].name
        stage = int(cols.stage[row])
        bodies.append(
            BodyRecord(
                garden_id=garden.id,
                body_id=body_id,
                kind=kind,
                name=cols.names.get(body_id, ""),
                mass=float(view.mass[row]),
                radius=float(view.radius[row]),
                px=pos[row][0],
                py=pos[row][1],
                pz=pos[row][2],
                vx=vel[row][0],
                vy=vel[row][1],
                vz=vel[row][2],
                level=int(cols.level[row]),
                created_at=float(cols.created_at[row]),
                life_stage=rules.LIFE_STAGES[stage].name if stage else None,
                population=float(cols.population[row]),
                life_progress=float(cols.stage_time[row]),
            )
        )
    return record, bodies


def from_records(
    record: GardenRecord, bodies: Sequence[BodyRecord]
) -> tuple[Garden, dict[str, np.ndarray]]:
    """A Garden and the body columns World.attach takes."""
    state = record.state or {}
    garden = Garden(
        record.id,
        record.owner_id,
        record.name,
        record.public,
        created_at=record.created_at,
        game_time=record.game_time,
        transcended_at=record.transcended_at,
        version=record.version,
    )
    for name in rules.RESOURCES:
        garden.resources[name] = float(state.get("resources", {}).get(name, 0.0))
        garden.rates[name] = float(state.get("rates", {}).get(name, 0.0))
        garden.upgrades[name] = int(state.get("upgrades", {}).get(name, 0))
    garden.completed = [r for r in state.get("completed", []) if r in rules.RESEARCH]
    active = state.get("research")
    if active and active.get("name") in rules.RESEARCH:
        garden.research = ActiveResearch(active["name"], float(active["remaining"]))
    garden.seq = int(state.get("seq", 0))
    garden.accreted = float(state.get("accreted", 0.0))
    garden.produced_thought = float(state.get("produced_thought", 0.0))
    ids = [b.body_id for b in bodies]
    garden.next_body_id = max(int(state.get("next_body_id", 1)), max(ids, default=0) + 1)
    for b in bodies:
        if b.name:
            garden.bodies.names[b.body_id] = b.name
    columns = {
        "ids": np.array(ids, dtype=np.int64),
        "kind": np.array([rules.KINDS[b.kind].code for b in bodies], dtype=np.int8),
        "mass": np.array([b.mass for b in bodies], dtype=np.float64),
        "radius": np.array([b.radius for b in bodies], dtype=np.float64),
        "position": np.array([(b.px, b.py, b.pz) for b in bodies], dtype=np.float64).reshape(-1, 3),
        "velocity": np.array([(b.vx, b.vy, b.vz) for b in bodies], dtype=np.float64).reshape(-1, 3),
        "level": np.array([b.level for b in bodies], dtype=np.int16),
        "created_at": np.array([b.created_at for b in bodies], dtype=np.float64),
        "stage": np.array(
            [_STAGE_CODE.get(b.life_stage or "none", 0) for b in bodies], dtype=np.int8
        ),
        "population": np.array([b.population for b in bodies], dtype=np.float64),
        "stage_time": np.array([b.life_progress for b in bodies], dtype=np.float64),
    }
    return garden, columns
