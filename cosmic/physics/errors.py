"""Typed errors of the physics engine."""

from __future__ import annotations


class PhysicsError(Exception):
    """Base class of every error the physics engine raises on purpose."""


class InvalidBodyError(PhysicsError, ValueError):
    """A body value that must never reach a kernel (NaN, Inf, mass <= 0, ...)."""

    def __init__(self, field: str, body_id: int, value: object, reason: str) -> None:
        self.field = field
        self.body_id = body_id
        self.value = value
        self.reason = reason
        super().__init__(f"body {body_id}: {field} {reason} (got {value!r})")


class DuplicateBodyError(PhysicsError, ValueError):
    """A body id that is already in the garden."""

    def __init__(self, garden_id: object, body_id: int) -> None:
        self.garden_id = garden_id
        self.body_id = body_id
        super().__init__(f"garden {garden_id!r} already has body {body_id}")


class UnknownGardenError(PhysicsError, KeyError):
    """A garden id the engine does not hold."""

    def __init__(self, garden_id: object) -> None:
        self.garden_id = garden_id
        super().__init__(f"no garden {garden_id!r} in the physics engine")

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownBodyError(PhysicsError, KeyError):
    """A body id that is not in the garden."""

    def __init__(self, garden_id: object, body_id: int) -> None:
        self.garden_id = garden_id
        self.body_id = body_id
        super().__init__(f"garden {garden_id!r} has no body {body_id}")

    def __str__(self) -> str:
        return str(self.args[0])
