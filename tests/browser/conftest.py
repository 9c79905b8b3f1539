"""A real ``twistd cosmic`` (embedded SQLite, manhole on) and a headless
Chromium driven by Playwright's sync API.

The browser is Debian's chromium (``COSMIC_TEST_CHROMIUM`` to use another);
Playwright never downloads one here.  Screenshots go to
``COSMIC_TEST_ARTIFACTS`` (default ``test-artifacts/`` at the repository root):
each test's page as it ended, as ``client-<test name>.png``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract.servers import free_port
from tests.integration.daemon import Daemon

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("COSMIC_TEST_CHROMIUM", "/usr/bin/chromium")
MANHOLE_USER, MANHOLE_PASSWORD = "ops", "manhole-pass"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    directory = Path(os.environ.get("COSMIC_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, int]]:
    """The daemon and its manhole port.

    ``auth.access_ttl`` is the minimum (30 s), inside the client's refresh
    margin, so every (re)connection refreshes its token over REST first."""
    workdir = tmp_path_factory.mktemp("daemon")
    passwd = workdir / "passwd"
    passwd.write_text(f"{MANHOLE_USER}:{MANHOLE_PASSWORD}\n")
    manhole = free_port()
    settings = {
        "auth.access_ttl": "30",
        "auth.rate_limit_burst": "1000",
        "cache.leaderboard_ttl": "0.2",
        "database.flush_interval": "0.2",
        "manhole.port": str(manhole),
        "manhole.passwd_file": str(passwd),
    }
    args = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    running = Daemon(workdir, *args).start()
    try:
        yield running, manhole
    finally:
        running.kill()


def artifact_name(test_name: str) -> str:
    """``test_log_in_with_the_form`` -> ``client-log-in-with-the-form.png``."""
    return "client-" + test_name.removeprefix("test_").replace("_", "-") + ".png"


@pytest.fixture
def page(
    browser: Any, server: tuple[Daemon, int], artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """A page on the daemon's ``/``, its script errors in ``page.errors``.

    Whatever the test's outcome, the page as it ended is kept as
    ``client-<test name>.png`` in the artefacts directory."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server[0].url("/"))
    page.wait_for_selector("body[data-ready=true]")
    page.errors = errors
    try:
        yield page
    finally:
        # A page that crashed cannot be shot; that must not hide the test's own failure.
        with contextlib.suppress(Exception):
            page.screenshot(path=str(artifacts / artifact_name(request.node.name)))
        context.close()


def until(page: Any, script: str, timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``script`` in the page until it is truthy; its value.

    (``page.wait_for_function`` compiles its predicate with eval, which the
    page's Content-Security-Policy forbids; ``evaluate`` does not.)"""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or script}; last value {value!r}")
        page.wait_for_timeout(100)


def register(page: Any, username: str, password: str = "a long password") -> dict[str, Any]:
    """Register in the page's form; the AuthenticateResponse once connected."""
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[value=register]")
    page.wait_for_selector("#connection[data-state=connected]")
    until(page, "window.cosmic.bodies().length > 0", what="the first FullStateSync")
    return page.evaluate("window.cosmic.app.hello")


def click_at(page: Any, x: float, y: float) -> None:
    """Click the canvas at garden coordinates (x, y) in AU."""
    sx, sy = page.evaluate(f"window.cosmic.toScreen({x}, {y})")
    box = page.locator("#sky").bounding_box()
    page.mouse.click(box["x"] + sx, box["y"] + sy)


def log_in(page: Any, username: str, password: str) -> None:
    """Type an existing account's name and password into the form and press Log in."""
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[value=login]")


def resource(page: Any, name: str) -> float:
    return float(page.get_attribute(f"[data-resource={name}] .value", "data-value"))
