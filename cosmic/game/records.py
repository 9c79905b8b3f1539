"""A saved garden as plain records: one garden row and one row per body.

These are the shapes ``cosmic.game.persist`` writes and reads.  They are
defined here, in the domain, so that saving a garden needs nothing from the
store package (whose ``__init__`` loads its Twisted interface); the store
re-exports them from ``cosmic.store.records`` and checks their values
before writing.  Plain attrs classes: no Twisted, no I/O.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class GardenRecord:
    id: int
    owner_id: int
    name: str
    public: bool
    created_at: float
    saved_at: float  # wall-clock epoch of the state: the basis of offline progress
    game_time: float
    state: dict[str, Any] = attrs.field(hash=False)  # the game's opaque JSON document
    total_mass: float = 0.0
    thought_points: float = 0.0
    transcended_at: float | None = None
    version: int = 0


@attrs.frozen
class BodyRecord:
    garden_id: int
    body_id: int
    kind: str
    name: str
    mass: float
    radius: float
    px: float
    py: float
    pz: float
    vx: float
    vy: float
    vz: float
    level: int
    created_at: float
    life_stage: str | None = None
    population: float = 0.0
    life_progress: float = 0.0
