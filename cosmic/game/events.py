"""Events a garden emits: every change players see is one of these.

An event is a type name plus plain data (numbers, strings, lists), so the
protocol layer can encode it as it is.  Each carries the garden's sequence
number at the time it happened.  Resources are not an event: every state
delta carries them (docs/game.rst, "Where the daemon differs from GAME.md").
"""

from __future__ import annotations

from typing import Any

import attrs

BODY_CREATED = "BodyCreated"
BODY_UPDATED = "BodyUpdated"
BODY_DESTROYED = "BodyDestroyed"
COLLISION = "Collision"
LEVEL_UP = "LevelUp"
EVOLUTION = "Evolution"
RESEARCH_STARTED = "ResearchStarted"
RESEARCH_DONE = "ResearchDone"
UPGRADE_BOUGHT = "UpgradeBought"
OFFLINE_PROGRESS = "OfflineProgress"
TRANSCENDED = "Transcended"
GARDEN_UPDATED = "GardenUpdated"

# Evolution reasons: "evolved", "extinct", "stalled", "resumed" (from
# economy.advance_life) and "merger" (a promotion took a planet's life).

# BodyDestroyed reasons
COLLIDED = "collision"
ESCAPED = "escaped"
SWALLOWED = "black_hole"
MANUAL = "manual"


@attrs.frozen
class Event:
    seq: int
    type: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "data": self.data}
