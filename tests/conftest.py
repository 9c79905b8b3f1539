"""Suite-wide rules.

With COSMIC_TEST_REQUIRE_SERVICES=1 (set by .ci/run) a skipped test is a
failed test: in CI PostgreSQL, Redis and every other dependency must be
there, and "not reachable, skipping" would hide exactly the failure CI exists
to catch.  That holds for a skip while collecting too (a module-level
``pytest.importorskip``): it becomes a collection error.
"""

from __future__ import annotations

import os

import pytest

REQUIRE = os.environ.get("COSMIC_TEST_REQUIRE_SERVICES") == "1"


def _forbid_skip(report) -> None:
    if REQUIRE and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but COSMIC_TEST_REQUIRE_SERVICES=1 forbids skips: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _forbid_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # A module-level pytest.importorskip skips the whole module while it is
    # collected: no test item exists, so the hook above never sees it.
    outcome = yield
    _forbid_skip(outcome.get_result())
