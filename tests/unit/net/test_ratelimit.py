"""Token buckets per connection and per address (task.Clock)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from cosmic.net.ratelimit import KeyedBuckets, TokenBucket


def test_burst_then_the_refill_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(3, 2.0, clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait() == pytest.approx(0.5)
    clock.advance(0.49)
    assert not bucket.take()
    clock.advance(0.02)
    assert bucket.take()
    clock.advance(100)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]  # capped at burst


def test_a_refused_take_costs_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(1, 1.0, clock)
    assert bucket.take()
    for _ in range(1000):
        assert not bucket.take()
    clock.advance(1.0)
    assert bucket.take()


def test_configure_applies_at_once() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 1.0, clock)
    bucket.configure(2, 1.0)
    assert [bucket.take() for _ in range(3)] == [True, True, False]


def test_keyed_buckets_are_per_address_and_bounded() -> None:
    clock = Clock()
    buckets = KeyedBuckets(2, 60.0, clock, max_keys=3)
    assert buckets.take("a") is None and buckets.take("a") is None
    assert buckets.take("a") == pytest.approx(1.0)
    assert buckets.take("b") is None
    for key in ("c", "d", "e"):
        buckets.take(key)
    assert len(buckets) == 3  # "a" and "b" forgotten: memory stays bounded
    assert buckets.take("a") is None  # a forgotten key starts full again
    clock.advance(1.0)
    buckets.configure(1, 6.0)
    assert buckets.take("e") is None and buckets.take("e") == pytest.approx(10.0)
