"""The root service: children start in order, each awaited; stop in reverse.

twistd calls ``startService`` and ignores the Deferred it returns, and
MultiService starts every child at once.  The root instead starts one child
at a time and waits for it, so the web listener never accepts a request
before the store it needs is up.  A child that fails (or outlasts
``server.start_timeout``) is logged in one line and the process is asked to
exit non-zero; the normal stop path then stops what did start, in reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized
from twisted.python.failure import Failure

from cosmic.readiness import Check, Readiness

log = Logger(namespace="cosmic.service")

START_FAILED = 1
SHUTDOWN_TIMED_OUT = 1


class ChildStartTimeout(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not start within {seconds:g} s (server.start_timeout)")


def _cause(failure: Failure) -> str:
    message = failure.getErrorMessage().strip()
    name = failure.type.__name__ if failure.type else "error"
    return f"{name}: {message}" if message else name


class RootService(service.MultiService):
    """Ordered, awaited start; reverse, awaited stop; fatal start -> exit code."""

    def __init__(
        self,
        reactor: Any,
        readiness: Readiness,
        on_fatal: Callable[[int], None],
        start_timeout: float = 60.0,
        log_observer: Any = None,
        stop_timeout: float = 30.0,
    ) -> None:
        super().__init__()
        self._log_observer = log_observer
        self._stop_timeout = stop_timeout
        # Called with no arguments once everything runs / as stopping begins
        # (systemd READY=1 and STOPPING=1 hang here).
        self.on_started: list[Callable[[], None]] = []
        self.on_stopping: list[Callable[[], None]] = []
        self._reactor = reactor
        self._readiness = readiness
        self._on_fatal = on_fatal
        self._start_timeout = start_timeout
        self._started: list[service.IService] = []
        self._starting: defer.Deferred[None] | None = None
        self._pending: defer.Deferred[Any] | None = None
        self._state = "stopped"
        self._stopping_child: str | None = None
        self._stop_deadline_passed = False
        self.fatal: tuple[str, str] | None = None
        readiness.add("startup", self._check)

    def _check(self) -> Check:
        if self._state == "running":
            return Check.ok(f"{len(self._started)} components running")
        if self._state == "starting":
            names = [getattr(child, "name", "?") for child in self._started]
            return Check.fail("starting; running so far: " + (", ".join(names) or "none"))
        return Check.fail(self._state)

    def setServiceParent(self, parent: Any) -> Any:
        # twistd builds the Application after makeService returns and logs
        # through the ILogObserver component it finds there: this is how the
        # configured format and level reach twistd's own log lines too.
        if self._log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self._log_observer)
        return super().setServiceParent(parent)

    def privilegedStartService(self) -> None:
        for child in self:
            child.privilegedStartService()

    def startService(self) -> defer.Deferred[None]:
        service.Service.startService(self)
        self._state = "starting"
        self._starting = defer.Deferred()
        # twistd calls this before the reactor runs; starting children only
        # once it runs means that signal handlers, timeouts and the "started"
        # line all refer to a live process.
        self._reactor.callWhenRunning(self._begin)
        return self._starting

    def _begin(self) -> None:
        starting = self._starting
        if starting is None or starting.called:
            return
        defer.ensureDeferred(self._start_children()).chainDeferred(starting)

    async def _start_children(self) -> None:
        for child in list(self):
            if self._state != "starting":
                return
            name = getattr(child, "name", None) or type(child).__name__
            log.debug("starting {child}", child=name)
            pending = defer.maybeDeferred(child.startService)
            pending.addTimeout(self._start_timeout, self._reactor, self._timed_out)
            self._pending = pending
            try:
                await pending
            except Exception:
                self._pending = None
                failure = Failure()
                if self._state != "starting":  # a stop cancelled this start
                    return
                self._fail(name, failure)
                return
            self._pending = None
            self._started.append(child)
        self._state = "running"
        log.info(
            "started: {children}",
            children=", ".join(getattr(c, "name", "?") for c in self._started),
        )
        self._run_hooks(self.on_started)

    def _run_hooks(self, hooks: list[Callable[[], None]]) -> None:
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.failure("hook {hook!r} failed", hook=hook)

    def _timed_out(self, result: Any, timeout: float) -> Any:
        if isinstance(result, Failure) and result.check(defer.CancelledError):
            return Failure(ChildStartTimeout(timeout))
        return result

    def _fail(self, name: str, failure: Failure) -> None:
        self._state = "failed to start"
        self.fatal = (name, _cause(failure))
        log.critical("{child} failed to start: {cause}", child=name, cause=self.fatal[1])
        log.debug("{child} start failure detail", child=name, log_failure=failure)
        code = getattr(failure.value, "exit_code", START_FAILED)
        self._on_fatal(code if isinstance(code, int) and code > 0 else START_FAILED)

    def stopService(self) -> defer.Deferred[None]:
        if not self.running:
            return defer.succeed(None)
        self._run_hooks(self.on_stopping)
        stopping = defer.ensureDeferred(self._stop_children())
        # Not Deferred.addTimeout: its handler runs only once the Deferred
        # fires, and a cancelled coroutine goes on to stop the next child,
        # which may stall too; the deadline has to end the wait by itself.
        done: defer.Deferred[None] = defer.Deferred()
        deadline = self._reactor.callLater(self._stop_timeout, self._stop_timed_out, stopping, done)

        def finished(_: Any) -> None:
            if deadline.active():
                deadline.cancel()
            if not done.called:
                done.callback(None)

        stopping.addBoth(finished)
        return done

    def _stop_timed_out(self, stopping: defer.Deferred[None], done: defer.Deferred[None]) -> None:
        # Stopping stalled (a flush that cannot reach the database, say): let
        # the process end, but not with a clean status.
        self._stop_deadline_passed = True
        log.critical(
            "shutdown took longer than {timeout:g} s (server.shutdown_timeout), "
            "still stopping {child}; exiting with what has been saved",
            timeout=self._stop_timeout,
            child=self._stopping_child or "a child still starting",
        )
        self._on_fatal(SHUTDOWN_TIMED_OUT)
        done.callback(None)
        stopping.cancel()  # the stalled child is abandoned; the rest still get a stop

    async def _stop_children(self) -> None:
        if not self.running:
            return
        service.Service.stopService(self)
        was_failed = self._state == "failed to start"
        self._state = "stopping"
        if self._pending is not None:
            self._pending.cancel()  # a child still starting stops waiting
        if self._starting is not None:
            if not self._starting.called and self._pending is None:
                self._starting.callback(None)  # never began: the reactor never ran
            await self._starting
        while self._started:
            child = self._started.pop()
            name = getattr(child, "name", "?")
            self._stopping_child = name
            try:
                await defer.maybeDeferred(child.stopService)
            except defer.CancelledError:
                if not self._stop_deadline_passed:
                    log.failure("{child} failed to stop cleanly", child=name)
                # else: the deadline's critical line already names it
            except Exception:
                log.failure("{child} failed to stop cleanly", child=name)
            else:
                log.debug("stopped {child}", child=name)
        self._stopping_child = None
        self._state = "failed to start" if was_failed else "stopped"
