"""Signal handling: graceful stop on SIGTERM/SIGINT, reload on SIGHUP."""

from __future__ import annotations

import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.application import service
from twisted.conch.manhole import ManholeInterpreter
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from cosmic.config import ConfigRequest, Reloader, load
from cosmic.ops import console
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


class Notifier:
    """Records the sd_notify messages the service would send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def reloading(self) -> None:
        self.sent.append("RELOADING=1")

    def ready(self, status: str = "") -> None:
        self.sent.append(f"READY=1 {status}".strip())


class Harness:
    def __init__(self, etc: Path) -> None:
        self.conf = etc / "development.conf"
        self.conf.write_text("[logging]\nlevel = info\n")
        req = ConfigRequest(etc_dir=str(etc))
        self.reloader = Reloader(req, load(req))
        self.reactor = Reactor()
        self.handlers: dict[int, Any] = {}
        self.pending: list[defer.Deferred] = []
        self.notifier = Notifier()
        self.service = SignalService(
            self.reactor,
            self.reloader,
            install=self.handlers.__setitem__,
            run_blocking=self.run_later,
            notifier=self.notifier,
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


def fired(d: defer.Deferred) -> list[Any]:
    results: list[Any] = []
    d.addBoth(results.append)
    return results


def test_a_reload_is_announced_to_systemd_and_answers_its_outcome(harness: Harness) -> None:
    harness.conf.write_text("[logging]\nlevel = error\n")
    answer = fired(harness.service.reload("test"))
    assert harness.notifier.sent == ["RELOADING=1"] and answer == []
    harness.finish_pending()
    assert harness.notifier.sent == ["RELOADING=1", "READY=1 reloaded"]
    assert answer[0].applied == ("logging.level",)


def test_callers_during_a_reload_get_the_next_one(harness: Harness) -> None:
    harness.conf.write_text("[logging]\nlevel = warn\n")
    first = fired(harness.service.reload("test"))
    second, third = fired(harness.service.reload("test")), fired(harness.service.reload("test"))
    assert len(harness.pending) == 1  # one run at a time
    harness.pending.pop(0).callback(None)
    assert first[0].applied == ("logging.level",) and second == third == []
    assert harness.reloader.current.logging.level == "warn"
    harness.conf.write_text("[logging]\nlevel = error\n")  # edited before the next run
    harness.finish_pending()
    assert second[0] is third[0] and second[0].applied == ("logging.level",)
    assert harness.reloader.current.logging.level == "error"
    assert harness.notifier.sent == ["RELOADING=1", "READY=1 reloaded"] * 2


class Output:
    """The manhole protocol as its interpreter sees it: where output goes."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def addOutput(self, data: str, isAsync: bool | None = None) -> None:
        self.lines.append(data)


def manhole_on(harness: Harness) -> tuple[ManholeInterpreter, Output]:
    root = service.MultiService()
    root.game = SimpleNamespace(world=None, loop=None, gardens=None)
    root.persistence = SimpleNamespace(store=None, cache=None)
    root.metrics = None
    root.reloader = harness.reloader
    harness.service.setServiceParent(root)
    output = Output()
    return ManholeInterpreter(output, console.namespace(root)), output


def test_the_manhole_reload_goes_the_sighup_way(harness: Harness) -> None:
    interpreter, output = manhole_on(harness)
    harness.conf.write_text("[logging]\nlevel = error\n")
    interpreter.push(b"reload()")
    # Nothing was read on the reactor thread: the load waits in the "thread".
    assert len(harness.pending) == 1 and harness.reloader.current.logging.level == "info"
    assert output.lines == ["<Deferred #0>"]
    assert harness.notifier.sent == ["RELOADING=1"]
    harness.finish_pending()
    assert output.lines[1] == (
        "Deferred #0 called back: "
        "ReloadOutcome(applied=('logging.level',), needs_restart=(), problems=())"
    )
    assert harness.notifier.sent == ["RELOADING=1", "READY=1 reloaded"]
    assert harness.reloader.current.logging.level == "error"


def test_the_manhole_reports_refused_and_failed_reloads(harness: Harness) -> None:
    interpreter, output = manhole_on(harness)
    harness.conf.write_text("[logging]\nlevel = shouty\n")
    interpreter.push(b"reload()")
    harness.finish_pending()
    assert "called back: ReloadOutcome(applied=(), needs_restart=(), problems=(" in output.lines[1]
    assert "logging.level" in output.lines[1]

    def explode():
        raise OSError("disk gone")

    harness.reloader.load = explode
    interpreter.push(b"reload()")
    harness.finish_pending()
    assert output.lines[-1] == (
        "Deferred #1 called back: 'reload failed unexpectedly; see the daemon log'"
    )
    assert harness.notifier.sent == ["RELOADING=1", "READY=1 reloaded"] * 2
