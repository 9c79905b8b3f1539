"""Suite-wide rules.

With COSMIC_TEST_REQUIRE_SERVICES=1 (set by .ci/run) a skipped test is a
failed test: in CI PostgreSQL, Redis and every other dependency must be
there, and "not reachable, skipping" would hide exactly the failure CI exists
to catch.
"""

from __future__ import annotations

import os

import pytest

REQUIRE = os.environ.get("COSMIC_TEST_REQUIRE_SERVICES") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but COSMIC_TEST_REQUIRE_SERVICES=1 forbids skips: {reason}"
