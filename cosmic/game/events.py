"""Events a garden emits: every change players see is one of these.

An event is a type name plus plain data (numbers, strings, lists), so the
protocol layer can encode it as it is.  Each carries the garden's sequence
number at the time it happened.
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
RESOURCE_UPDATE = "ResourceUpdate"
OFFLINE_PROGRESS = "OfflineProgress"
TRANSCENDED = "Transcended"
GARDEN_UPDATED = "GardenUpdated"

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
