"""Exit status for a daemon that failed to start.

twistd always exits 0 once its reactor stops, so a fatal start error has no
way to reach a supervisor through it.  ``ProcessExit`` stops the reactor and
replaces the exit status at interpreter exit, after twistd has cleaned up.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import Any

from twisted.internet.error import ReactorNotRunning


class ProcessExit:
    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.code: int | None = None
        # Registered early so that it runs after the other exit handlers.
        atexit.register(self._exit)

    def __call__(self, code: int) -> None:
        self.code = code
        self._reactor.callWhenRunning(self._stop)

    def _stop(self) -> None:
        # Already stopping (a shutdown that timed out): only the status was missing.
        with contextlib.suppress(ReactorNotRunning):
            self._reactor.stop()

    def _exit(self) -> None:
        if self.code is None:
            return
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                pass
        os._exit(self.code)
