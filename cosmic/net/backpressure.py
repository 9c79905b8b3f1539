"""The per-client send queue: bounded in bytes, driven by the transport.

The ``Outbox`` registers with the client's transport as a streaming producer.
While the transport keeps up, frames go straight through.  When its write
buffer fills (the peer reads too slowly), the transport pauses the outbox,
and then:

* state frames (deltas, full syncs) are not queued at all: the broadcaster
  sees ``congested`` and skips the client, and the next frame it sends, once
  the transport drains, is computed against the last frame the client got,
  so it carries everything skipped (coalescing, no loss);
* non-critical messages (``HeartbeatAck``) are dropped;
* critical messages (answers, errors) are queued, up to ``limit_bytes``;
* a client paused for ``slow_timeout`` seconds, or whose critical queue
  overflows, is closed (``on_slow``, WS_CONN_002).

So what one client can make the server hold is: the transport's buffer
(about 64 KiB past which it pauses us, plus the frame that crossed the
mark) and ``limit_bytes`` of queued answers.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

Write = Callable[[bytes, bool], None]


@implementer(IPushProducer)
class Outbox:
    def __init__(
        self,
        write: Write,
        *,
        limit_bytes: int,
        slow_timeout: float,
        clock: Any,
        on_slow: Callable[[str], None],
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self._write = write
        self.limit_bytes = limit_bytes
        self.slow_timeout = slow_timeout
        self.clock = clock
        self._on_slow = on_slow
        self._on_drop = on_drop
        self.paused = False
        self.closed = False
        self.queue: collections.deque[tuple[bytes, bool, str]] = collections.deque()
        self.queued_bytes = 0
        self.paused_since: float | None = None
        self._timer: Any = None

    @property
    def congested(self) -> bool:
        """True while a state frame should wait (be coalesced into a later one)."""
        return self.paused or bool(self.queue)

    def send(self, payload: bytes, binary: bool, kind: str, *, critical: bool = True) -> bool:
        """Write now, queue, or drop; True unless the frame was dropped."""
        if self.closed:
            return False
        if not self.congested:
            self._write(payload, binary)
            return True
        if not critical:
            self._dropped(kind)
            return False
        self.queue.append((payload, binary, kind))
        self.queued_bytes += len(payload)
        if self.queued_bytes > self.limit_bytes:
            self._slow(f"{self.queued_bytes} bytes of answers waiting (limit {self.limit_bytes})")
        return True

    def _dropped(self, kind: str) -> None:
        if self._on_drop is not None:
            self._on_drop(kind)

    def _slow(self, why: str) -> None:
        if self.closed:
            return
        self.close()
        self._on_slow(why)

    # -- IPushProducer: the transport tells us when to stop and go ---------------

    def pauseProducing(self) -> None:
        if self.closed or self.paused:
            return
        self.paused = True
        self.paused_since = self.clock.seconds()
        if self._timer is None and self.slow_timeout > 0:
            self._timer = self.clock.callLater(self.slow_timeout, self._timed_out)

    def resumeProducing(self) -> None:
        if self.closed:
            return
        self.paused = False
        self.paused_since = None
        self._cancel_timer()
        while self.queue and not self.paused and not self.closed:
            payload, binary, _ = self.queue.popleft()
            self.queued_bytes -= len(payload)
            self._write(payload, binary)  # may pause us again, synchronously

    def stopProducing(self) -> None:
        self.close()

    def _timed_out(self) -> None:
        self._timer = None
        if self.paused:
            self._slow(f"the connection stayed blocked for {self.slow_timeout:g} s")

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def close(self) -> None:
        """Forget everything queued; send nothing more."""
        self.closed = True
        self._cancel_timer()
        self.queue.clear()
        self.queued_bytes = 0
