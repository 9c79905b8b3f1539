"""Every error the WebSocket protocol sends, by stable code.

A code is ``WS_<FAMILY>_<NNN>``.  The client sees it in an ``Error`` message
(``{code, message, recoverable}``); when the server also closes the
connection, the close code is derived from the error code:
``4000 + 100 * family + NNN`` (WS_AUTH_007 -> 4107, WS_CONN_002 -> 4602), so
a client that only sees the close frame still knows why.
"""

from __future__ import annotations

from typing import Any

FAMILIES = {"AUTH": 1, "SYNC": 2, "RATE": 3, "PROTO": 4, "GAME": 5, "CONN": 6}

# code -> (recoverable, what it means); docs/protocol.rst has the same table.
CODES: dict[str, tuple[bool, str]] = {
    "WS_AUTH_001": (True, "no token, or not a JSON Web Token"),
    "WS_AUTH_002": (True, "the token has expired"),
    "WS_AUTH_003": (True, "the token's signature does not match"),
    "WS_AUTH_004": (True, "the token's algorithm is refused (only HS256; never none)"),
    "WS_AUTH_005": (True, "the token is not valid (claims, issuer, audience, not yet valid)"),
    "WS_AUTH_006": (False, "the account no longer exists"),
    "WS_AUTH_007": (False, "no successful Authenticate within the auth timeout"),
    "WS_AUTH_008": (True, "authenticate first: only Authenticate and Heartbeat before"),
    "WS_AUTH_009": (True, "already authenticated on this connection"),
    "WS_AUTH_010": (False, "too many failed Authenticate attempts"),
    "WS_SYNC_001": (True, "no such garden, or it is private and not yours"),
    "WS_SYNC_002": (True, "the garden is not streamed to you: observe it first"),
    "WS_SYNC_003": (True, "too many gardens observed at once"),
    "WS_SYNC_004": (True, "the garden is unavailable right now; retry"),
    "WS_RATE_001": (True, "too many messages: slow down (message dropped)"),
    "WS_RATE_002": (True, "the game's command queue is full; retry shortly"),
    "WS_RATE_003": (False, "message flood: connection closed"),
    "WS_RATE_004": (True, "too many requests waiting for an answer (message dropped)"),
    "WS_PROTO_001": (True, "the frame is not valid JSON / msgpack"),
    "WS_PROTO_002": (True, "not an envelope: expected {type, data[, id]}"),
    "WS_PROTO_003": (True, "unknown message type"),
    "WS_PROTO_004": (True, "invalid message data (field, type or range)"),
    "WS_PROTO_005": (True, "wrong frame type for the negotiated subprotocol"),
    "WS_PROTO_006": (False, "the message is larger than the limit once decompressed"),
    "WS_PROTO_007": (True, "the compressed frame is corrupt"),
    "WS_PROTO_008": (False, "too many invalid messages: connection closed"),
    "WS_CONN_001": (False, "the server is going away"),
    "WS_CONN_002": (False, "the client reads too slowly: connection closed"),
    "WS_CONN_003": (False, "the session was resumed on another connection"),
    "WS_CONN_004": (False, "the game is unavailable; reconnect later"),
    "WS_CONN_005": (True, "internal error handling that request; it has been logged"),
    "WS_CONN_006": (False, "disconnected by an operator"),
}


def close_code(code: str) -> int:
    """The WebSocket close code that goes with an error code."""
    _, family, number = code.split("_")
    return 4000 + 100 * FAMILIES[family] + int(number)


def recoverable(code: str) -> bool:
    known = CODES.get(code)
    return known[0] if known is not None else True


class WsError(Exception):
    """An error to send to the client as an ``Error`` message.

    ``close`` says whether the connection is closed after it (with the close
    code ``close_code(code)``).  ``details`` are extra plain fields.
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        close: bool = False,
        **details: Any,
    ) -> None:
        text = message if message is not None else CODES.get(code, (True, code))[1]
        super().__init__(f"{code}: {text}")
        self.code = code
        self.message = text
        self.close = close
        self.details = details

    @property
    def recoverable(self) -> bool:
        return recoverable(self.code) and not self.close

    def as_data(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "recoverable": self.recoverable,
            **self.details,
        }
