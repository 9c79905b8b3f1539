"""The typed messages of the WebSocket protocol and their validation.

Every frame carries one envelope ``{"type": str, "data": object, "id": ...}``
(``id`` optional: an integer or a short string the server echoes in its
answer).  ``parse(envelope)`` turns a decoded envelope into one of the client
message classes below, or raises a ``WsError`` saying exactly which field is
wrong; nothing else in the server ever looks at raw client data.

Server messages are plain ``(type, data)`` pairs built by the handlers; their
names are listed in ``SERVER_TYPES`` (the metrics label set).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs

from cosmic.net.errors import WsError

MAX_ID_CHARS = 64
MAX_TOKEN_CHARS = 4096
MAX_RESUME_TOKEN_CHARS = 128
MAX_NAME_CHARS = 64
MAX_WORD_CHARS = 64
MAX_INT = 2**53 - 1  # exact in every client's number type (JavaScript included)
MAX_COORDINATE = 1e6  # AU or AU/year: far beyond any garden; the world checks the rest


class Missing:
    """Marker for a field absent from the data (distinct from null)."""


MISSING = Missing()
Check = Callable[[str, Any], Any]


def _fail(path: str, problem: str) -> WsError:
    return WsError("WS_PROTO_004", f"{path}: {problem}", field=path)


def integer(low: int = 0, high: int = MAX_INT) -> Check:
    def check(path: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, "must be an integer")
        if not low <= value <= high:
            raise _fail(path, f"must be from {low} to {high}")
        return value

    return check


def number(limit: float = MAX_COORDINATE) -> Check:
    def check(path: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(path, "must be a number")
        result = float(value) if not isinstance(value, int) or abs(value) <= 2**63 else math.inf
        if not math.isfinite(result) or abs(result) > limit:
            raise _fail(path, f"must be a finite number of at most {limit:g} in size")
        return result

    return check


def text(low: int = 1, high: int = MAX_WORD_CHARS) -> Check:
    def check(path: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(path, "must be a string")
        if not low <= len(value) <= high:
            raise _fail(path, f"must have {low} to {high} characters")
        return value

    return check


def boolean(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, "must be true or false")
    return value


def vector(path: str, value: Any) -> tuple[float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise _fail(path, "must be a list of three numbers")
    each = number()
    x, y, z = (each(f"{path}[{i}]", value[i]) for i in range(3))
    return (x, y, z)


def optional(check: Check) -> Check:
    """The field may be absent or null (both read as None)."""

    def wrapped(path: str, value: Any) -> Any:
        if value is None or value is MISSING:
            return None
        return check(path, value)

    wrapped.optional = True  # type: ignore[attr-defined]
    return wrapped


class ClientMessage:
    """Base of the messages a client sends; ``FIELDS`` drives validation."""

    TYPE: ClassVar[str] = ""
    FIELDS: ClassVar[dict[str, Check]] = {}
    BEFORE_AUTH: ClassVar[bool] = False

    @classmethod
    def from_data(cls, data: Any) -> ClientMessage:
        if not isinstance(data, Mapping):
            raise WsError("WS_PROTO_004", "data: must be an object", field="data")
        unknown = [k for k in data if k not in cls.FIELDS]
        if unknown:
            shown = str(unknown[0])[:MAX_WORD_CHARS]
            raise _fail(f"data.{shown}", f"unknown field for {cls.TYPE}")
        values = {}
        for name, check in cls.FIELDS.items():
            value = data.get(name, MISSING)
            if value is MISSING and not getattr(check, "optional", False):
                raise _fail(f"data.{name}", "is required")
            values[name] = check(f"data.{name}", value)
        return cls(**values)

    def as_data(self) -> dict[str, Any]:
        """The data a client sends (None fields left out)."""
        out = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = list(value) if isinstance(value, tuple) else value
        return out


@attrs.frozen
class Authenticate(ClientMessage):
    TYPE = "Authenticate"
    BEFORE_AUTH = True
    # The token is checked by the verifier, so a missing one is an auth error
    # (WS_AUTH_001), not a protocol error.
    FIELDS = {
        "token": optional(text(0, MAX_TOKEN_CHARS)),
        "resume_token": optional(text(1, MAX_RESUME_TOKEN_CHARS)),
        "last_sequence": optional(integer()),
    }
    token: str | None = None
    resume_token: str | None = None
    last_sequence: int | None = None


@attrs.frozen
class Heartbeat(ClientMessage):
    TYPE = "Heartbeat"
    BEFORE_AUTH = True
    FIELDS = {"client_time": optional(number(limit=1e15))}
    client_time: float | None = None


@attrs.frozen
class SyncGameState(ClientMessage):
    TYPE = "SyncGameState"
    FIELDS = {"last_sequence": optional(integer()), "garden_id": optional(integer(1))}
    last_sequence: int | None = None
    garden_id: int | None = None


@attrs.frozen
class CreateCelestialBody(ClientMessage):
    TYPE = "CreateCelestialBody"
    FIELDS = {
        "kind": text(1, 32),
        "position": optional(vector),
        "velocity": optional(vector),
        "name": optional(text(1, MAX_NAME_CHARS)),
        "parent_id": optional(integer(1)),
    }
    kind: str
    position: tuple[float, float, float] | None = None
    velocity: tuple[float, float, float] | None = None
    name: str | None = None
    parent_id: int | None = None


@attrs.frozen
class DestroyCelestialBody(ClientMessage):
    TYPE = "DestroyCelestialBody"
    FIELDS = {"body_id": integer(1)}
    body_id: int


@attrs.frozen
class RenameCelestialBody(ClientMessage):
    TYPE = "RenameCelestialBody"
    FIELDS = {"body_id": integer(1), "name": text(1, MAX_NAME_CHARS)}
    body_id: int
    name: str


@attrs.frozen
class StartResearch(ClientMessage):
    TYPE = "StartResearch"
    FIELDS = {"research": text()}
    research: str


@attrs.frozen
class BuyUpgrade(ClientMessage):
    TYPE = "BuyUpgrade"
    FIELDS = {"resource": text()}
    resource: str


@attrs.frozen
class SetGardenPublic(ClientMessage):
    TYPE = "SetGardenPublic"
    FIELDS = {"public": boolean}
    public: bool


@attrs.frozen
class ObserveGarden(ClientMessage):
    TYPE = "ObserveGarden"
    FIELDS = {"garden_id": integer(1)}
    garden_id: int


@attrs.frozen
class StopObserving(ClientMessage):
    TYPE = "StopObserving"
    FIELDS = {"garden_id": optional(integer(1))}
    garden_id: int | None = None


CLIENT_MESSAGES: dict[str, type[ClientMessage]] = {
    cls.TYPE: cls
    for cls in (
        Authenticate,
        Heartbeat,
        SyncGameState,
        CreateCelestialBody,
        DestroyCelestialBody,
        RenameCelestialBody,
        StartResearch,
        BuyUpgrade,
        SetGardenPublic,
        ObserveGarden,
        StopObserving,
    )
}
COMMANDS = frozenset(
    {
        "CreateCelestialBody",
        "DestroyCelestialBody",
        "RenameCelestialBody",
        "StartResearch",
        "BuyUpgrade",
        "SetGardenPublic",
    }
)

# Server -> client
AUTHENTICATE_RESPONSE = "AuthenticateResponse"
FULL_STATE_SYNC = "FullStateSync"
STATE_DELTA = "StateDelta"
COMMAND_RESULT = "CommandResult"
HEARTBEAT_ACK = "HeartbeatAck"
OBSERVATION_STOPPED = "ObservationStopped"
NOTICE = "Notice"
ERROR = "Error"
SERVER_TYPES = (
    AUTHENTICATE_RESPONSE,
    FULL_STATE_SYNC,
    STATE_DELTA,
    COMMAND_RESULT,
    HEARTBEAT_ACK,
    OBSERVATION_STOPPED,
    NOTICE,
    ERROR,
)
# Under backpressure these may be dropped (everything else is kept or, for
# state, coalesced into the next frame).
NON_CRITICAL = frozenset({HEARTBEAT_ACK})


@attrs.frozen
class Envelope:
    """A parsed client frame: the message and the request id to echo."""

    message: ClientMessage
    id: int | str | None = None


def request_id(envelope: Any) -> int | str | None:
    """The envelope's id if it is a usable one (for echoing even in errors)."""
    if not isinstance(envelope, Mapping):
        return None
    value = envelope.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value <= MAX_INT:
        return value
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
        return value
    return None


def parse(envelope: Any) -> Envelope:
    """A decoded frame -> a validated client message, or WsError."""
    if not isinstance(envelope, Mapping):
        raise WsError("WS_PROTO_002", "expected an object {type, data}")
    extra = [k for k in envelope if k not in ("type", "data", "id")]
    if extra:
        raise WsError("WS_PROTO_002", f"unknown envelope field {str(extra[0])[:MAX_WORD_CHARS]!r}")
    kind = envelope.get("type")
    if not isinstance(kind, str):
        raise WsError("WS_PROTO_002", "type: must be a string")
    if "id" in envelope and request_id(envelope) is None:
        raise WsError(
            "WS_PROTO_002",
            f"id: must be an integer from 0 to {MAX_INT} or a string of 1 to "
            f"{MAX_ID_CHARS} characters",
        )
    cls = CLIENT_MESSAGES.get(kind)
    if cls is None:
        raise WsError("WS_PROTO_003", f"unknown message type {kind[:MAX_WORD_CHARS]!r}")
    return Envelope(cls.from_data(envelope.get("data", {})), request_id(envelope))


def envelope(kind: str, data: Any, id: int | str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "data": data}
    if id is not None:
        out["id"] = id
    return out
