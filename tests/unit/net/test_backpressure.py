"""The per-client send queue under a transport that stops reading (task.Clock)."""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from cosmic.net.backpressure import Outbox


class Recorder:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.slow: list[str] = []
        self.dropped: list[str] = []

    def outbox(self, clock: Clock, limit: int = 1000, slow: float = 5.0) -> Outbox:
        return Outbox(
            lambda payload, binary: self.written.append(payload),
            limit_bytes=limit,
            slow_timeout=slow,
            clock=clock,
            on_slow=self.slow.append,
            on_drop=self.dropped.append,
        )


def test_writes_straight_through_while_the_transport_keeps_up() -> None:
    r = Recorder()
    box = r.outbox(Clock())
    assert IPushProducer.providedBy(box)
    assert box.send(b"a", True, "StateDelta")
    assert r.written == [b"a"] and not box.congested


def test_paused_queues_answers_drops_non_critical_and_flushes_in_order() -> None:
    r, clock = Recorder(), Clock()
    box = r.outbox(clock)
    box.pauseProducing()
    assert box.congested
    assert box.send(b"answer-1", True, "CommandResult")
    assert not box.send(b"ack", True, "HeartbeatAck", critical=False)
    assert box.send(b"answer-2", True, "Error")
    assert r.written == [] and r.dropped == ["HeartbeatAck"]
    assert box.queued_bytes == len(b"answer-1answer-2")
    clock.advance(4.9)
    box.resumeProducing()
    assert r.written == [b"answer-1", b"answer-2"]
    assert box.queued_bytes == 0 and not box.congested
    clock.advance(10)
    assert r.slow == []  # resumed in time: the timer was cancelled


def test_a_client_blocked_past_the_slow_timeout_is_closed() -> None:
    r, clock = Recorder(), Clock()
    box = r.outbox(clock, slow=5.0)
    box.pauseProducing()
    clock.advance(4.99)
    assert r.slow == []
    clock.advance(0.02)
    assert len(r.slow) == 1 and "blocked for 5 s" in r.slow[0]
    assert box.closed and not box.send(b"x", True, "Error")
    assert clock.getDelayedCalls() == []


def test_overflowing_the_byte_limit_closes_and_frees_the_queue() -> None:
    r, clock = Recorder(), Clock()
    box = r.outbox(clock, limit=100)
    box.pauseProducing()
    for _ in range(10):
        box.send(b"x" * 10, True, "CommandResult")
    assert r.slow == [] and box.queued_bytes == 100
    box.send(b"y", True, "CommandResult")
    assert len(r.slow) == 1 and "101 bytes" in r.slow[0]
    assert box.queued_bytes == 0 and not box.queue
    assert clock.getDelayedCalls() == []


def test_a_write_that_fills_the_transport_again_stops_the_flush() -> None:
    clock = Clock()
    transport = StringTransport()
    written: list[bytes] = []

    def write(payload: bytes, binary: bool) -> None:
        written.append(payload)
        box.pauseProducing()  # what a full transport does, synchronously

    box = Outbox(write, limit_bytes=1000, slow_timeout=5, clock=clock, on_slow=print)
    transport.registerProducer(box, True)
    box.pauseProducing()
    for k in range(3):
        box.send(b"%d" % k, True, "CommandResult")
    box.resumeProducing()
    assert written == [b"0"] and len(box.queue) == 2
    box.resumeProducing()
    box.resumeProducing()
    assert written == [b"0", b"1", b"2"]


def test_stop_producing_forgets_everything() -> None:
    r, clock = Recorder(), Clock()
    box = r.outbox(clock)
    box.pauseProducing()
    box.send(b"x", True, "Error")
    box.stopProducing()
    assert box.closed and box.queued_bytes == 0 and clock.getDelayedCalls() == []
    box.resumeProducing()
    assert r.written == []
