"""Access tokens (HS256 pinned, required claims, clock-driven expiry) and argon2."""

from __future__ import annotations

import base64
import json
import threading
import time

import argon2
import jwt
import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task

from cosmic import auth
from cosmic.auth import (
    Argon2Parameters,
    HasherBusy,
    PasswordHasher,
    TokenIssuer,
    TokenVerifier,
)

SECRET = "s" * 64
OTHER = "o" * 40
T0 = 1_800_000_000.0


def make_clock(at: float = T0) -> task.Clock:
    clock = task.Clock()
    clock.advance(at)
    return clock


def issuer(clock: task.Clock, **kw) -> TokenIssuer:
    options = {"issuer": "cosmic", "audience": "players", "ttl": 900.0, "leeway": 10.0}
    options.update(kw)
    return TokenIssuer(SECRET, clock=clock, **options)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forge(header: dict, claims: dict, signature: bytes = b"") -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )


def claims(**over) -> dict:
    base = {"iss": "cosmic", "aud": "players", "sub": "42", "iat": T0, "nbf": T0, "exp": T0 + 60}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def signed(payload: dict, key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


# -- issue and verify --------------------------------------------------------------


def test_issued_token_verifies_with_its_claims() -> None:
    clock = make_clock()
    tokens = issuer(clock)
    access = tokens.issue(42)
    assert access.expires_in == 900
    verified = tokens.verify(access.token)
    assert verified.account_id == 42
    assert verified.expires_at == T0 + 900
    assert verified.issuer == "cosmic" and verified.audience == "players"
    assert verified.token_id and len(verified.token_id) == 32
    header = jwt.get_unverified_header(access.token)
    assert header["alg"] == "HS256"


def test_expiry_follows_the_injected_clock_with_leeway() -> None:
    clock = make_clock()
    tokens = issuer(clock, ttl=60.0, leeway=5.0)
    token = tokens.issue(1).token
    clock.advance(64)
    assert tokens.verify(token).account_id == 1  # inside the leeway
    clock.advance(1)
    with pytest.raises(auth.TokenExpired) as caught:
        tokens.verify(token)
    assert caught.value.code == "AUTH_TOKEN_EXPIRED"


def test_not_before_and_future_issue_are_refused() -> None:
    tokens = issuer(make_clock(), leeway=5.0)
    with pytest.raises(auth.TokenNotYetValid):
        tokens.verify(signed(claims(nbf=T0 + 30)))
    with pytest.raises(auth.TokenNotYetValid):
        tokens.verify(signed(claims(iat=T0 + 30, nbf=None)))
    assert tokens.verify(signed(claims(nbf=T0 + 4))).account_id == 42


def test_tampered_payload_fails_the_signature() -> None:
    tokens = issuer(make_clock())
    token = tokens.issue(1).token
    head, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["sub"] = "2"
    forged = ".".join([head, b64(json.dumps(body).encode()), signature])
    with pytest.raises(auth.TokenBadSignature) as caught:
        tokens.verify(forged)
    assert caught.value.code == "AUTH_TOKEN_SIGNATURE"
    with pytest.raises(auth.TokenBadSignature):
        tokens.verify(signed(claims(), key=OTHER))


@pytest.mark.parametrize("algorithm", ["none", "None", "NONE", "HS512", "HS384", "RS256", ""])
def test_only_hs256_is_accepted(algorithm: str) -> None:
    tokens = issuer(make_clock())
    forged = forge({"alg": algorithm, "typ": "JWT"}, claims())
    with pytest.raises(auth.TokenAlgorithmRejected) as caught:
        tokens.verify(forged)
    assert caught.value.code == "AUTH_TOKEN_ALGORITHM"


def test_hs512_signed_with_the_right_key_is_still_refused() -> None:
    tokens = issuer(make_clock())
    with pytest.raises(auth.TokenAlgorithmRejected):
        tokens.verify(signed(claims(), algorithm="HS512"))


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "iss", "aud"])
def test_required_claims(missing: str) -> None:
    tokens = issuer(make_clock())
    with pytest.raises(auth.TokenMissingClaim) as caught:
        tokens.verify(signed(claims(**{missing: None})))
    assert missing in caught.value.message


def test_wrong_issuer_audience_or_subject() -> None:
    tokens = issuer(make_clock())
    for bad in (claims(iss="evil"), claims(aud="others"), claims(sub="0"), claims(sub="x1")):
        with pytest.raises(auth.TokenInvalid):
            tokens.verify(signed(bad))
    with pytest.raises(auth.TokenInvalid):
        tokens.verify(signed(claims(sub=str(2**63))))


def test_claim_types_are_checked() -> None:
    tokens = issuer(make_clock())
    for bad in (claims(exp="soon"), claims(iat=True), claims(nbf=[1])):
        with pytest.raises(auth.TokenError):
            tokens.verify(signed(bad))


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c", "....", "x" * 5000, b"\xff\xfe", None, 42, "é.é.é"],
)
def test_garbage_is_malformed(token: object) -> None:
    with pytest.raises(auth.TokenMalformed):
        issuer(make_clock()).verify(token)


