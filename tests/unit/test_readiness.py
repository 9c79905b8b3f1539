from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from cosmic.readiness import Check, Readiness


def run(readiness: Readiness, clock: Clock | None = None, advance: float = 0.0):
    d = defer.ensureDeferred(readiness.report())
    if clock is not None:
        clock.advance(advance)
    results: list = []
    d.addBoth(results.append)
    assert results, "report did not finish"
    return results[0]


def test_empty_registry_is_ready() -> None:
    report = run(Readiness(Clock()))
    assert report.ready
    assert report.as_json() == {"status": "ready", "checks": {}}


def test_statuses_combine() -> None:
    readiness = Readiness(Clock())
    readiness.add("store", lambda: Check.ok("3 connections"))
    readiness.add("cache", lambda: Check.degraded("redis down; using the database"))
    report = run(readiness)
    assert report.ready
    assert report.status == "degraded"
    readiness.add("loop", lambda: defer.succeed(Check.fail("not ticking")))
    report = run(readiness)
    assert not report.ready
    assert report.as_json()["checks"]["loop"] == {"status": "fail", "detail": "not ticking"}


def test_raising_and_slow_checks_fail_with_a_reason() -> None:
    clock = Clock()
    readiness = Readiness(clock, timeout=2.0)

    def broken() -> Check:
        raise RuntimeError("pool closed")

    readiness.add("broken", broken)
    readiness.add("slow", defer.Deferred)
    report = run(readiness, clock, advance=2.5)
    checks = report.as_json()["checks"]
    assert checks["broken"] == {
        "status": "fail",
        "detail": "check raised RuntimeError: pool closed",
    }
    assert checks["slow"] == {"status": "fail", "detail": "no answer within 2 s"}


def test_names_are_unique_and_removable() -> None:
    readiness = Readiness(Clock())
    readiness.add("x", Check.ok)
    with pytest.raises(ValueError, match="already registered"):
        readiness.add("x", Check.ok)
    readiness.remove("x")
    readiness.add("x", Check.ok)
