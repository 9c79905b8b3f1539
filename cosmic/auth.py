"""Password hashing (argon2id) and access tokens (JWT, HS256 pinned).

Passwords: ``PasswordHasher`` runs every hash and verify in a reactor worker
thread, at most ``concurrency`` at a time (a DeferredSemaphore), and refuses
at once (``HasherBusy``) when too many wait, so a login flood cannot queue
unbounded work.  ``needs_rehash`` says when a stored hash was made with other
parameters than the configured ones; the account service rehashes it at the
next successful login.

Access tokens: ``TokenVerifier.verify(token) -> Claims`` is the one check
every transport uses (REST now, the WebSocket handshake next).  It accepts
only HS256 (``alg: none``, other HMACs and public-key algorithms are refused
before the signature is looked at), requires ``exp``, ``iat``, ``sub``,
``iss`` and ``aud``, checks ``nbf`` when present, allows ``leeway`` seconds
of clock difference, and reads the time from an injected clock (so tests
drive expiry with ``task.Clock``).  Every failure is a ``TokenError``
subclass with a stable ``code``.

Refresh tokens are opaque random strings; only their SHA-256 is stored (they
carry 256 bits of entropy, so a slow hash adds nothing).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
import unicodedata
from collections.abc import Callable
from typing import Any

import attrs
import jwt
from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from twisted.internet import defer, threads
from twisted.logger import Logger

log = Logger(namespace="cosmic.auth")

ALGORITHM = "HS256"
# RFC 7518 3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32
MAX_TOKEN_CHARS = 4096
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud")
_SUB = re.compile(r"[1-9][0-9]{0,18}\Z")
_INT64_MAX = 2**63 - 1


# -- token errors --------------------------------------------------------------------


class TokenError(Exception):
    """An access token that must not be accepted.  ``code`` is stable."""

    code = "AUTH_TOKEN_INVALID"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenMalformed(TokenError):
    """Not a JWT at all (wrong segment count, bad base64 or JSON, bad claim types)."""

    code = "AUTH_TOKEN_MALFORMED"


class TokenAlgorithmRejected(TokenError):
    """The header names another algorithm than HS256 (including ``none``)."""

    code = "AUTH_TOKEN_ALGORITHM"


class TokenBadSignature(TokenError):
    """The signature does not match: tampered, or signed with another key."""

    code = "AUTH_TOKEN_SIGNATURE"


class TokenExpired(TokenError):
    code = "AUTH_TOKEN_EXPIRED"


class TokenNotYetValid(TokenError):
    """``nbf`` (or ``iat``) lies in the future beyond the leeway."""

    code = "AUTH_TOKEN_NOT_YET_VALID"


class TokenMissingClaim(TokenError):
    code = "AUTH_TOKEN_MISSING_CLAIM"


class TokenInvalid(TokenError):
    """Wrong issuer or audience, or a subject that is not an account id."""

    code = "AUTH_TOKEN_INVALID"


class WeakSecret(ValueError):
    """The signing key is shorter than MIN_SECRET_BYTES."""


@attrs.frozen
class Claims:
    """What a verified access token says."""

    account_id: int
    issued_at: float
    expires_at: float
    not_before: float | None
    token_id: str | None
    issuer: str
    audience: str


@attrs.frozen
class AccessToken:
    token: str
    issued_at: float
    expires_at: float

    @property
    def expires_in(self) -> float:
        return self.expires_at - self.issued_at


def _secret_bytes(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise WeakSecret(
            f"the JWT signing key (auth.jwt_secret) has {len(key)} bytes; "
            f"HS256 needs at least {MIN_SECRET_BYTES}"
        )
    return key


def _seconds(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenMalformed(f"claim {name} must be a number of seconds")
    try:
        result = float(value)
    except OverflowError:
        raise TokenMalformed(f"claim {name} is out of range") from None
    if not math.isfinite(result):
        raise TokenMalformed(f"claim {name} must be finite")
    return result


class TokenVerifier:
    """Verifies access tokens; see the module docstring for the rules.

    ``clock`` is anything with ``seconds()`` (the reactor, ``task.Clock``).
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        issuer: str,
        audience: str,
        leeway: float = 10.0,
        clock: Any = None,
    ) -> None:
        self._key = _secret_bytes(secret)
        self.issuer = issuer
        self.audience = audience
        self.leeway = float(leeway)
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock

    def verify(self, token: object) -> Claims:
        """The token's claims, or a TokenError saying why it is refused."""
        if isinstance(token, bytes):
            try:
                token = token.decode("ascii")
            except UnicodeDecodeError:
                raise TokenMalformed("a token is ASCII text") from None
        if not isinstance(token, str) or not token:
            raise TokenMalformed("no token")
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenMalformed(f"a token has at most {MAX_TOKEN_CHARS} characters")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenMalformed("not a JSON Web Token") from None
        algorithm = header.get("alg")
        if algorithm != ALGORITHM:
            raise TokenAlgorithmRejected(f"only {ALGORITHM} tokens are accepted, not {algorithm!r}")
        if "crit" in header:
            raise TokenMalformed("critical header extensions are not supported")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                # Times are checked below against the injected clock.
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise TokenBadSignature("the token's signature does not match") from None
        except jwt.InvalidAlgorithmError:
            raise TokenAlgorithmRejected(f"only {ALGORITHM} tokens are accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenMissingClaim(f"the token has no {exc.claim} claim") from None
        except jwt.InvalidAudienceError:
            raise TokenInvalid("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenInvalid("the token comes from another issuer") from None
        except jwt.DecodeError:
            raise TokenMalformed("not a JSON Web Token") from None
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"the token is not valid: {type(exc).__name__}") from None
        return self._check_claims(claims)

    def _check_claims(self, claims: dict[str, Any]) -> Claims:
        now = self.clock.seconds()
        expires_at = _seconds(claims, "exp")
        issued_at = _seconds(claims, "iat")
        not_before = _seconds(claims, "nbf")
        assert expires_at is not None and issued_at is not None  # required above
        if expires_at <= now - self.leeway:
            raise TokenExpired("the token has expired")
        if not_before is not None and not_before > now + self.leeway:
            raise TokenNotYetValid("the token is not valid yet")
        if issued_at > now + self.leeway:
            raise TokenNotYetValid("the token was issued in the future")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not _SUB.match(subject) or int(subject) > _INT64_MAX:
            raise TokenInvalid("the token's subject is not an account id")
        token_id = claims.get("jti")
        return Claims(
            account_id=int(subject),
            issued_at=issued_at,
            expires_at=expires_at,
            not_before=not_before,
            token_id=token_id if isinstance(token_id, str) else None,
            issuer=self.issuer,
            audience=self.audience,
        )


class TokenIssuer(TokenVerifier):
    """Issues access tokens that its own ``verify`` accepts."""

    def __init__(
        self,
        secret: str | bytes,
        *,
        issuer: str,
        audience: str,
        ttl: float = 900.0,
        leeway: float = 10.0,
        clock: Any = None,
    ) -> None:
        super().__init__(secret, issuer=issuer, audience=audience, leeway=leeway, clock=clock)
        self.ttl = float(ttl)

    def issue(self, account_id: int) -> AccessToken:
        now = int(self.clock.seconds())
        expires_at = now + max(1, round(self.ttl))
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(account_id),
            "iat": now,
            "nbf": now,
            "exp": expires_at,
            "jti": secrets.token_hex(16),
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"typ": "JWT"})
        return AccessToken(token, float(now), float(expires_at))


