"""Password guessing against the auth routes (a real Site on a loopback port).

What the design promises (docs/api.rst, "Rate limits"; cosmic.web.middleware
RateLimiter): register, login and refresh share one token bucket per client
address (IPv6 per /64).  A guesser gets 401s until its bucket is empty, then
429 RATE_LIMITED with Retry-After; the real user, from another address, logs
in meanwhile; from the guesser's address too once Retry-After has passed.
Time runs on the Site's ``task.Clock``; client addresses come from
X-Forwarded-For (``http.trust_proxy``), as behind the production proxy.

The bucket is per address only: there is no per-account lockout, so guesses
spread over many addresses are not limited by it (see the issue notes).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_twisted

from tests.unit.web.conftest import PASSWORD, Reply, Served, serve

V1 = "/api/v1"
BURST = 5
PER_MINUTE = 6.0  # one more guess every 10 s once the burst is spent
ATTACKER = "203.0.113.7"
ELSEWHERE = "198.51.100.20"


@pytest.fixture
def site() -> Iterator[Served]:
    yield from serve(
        f"auth.rate_limit_burst={BURST}",
        f"auth.rate_limit_per_minute={PER_MINUTE}",
        "http.trust_proxy=true",
    )


async def login(site: Served, password: str, address: str, username: str = "ada") -> Reply:
    return await site.call(
        "POST",
        f"{V1}/auth/login",
        {"username": username, "password": password},
        headers={"X-Forwarded-For": address},
    )


def limited(reply: Reply) -> int:
    """The Retry-After of a proper 429 (asserting that it is one)."""
    assert reply.code == 429, reply
    assert reply.error == "RATE_LIMITED"
    seconds = int(reply.header("Retry-After"))
    assert seconds >= 1 and reply.body["error"]["retry_after"] == seconds
    assert isinstance(reply.body["error"]["message"], str)
    return seconds


def counted(site: Served, name: str, **labels: str) -> float:
    value = site.metrics.registry.get_sample_value(f"cosmic_gardener_{name}", labels)
    return value or 0.0


@pytest_twisted.ensureDeferred
async def test_guessing_from_one_address_is_stopped_and_the_user_still_logs_in(
    site: Served,
) -> None:
    await site.register("ada")  # from the test's own address, its own bucket
    guesses = [await login(site, f"guess number {i:04d}", ATTACKER) for i in range(BURST)]
    assert [r.code for r in guesses] == [401] * BURST
    assert {r.error for r in guesses} == {"AUTH_INVALID_CREDENTIALS"}

    # The bucket is empty: more guesses are refused before any password is checked.
    failed_before = counted(site, "auth_events_total", event="login_failed")
    waits = [limited(await login(site, f"guess {i}", ATTACKER)) for i in range(20)]
    assert max(waits) <= 60 / PER_MINUTE + 1
    assert counted(site, "auth_events_total", event="login_failed") == failed_before
    assert counted(site, "http_rate_limited_total", route=f"{V1}/auth/login") == 20

    # Even the right password from the limited address waits (the limit is
    # per address: it cannot know who is typing) ...
    limited(await login(site, PASSWORD, ATTACKER))
    # ... the other auth routes share the bucket ...
    register = await site.call(
        "POST",
        f"{V1}/auth/register",
        {"username": "eve", "password": PASSWORD},
        headers={"X-Forwarded-For": ATTACKER},
    )
    limited(register)
    # ... and the real user, from anywhere else, logs in right away.
    ok = await login(site, PASSWORD, ELSEWHERE)
    assert ok.code == 200 and ok.body["access_token"]

    # Once Retry-After has passed, the guesser's address gets exactly one more
    # try per refill, and the right password from there works again.
    wait = limited(await login(site, "still guessing", ATTACKER))
    site.clock.advance(wait)
    ok = await login(site, PASSWORD, ATTACKER)
    assert ok.code == 200, ok
    limited(await login(site, "and again", ATTACKER))
    site.clock.advance(60 / PER_MINUTE)
    again = await login(site, "one more guess", ATTACKER)
    assert again.code == 401 and again.error == "AUTH_INVALID_CREDENTIALS"


@pytest_twisted.ensureDeferred
async def test_the_limit_answers_before_reading_the_body(site: Served) -> None:
    """A limited address cannot make the server hash anything, whatever it
    sends: malformed, oversized-field and valid-looking bodies all get 429."""
    for i in range(BURST):
        assert (await login(site, f"wrong password {i}", ATTACKER, "nobody")).code == 401
    hashed_before = counted(site, "auth_password_hash_duration_seconds_count", operation="verify")
    assert hashed_before >= BURST  # unknown users cost a (dummy) verify too
    for data in (b"{", b'{"username": 1}', b'{"username": "ada", "password": "' + b"x" * 500):
        reply = await site.call(
            "POST",
            f"{V1}/auth/login",
            data=data,
            headers={"X-Forwarded-For": ATTACKER, "Content-Type": "application/json"},
        )
        limited(reply)
    limited(await login(site, "x" * 128, ATTACKER))
    hashed_after = counted(site, "auth_password_hash_duration_seconds_count", operation="verify")
    assert hashed_after == hashed_before


@pytest_twisted.ensureDeferred
async def test_ipv6_guessers_count_per_64_block(site: Served) -> None:
    """Rotating addresses inside one /64 (what one subscriber gets) does not
    earn fresh buckets; the next /64 is someone else."""
    for i in range(BURST):
        reply = await login(site, "wrong password!", f"2001:db8:1:2::{i + 1:x}", "nobody")
        assert reply.code == 401
    limited(await login(site, "wrong password!", "2001:db8:1:2:ffff::99", "nobody"))
    other = await login(site, "wrong password!", "2001:db8:1:3::1", "nobody")
    assert other.code == 401


@pytest.fixture
def untrusting() -> Iterator[Served]:
    yield from serve(f"auth.rate_limit_burst={BURST}", f"auth.rate_limit_per_minute={PER_MINUTE}")


@pytest_twisted.ensureDeferred
async def test_forwarded_for_is_ignored_without_trust_proxy(untrusting: Served) -> None:
    """Without http.trust_proxy a guesser cannot pick a fresh address per
    request by writing X-Forwarded-For: the peer address is what counts."""
    codes = []
    for i in range(BURST + 3):
        reply = await login(untrusting, "wrong password!", f"192.0.2.{i}", "nobody")
        codes.append(reply.code)
    assert codes == [401] * BURST + [429] * 3
