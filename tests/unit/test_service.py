"""Root service: ordered awaited start, reverse awaited stop, fatal start."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.application import service
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher

from cosmic.readiness import Readiness
from cosmic.service import SHUTDOWN_TIMED_OUT, START_FAILED, RootService


class Child(service.Service):
    def __init__(self, name: str, journal: list, start: Any = None, stop: Any = None) -> None:
        self.name = name
        self.journal = journal
        self.start_result = start
        self.stop_result = stop

    def startService(self) -> Any:
        super().startService()
        self.journal.append(("start", self.name))
        if isinstance(self.start_result, Exception):
            raise self.start_result
        return self.start_result

    def stopService(self) -> Any:
        super().stopService()
        self.journal.append(("stop", self.name))
        if isinstance(self.stop_result, Exception):
            raise self.stop_result
        return self.stop_result


class Harness:
    def __init__(self, timeout: float = 10.0, stop_timeout: float = 30.0) -> None:
        self.reactor = MemoryReactorClock()
        self.readiness = Readiness(self.reactor)
        self.fatal: list[int] = []
        self.journal: list[tuple[str, str]] = []
        self.root = RootService(
            self.reactor, self.readiness, self.fatal.append, timeout, stop_timeout=stop_timeout
        )

    def child(self, name: str, **kwargs: Any) -> Child:
        child = Child(name, self.journal, **kwargs)
        child.setServiceParent(self.root)
        return child

    def start(self) -> defer.Deferred:
        d = self.root.startService()
        self.reactor.run()  # fires callWhenRunning, as twistd's reactor.run does
        return d

    def ready(self) -> tuple[bool, dict]:
        report = defer.ensureDeferred(self.readiness.report())
        result = self.successResultOf(report)
        return result.ready, result.as_json()

    @staticmethod
    def successResultOf(d: defer.Deferred) -> Any:
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "Deferred has not fired"
        if hasattr(results[0], "raiseException"):
            results[0].raiseException()
        return results[0]


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_children_start_in_order_each_awaited() -> None:
    h = Harness()
    first_started: defer.Deferred[None] = defer.Deferred()
    h.child("store", start=first_started)
    h.child("web")
    started = h.start()
    assert h.journal == [("start", "store")]  # web waits for store
    assert not started.called
    assert h.ready()[0] is False
    first_started.callback(None)
    assert h.journal == [("start", "store"), ("start", "web")]
    assert started.called
    assert h.ready() == (
        True,
        {
            "status": "ready",
            "checks": {"startup": {"status": "ok", "detail": "2 components running"}},
        },
    )


def test_nothing_starts_before_the_reactor_runs() -> None:
    h = Harness()
    h.child("a")
    h.root.startService()
    assert h.journal == []
    h.reactor.run()
    assert h.journal == [("start", "a")]


def test_stop_is_reverse_and_awaited() -> None:
    h = Harness()
    h.child("a")
    b_stopped: defer.Deferred[None] = defer.Deferred()
    h.child("b", stop=b_stopped)
    h.child("c")
    h.start()
    stopping = h.root.stopService()
    assert h.journal[3:] == [("stop", "c"), ("stop", "b")]  # a waits for b
    b_stopped.callback(None)
    assert h.journal[3:] == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert stopping.called
    assert h.ready()[1]["checks"]["startup"] == {"status": "fail", "detail": "stopped"}


def test_failing_child_is_fatal_and_later_children_never_start(logged) -> None:
    h = Harness()
    h.child("store")
    h.child("cache", start=defer.fail(ConnectionRefusedError("redis down")))
    h.child("web")
    h.start()
    assert h.journal == [("start", "store"), ("start", "cache")]
    assert h.fatal == [START_FAILED]
    assert h.root.fatal == ("cache", "ConnectionRefusedError: redis down")
    critical = [e for e in logged if e.get("log_level") == LogLevel.critical]
    assert len(critical) == 1
    assert critical[0]["child"] == "cache"
    h.root.stopService()  # what twistd does once the reactor is told to stop
    assert h.journal[2:] == [("stop", "store")]
    assert h.ready()[1]["checks"]["startup"]["detail"] == "failed to start"


def test_synchronous_raise_and_custom_exit_code() -> None:
    class Misconfigured(Exception):
        exit_code = 78

    h = Harness()
    h.child("manhole", start=Misconfigured("public manhole without passwords"))
    h.start()
    assert h.fatal == [78]
    assert h.root.fatal == ("manhole", "Misconfigured: public manhole without passwords")


def test_a_child_that_hangs_times_out() -> None:
    h = Harness(timeout=5.0)
    h.child("store", start=defer.Deferred())
    h.child("web")
    h.start()
    h.reactor.advance(4.9)
    assert h.fatal == []
    h.reactor.advance(0.2)
    assert h.fatal == [START_FAILED]
    assert h.root.fatal == (
        "store",
        "ChildStartTimeout: did not start within 5 s (server.start_timeout)",
    )
    assert ("start", "web") not in h.journal


def test_stop_during_start_cancels_the_pending_child() -> None:
    h = Harness()
    h.child("a")
    pending: defer.Deferred[None] = defer.Deferred()
    h.child("b", start=pending)
    h.child("c")
    h.start()
    stopping = h.root.stopService()
    assert stopping.called
    assert h.fatal == []  # a requested stop is not a failure
    assert h.journal == [("start", "a"), ("start", "b"), ("stop", "a")]


def test_stop_before_the_reactor_ran() -> None:
    h = Harness()
    h.child("a")
    h.root.startService()
    assert h.root.stopService().called
    assert h.journal == []


def test_child_stop_failure_is_logged_and_others_still_stop(logged) -> None:
    h = Harness()
    h.child("a")
    h.child("b", stop=RuntimeError("stuck"))
    h.start()
    assert h.root.stopService().called
    assert h.journal[2:] == [("stop", "b"), ("stop", "a")]
    assert any(e.get("child") == "b" and e.get("log_failure") for e in logged)


def test_a_stop_that_never_finishes_ends_at_the_shutdown_timeout(logged) -> None:
    h = Harness(stop_timeout=30.0)
    h.child("store")
    h.child("game", stop=defer.Deferred())  # never fires, no canceller
    h.child("web")
    h.start()
    stopping = h.root.stopService()
    h.reactor.advance(29.9)
    assert not stopping.called
    assert h.fatal == []
    h.reactor.advance(0.2)
    assert h.fatal == [SHUTDOWN_TIMED_OUT]
    assert stopping.called  # twistd's shutdown goes on
    # Abandoning the stalled child still gives the ones before it their stop.
    assert h.journal[3:] == [("stop", "web"), ("stop", "game"), ("stop", "store")]
    critical = [e for e in logged if e.get("log_level") == LogLevel.critical]
    assert len(critical) == 1
    assert critical[0]["child"] == "game"
    assert critical[0]["timeout"] == 30.0
    assert "server.shutdown_timeout" in critical[0]["log_format"]


def test_the_shutdown_timeout_holds_when_the_next_child_stalls_too(logged) -> None:
    h = Harness(stop_timeout=30.0)
    h.child("store", stop=defer.Deferred())  # a flush that cannot reach the database
    h.child("game", stop=defer.Deferred())
    h.start()
    stopping = h.root.stopService()
    h.reactor.advance(30.1)
    assert h.fatal == [SHUTDOWN_TIMED_OUT]
    assert stopping.called
    assert h.journal[2:] == [("stop", "game"), ("stop", "store")]
    critical = [e for e in logged if e.get("log_level") == LogLevel.critical]
    assert [e["child"] for e in critical] == ["game"]
    h.reactor.advance(300)
    assert h.fatal == [SHUTDOWN_TIMED_OUT]  # reported once


def test_a_stop_in_time_disarms_the_shutdown_timeout() -> None:
    h = Harness(stop_timeout=30.0)
    stopped: defer.Deferred[None] = defer.Deferred()
    h.child("game", stop=stopped)
    h.start()
    stopping = h.root.stopService()
    h.reactor.advance(29.0)
    stopped.callback(None)
    assert stopping.called
    h.reactor.advance(60.0)
    assert h.fatal == []


def test_stop_twice_is_harmless() -> None:
    h = Harness()
    h.child("a")
    h.start()
    h.root.stopService()
    h.root.stopService()
    assert h.journal == [("start", "a"), ("stop", "a")]


def test_registers_its_log_observer_on_the_twistd_application() -> None:
    reactor = MemoryReactorClock()

    def observer(event: dict) -> None:
        """stand-in observer"""

    root = RootService(reactor, Readiness(reactor), lambda code: None, log_observer=observer)
    application = service.Application("cosmic")
    root.setServiceParent(application)
    assert application.getComponent(ILogObserver) is observer
    assert service.IServiceCollection(application).getServiceNamed  # parented normally
    assert root.parent is service.IServiceCollection(application)
