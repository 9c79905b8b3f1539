"""Typed API errors and the one table mapping every domain failure to HTTP.

Every failure leaves as ``{"error": {"code", "message", ...details}}`` with a
stable ``code``; the tables below are also what docs/api.rst lists.
"""

from __future__ import annotations

import math
from typing import Any

from cosmic import accounts
from cosmic.auth import TokenError
from cosmic.game import errors as game_errors
from cosmic.game.loop import QueueFull
from cosmic.gardens import GardenNotFound
from cosmic.store import errors as store_errors


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[bytes, bytes] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {**self.details, "code": self.code, "message": self.message}}


# Request-level codes (the middleware and the router raise these).
MALFORMED_JSON = "REQUEST_MALFORMED_JSON"  # 400
INVALID = "REQUEST_INVALID"  # 422
UNSUPPORTED_MEDIA_TYPE = "REQUEST_UNSUPPORTED_MEDIA_TYPE"  # 415
TOO_LARGE = "REQUEST_TOO_LARGE"  # 413
RATE_LIMITED = "RATE_LIMITED"  # 429
AUTH_MISSING = "AUTH_MISSING_TOKEN"  # 401
NOT_FOUND = "HTTP_404"
NOT_ALLOWED = "HTTP_405"
INTERNAL = "HTTP_500"
UNAVAILABLE = "SERVICE_UNAVAILABLE"  # 503
CORS_DENIED = "CORS_ORIGIN_DENIED"  # 403

# Game errors: a refused command is a 409 when the garden's state forbids it
# now (money, caps, research), a 422 when the request itself is wrong.
GAME_STATUS: dict[type[game_errors.GameError], int] = {
    game_errors.InsufficientResources: 409,
    game_errors.CapReached: 409,
    game_errors.InvalidPlacement: 422,
    game_errors.UnknownKind: 422,
    game_errors.Locked: 409,
    game_errors.ParentRequired: 422,
    game_errors.BodyNotFound: 404,
    game_errors.ResearchUnavailable: 409,
    game_errors.ResearchBusy: 409,
    game_errors.UpgradeUnavailable: 409,
    game_errors.InvalidName: 422,
    game_errors.InvalidCommand: 400,
    GardenNotFound: 404,
}


def not_found(message: str = "no such resource") -> ApiError:
    return ApiError(404, NOT_FOUND, message)


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, INVALID, f"{field}: {message}", field=field)


def unauthorized(code: str, message: str) -> ApiError:
    challenge = b'Bearer realm="cosmic-gardener"'
    if code != AUTH_MISSING:
        challenge += b', error="invalid_token"'
    return ApiError(401, code, message, headers={b"WWW-Authenticate": challenge})


def unavailable(message: str, retry_after: float = 1.0, code: str = UNAVAILABLE) -> ApiError:
    seconds = b"%d" % max(1, math.ceil(retry_after))
    return ApiError(503, code, message, headers={b"Retry-After": seconds})


def _game_status(exc: game_errors.GameError) -> int:
    for cls in type(exc).__mro__:
        if cls in GAME_STATUS:
            return GAME_STATUS[cls]
    return 400


def translate(exc: BaseException) -> ApiError | None:
    """The HTTP form of a domain failure; None for an unexpected one (a bug: 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, TokenError):
        return unauthorized(exc.code, exc.message)
    if isinstance(exc, accounts.AccountError):
        if exc.status == 401:
            return unauthorized(exc.code, exc.message)
        if exc.status == 503:
            return unavailable(exc.message, code=exc.code)
        return ApiError(exc.status, exc.code, exc.message, **exc.details)
    if isinstance(exc, game_errors.GameError):
        details = {k: v for k, v in exc.details.items() if k not in ("code", "message")}
        return ApiError(_game_status(exc), exc.code, exc.message, **details)
    if isinstance(exc, QueueFull):
        return unavailable(str(exc), code=QueueFull.code)
    if isinstance(exc, store_errors.StoreUnavailable):
        return unavailable("the database is unavailable; retry shortly", retry_after=2.0)
    if isinstance(exc, store_errors.InvalidValue):
        return invalid(exc.field, exc.reason)
    if isinstance(exc, store_errors.UsernameTaken):
        return ApiError(409, accounts.UsernameTaken.code, "the username is taken")
    if isinstance(exc, store_errors.NotFound):
        return not_found()
    return None
