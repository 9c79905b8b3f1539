"""Who is on the other end: the access-token check, seen from the WebSocket.

The protocol depends only on ``Authenticator``: an async callable taking the
token string and returning an ``Identity``, raising a ``WsError`` with a
WS_AUTH code when the token is refused.  ``as_authenticator`` adapts what
the accounts side provides (cosmic.auth / cosmic.accounts):

* an object with ``authenticate(token) -> (claims, account)`` (``Accounts``:
  also refuses tokens of deleted accounts and knows the display name), or
* an object with ``verify(token) -> claims`` with ``claims.account_id``
  (``TokenVerifier``), sync or returning a Deferred / coroutine.

Their errors carry a ``code`` (``AUTH_TOKEN_EXPIRED`` ...), mapped to ours
below; anything else unexpected is logged and refused as WS_AUTH_005.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from cosmic.net.errors import WsError

log = Logger(namespace="cosmic.net.auth")


@attrs.frozen
class Identity:
    player_id: int
    display_name: str | None = None
    expires_at: float | None = None

    @property
    def garden_name(self) -> str:
        if self.display_name:
            return f"{self.display_name}'s garden"
        return f"Garden of player {self.player_id}"


Authenticator = Callable[[str], Awaitable[Identity]]

# cosmic.auth / cosmic.accounts error codes -> WebSocket codes
CODE_MAP = {
    "AUTH_TOKEN_MALFORMED": "WS_AUTH_001",
    "AUTH_TOKEN_EXPIRED": "WS_AUTH_002",
    "AUTH_TOKEN_SIGNATURE": "WS_AUTH_003",
    "AUTH_TOKEN_ALGORITHM": "WS_AUTH_004",
    "AUTH_TOKEN_INVALID": "WS_AUTH_005",
    "AUTH_TOKEN_NOT_YET_VALID": "WS_AUTH_005",
    "AUTH_TOKEN_MISSING_CLAIM": "WS_AUTH_005",
    "AUTH_ACCOUNT_GONE": "WS_AUTH_006",
}


def refused(exc: BaseException) -> WsError:
    code = CODE_MAP.get(getattr(exc, "code", ""))
    if code is None:
        log.failure("unexpected error from the token verifier", failure=None)
        return WsError("WS_AUTH_005", "the token could not be verified")
    message = getattr(exc, "message", None) or str(exc) or None
    return WsError(code, message)


async def _resolve(value: Any) -> Any:
    if isinstance(value, defer.Deferred) or inspect.isawaitable(value):
        return await value
    return value


def as_authenticator(source: Any) -> Authenticator:
    """See the module docstring."""
    if source is None:
        raise ValueError("the WebSocket needs a token verifier (site.accounts or site.tokens)")
    if callable(getattr(source, "authenticate", None)):

        async def from_accounts(token: str) -> Identity:
            try:
                claims, account = await _resolve(source.authenticate(token))
            except WsError:
                raise
            except Exception as exc:
                raise refused(exc) from None
            return Identity(
                int(account.id),
                getattr(account, "display_name", None),
                getattr(claims, "expires_at", None),
            )

        return from_accounts
    if callable(getattr(source, "verify", None)):

        async def from_verifier(token: str) -> Identity:
            try:
                claims = await _resolve(source.verify(token))
            except WsError:
                raise
            except Exception as exc:
                raise refused(exc) from None
            player = getattr(claims, "account_id", None)
            if player is None:
                player = getattr(claims, "player_id", None)
            if player is None and isinstance(claims, dict):
                player = claims.get("sub")
            return Identity(int(player), None, getattr(claims, "expires_at", None))

        return from_verifier
    if callable(source):
        return source
    raise TypeError(f"cannot authenticate with {source!r}")