@given(st.text(max_size=300) | st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_verify_raises_only_token_errors(token: object) -> None:
    with pytest.raises(auth.TokenError):
        issuer(make_clock()).verify(token)


@given(
    st.dictionaries(
        st.sampled_from(["iss", "aud", "sub", "iat", "nbf", "exp", "jti"]),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
        | st.lists(st.integers(), max_size=2),
    )
)
@settings(max_examples=300, deadline=None)
def test_any_signed_claims_either_verify_or_raise_a_token_error(payload: dict) -> None:
    tokens = issuer(make_clock())
    try:
        token = signed({k: v for k, v in payload.items() if v is not None})
    except (TypeError, ValueError):
        return
    try:
        verified = tokens.verify(token)
    except auth.TokenError:
        return
    assert verified.account_id >= 1


def test_short_secret_is_refused() -> None:
    with pytest.raises(auth.WeakSecret):
        TokenVerifier("short", issuer="a", audience="b", clock=make_clock())
    TokenVerifier("x" * auth.MIN_SECRET_BYTES, issuer="a", audience="b", clock=make_clock())


def test_empty_secret_outside_production_uses_a_random_key() -> None:
    class Fake:
        environment = "development"

        class auth:
            jwt_secret = ""

    first, second = auth.signing_secret(Fake), auth.signing_secret(Fake)
    assert len(first) >= auth.MIN_SECRET_BYTES and first != second


# -- refresh tokens -------------------------------------------------------------------------


def test_refresh_tokens_are_random_and_stored_hashed() -> None:
    tokens = {auth.new_refresh_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) >= 43
    digest = auth.refresh_token_hash(token)
    assert digest != token and len(digest) == 64
    assert digest == auth.refresh_token_hash(token)


# -- passwords --------------------------------------------------------------------------------

FAST = Argon2Parameters(time_cost=1, memory_kib=8, parallelism=1)


def inline_hasher(parameters: Argon2Parameters = FAST, **kw) -> PasswordHasher:
    return PasswordHasher(parameters, run_in_thread=defer.maybeDeferred, **kw)


@pytest_twisted.ensureDeferred
async def test_hash_and_verify() -> None:
    hasher = inline_hasher()
    stored = await hasher.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert await hasher.verify(stored, "correct horse battery")
    assert not await hasher.verify(stored, "correct horse batterz")
    assert not await hasher.verify("not a hash", "correct horse battery")
    await hasher.verify_dummy("anything at all")


@pytest_twisted.ensureDeferred
async def test_unicode_passwords_are_normalised() -> None:
    hasher = inline_hasher()
    stored = await hasher.hash("caf\u00e9-caf\u00e9-caf\u00e9")
    assert await hasher.verify(stored, "cafe\u0301-cafe\u0301-cafe\u0301")


@pytest_twisted.ensureDeferred
async def test_changed_parameters_ask_for_a_rehash() -> None:
    hasher = inline_hasher()
    stored = await hasher.hash("correct horse battery")
    assert not hasher.needs_rehash(stored)
    hasher.configure(Argon2Parameters(time_cost=2, memory_kib=16, parallelism=1))
    assert hasher.needs_rehash(stored)
    assert await hasher.verify(stored, "correct horse battery")  # old hashes still verify
    assert hasher.needs_rehash("garbage")


def test_memory_must_cover_the_lanes() -> None:
    with pytest.raises(ValueError, match="8 KiB per lane"):
        Argon2Parameters(time_cost=1, memory_kib=16, parallelism=4)


@pytest_twisted.ensureDeferred
async def test_semaphore_bounds_concurrency_and_the_queue() -> None:
    started: list[defer.Deferred] = []

    def run_later(work):
        d = defer.Deferred()
        started.append(d)
        return d.addCallback(lambda _: work())

    hasher = PasswordHasher(FAST, concurrency=2, queue_max=2, run_in_thread=run_later)
    pending = [defer.ensureDeferred(hasher.hash(f"password number {i}")) for i in range(4)]
    assert len(started) == 2  # two at once
    assert hasher.waiting == 2
    with pytest.raises(HasherBusy):
        await hasher.hash("one too many")
    while started:
        started.pop(0).callback(None)
    results = [await d for d in pending]
    assert all(r.startswith("$argon2id$") for r in results)
    assert hasher.waiting == 0


@pytest_twisted.ensureDeferred
async def test_production_parameters_in_a_worker_thread(monkeypatch) -> None:
    """The defaults from configspec (64 MiB, 3 passes, 4 lanes), off the reactor thread."""
    from twisted.internet import reactor

    ran_in: dict[str, int] = {}

    class Recording(argon2.PasswordHasher):
        def hash(self, password, *, salt=None):
            ran_in["hash"] = threading.get_ident()
            return super().hash(password, salt=salt)

        def verify(self, hash, password):
            ran_in["verify"] = threading.get_ident()
            return super().verify(hash, password)

    monkeypatch.setattr(auth, "_Argon2", Recording)
    hasher = PasswordHasher(
        Argon2Parameters(time_cost=3, memory_kib=65536, parallelism=4), reactor=reactor
    )
    started = time.perf_counter()
    stored = await hasher.hash("a production password")
    assert "$m=65536,t=3,p=4$" in stored
    assert await hasher.verify(stored, "a production password")
    assert time.perf_counter() - started < 30
    reactor_thread = threading.get_ident()  # the test body runs on the reactor
    assert set(ran_in) == {"hash", "verify"}
    assert reactor_thread not in ran_in.values()