def signing_secret(settings: Any) -> str:
    """auth.jwt_secret, or (outside production, when it is empty) a random
    per-process key: tokens then do not survive a restart."""
    secret = settings.auth.jwt_secret
    if not secret and settings.environment != "production":
        log.warn(
            "auth.jwt_secret is empty: signing tokens with a random key for this "
            "process only (set JWT_SECRET to keep sessions across restarts)"
        )
        return secrets.token_urlsafe(48)
    return secret


def token_issuer(settings: Any, clock: Any = None, secret: str | None = None) -> TokenIssuer:
    auth = settings.auth
    return TokenIssuer(
        secret if secret is not None else signing_secret(settings),
        issuer=auth.issuer,
        audience=auth.audience,
        ttl=auth.access_ttl,
        leeway=auth.leeway,
        clock=clock,
    )


# -- refresh tokens --------------------------------------------------------------------


def new_refresh_token() -> str:
    """An opaque refresh token: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> str:
    """What the store keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_family_id() -> str:
    return secrets.token_hex(16)


# -- passwords ---------------------------------------------------------------------------


class HasherBusy(Exception):
    """Too many password hashes are waiting; the caller should retry shortly."""


@attrs.frozen
class Argon2Parameters:
    time_cost: int
    memory_kib: int
    parallelism: int

    def __attrs_post_init__(self) -> None:
        if self.time_cost < 1 or self.parallelism < 1:
            raise ValueError("argon2 time cost and parallelism must be at least 1")
        if self.memory_kib < 8 * self.parallelism:
            raise ValueError(
                f"argon2 needs at least 8 KiB per lane: auth.argon2_memory_kib "
                f"{self.memory_kib} < 8 x auth.argon2_parallelism {self.parallelism}"
            )

    @classmethod
    def from_settings(cls, settings: Any) -> Argon2Parameters:
        auth = settings.auth
        return cls(auth.argon2_time_cost, auth.argon2_memory_kib, auth.argon2_parallelism)


