"""The assembled game: readiness check, reload of rates and physics options, and
the one start-up line naming the physics kernels in use."""

from __future__ import annotations

import sys
from pathlib import Path

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent

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


def kernel_lines(events: list[dict]) -> list[dict]:
    return [e for e in events if e.get("log_format", "").startswith("physics kernels:")]


def test_the_numpy_fallback_is_logged_once_with_its_reason(tmp_path: Path, monkeypatch) -> None:
    # None in sys.modules makes the import fail as a missing build does.
    monkeypatch.setitem(sys.modules, "cosmic.physics._kernels", None)
    with capturedLogs() as events:
        _, clock, game = assemble(tmp_path)
        game.loop.startService()
        for _ in range(60):
            clock.advance(1 / 60)
        game.on_reload(load(ConfigRequest(environment="test")), ())
        clock.advance(1 / 60)
    assert game.engine.implementation == "reference"
    [line] = kernel_lines(events)
    assert line["implementation"] == "reference"
    assert line["reason"].startswith("compiled kernels unavailable (")
    assert line["log_level"] == LogLevel.info
    text = formatEvent(line)
    assert text.startswith("physics kernels: reference (compiled kernels unavailable")


def test_the_implementation_in_use_is_logged_once_at_start(tmp_path: Path) -> None:
    with capturedLogs() as events:
        _, clock, game = assemble(tmp_path)
        game.loop.startService()
        clock.advance(1.0)
    [line] = kernel_lines(events)
    assert line["implementation"] == game.engine.implementation
    assert line["reason"] == game.engine.implementation_reason


def test_every_physics_option_reaches_the_engine_at_start(tmp_path: Path) -> None:
    _, _, game = assemble(
        tmp_path,
        "physics.simd_threshold=8",
        "physics.tree_threshold=1234",
        "physics.theta=0.7",
        "physics.softening=0.01",
        "physics.openmp_threshold=500",
    )
    engine = game.engine
    assert (engine.simd_threshold, engine.tree_threshold) == (8, 1234)
    assert (engine.theta, engine.softening, engine.openmp_threshold) == (0.7, 0.01, 500)


class PooledClock(Clock):
    """A Clock that is also its own thread pool, running work at once, so
    what build_game hands the reactor's pool can be seen."""

    def __init__(self) -> None:
        super().__init__()
        self.pooled: list[object] = []

    def getThreadPool(self) -> PooledClock:
        return self

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs) -> None:
        self.pooled.append(f)
        on_result(True, f(*args, **kwargs))

    def callFromThread(self, f, *args, **kwargs) -> None:
        f(*args, **kwargs)


def test_gardens_use_the_snapshot_cache_and_the_reactors_thread_pool(tmp_path: Path) -> None:
    settings = load(
        ConfigRequest(environment="test", overrides=(f"database.url=sqlite:///{tmp_path}/g.db",))
    )
    reactor = PooledClock()
    readiness = Readiness(reactor)
    persistence = build_persistence(settings, reactor, metrics.create(), readiness)
    game = build_game(settings, reactor, metrics.create("other"), persistence, readiness)
    assert game.gardens.snapshots is persistence.snapshots

    def work() -> str:
        return "built"

    results: list[str] = []
    game.gardens._run_in_thread(work).addCallback(results.append)
    assert reactor.pooled == [work]
    assert results == ["built"]
