"""sd_notify datagrams on real UNIX sockets, path and abstract; the watchdog
pings driven by the game loop as tap wires it."""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from cosmic import tap
from cosmic.ops.sdnotify import Notifier


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
        name = address
    else:
        name = f"@cosmic-test-{os.getpid()}-{id(sock)}"
        sock.bind("\0" + name[1:])
    sock.settimeout(5)
    yield sock, name
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    return messages


def test_messages_arrive_in_order(listener) -> None:
    sock, name = listener
    clock = Clock()
    notifier = Notifier({"NOTIFY_SOCKET": name}, monotonic=clock)
    notifier.ready("serving")
    notifier.reloading()
    notifier.ready()
    notifier.stopping()
    assert received(sock) == [
        "READY=1\nSTATUS=serving",
        "RELOADING=1\nMONOTONIC_USEC=100000000",
        "READY=1",
        "STOPPING=1",
    ]


def test_watchdog_pings_at_most_twice_per_period(listener) -> None:
    sock, name = listener
    clock = Clock()
    notifier = Notifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "10000000"}, monotonic=clock)
    for _ in range(600):  # ten seconds of 60 Hz ticks
        notifier.watchdog()
        clock.now += 1 / 60
    assert received(sock) == ["WATCHDOG=1"] * 2


def test_watchdog_for_another_pid_is_ignored(listener) -> None:
    sock, name = listener
    env = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    notifier = Notifier(env, pid=4242)
    assert notifier.watchdog_interval is None
    notifier.watchdog()
    assert received(sock) == []
    assert Notifier({**env, "WATCHDOG_PID": "4242"}, pid=4242).watchdog_interval == 1.0


def test_without_notify_socket_nothing_happens() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.send(READY=1) is False


def test_a_missing_socket_is_counted_not_raised(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.send(READY=1) is False
    assert notifier.dropped == 1


class Worker:
    """Stands in for the physics thread: steps finish at once until held."""

    def __init__(self) -> None:
        self.held = False
        self.pending: list[tuple[Any, defer.Deferred[Any]]] = []

    def __call__(self, f: Any) -> defer.Deferred[Any]:
        if not self.held:
            return defer.maybeDeferred(f)
        d: defer.Deferred[Any] = defer.Deferred()
        self.pending.append((f, d))
        return d

    def release(self) -> None:
        self.held = False
        for f, d in self.pending:
            defer.maybeDeferred(f).chainDeferred(d)
        self.pending = []


def test_a_stalled_game_loop_stops_the_watchdog_pings(listener) -> None:
    sock, name = listener
    reactor = MemoryReactorClock()
    environ = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "2000000"}
    options = tap.Options(environ=environ, stdout=io.StringIO(), stderr=io.StringIO())
    options.parseOptions(["--env", "test"])
    root = tap.makeService(
        options, reactor=reactor, stream=io.StringIO(), on_fatal=lambda code: None
    )
    loop = root.game.loop
    notifier = loop.on_tick.__self__  # what tap wired: the daemon's own Notifier
    assert isinstance(notifier, Notifier)
    notifier._monotonic = reactor.seconds  # one clock for the loop and the pings
    worker = Worker()
    loop._run_in_thread = worker
    loop.startService()
    try:
        for _ in range(180):  # three seconds at 60 Hz, a ping per second
            reactor.advance(1 / 60)
        assert received(sock) == ["WATCHDOG=1"] * 3

        worker.held = True  # a physics step that does not come back
        ticks = loop.ticks
        for _ in range(600):
            reactor.advance(1 / 60)
        assert loop.ticks == ticks
        assert received(sock) == []  # systemd would restart the daemon now

        worker.release()
        assert received(sock) == ["WATCHDOG=1"]
        for _ in range(120):
            reactor.advance(1 / 60)
        assert received(sock) == ["WATCHDOG=1"] * 2
    finally:
        worker.release()
        loop.stopService()
