"""SIGTERM/SIGINT stop gracefully (exit 0); SIGHUP reloads configuration.

The reactor's own SIGTERM handler records the signal and twistd then kills
itself with it once stopped, so a clean, complete shutdown would still look
like a crash to a supervisor; these handlers replace it.  Handlers only hop
to the reactor thread: the work happens there, never inside the handler.
The manhole's ``reload()`` goes through ``SignalService.reload`` too, so a
reload is the same (files read in a thread, sd_notify around it) whoever
asks for it.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

from cosmic.config import ConfigError, Reloader, ReloadOutcome
from cosmic.settings import Settings

log = Logger(namespace="cosmic.signals")


class SignalService(service.Service):
    name = "signals"

    def __init__(
        self,
        reactor: Any,
        reloader: Reloader,
        install: Callable[[int, Any], Any] = signal.signal,
        run_blocking: Callable[..., defer.Deferred[Any]] | None = None,
        notifier: Any = None,
    ) -> None:
        self._reactor = reactor
        self._reloader = reloader
        self._notifier = notifier
        self._install_handler = install
        self._run_blocking = run_blocking or (
            lambda f: threads.deferToThreadPool(reactor, reactor.getThreadPool(), f)
        )
        self._stopping = False
        self._reloading = False
        # Reload requests (why, answer) that arrived since the last run began.
        self._queued: list[tuple[str, defer.Deferred[ReloadOutcome | None]]] = []

    def startService(self) -> None:
        super().startService()
        # After the reactor's own handlers, which it installs as it starts.
        self._reactor.callWhenRunning(self._install)

    def _install(self) -> None:
        self._install_handler(signal.SIGTERM, self._on_stop_signal)
        self._install_handler(signal.SIGINT, self._on_stop_signal)
        self._install_handler(signal.SIGHUP, self._on_hup)

    def _on_stop_signal(self, signum: int, frame: Any = None) -> None:
        self._reactor.callFromThread(self.request_stop, signal.Signals(signum).name)

    def _on_hup(self, signum: int, frame: Any = None) -> None:
        self._reactor.callFromThread(self.reload, "SIGHUP")

    def request_stop(self, why: str) -> None:
        if self._stopping:
            log.info("received {signal} while shutting down; still shutting down", signal=why)
            return
        self._stopping = True
        log.info("received {signal}, shutting down", signal=why)
        self._reactor.stop()

    def reload(self, why: str = "SIGHUP") -> defer.Deferred[ReloadOutcome | None]:
        """Re-read every layer off the reactor thread, then apply, between
        RELOADING=1 and READY=1.  Fires with the outcome (None after an
        unexpected error, which is logged).  A call while one runs is answered
        by one more run after it: that one sees the files as they are now."""
        answer: defer.Deferred[ReloadOutcome | None] = defer.Deferred()
        self._queued.append((why, answer))
        if not self._reloading:
            self._run()
        return answer

    def _run(self) -> None:
        answering, self._queued = self._queued, []
        self._reloading = True
        log.info("{why}: reloading configuration", why=answering[0][0])
        if self._notifier is not None:
            self._notifier.reloading()
        d = self._run_blocking(self._reloader.load)

        def loaded(result: Settings | Failure) -> ReloadOutcome:
            if isinstance(result, Failure):
                result.trap(ConfigError)  # refused settings are an outcome too
                result = result.value
            return self._reloader.apply(result)

        def done(result: ReloadOutcome | Failure) -> None:
            if isinstance(result, Failure):
                log.failure("reload failed unexpectedly", failure=result)
                result = None
            self._reloading = False
            if self._notifier is not None:
                self._notifier.ready("reloaded")
            for _, answer in answering:
                answer.callback(result)
            if self._queued:
                self._run()

        d.addBoth(loaded).addBoth(done)

    def stopService(self) -> None:
        # Handlers stay: a second SIGTERM during shutdown must not kill the
        # process before the flush; the reactor restores the originals at exit.
        self._stopping = True
        super().stopService()
