"""The web client in a real Chromium against a real daemon: register or log
in, play (build, upgrade, research), watch the garden move, and survive the
server dropping the socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import (
    MANHOLE_PASSWORD,
    MANHOLE_USER,
    click_at,
    log_in,
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


def dust_below(page: Any, limit: float, what: str) -> float:
    """Wait until the resource bar shows less dust than ``limit``; that value."""
    return until(
        page,
        f"(() => {{ const v = Number(document.querySelector("
        f"'[data-resource=cosmic_dust] .value').dataset.value); return v < {limit} && v; }})()",
        what=what,
    )


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
    spent = dust_below(page, dust, "the dust to drop")
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
    # (The next frame may still be on its way when the badge turns connected.)
    until(
        page,
        f"window.cosmic.replicas.get(window.cosmic.app.own).sequence > {sequence}",
        what="a frame after the resumed session's last one",
    )
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


def test_log_in_with_the_form(page: Any, server: tuple[Daemon, int]) -> None:
    daemon, _ = server
    password = "the gardener's long password"
    first = register(page, "returning", password)
    page.click("#logout")
    page.wait_for_selector("#auth", state="visible")
    mark = daemon.mark()

    # A wrong password: the form stays, with the server's answer.
    log_in(page, "returning", "not the right password")
    page.wait_for_selector("#auth-error:has-text('wrong username or password')")
    assert page.is_visible("#auth") and page.is_hidden("#game")
    assert page.get_attribute("#connection", "data-state") == "offline"

    # The right one: the same garden, in a new session.
    log_in(page, "returning", password)
    page.wait_for_selector("#connection[data-state=connected]")
    again = until(page, "window.cosmic.bodies().length > 0 && window.cosmic.app.hello")
    assert again["garden_id"] == first["garden_id"]
    assert again["player_id"] == first["player_id"]
    assert again["session_id"] != first["session_id"]
    assert page.is_hidden("#auth") and page.is_visible("#sky")
    assert page.inner_text("#who") == "returning"
    assert page.evaluate(f"{OWN_BODIES}.map(b => b.kind)") == ["star"]
    assert page.input_value("input[name=password]") == ""
    assert page.inner_text("#auth-error") == ""
    daemon.wait_for(
        lambda e: e.get("route") == "/api/v1/auth/login" and e.get("status") == 200, since=mark
    )
    assert page.errors == []


def test_buy_an_upgrade_and_start_research(page: Any, server: tuple[Daemon, int]) -> None:
    _, manhole = server
    hello = register(page, "scholar")
    # A new garden: 500 dust, +1/s; the first dust upgrade costs 50 (rules.UPGRADES).
    row = "#upgrades li[data-upgrade=cosmic_dust]"
    rate = "[data-resource=cosmic_dust] .rate"
    assert "level 0" in page.inner_text(row)
    assert page.inner_text(f"{row} button") == "Buy 50"
    assert page.inner_text(rate) == "+1/s"
    dust = resource(page, "cosmic_dust")
    page.click(f"{row} button")
    page.wait_for_selector(f"{row}:has-text('level 1')")
    spent = dust_below(page, dust, "the dust to drop by the upgrade's cost")
    assert dust - 50 <= spent < dust - 40
    assert page.inner_text(f"{row} button") == "Buy 75"  # 50 * 1.5
    page.wait_for_selector(f"{rate}:has-text('+1.5/s')")  # +50% per level
    assert "dust upgraded to level 1" in page.inner_text("#events")
    assert page.inner_text("#upgrade-error") == ""

    # Orbital mechanics costs 1,000 dust: shown short, and refused with the server's error.
    item = "#research li[data-research=orbital_mechanics]"
    assert page.locator(f"{item} .sub .short").count() == 1
    page.click(f"{item} button")
    page.wait_for_selector("#research-error:has-text('orbital_mechanics needs')")
    assert "more cosmic_dust" in page.inner_text("#research-error")
    assert page.inner_text("#research-active") == "Nothing under research."

    # An operator credits the garden (the manhole): now it is affordable.
    gift = f"world.garden({hello['garden_id']}).credit({{'cosmic_dust': 1000.0}})"
    console(manhole).evaluate(f"loop.when_idle(lambda: {gift})")
    until(page, f"document.querySelectorAll('{item} .sub .short').length === 0", what="the gift")
    dust = resource(page, "cosmic_dust")
    assert dust >= 1000
    page.click(f"{item} button")
    page.wait_for_selector("#research-active:has-text('Researching orbital mechanics')")
    assert page.locator("#research-active .progress").count() == 1
    assert page.inner_text(f"{item} button") == "running"
    # Paid already: its cost is no longer shown (let alone as short).
    assert page.inner_text(f"{item} .sub") == "under research"
    # One research at a time: every Start button waits for it.
    assert page.locator("#research li button:enabled").count() == 0
    spent = dust_below(page, dust - 900, "the dust to drop by the research's cost")
    assert dust - 1000 <= spent
    assert page.inner_text("#research-error") == ""
    assert "research started: orbital mechanics" in page.inner_text("#events")
    own = "window.cosmic.replicas.get(window.cosmic.app.own).progress.research.active"
    active = page.evaluate(own)
    assert active["name"] == "orbital_mechanics" and active["total"] == 60
    assert page.errors == []
