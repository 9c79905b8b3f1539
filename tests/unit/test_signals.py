"""Signal handling: graceful stop on SIGTERM/SIGINT, reload on SIGHUP."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from cosmic.config import ConfigRequest, Reloader, load
from cosmic.ops.signals import SignalService


class Reactor(MemoryReactorClock):
    def __init__(self) -> None:
        super().__init__()
        self.stops = 0

    def callFromThread(self, f: Any, *args: Any) -> None:
        f(*args)

    def stop(self) -> None:
        self.stops += 1
        super().stop()


class Harness:
    def __init__(self, etc: Path) -> None:
        self.conf = etc / "development.conf"
        self.conf.write_text("[logging]\nlevel = info\n")
        req = ConfigRequest(etc_dir=str(etc))
        self.reloader = Reloader(req, load(req))
        self.reactor = Reactor()
        self.handlers: dict[int, Any] = {}
        self.pending: list[defer.Deferred] = []
        self.service = SignalService(
            self.reactor,
            self.reloader,
            install=self.handlers.__setitem__,
            run_blocking=self.run_later,
        )

    def run_later(self, f: Any) -> defer.Deferred:
        """Like a thread: the work completes when the test says so."""
        d: defer.Deferred = defer.Deferred()
        self.pending.append(d)
        return d.addCallback(lambda _: f())

    def finish_pending(self) -> None:
        while self.pending:
            self.pending.pop(0).callback(None)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    for name in ("development", "production", "test"):
        (tmp_path / f"{name}.conf").write_text("")
    h = Harness(tmp_path)
    h.service.startService()
    h.reactor.run()  # MemoryReactor's run() ends with its own stop()
    h.reactor.stops = 0
    return h


def test_handlers_installed_once_running(tmp_path: Path) -> None:
    for name in ("development", "production", "test"):
        (tmp_path / f"{name}.conf").write_text("")
    h = Harness(tmp_path)
    h.service.startService()
    assert h.handlers == {}
    h.reactor.run()
    assert set(h.handlers) == {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_stop_the_reactor_once(harness: Harness, signum: int) -> None:
    harness.handlers[signum](signum, None)
    harness.handlers[signum](signum, None)
    assert harness.reactor.stops == 1


def test_sighup_reloads_off_the_reactor_thread(harness: Harness) -> None:
    harness.conf.write_text("[logging]\nlevel = error\n")
    harness.handlers[signal.SIGHUP](signal.SIGHUP, None)
    assert harness.reloader.current.logging.level == "info"  # load still "in the thread"
    harness.finish_pending()
    assert harness.reloader.current.logging.level == "error"


def test_a_burst_of_sighups_coalesces(harness: Harness) -> None:
    loads: list[int] = []
    original = harness.reloader.load
    harness.reloader.load = lambda: (loads.append(1), original())[1]
    for _ in range(5):
        harness.handlers[signal.SIGHUP](signal.SIGHUP, None)
    assert len(harness.pending) == 1
    harness.finish_pending()
    assert len(loads) == 2  # the one in flight, then one more for the rest


def test_invalid_reload_keeps_settings(harness: Harness) -> None:
    harness.conf.write_text("[logging]\nlevel = shouty\n")
    d = harness.service.reload()
    harness.finish_pending()
    outcome = []
    d.addCallback(outcome.append)
    assert not outcome[0].ok
    assert harness.reloader.current.logging.level == "info"


def test_unexpected_reload_error_is_logged_not_raised(harness: Harness) -> None:
    def explode():
        raise OSError("disk gone")

    harness.reloader.load = explode
    d = harness.service.reload()
    harness.finish_pending()
    result = []
    d.addBoth(result.append)
    assert result == [None]
    # the next SIGHUP still works
    assert harness.service.reload() is not None
