"""The adapter from the accounts side's verifier to the WebSocket's Authenticator."""

from __future__ import annotations

import attrs
import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from cosmic.accounts import AccountGone
from cosmic.auth import TokenIssuer
from cosmic.net.auth import Identity, as_authenticator
from cosmic.net.errors import WsError
from tests.unit.net.conftest import AUDIENCE, ISSUER, SECRET


def issuer(clock: Clock) -> TokenIssuer:
    return TokenIssuer(SECRET, issuer=ISSUER, audience=AUDIENCE, ttl=60, leeway=0, clock=clock)


@pytest_twisted.ensureDeferred
async def test_a_token_verifier_gives_the_player_and_expiry() -> None:
    clock = Clock()
    clock.advance(1_700_000_000)
    tokens = issuer(clock)
    identity = await as_authenticator(tokens)(tokens.issue(42).token)
    assert identity.player_id == 42 and identity.expires_at == 1_700_000_060
    assert identity.garden_name == "Garden of player 42"


@pytest_twisted.ensureDeferred
async def test_verifier_errors_map_to_ws_auth_codes() -> None:
    clock = Clock()
    clock.advance(1_700_000_000)
    tokens = issuer(clock)
    check = as_authenticator(tokens)
    token = tokens.issue(42).token
    other = TokenIssuer("x" * 40, issuer=ISSUER, audience=AUDIENCE, clock=clock).issue(42).token
    clock.advance(61)
    cases = {"WS_AUTH_002": token, "WS_AUTH_001": "garbage", "WS_AUTH_003": other}
    for code, bad in cases.items():
        with pytest.raises(WsError) as caught:
            await check(bad)
        assert caught.value.code == code


@attrs.frozen
class Account:
    id: int
    display_name: str


class Accounts:
    def __init__(self, gone: bool = False) -> None:
        self.gone = gone

    def authenticate(self, token: str):
        if self.gone:
            return defer.fail(AccountGone("this account no longer exists"))
        claims = type("Claims", (), {"expires_at": 99.0})()
        return defer.succeed((claims, Account(5, "Ada")))


@pytest_twisted.ensureDeferred
async def test_an_accounts_object_adds_the_name_and_refuses_deleted_accounts() -> None:
    identity = await as_authenticator(Accounts())("t")
    assert identity == Identity(5, "Ada", 99.0)
    assert identity.garden_name == "Ada's garden"
    with pytest.raises(WsError) as caught:
        await as_authenticator(Accounts(gone=True))("t")
    assert caught.value.code == "WS_AUTH_006" and not caught.value.recoverable


@pytest_twisted.ensureDeferred
async def test_an_unexpected_verifier_error_is_refused_not_raised() -> None:
    class Broken:
        def verify(self, token):
            raise RuntimeError("boom")

    with pytest.raises(WsError) as caught:
        await as_authenticator(Broken())("t")
    assert caught.value.code == "WS_AUTH_005"


def test_nothing_to_verify_with_is_a_wiring_error() -> None:
    with pytest.raises(ValueError):
        as_authenticator(None)
