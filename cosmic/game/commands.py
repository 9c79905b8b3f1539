"""Commands players send, already decoded and type-checked by the protocol.

The world still checks meaning (costs, caps, placement, ownership): a
command is a request, never a fact.
"""

from __future__ import annotations

import attrs

Vector = tuple[float, float, float]


@attrs.frozen
class CreateBody:
    garden_id: int
    player_id: int
    kind: str
    position: Vector | None = None
    velocity: Vector | None = None
    name: str | None = None
    parent_id: int | None = None


@attrs.frozen
class DestroyBody:
    garden_id: int
    player_id: int
    body_id: int


@attrs.frozen
class RenameBody:
    garden_id: int
    player_id: int
    body_id: int
    name: str


@attrs.frozen
class StartResearch:
    garden_id: int
    player_id: int
    research: str


@attrs.frozen
class BuyUpgrade:
    garden_id: int
    player_id: int
    resource: str


@attrs.frozen
class SetPublic:
    garden_id: int
    player_id: int
    public: bool


Command = CreateBody | DestroyBody | RenameBody | StartResearch | BuyUpgrade | SetPublic
