"""Accounts and sessions: register, login, refresh rotation, logout, rename, delete.

Transport-agnostic: the REST API calls it now and the WebSocket handshake can
call ``authenticate``.  Failures are ``AccountError`` subclasses carrying a
stable ``code`` and the HTTP status that fits.

Refresh tokens rotate: every refresh marks the presented token used (atomically,
in the store) and issues a new one in the same *family*.  Presenting a token
that was already used means two parties hold it (a stolen copy, or a client
that kept an old one): the whole family is revoked and both must log in again.

With a ``SessionCache`` (``sessions=``), ``authenticate`` reads the account
through the "sessions" cache; every change of the account (display name,
deletion) and every logout or family revocation invalidates it afterwards.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import attrs
from twisted.logger import Logger

from cosmic.auth import (
    AccessToken,
    Claims,
    HasherBusy,
    PasswordHasher,
    TokenIssuer,
    new_family_id,
    new_refresh_token,
    refresh_token_hash,
)
from cosmic.store import errors as store_errors
from cosmic.store.cached import SessionCache
from cosmic.store.interface import Store
from cosmic.store.records import AccountRecord, RefreshTokenRecord

log = Logger(namespace="cosmic.accounts")

USERNAME_MIN, USERNAME_MAX = 3, 32
# ASCII letters, digits, underscore and hyphen: unambiguous to read and type.
USERNAME_CHARACTERS = "A-Z a-z 0-9 _ -"
USERNAME_PATTERN = r"^[A-Za-z0-9_-]{3,32}$"
_USERNAME = re.compile(USERNAME_PATTERN)
PASSWORD_MIN, PASSWORD_MAX = 12, 128
DISPLAY_NAME_MAX = 64
REFRESH_TOKEN_MAX = 256


class AccountError(Exception):
    status = 400
    code = "ACCOUNT_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidField(AccountError):
    status = 422
    code = "REQUEST_INVALID"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class UsernameTaken(AccountError):
    status = 409
    code = "ACCOUNT_USERNAME_TAKEN"


class InvalidCredentials(AccountError):
    status = 401
    code = "AUTH_INVALID_CREDENTIALS"


class RefreshInvalid(AccountError):
    status = 401
    code = "AUTH_REFRESH_INVALID"


class RefreshExpired(AccountError):
    status = 401
    code = "AUTH_REFRESH_EXPIRED"


class RefreshReused(AccountError):
    status = 401
    code = "AUTH_REFRESH_REUSED"


class AccountGone(AccountError):
    """A valid token for an account that has been deleted."""

    status = 401
    code = "AUTH_ACCOUNT_GONE"


class Busy(AccountError):
    status = 503
    code = "AUTH_BUSY"


# -- field rules --------------------------------------------------------------------------


def check_username(username: str) -> str:
    if not _USERNAME.match(username):
        raise InvalidField(
            "username",
            f"needs {USERNAME_MIN} to {USERNAME_MAX} characters from {USERNAME_CHARACTERS}",
        )
    return username


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidField(
            "password", f"needs {PASSWORD_MIN} to {PASSWORD_MAX} characters (any characters)"
        )
    return password


def clean_display_name(name: str) -> str:
    """Trimmed, NFC, 1..DISPLAY_NAME_MAX printable characters."""
    text = unicodedata.normalize("NFC", name).strip()
    if not 1 <= len(text) <= DISPLAY_NAME_MAX:
        raise InvalidField("display_name", f"needs 1 to {DISPLAY_NAME_MAX} characters")
    if any(unicodedata.category(ch)[0] == "C" for ch in text):
        raise InvalidField("display_name", "may not contain control or unassigned characters")
    return text


def account_json(record: AccountRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "username": record.username,
        "display_name": record.display_name,
        "created_at": record.created_at,
    }


@attrs.frozen
class Session:
    account: AccountRecord
    access: AccessToken
    refresh_token: str
    refresh_expires_at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "access_token": self.access.token,
            "expires_in": self.access.expires_in,
            "expires_at": self.access.expires_at,
            "refresh_token": self.refresh_token,
            "refresh_expires_in": self.refresh_expires_at - self.access.issued_at,
            "refresh_expires_at": self.refresh_expires_at,
            "account": account_json(self.account),
        }


class Accounts:
    def __init__(
        self,
        store: Store,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        *,
        clock: Any,
        refresh_ttl: float,
        metrics: Any = None,
        sessions: SessionCache | None = None,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.hasher = hasher
        self.tokens = tokens
        self.clock = clock
        self.refresh_ttl = refresh_ttl
        self._metrics = metrics

    def _count(self, event: str) -> None:
        if self._metrics is not None:
            self._metrics.events.labels(event=event).inc()

    async def _hash(self, password: str) -> str:
        try:
            return await self.hasher.hash(password)
        except HasherBusy as exc:
            self._count("hash_busy")
            raise Busy(str(exc)) from None

    async def _verify(self, stored: str | None, password: str) -> bool:
        try:
            if stored is None:
                await self.hasher.verify_dummy(password)
                return False
            return await self.hasher.verify(stored, password)
        except HasherBusy as exc:
            self._count("hash_busy")
            raise Busy(str(exc)) from None

    # -- accounts -----------------------------------------------------------------------

    async def register(
        self, username: str, password: str, display_name: str | None = None
    ) -> AccountRecord:
        check_username(username)
        check_password(password)
        shown = clean_display_name(display_name if display_name is not None else username)
        if await self.store.find_account(username) is not None:
            raise UsernameTaken(f"the username {username} is taken")
        password_hash = await self._hash(password)
        try:
            record = await self.store.create_account(
                username, shown, password_hash, self.clock.seconds()
            )
        except store_errors.UsernameTaken:
            raise UsernameTaken(f"the username {username} is taken") from None
        self._count("register")
        log.info("registered account {account_id}", account_id=record.id)
        return record

    async def get(self, account_id: int) -> AccountRecord:
        record = await self.store.get_account(account_id)
        if record is None:
            raise AccountGone("this account no longer exists")
        return record

    async def authenticate(self, access_token: str) -> tuple[Claims, AccountRecord]:
        """Verify an access token and load its account (TokenError, AccountGone).

        With a session cache the record comes without its password hash
        (see cosmic.store.cached); change an account through ``get``.
        """
        claims = self.tokens.verify(access_token)
        if self.sessions is None:
            return claims, await self.get(claims.account_id)
        account_id = claims.account_id
        record = await self.sessions.account(account_id, lambda: self.store.get_account(account_id))
        if record is None:
            raise AccountGone("this account no longer exists")
        return claims, record

    async def _forget_session(self, account_id: int) -> None:
        if self.sessions is not None:
            await self.sessions.invalidate(account_id)

    async def rename(self, account_id: int, display_name: str) -> AccountRecord:
        shown = clean_display_name(display_name)
        record = await self.get(account_id)
        try:
            return await self.store.update_account(attrs.evolve(record, display_name=shown))
        except store_errors.NotFound:
            raise AccountGone("this account no longer exists") from None
        finally:
            # Whatever the outcome: a failed write may still have committed.
            await self._forget_session(account_id)

    async def delete(self, account_id: int) -> bool:
        """The account, its gardens, bodies and refresh tokens (the store cascades)."""
        try:
            deleted = await self.store.delete_account(account_id)
        finally:
            await self._forget_session(account_id)
        if deleted:
            self._count("delete")
            log.info("deleted account {account_id}", account_id=account_id)
        return deleted

    # -- sessions -------------------------------------------------------------------

    async def login(self, username: str, password: str) -> Session:
        record = None
        if _USERNAME.match(username):
            record = await self.store.find_account(username)
        if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
            # Cannot match any account; no hashing of arbitrary-length input.
            self._count("login_failed")
            raise InvalidCredentials("wrong username or password")
        ok = await self._verify(record.password_hash if record else None, password)
        if not ok or record is None:
            self._count("login_failed")
            raise InvalidCredentials("wrong username or password")
        self._count("login_ok")
        if self.hasher.needs_rehash(record.password_hash):
            record = await self._rehash(record, password)
        return await self._session(record, new_family_id())

    async def _rehash(self, record: AccountRecord, password: str) -> AccountRecord:
        try:
            fresh = await self.hasher.hash(password)
            updated = await self.store.update_account(attrs.evolve(record, password_hash=fresh))
        except Exception as exc:  # the login stands; the rehash waits for the next one
            log.warn(
                "could not rehash the password of account {account_id}: {error}",
                account_id=record.id,
                error=repr(exc),
            )
            return record
        self._count("rehash")
        return updated

    async def _session(self, record: AccountRecord, family_id: str) -> Session:
        now = self.clock.seconds()
        refresh = new_refresh_token()
        expires_at = now + self.refresh_ttl
        await self.store.add_refresh_token(
            RefreshTokenRecord(
                token_hash=refresh_token_hash(refresh),
                account_id=record.id,
                family_id=family_id,
                issued_at=now,
                expires_at=expires_at,
            )
        )
        return Session(record, self.tokens.issue(record.id), refresh, expires_at)

    async def refresh(self, refresh_token: str) -> Session:
        if not 1 <= len(refresh_token) <= REFRESH_TOKEN_MAX:
            self._count("refresh_failed")
            raise RefreshInvalid("unknown refresh token")
        token_hash = refresh_token_hash(refresh_token)
        now = self.clock.seconds()
        if not await self.store.use_refresh_token(token_hash, now):
            record = await self.store.get_refresh_token(token_hash)
            if record is None:
                self._count("refresh_failed")
                raise RefreshInvalid("unknown refresh token")
            if record.used_at is not None:
                revoked = await self.store.revoke_token_family(record.family_id)
                await self._forget_session(record.account_id)
                self._count("refresh_reused")
                log.warn(
                    "refresh token reused for account {account_id}: revoked its family "
                    "({revoked} tokens)",
                    account_id=record.account_id,
                    revoked=revoked,
                )
                raise RefreshReused(
                    "this refresh token was already used; every session it started is "
                    "signed out, log in again"
                )
            self._count("refresh_failed")
            if record.revoked:
                raise RefreshInvalid("this session was signed out; log in again")
            raise RefreshExpired("the refresh token has expired; log in again")
        record = await self.store.get_refresh_token(token_hash)
        account = None if record is None else await self.store.get_account(record.account_id)
        if record is None or account is None:
            raise AccountGone("this account no longer exists")
        self._count("refresh_ok")
        return await self._session(account, record.family_id)

    async def logout(self, refresh_token: str) -> None:
        """Revoke the token's family (this device's session); unknown tokens are ignored."""
        if not 1 <= len(refresh_token) <= REFRESH_TOKEN_MAX:
            return
        record = await self.store.get_refresh_token(refresh_token_hash(refresh_token))
        if record is not None:
            await self.store.revoke_token_family(record.family_id)
            await self._forget_session(record.account_id)
            self._count("logout")
