"""Exponential backoff with jitter, for reconnecting and retrying."""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs


@attrs.frozen
class Backoff:
    """Delay before attempt ``n`` (0-based): ``initial * factor**n`` capped at
    ``maximum``, then reduced by up to ``jitter`` of itself at random, so that
    many processes recovering from the same outage do not retry in step."""

    initial: float = 0.1
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(max(attempt, 0), 64))
        return base * (1.0 - self.jitter * rand())
