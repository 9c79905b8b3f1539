"""The game loop service: the one piece of cosmic.game that knows Twisted.

Separate LoopingCalls drive physics (GAME_LOOP_TARGET_TPS), resources (each
garden once per resource interval, a slice of the gardens at a time), the
broadcast hook and cleanup.  The physics step runs in one dedicated
worker thread (the compiled kernels release the GIL),
and while it runs the reactor does not touch the world: everything else that
reads or changes the world waits for the step to hand the world back.  A tick
that raises is logged and counted and the loop goes on; a tick that comes
late is an overrun, counted and logged with the load at the time.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any, Protocol

from twisted.application import service
from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

log = Logger(namespace="cosmic.game.loop")


class QueueFull(Exception):
    """The command queue is full: the client should slow down (WS_RATE)."""

    code = "WS_RATE_002"


class World(Protocol):
    def apply_command(self, command: Any) -> Any: ...
    def prepare_step(self, dt_seconds: float) -> Any: ...
    def finish_step(self, job: Any) -> None: ...
    def resource_tick_slice(self, index: int, slices: int, dt_seconds: float) -> None: ...
    def load(self) -> dict[str, int]: ...


class _Rate:
    """One LoopingCall with error containment and overrun accounting."""

    def __init__(
        self, loop: GameLoop, name: str, interval: float, work: Callable[[int], Any]
    ) -> None:
        self.name = name
        self.interval = interval
        self._loop = loop
        self._work = work
        self.calls = 0
        self.overruns = 0
        self.errors = 0
        self._call: task.LoopingCall | None = None
        self._busy = False  # a tick's Deferred has not fired yet
        self._restart = False  # the interval changed while busy

    @property
    def running(self) -> bool:
        return self._call is not None and self._call.running

    def start(self) -> None:
        # A fresh LoopingCall every time: restarting one whose tick is still
        # in flight would schedule a second delayed call when that tick ends.
        call = task.LoopingCall.withCount(self._tick)
        call.clock = self._loop.clock
        self._call = call
        call.start(self.interval, now=False).addErrback(self._died)

    def _died(self, failure: Failure) -> None:  # pragma: no cover - _tick never raises
        log.failure("{rate} loop died", failure=failure, rate=self.name)

    def set_interval(self, interval: float) -> None:
        """Takes effect from the next tick: at once when idle, else as soon
        as the tick in flight has finished."""
        if interval == self.interval:
            return
        self.interval = interval
        if not self.running:
            return
        if self._busy:
            self._restart = True
        else:
            self._replace()

    def _replace(self) -> None:
        assert self._call is not None
        self._call.stop()
        self.start()

    def stop(self) -> None:
        self._restart = False
        if self.running:
            assert self._call is not None
            self._call.stop()

    def _tick(self, count: int) -> defer.Deferred[None] | None:
        self.calls += 1
        self._loop.ticked(self.name)
        if count > 1:
            self.overruns += count - 1
            self._loop.overrun(self.name, count - 1)
        try:
            result = self._work(count)
        except Exception:
            self._failed(Failure())
            return None
        if isinstance(result, defer.Deferred):
            # Returning the Deferred makes LoopingCall wait for it: a slow
            # step delays the next tick (an overrun) instead of piling up.
            self._busy = True
            return result.addErrback(self._failed).addBoth(self._settled)
        return None

    def _settled(self, result: Any) -> Any:
        self._busy = False
        if self._restart:
            # The old LoopingCall is between ticks now (no call scheduled):
            # stopping it only ends it, and the new one starts from here.
            self._restart = False
            self._replace()
        return result

    def _failed(self, failure: Failure) -> None:
        self.errors += 1
        self._loop.failed(self.name, failure)


class GameLoop(service.Service):
    name = "game"

    def __init__(
        self,
        world: World,
        *,
        tps: int,
        resource_interval: float = 1.0,
        slices: int = 10,
        queue_size: int = 10_000,
        clock: Any,
        reactor: Any = None,
        run_in_thread: Callable[[Callable[[], Any]], defer.Deferred[Any]] | None = None,
        on_tick: Callable[[], None] | None = None,
        metrics: Any = None,
        perf_counter: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.world = world
        self.clock = clock
        self._reactor = reactor
        self._run_in_thread = run_in_thread
        self._pool: ThreadPool | None = None
        self._metrics = metrics
        self._perf = perf_counter
        self.on_tick = on_tick  # after every physics tick (the systemd watchdog)
        self.queue: collections.deque[tuple[Any, defer.Deferred[Any]]] = collections.deque()
        self.queue_size = queue_size
        self._stepping: defer.Deferred[None] | None = None
        self._waiting: list[tuple[Callable[[], Any], defer.Deferred[Any]]] = []
        self.last_step_seconds = 0.0
        self.last_tick_at: float | None = None
        self.ticks = 0
        if slices < 1:
            raise ValueError(f"slices must be at least 1, got {slices}")
        # The resource pass is spread over ``slices`` ticks per interval so
        # that no single reactor turn walks every garden (docs/game.rst).
        self.slices = slices
        self.resource_interval = resource_interval
        self._next_slice = 0
        self.rates: dict[str, _Rate] = {}
        self._add("physics", 1.0 / tps, lambda _count: self._physics())
        self._add("resources", resource_interval / slices, self._resources)

    def _add(self, name: str, interval: float, work: Callable[[int], Any]) -> None:
        if name in self.rates:
            raise ValueError(f"the game loop already has a {name} rate")
        self.rates[name] = _Rate(self, name, interval, work)

    def add_hook(self, name: str, interval: float, work: Callable[[], Any]) -> None:
        """Run ``work`` every ``interval`` seconds while no step holds the world
        (broadcast, cleanup).  Add hooks before starting."""
        self._add(name, interval, lambda _count: self.when_idle(work))

    # -- lifecycle ---------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self._run_in_thread is None:
            self._pool = ThreadPool(minthreads=1, maxthreads=1, name="cosmic-physics")
            self._pool.start()
            pool, reactor = self._pool, self._reactor
            self._run_in_thread = lambda f: threads.deferToThreadPool(reactor, pool, f)
        for rate in self.rates.values():
            rate.start()
        log.info(
            "game loop running: {rates}",
            rates=", ".join(f"{r.name} every {r.interval:.4g} s" for r in self.rates.values()),
        )

    async def _stop(self) -> None:
        for rate in self.rates.values():
            rate.stop()
        if self._stepping is not None:
            await self._stepping
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.stop()  # no step in flight: the idle worker joins at once
            self._run_in_thread = None

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        return defer.ensureDeferred(self._stop())

    def set_rates(self, *, tps: int | None = None, **intervals: float) -> None:
        """Change tick rates while running (SIGHUP reload)."""
        if tps is not None:
            self.rates["physics"].set_interval(1.0 / tps)
        for name, interval in intervals.items():
            if name == "resources":
                self.resource_interval = interval
                self.rates[name].set_interval(interval / self.slices)
            elif name in self.rates:
                self.rates[name].set_interval(interval)

    # -- the world hand-off ------------------------------------------------------

    def when_idle(self, work: Callable[[], Any]) -> defer.Deferred[Any]:
        """Run ``work`` on the reactor thread once no step holds the world."""
        if self._stepping is None:
            return defer.maybeDeferred(work)
        waiting: defer.Deferred[Any] = defer.Deferred()
        self._waiting.append((work, waiting))
        return waiting

    def _release(self) -> None:
        self._stepping = None
        waiting, self._waiting = self._waiting, []
        for work, d in waiting:
            defer.maybeDeferred(work).chainDeferred(d)

    # -- commands ----------------------------------------------------------------

    def submit(self, command: Any) -> defer.Deferred[Any]:
        """Queue a command for the start of the next physics tick."""
        if len(self.queue) >= self.queue_size:
            if self._metrics is not None:
                self._metrics.commands_rejected.inc()
            return defer.fail(
                QueueFull(
                    f"the game is busy: {len(self.queue)} commands are waiting; retry shortly"
                )
            )
        d: defer.Deferred[Any] = defer.Deferred()
        self.queue.append((command, d))
        return d

    def _apply_commands(self) -> None:
        # Only what was queued before this tick: commands queued by callbacks
        # wait for the next one, so a flood cannot stall the tick.
        for _ in range(len(self.queue)):
            command, d = self.queue.popleft()
            try:
                result = self.world.apply_command(command)
            except Exception:
                self._count_command("error")
                d.errback(Failure())
            else:
                self._count_command("ok")
                d.callback(result)

    # -- ticks -------------------------------------------------------------------

    def _physics(self) -> defer.Deferred[None]:
        if self._stepping is not None:  # cannot happen with LoopingCall; be safe
            return self._stepping
        self._apply_commands()
        dt = self.rates["physics"].interval
        job = self.world.prepare_step(dt)
        started = self._perf()
        assert self._run_in_thread is not None
        stepping = self._run_in_thread(job.run)
        self._stepping = stepping

        def finished(_: Any) -> None:
            self.last_step_seconds = self._perf() - started
            self.world.finish_step(job)
            self.ticks += 1
            self.last_tick_at = self.clock.seconds()
            if self._metrics is not None:
                load = self.world.load()
                self._metrics.gardens.set(load.get("gardens", 0))
                self._metrics.bodies.set(load.get("bodies", 0))
                self._metrics.queued.set(len(self.queue))
            if self.on_tick is not None:
                self.on_tick()

        def release(result: Any) -> Any:
            self._release()
            return result

        stepping.addCallback(finished)
        stepping.addBoth(release)
        return stepping

    def _resources(self, count: int) -> defer.Deferred[None]:
        # Slices missed by an overrun run now, so every garden is still
        # advanced once per interval; a whole interval missed is lost, as it
        # was before slicing.
        due = []
        for _ in range(min(count, self.slices)):
            due.append(self._next_slice)
            self._next_slice = (self._next_slice + 1) % self.slices
        interval, slices = self.resource_interval, self.slices

        def work() -> None:
            for index in due:
                self.world.resource_tick_slice(index, slices, interval)

        return self.when_idle(work)

    # -- accounting --------------------------------------------------------------

    def ticked(self, name: str) -> None:
        if self._metrics is not None:
            self._metrics.ticks.labels(loop=name).inc()

    def _count_command(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.commands.labels(outcome=outcome).inc()

    def overrun(self, name: str, missed: int) -> None:
        if self._metrics is not None:
            self._metrics.overruns.labels(loop=name).inc(missed)
        load = self.world.load()
        log.warn(
            "{loop} tick overran: {missed} tick(s) missed; last step {step_ms:.2f} ms, "
            "{gardens} gardens, {bodies} bodies, {queued} commands queued",
            loop=name,
            missed=missed,
            step_ms=self.last_step_seconds * 1000,
            gardens=load.get("gardens", 0),
            bodies=load.get("bodies", 0),
            queued=len(self.queue),
        )

    def failed(self, name: str, failure: Failure) -> None:
        if self._metrics is not None:
            self._metrics.tick_errors.labels(loop=name).inc()
        log.failure("{loop} tick failed; the loop goes on", failure=failure, loop=name)
