"""The web client in a real Chromium against a real daemon: register, play,
watch the garden move, and survive the server dropping the socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import (
    MANHOLE_PASSWORD,
    MANHOLE_USER,
    click_at,
    register,
    resource,
    until,
)
from tests.integration.daemon import Daemon
from tests.integration.telnet import Telnet

pytestmark = pytest.mark.integration

OWN_BODIES = "window.cosmic.bodies()"


def asteroid(page: Any) -> dict[str, Any]:
    return page.evaluate(f"{OWN_BODIES}.find(b => b.kind === 'asteroid')")


def moved_since(page: Any, body: dict[str, Any], what: str) -> dict[str, Any]:
    """Wait until the body's position in the replica differs from ``body``'s."""
    x, y, z = body["position"]
    script = (
        f"(() => {{ const b = {OWN_BODIES}.find(b => b.id === {body['id']});"
        f" return b && (b.position[0] !== {x} || b.position[1] !== {y} || b.position[2] !== {z})"
        " && b; })()"
    )
    return until(page, script, what=what)


def console(manhole: int) -> Telnet:
    telnet = Telnet(manhole)
    telnet.login(MANHOLE_USER, MANHOLE_PASSWORD)
    return telnet


def test_register_play_and_reconnect(
    page: Any, server: tuple[Daemon, int], artifacts: Path
) -> None:
    daemon, manhole = server
    hello = register(page, "gardener")
    assert hello["protocol"] == "cosmic.json.v1"
    assert hello["resumed"] is False
    assert page.evaluate(f"{OWN_BODIES}.map(b => b.kind)") == ["star"]

    # Create an asteroid by choosing it and clicking the garden: dust drops.
    page.click("button[data-kind=asteroid]")
    dust = resource(page, "cosmic_dust")
    click_at(page, 2.7, 0.4)
    until(page, f"{OWN_BODIES}.some(b => b.kind === 'asteroid')", what="the new asteroid")
    spent = until(
        page,
        f"(() => {{ const v = Number(document.querySelector("
        f"'[data-resource=cosmic_dust] .value').dataset.value); return v < {dust} && v; }})()",
        what="the dust to drop",
    )
    # Production only adds dust: a lower value means the asteroid was paid for.
    assert dust - 100 <= spent < dust
    assert "asteroid" in page.inner_text("#events")

    # The bodies move: in the replica, on the canvas and between screenshots.
    before = asteroid(page)
    drawn_before = page.evaluate("window.cosmic.drawn()")
    first = page.locator("#sky").screenshot()
    after = moved_since(page, before, "the asteroid to move")
    page.wait_for_timeout(500)
    second = page.locator("#sky").screenshot()
    assert first != second
    drawn_after = page.evaluate("window.cosmic.drawn()")
    assert {b["id"]: b["position"] for b in drawn_after} != {
        b["id"]: b["position"] for b in drawn_before
    }
    assert after["position"] != before["position"]

    # An unaffordable planet: the button shows the cost is short, the server's error is shown.
    assert page.locator("button[data-kind=planet] .cost.short").count() == 1
    page.click("button[data-kind=planet]")
    click_at(page, -1.5, -1.0)
    page.wait_for_selector("#build-error:has-text('planet needs')")
    assert "more cosmic_dust" in page.inner_text("#build-error")
    assert page.evaluate(f"{OWN_BODIES}.filter(b => b.kind === 'planet').length") == 0
    page.keyboard.press("Escape")
    page.screenshot(path=str(artifacts / "client-garden.png"))

    # The server drops the socket (an operator's kick): the client shows it
    # reconnecting, resumes the same session and garden, and play goes on.
    ids = sorted(b["id"] for b in page.evaluate(OWN_BODIES))
    sequence = page.evaluate("window.cosmic.replicas.get(window.cosmic.app.own).sequence")
    mark = daemon.mark()
    assert console(manhole).evaluate(f"kick({hello['player_id']})") == b"1"
    history = until(
        page,
        "(() => { const h = window.cosmic.app.history; const i = h.lastIndexOf('reconnecting');"
        " return i > 0 && h.indexOf('connected', i) > i && h; })()",
        what="reconnecting, then connected",
    )
    assert history[-2:] == ["reconnecting", "connected"]
    again = page.evaluate("window.cosmic.app.hello")
    assert again["resumed"] is True
    assert (again["garden_id"], again["session_id"]) == (hello["garden_id"], hello["session_id"])
    assert page.get_attribute("#connection", "data-state") == "connected"
    # The access token (30 s, inside the client's margin) was refreshed over REST first.
    daemon.wait_for(
        lambda e: e.get("route") == "/api/v1/auth/refresh" and e.get("status") == 200, since=mark
    )
    # The stream continued from the frame the client had (no full sync needed).
    assert page.evaluate("window.cosmic.replicas.get(window.cosmic.app.own).sequence") > sequence
    assert sorted(b["id"] for b in page.evaluate(OWN_BODIES)) == ids
    moved_since(page, asteroid(page), "the asteroid to move after the reconnection")
    assert "disconnected by an operator" in page.inner_text("#events")
    assert page.errors == []


def test_reload_keeps_the_player_logged_in(page: Any, server: tuple[Daemon, int]) -> None:
    daemon, _ = server
    first = register(page, "reloader")
    mark = daemon.mark()
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#connection[data-state=connected]")
    again = until(page, "window.cosmic.bodies().length > 0 && window.cosmic.app.hello")
    # A new page: a new session on the same garden, with a token refreshed
    # from the refresh token the tab kept (the access token lived in memory).
    assert again["garden_id"] == first["garden_id"]
    assert again["session_id"] != first["session_id"]
    assert page.is_hidden("#auth")
    daemon.wait_for(
        lambda e: e.get("route") == "/api/v1/auth/refresh" and e.get("status") == 200, since=mark
    )
    # Logging out forgets it: the next reload shows the login form.
    page.click("#logout")
    page.wait_for_selector("#auth", state="visible")
    daemon.wait_for(
        lambda e: e.get("route") == "/api/v1/auth/logout" and e.get("status") == 204, since=mark
    )
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.is_visible("#auth")
    assert page.get_attribute("#connection", "data-state") == "offline"
    assert page.errors == []


def test_operator_notice_is_shown(page: Any, server: tuple[Daemon, int]) -> None:
    _, manhole = server
    register(page, "listener")
    sent = int(console(manhole).evaluate('broadcast("maintenance at noon")'))
    assert sent >= 1
    page.wait_for_selector(".notice:has-text('maintenance at noon')")
    assert "maintenance at noon" in page.inner_text("#events")
    assert page.errors == []


def test_observe_a_public_garden_from_the_leaderboard(
    browser: Any, page: Any, server: tuple[Daemon, int]
) -> None:
    daemon, _ = server
    mine = register(page, "watcher")
    other_context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        other = other_context.new_page()
        other.goto(daemon.url("/"))
        other.wait_for_selector("body[data-ready=true]")
        theirs = register(other, "shown")
        other.check("#public")
        until(other, "window.cosmic.replicas.get(window.cosmic.app.own).header.public === true")

        # The board is read through the cache: ask again until the garden shows.
        button = f"#board li[data-garden='{theirs['garden_id']}'] button.observe"
        for _ in range(100):
            page.click("#board-tabs button[data-board=total_mass]")
            if page.locator(button).count():
                break
            page.wait_for_timeout(200)
        page.click(button)
        page.wait_for_selector('#viewing:has-text("shown\'s garden")')
        view = until(
            page,
            f"window.cosmic.app.view === {theirs['garden_id']} &&"
            f" window.cosmic.replicas.get({theirs['garden_id']})",
            what="the observed garden's FullStateSync",
        )
        assert view["role"] == "observer"
        assert page.evaluate(f"{OWN_BODIES}.map(b => b.name)") == ["Sun"]
        # Observers cannot build.
        assert page.locator("button[data-kind=asteroid]").is_disabled()

        # The owner makes it private: the watcher is sent home and told why.
        other.uncheck("#public")
        page.wait_for_selector(".notice:has-text('private')")
        until(page, f"window.cosmic.app.view === {mine['garden_id']}", what="back home")
        assert page.is_hidden("#viewing")
        assert other.evaluate("window.cosmic.app.history").count("connected") == 1
    finally:
        other_context.close()
    assert page.errors == []
