"""systemd's notify protocol: READY, RELOADING, STOPPING, WATCHDOG, STATUS.

A datagram to the socket named by NOTIFY_SOCKET (a path, or "@name" in the
abstract namespace).  Without NOTIFY_SOCKET every call does nothing, so the
daemon behaves the same outside systemd.  Sending never blocks: a datagram
that cannot go out at once is dropped and counted (systemd treats missing
watchdog pings as a hang, which is what a blocked daemon is).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from twisted.logger import Logger

log = Logger(namespace="cosmic.sdnotify")


class Notifier:
    def __init__(
        self,
        environ: Mapping[str, str],
        monotonic: Callable[[], float] = time.monotonic,
        pid: int | None = None,
    ) -> None:
        self._address: str | bytes | None = None
        address = environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            self._address = "\0" + address[1:]
        elif address.startswith("/"):
            self._address = address
        self._monotonic = monotonic
        self._socket: socket.socket | None = None
        self.dropped = 0
        self.watchdog_interval = _watchdog_interval(environ, os.getpid() if pid is None else pid)
        self._last_watchdog = -float("inf")

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: object) -> bool:
        """Send KEY=value lines (keys upper-cased); True if the datagram went out."""
        if self._address is None:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)
        try:
            self._socket.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            self.dropped += 1
            log.warn("sd_notify {message!r} not sent: {error}", message=message, error=exc)
            return False
        return True

    def ready(self, status: str = "") -> None:
        fields: dict[str, object] = {"READY": 1}
        if status:
            fields["STATUS"] = status
        self.send(**fields)

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd (Type=notify-reload) match the reload.
        self.send(RELOADING=1, MONOTONIC_USEC=int(self._monotonic() * 1_000_000))

    def stopping(self) -> None:
        self.send(STOPPING=1)

    def status(self, text: str) -> None:
        self.send(STATUS=text)

    def watchdog(self) -> None:
        """Ping the watchdog, at most twice per WatchdogSec (cheap to call every tick)."""
        if self.watchdog_interval is None:
            return
        now = self._monotonic()
        if now - self._last_watchdog >= self.watchdog_interval / 2:
            self._last_watchdog = now
            self.send(WATCHDOG=1)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    usec = environ.get("WATCHDOG_USEC", "")
    target = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if target and (not target.isdigit() or int(target) != pid):
        return None
    return int(usec) / 1_000_000
