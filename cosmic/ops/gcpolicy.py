"""When the garbage collector runs, and what it costs.

CPython's automatic full collection walks every tracked object.  With
10,000 players that is over a million objects: in bench/load.py each full
collection held the reactor for 0.8-1.2 s, every few seconds (each time the
objects that survived into the oldest generation grew by a quarter, which
the frames kept for resuming do all the time), and found almost no garbage:
tens of objects.  So, when ``runtime.gc_full_interval`` is set:

* at start, once every component is up, one collection and then
  ``gc.freeze()``: modules, classes and configuration live as long as the
  process and never need scanning again;
* the automatic full collections are off (the oldest generation's threshold
  is raised out of reach); the young generations still collect as usual,
  which is where almost all cyclic garbage dies;
* a full collection runs every ``gc_full_interval`` seconds instead, timed,
  logged and counted, so cycles that do reach the oldest generation are
  still freed, at a known rate.

Every collection's pause is in ``gc_pause_seconds{generation}`` whatever the
setting, so an operator can see what the collector costs before changing it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet import task
from twisted.logger import Logger

log = Logger(namespace="cosmic.ops.gc")

# gc.set_threshold's third value: this many second-generation collections
# before a full one, i.e. never while the daemon runs its own.
NO_AUTOMATIC_FULL = 1_000_000_000


class GcPolicy(service.Service):
    name = "gc"

    def __init__(
        self,
        full_interval: float,
        metrics: Any,
        *,
        clock: Any,
        collector: Any = gc,
        perf_counter: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.full_interval = full_interval
        self._clock = clock
        self._gc = collector
        self._perf = perf_counter
        self._started_at: float | None = None
        self._thresholds: tuple[int, ...] | None = None
        self._loop: task.LoopingCall | None = None
        self.full_collections = 0
        # Resolved now: labels() takes a lock and allocates, which a callback
        # running inside some other labels() call must not do.
        self._pauses = {g: metrics.pause.labels(generation=str(g)) for g in range(3)}
        self._collected = {g: metrics.collected.labels(generation=str(g)) for g in range(3)}

    def startService(self) -> None:
        super().startService()
        self._gc.callbacks.append(self._observe)
        if self.full_interval <= 0:
            return
        self._gc.collect()
        self._gc.freeze()
        self._thresholds = self._gc.get_threshold()
        young, middle = self._thresholds[:2]
        self._gc.set_threshold(young, middle, NO_AUTOMATIC_FULL)
        self._loop = task.LoopingCall(self.collect_full)
        self._loop.clock = self._clock
        self._loop.start(self.full_interval, now=False)
        log.info(
            "garbage collector: {frozen} objects frozen at start; full collections "
            "every {interval:g} s instead of automatic ones",
            frozen=self._gc.get_freeze_count(),
            interval=self.full_interval,
        )

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._thresholds is not None:
            self._gc.set_threshold(*self._thresholds)
            self._thresholds = None
            self._gc.unfreeze()  # stopped, the process is as it was before
        if self._observe in self._gc.callbacks:
            self._gc.callbacks.remove(self._observe)

    def collect_full(self) -> int:
        """One full collection now (also from the manhole); objects freed."""
        started = self._perf()
        freed = self._gc.collect()
        took = self._perf() - started
        self.full_collections += 1
        log.info(
            "full garbage collection: {freed} objects freed in {ms:.0f} ms",
            freed=freed,
            ms=took * 1000.0,
        )
        return freed

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        # Called by the interpreter around every collection, on whatever
        # thread triggered it: only arithmetic and metric updates here.
        if phase == "start":
            self._started_at = self._perf()
            return
        if self._started_at is None:
            return
        took, self._started_at = self._perf() - self._started_at, None
        generation = info.get("generation")
        if generation in self._pauses:
            self._pauses[generation].observe(took)
            self._collected[generation].inc(info.get("collected", 0))
