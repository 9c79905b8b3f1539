"""A real ``twistd cosmic`` process for integration tests.

Reads the daemon's JSON log lines from its stdout on a thread and lets a test
wait for an event (with a deadline) instead of sleeping.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")

Event = dict[str, Any]
# The test environment's password hashing already; spelled out for daemons
# that run another environment.
FAST_ARGON2 = (
    "--set",
    "auth.argon2_time_cost=1",
    "--set",
    "auth.argon2_memory_kib=8",
    "--set",
    "auth.argon2_parallelism=1",
)


def base_environ(**extra: str) -> dict[str, str]:
    """The test's environment without the caller's configuration variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COSMIC_") or k.startswith(("COSMIC_TEST_", "COSMIC_BUILD_"))
    }
    for name in (
        "ENVIRONMENT",
        "CONFIG_FILE",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "SERVER_PORT",
        "SERVER_HOST",
        "DATABASE_URL",
        "REDIS_URL",
        "JWT_SECRET",
    ):
        env.pop(name, None)
    env.update(extra)
    return env


class Daemon:
    def __init__(
        self, workdir: Path, *args: str, env: dict[str, str] | None = None, json_logs: bool = True
    ) -> None:
        self.workdir = workdir
        self.args = ["--nodaemon", "--pidfile=", "cosmic", "--env", "test", *args]
        self.env = env if env is not None else base_environ()
        self.json_logs = json_logs
        self.lines: list[str] = []
        self.events: list[Event] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None
        self.port: int | None = None

    def start(self, wait_listening: bool = True, timeout: float = 30.0) -> Daemon:
        self.proc = subprocess.Popen(
            [TWISTD, *self.args],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if wait_listening:
            event = self.wait_for(lambda e: e.get("event") == "listening", timeout)
            self.port = int(event["port"])
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _take(self, deadline: float) -> tuple[str | None, Event | None]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("daemon log wait timed out")
        line = self._queue.get(timeout=remaining)
        event = None
        if line is not None:
            self.lines.append(line)
            if self.json_logs and line.startswith("{"):
                event = json.loads(line)
                self.events.append(event)
        return line, event

    def mark(self) -> int:
        """A position in the event list, for waiting only on later events."""
        return len(self.events)

    def wait_for(
        self, match: Callable[[Event], bool], timeout: float = 15.0, since: int = 0
    ) -> Event:
        """The first event from ``since`` on (seen or new) for which ``match`` is true."""
        for event in self.events[since:]:
            if match(event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            try:
                line, event = self._take(deadline)
            except (queue.Empty, TimeoutError):
                raise AssertionError(
                    "timed out waiting for a log event; last lines:\n" + "\n".join(self.lines[-20:])
                ) from None
            if line is None:
                raise AssertionError("daemon exited; output:\n" + "\n".join(self.lines[-40:]))
            if event is not None and match(event):
                return event

    def wait_line(self, match: Callable[[str], bool], timeout: float = 15.0) -> str:
        """The first output line (seen or new) for which ``match`` is true."""
        for line in self.lines:
            if match(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            try:
                line, _ = self._take(deadline)
            except (queue.Empty, TimeoutError):
                raise AssertionError("timed out waiting for a log line") from None
            if line is None:
                raise AssertionError("daemon exited; output:\n" + "\n".join(self.lines[-40:]))
            if match(line):
                return line

    def drain(self, timeout: float = 15.0) -> list[str]:
        """Everything the process still prints until it exits."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._take(deadline)[0] is None:
                    return self.lines
            except (queue.Empty, TimeoutError):
                raise AssertionError("daemon did not exit in time") from None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.drain(timeout)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def run_twistd(
    workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run twistd to completion (for runs expected to exit by themselves)."""
    return subprocess.run(
        [TWISTD, *args],
        cwd=workdir,
        env=env if env is not None else base_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
