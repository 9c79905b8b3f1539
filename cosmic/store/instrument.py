"""Timing and error counting shared by the store backends."""

from __future__ import annotations

import time
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

from cosmic.metrics import StoreMetrics

T = TypeVar("T")


def observe(
    metrics: StoreMetrics | None, operation: str, d: defer.Deferred[T]
) -> defer.Deferred[T]:
    """Record the operation's duration and, if it fails, its error type."""
    if metrics is None:
        return d
    start = time.perf_counter()

    def done(result: Any) -> Any:
        metrics.query_duration.labels(operation).observe(time.perf_counter() - start)
        if isinstance(result, Failure):
            name = result.type.__name__ if result.type else "error"
            metrics.errors.labels(operation, name).inc()
        return result

    return d.addBoth(done)
