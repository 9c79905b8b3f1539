"""Token buckets: one per connection (messages) and one per address (handshakes).

Both read time from an injected clock (anything with ``seconds()``), so tests
drive them with ``task.Clock``.  Sans-IO: nothing here schedules anything.
"""

from __future__ import annotations

import collections
from typing import Any


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate`` per second."""

    __slots__ = ("_last", "_tokens", "burst", "clock", "rate")

    def __init__(self, burst: float, rate: float, clock: Any) -> None:
        self.clock = clock
        self.burst = float(burst)
        self.rate = float(rate)
        self._tokens = self.burst
        self._last = clock.seconds()

    def configure(self, burst: float, rate: float) -> None:
        self.burst = float(burst)
        self.rate = float(rate)
        self._tokens = min(self._tokens, self.burst)

    def _refill(self) -> None:
        now = self.clock.seconds()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = now

    def take(self) -> bool:
        """Spend one token; False (and nothing spent) when there is none."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait(self) -> float:
        """Seconds until a token is available (0 when one is)."""
        self._refill()
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / self.rate if self.rate > 0 else float("inf")


class KeyedBuckets:
    """One bucket per key (a client address), at most ``max_keys`` kept
    (least recently used forgotten first, so memory stays bounded)."""

    def __init__(self, burst: float, per_minute: float, clock: Any, max_keys: int = 100_000):
        self.clock = clock
        self.max_keys = max_keys
        self.burst = float(burst)
        self.rate = per_minute / 60.0
        self._buckets: collections.OrderedDict[str, TokenBucket] = collections.OrderedDict()

    def configure(self, burst: float, per_minute: float) -> None:
        self.burst = float(burst)
        self.rate = per_minute / 60.0
        for bucket in self._buckets.values():
            bucket.configure(self.burst, self.rate)

    def take(self, key: str) -> float | None:
        """None when allowed; otherwise the seconds to wait."""
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = TokenBucket(self.burst, self.rate, self.clock)
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        if bucket.take():
            return None
        return bucket.wait()

    def __len__(self) -> int:
        return len(self._buckets)
