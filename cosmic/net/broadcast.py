"""The broadcast hook: every client's next state frame, at game.broadcast_hz.

``tick`` runs on the reactor while no physics step holds the world (the game
loop's "broadcast" hook).  Per garden somebody streams it builds one shared
``Frame`` (from ``world.delta``, or from ``world.snapshot`` when body
attributes may have changed or somebody needs a full sync), then gives each
client whose connection keeps up its own message: a delta against the last
frame that client received, or a full sync.  Clients whose connection is
congested are skipped (their next frame covers what they missed).

It also keeps every streamed garden loaded (``world.watch``), detached
sessions' gardens included, and takes observers off a garden that turned
private.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet import defer, task
from twisted.logger import Logger

from cosmic.net import messages
from cosmic.net.deltas import Frame, Stream, frame_from_delta, frame_from_snapshot
from cosmic.net.errors import WsError
from cosmic.net.sessions import OBSERVER

if TYPE_CHECKING:
    from cosmic.net.connection import Connection
    from cosmic.net.options import WsOptions
    from cosmic.net.sessions import Session, SessionRegistry

log = Logger(namespace="cosmic.net.broadcast")


@attrs.define
class Feed:
    """The last frame built for one garden, shared by its clients."""

    frame: Frame
    refreshed_tick: int
    # At most one body (no forces) and it at rest, as every garden starts:
    # nothing moves until an event (a new seq) brings bodies.
    at_rest: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.at_rest = _at_rest(self.frame)

    def update(self, frame: Frame) -> None:
        self.frame = frame
        self.at_rest = _at_rest(frame)


def _at_rest(frame: Frame) -> bool:
    return frame.ids.size <= 1 and not frame.velocity.any()


class Broadcaster:
    def __init__(
        self,
        game: Any,
        sessions: SessionRegistry,
        options: WsOptions,
        clock: Any,
        metrics: Any,
        perf: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.game = game
        self.sessions = sessions
        self.options = options
        self.clock = clock
        self.metrics = metrics
        self.perf = perf
        self.feeds: dict[int, Feed] = {}
        self._reloading: set[int] = set()
        self.ticks = 0
        self._spent = 0.0  # seconds of work in the running broadcast, slices summed
        self._built_at = 0.0  # ms: when the running tick started
        # Instrumentation (bench/websocket.py): called after every tick with
        # the clock time the tick started and the frames it built.
        self.listeners: list[Callable[[float, dict[int, Feed]], None]] = []

    # -- the hook -------------------------------------------------------------------

    def tick(self) -> defer.Deferred[None] | None:
        """One broadcast; a Deferred when it goes on in later reactor turns
        (the game loop starts the next one only after it fires)."""
        started = self.perf()
        started_at = self.clock.seconds()
        self._built_at = round(started_at * 1000.0, 3)
        self.ticks += 1
        world = self.game.world
        idle_every = self._idle_every()
        # Twice a second keeps watched gardens loaded (game.unload_after is
        # at least a second) and forgets unwatched feeds; on every broadcast
        # it was a pass over every session's garden, mostly for nothing.
        if self.ticks % max(1, round(self.options.broadcast_hz / 2)) == 0:
            watched = self.sessions.watched_gardens()
            for garden_id in watched:
                world.watch(garden_id)
            for garden_id in list(self.feeds):
                if garden_id not in watched:
                    del self.feeds[garden_id]
        gardens, feeds, ticks = world.gardens, self.feeds, self.ticks
        quiet: dict[int, int | None] = {}  # garden id -> its seq if at rest
        by_garden: dict[int, list[tuple[Connection, Stream]]] = {}
        for session in list(self.sessions.attached()):
            conn = session.client
            if conn is None or conn.closing:
                continue
            for stream in list(session.streams.values()):
                garden_id = stream.garden_id
                # Most players' gardens are at rest: leave them out here, before
                # any per-garden work, until their idle interval comes round.
                if not stream.needs_full and ticks - stream.sent_tick < idle_every:
                    rest_seq = quiet.get(garden_id, -1)
                    if rest_seq == -1:
                        feed, garden = feeds.get(garden_id), gardens.get(garden_id)
                        rest_seq = quiet[garden_id] = (
                            feed.frame.garden_seq
                            if feed is not None
                            and garden is not None
                            and feed.at_rest
                            and garden.seq == feed.frame.garden_seq
                            else None
                        )
                    # At rest, and this client has had its last event too
                    # (one that was congested, or resumed, may not have).
                    base = stream.base
                    if rest_seq is not None and base is not None and base.garden_seq == rest_seq:
                        continue
                by_garden.setdefault(garden_id, []).append((conn, stream))
        self._spent = self.perf() - started
        return self._run(list(by_garden.items()), 0, started_at)

    def _run(
        self, work: list[tuple[int, list[tuple[Connection, Stream]]]], at: int, started_at: float
    ) -> defer.Deferred[None] | None:
        """Send ``work[at:]``, yielding to the reactor after every
        ``ws.broadcast_slice`` seconds of it: a physics tick due meanwhile
        runs between two slices instead of waiting for every client's frame
        (with thousands of players one broadcast took 100-200 ms, the
        physics missed ten ticks each time, and the game slowed down).
        Yielding only when a tick was due measured worse: each yield waits
        for a step, and fewer, longer slices left the reactor idle longer."""
        began = self.perf()
        budget = self.options.broadcast_slice
        while at < len(work):
            garden_id, entries = work[at]
            at += 1
            try:
                self._garden(garden_id, entries)
            except Exception:
                log.failure("broadcast of garden {garden_id} failed", garden_id=garden_id)
            if budget and at < len(work) and self.perf() - began >= budget:
                self._spent += self.perf() - began
                later = task.deferLater(self.clock, 0, lambda: None)
                # when_idle: the world may be stepping by the time this runs.
                return later.addCallback(
                    lambda _, at=at: self.game.loop.when_idle(
                        lambda: self._run(work, at, started_at)
                    )
                )
        self._spent += self.perf() - began
        self.metrics.broadcast_duration.observe(self._spent)
        for listener in self.listeners:
            listener(started_at, self.feeds)
        return None

    def _garden(self, garden_id: int, entries: list[tuple[Connection, Stream]]) -> None:
        garden = self.game.world.gardens.get(garden_id)
        if garden is None:  # unloaded under us: load it again, full sync after
            for _, stream in entries:
                stream.force_full("reloaded")
            self.feeds.pop(garden_id, None)
            self._reload(garden_id)
            return
        feed = self.feeds.get(garden_id)
        quiet = feed is not None and feed.at_rest and garden.seq == feed.frame.garden_seq
        idle_every = self._idle_every()
        ready: list[tuple[Connection, Stream]] = []
        for conn, stream in entries:
            session = conn.session
            if conn.closing or session is None or session.streams.get(garden_id) is not stream:
                continue  # gone since this broadcast began (it may span reactor turns)
            if (
                quiet
                and not stream.needs_full
                and self.ticks - stream.sent_tick < idle_every
                and stream.base is not None
                and stream.base.garden_seq == garden.seq
            ):
                # Nothing but resources and research timers, which the client
                # extrapolates from the rates it has: not worth a message
                # per player per broadcast.
                continue
            if (
                stream.role == OBSERVER
                and not garden.public
                and session is not None
                and garden.owner_id != session.player_id
            ):
                self._stop(conn, session, garden_id, "private")
                continue
            if conn.outbox.congested:
                stream.coalesced += 1
                self.metrics.coalesced.inc()
                continue
            ready.append((conn, stream))
        if not ready:
            return
        frame, events = self._frame(garden_id, garden, [stream for _, stream in ready])
        shared: dict[tuple[int, int], dict[str, Any]] = {}
        for conn, stream in ready:
            self._send(conn, stream, frame, events, cache=shared)

    def _idle_every(self) -> int:
        """Broadcasts between two frames of a garden at rest."""
        return max(1, round(self.options.idle_interval * self.options.broadcast_hz))

    # -- frames -----------------------------------------------------------------------

    def _frame(
        self, garden_id: int, garden: Any, streams: list[Stream]
    ) -> tuple[Frame, dict[int, list[dict[str, Any]] | None]]:
        """The garden's frame now, and the events after each base's sequence."""
        world = self.game.world
        feed = self.feeds.get(garden_id)
        events: dict[int, list[dict[str, Any]] | None] = {}
        motion = None
        for since in sorted({s.base.garden_seq for s in streams if not s.needs_full and s.base}):
            delta = world.delta(garden_id, since)
            events[since] = None if delta is None else delta["events"]
            if delta is not None:
                motion = delta
        # Counted in broadcasts, not seconds: when ticks run late, refreshing
        # by the clock would rebuild every garden from a snapshot every tick
        # and make them later still.
        every = max(1, round(self.options.attributes_interval * self.options.broadcast_hz))
        refresh = (
            feed is None
            or any(s.needs_full for s in streams)
            or any(found is None for found in events.values())
            or garden.seq != feed.frame.garden_seq
            or self.ticks - feed.refreshed_tick >= every
        )
        frame = None
        if not refresh:
            assert feed is not None
            if motion is None:
                motion = world.delta(garden_id, garden.seq)
            if motion is not None:
                try:
                    frame = frame_from_delta(garden_id, motion, feed.frame, self.options.quanta)
                except ValueError:  # bodies came or went: attributes needed
                    frame = None
            if frame is not None:
                feed.update(frame)
        if frame is None:
            frame = frame_from_snapshot(garden_id, world.snapshot(garden_id), self.options.quanta)
            self.feeds[garden_id] = Feed(frame, self.ticks)
        return frame, events

    def _send(
        self,
        conn: Connection,
        stream: Stream,
        frame: Frame,
        events: dict[int, list[dict[str, Any]] | None],
        request_id: Any = None,
        cache: dict[tuple[int, int], dict[str, Any]] | None = None,
        built_at: float | None = None,
    ) -> None:
        found = None
        if not stream.needs_full and stream.base is not None:
            found = events.get(stream.base.garden_seq)
        reason = stream.full_reason or ("behind" if found is None else None)
        when = self._built_at if built_at is None else built_at
        kind, data = stream.message(frame, found, self.options.quanta, cache, when)
        stream.sent_tick = self.ticks
        if kind == messages.FULL_STATE_SYNC:
            self.metrics.full_syncs.labels(reason=reason or "behind").inc()
        conn.send(kind, data, request_id)

    # -- on request ----------------------------------------------------------------------

    def sync(self, conn: Connection, stream: Stream, request_id: Any = None) -> defer.Deferred:
        """Send ``stream``'s next frame now (from a handler)."""
        return self.game.loop.when_idle(lambda: self.sync_now(conn, stream, request_id))

    def sync_now(self, conn: Connection, stream: Stream, request_id: Any = None) -> None:
        session = conn.session
        if conn.closing or session is None or session.streams.get(stream.garden_id) is not stream:
            return
        if conn.outbox.congested:
            return  # the next broadcast to a drained connection carries it
        garden = self.game.world.gardens.get(stream.garden_id)
        if garden is None:
            stream.force_full("reloaded")
            raise WsError("WS_SYNC_004", f"garden {stream.garden_id} is being loaded; retry")
        frame, events = self._frame(stream.garden_id, garden, [stream])
        built_at = round(self.clock.seconds() * 1000.0, 3)
        self._send(conn, stream, frame, events, request_id, built_at=built_at)

    def observe(
        self, conn: Connection, session: Session, garden_id: int, request_id: Any
    ) -> bool | None:
        """Start streaming ``garden_id`` to ``conn`` (while the world is idle);
        None when the garden is not loaded (the caller loads it and retries)."""
        garden = self.game.world.gardens.get(garden_id)
        if garden is None:
            return None
        if not garden.public and garden.owner_id != session.player_id:
            raise WsError("WS_SYNC_001", f"no garden {garden_id} you may see")
        if conn.closing:
            return True
        if garden_id not in session.streams and len(session.observed) >= self.options.max_observed:
            raise WsError(
                "WS_SYNC_003", f"you may observe at most {self.options.max_observed} gardens"
            )
        stream = session.observe(garden_id)
        self.sessions.changed()
        self.game.world.watch(garden_id)
        self.sync_now(conn, stream, request_id)
        return True

    # -- gardens that went away ---------------------------------------------------------------

    def _stop(self, conn: Connection, session: Session, garden_id: int, reason: str) -> None:
        if session.stop_observing(garden_id):
            conn.send(messages.OBSERVATION_STOPPED, {"garden_ids": [garden_id], "reason": reason})
            self.sessions.changed()

    def _reload(self, garden_id: int) -> None:
        if garden_id in self._reloading:
            return
        self._reloading.add(garden_id)

        def failed(failure: Any) -> None:
            from cosmic.gardens import GardenNotFound

            if failure.check(GardenNotFound):
                self._gone(garden_id)
            else:
                log.failure("reloading garden {garden_id}", failure, garden_id=garden_id)

        d = defer.ensureDeferred(self.game.gardens.ensure_loaded(garden_id))
        d.addErrback(failed)
        d.addBoth(lambda _: self._reloading.discard(garden_id))

    def _gone(self, garden_id: int) -> None:
        """The garden no longer exists (its owner was deleted)."""
        for session in list(self.sessions.sessions.values()):
            if garden_id not in session.streams:
                continue
            conn = session.client
            if session.garden_id == garden_id:
                if conn is not None:
                    conn.fail(WsError("WS_CONN_004", "your garden no longer exists", close=True))
                self.sessions.drop(session)
            elif conn is not None:
                self._stop(conn, session, garden_id, "gone")
            else:
                session.stop_observing(garden_id)
