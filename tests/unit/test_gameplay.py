"""The assembled game: readiness check and reload of rates and physics options."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer
from twisted.internet.task import Clock

from cosmic import metrics
from cosmic.config import ConfigRequest, load
from cosmic.gameplay import build_game
from cosmic.readiness import Readiness
from cosmic.store.service import build_persistence


def assemble(tmp_path: Path, *overrides: str):
    settings = load(
        ConfigRequest(
            environment="test", overrides=(f"database.url=sqlite:///{tmp_path}/g.db", *overrides)
        )
    )
    clock = Clock()
    readiness = Readiness(clock)
    persistence = build_persistence(settings, clock, metrics.create(), readiness)
    game = build_game(settings, clock, metrics.create("other"), persistence, readiness)
    game.loop._run_in_thread = defer.maybeDeferred  # no worker thread in unit tests
    return settings, clock, game


def test_readiness_follows_the_loop(tmp_path: Path) -> None:
    _, clock, game = assemble(tmp_path)
    assert game.check().status == "fail"
    game.loop.startService()
    assert game.check().detail == "game loop started; first tick pending"
    for _ in range(10):
        clock.advance(1 / 60)
    check = game.check()
    assert check.status == "ok"
    assert "0 gardens, 0 bodies" in check.detail
    game.loop.rates["physics"].stop()  # a loop that stopped ticking
    clock.advance(1.0)
    assert game.check().status == "fail"
    assert game.check().detail.startswith("no physics tick for")


def test_reload_changes_rates_and_physics(tmp_path: Path) -> None:
    _settings, _clock, game = assemble(tmp_path)
    game.loop.startService()
    fresh = load(
        ConfigRequest(
            environment="test",
            overrides=(
                "game.target_tps=30",
                "game.time_scale=0.5",
                "physics.theta=0.7",
                "physics.simd_threshold=64",
                "game.unload_after=5",
            ),
        )
    )
    game.on_reload(fresh, ("game.target_tps",))
    assert game.loop.rates["physics"].interval == 1 / 30
    assert game.world.time_scale == 0.5
    assert (game.engine.theta, game.engine.simd_threshold) == (0.7, 64)
    assert game.gardens.unload_after == 5