def _prepare(password: str) -> bytes:
    # NIST SP 800-63B 5.1.1.2: normalise before hashing, so the same password
    # typed on different keyboards (composed or decomposed) matches.
    return unicodedata.normalize("NFKC", password).encode("utf-8")


RunInThread = Callable[[Callable[[], Any]], defer.Deferred[Any]]


class PasswordHasher:
    """argon2id hashing off the reactor thread, behind a small semaphore."""

    def __init__(
        self,
        parameters: Argon2Parameters,
        *,
        concurrency: int = 2,
        queue_max: int = 64,
        reactor: Any = None,
        run_in_thread: RunInThread | None = None,
        metrics: Any = None,
    ) -> None:
        self._reactor = reactor
        self._run_in_thread = run_in_thread
        self._semaphore = defer.DeferredSemaphore(concurrency)
        self.queue_max = queue_max
        self._metrics = metrics
        self._dummy: str | None = None
        self.configure(parameters)

    @property
    def parameters(self) -> Argon2Parameters:
        return self._parameters

    def configure(self, parameters: Argon2Parameters) -> None:
        """New cost parameters (reload): new hashes use them, and old hashes
        are rehashed at their owner's next login."""
        self._parameters = parameters
        self._hasher = _Argon2(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_kib,
            parallelism=parameters.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._dummy = None

    @property
    def waiting(self) -> int:
        return len(self._semaphore.waiting)

    def _thread(self, work: Callable[[], Any]) -> defer.Deferred[Any]:
        if self._run_in_thread is None:
            reactor = self._reactor
            if reactor is None:
                from twisted.internet import reactor
            pool = reactor.getThreadPool()
            self._run_in_thread = lambda f: threads.deferToThreadPool(reactor, pool, f)
        return self._run_in_thread(work)

    async def _run(self, operation: str, work: Callable[[], Any]) -> Any:
        if self._semaphore.tokens == 0 and self.waiting >= self.queue_max:
            raise HasherBusy(f"{self.waiting} password checks are waiting; retry shortly")
        gauge = self._metrics.hash_waiting if self._metrics is not None else None
        if gauge is not None:
            gauge.inc()
        try:
            await self._semaphore.acquire()
        finally:
            if gauge is not None:
                gauge.dec()
        try:

            def timed() -> tuple[Any, float]:
                started = time.perf_counter()
                result = work()
                return result, time.perf_counter() - started

            result, seconds = await self._thread(timed)
            if self._metrics is not None:
                self._metrics.hash_duration.labels(operation=operation).observe(seconds)
            return result
        finally:
            self._semaphore.release()

    async def hash(self, password: str) -> str:
        hasher = self._hasher
        secret = _prepare(password)
        return await self._run("hash", lambda: hasher.hash(secret))

    async def verify(self, stored_hash: str, password: str) -> bool:
        """True when the password matches; False otherwise (also for a stored
        hash this library cannot read, which is logged)."""
        hasher = self._hasher
        secret = _prepare(password)

        def check() -> bool | str:
            try:
                return hasher.verify(stored_hash, secret)
            except VerifyMismatchError:
                return False
            except InvalidHashError:
                return "invalid"
            except VerificationError:
                return False

        result = await self._run("verify", check)
        if result == "invalid":
            log.error("a stored password hash is not an argon2 hash; login refused")
            return False
        return bool(result)

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of one verify: a login for an unknown user takes as
        long as one with a wrong password (no user enumeration by timing)."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._dummy, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True
