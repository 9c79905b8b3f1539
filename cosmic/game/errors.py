"""Typed game errors: a stable code for clients, a message for people.

A command that fails raises one of these before it changes anything.
"""

from __future__ import annotations


class GameError(Exception):
    code = "WS_GAME_000"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, **self.details}


class InsufficientResources(GameError):
    code = "WS_GAME_001"


class CapReached(GameError):
    code = "WS_GAME_002"


class InvalidPlacement(GameError):
    code = "WS_GAME_003"


class UnknownKind(GameError):
    code = "WS_GAME_004"


class Locked(GameError):
    code = "WS_GAME_005"


class ParentRequired(GameError):
    code = "WS_GAME_006"


class BodyNotFound(GameError):
    code = "WS_GAME_007"


class ResearchUnavailable(GameError):
    code = "WS_GAME_008"


class ResearchBusy(GameError):
    code = "WS_GAME_009"


class UpgradeUnavailable(GameError):
    code = "WS_GAME_010"


class InvalidName(GameError):
    code = "WS_GAME_011"


class InvalidCommand(GameError):
    code = "WS_GAME_012"


ALL_ERRORS = (
    InsufficientResources,
    CapReached,
    InvalidPlacement,
    UnknownKind,
    Locked,
    ParentRequired,
    BodyNotFound,
    ResearchUnavailable,
    ResearchBusy,
    UpgradeUnavailable,
    InvalidName,
    InvalidCommand,
)
