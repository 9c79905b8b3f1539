"""Player sessions: what outlives one connection for a grace window.

A session is made by a successful Authenticate: the player, their garden,
the streams (their own garden and the ones they observe, each with its
per-client sequence and recent frames) and a resume token.  When the
connection drops, the session is *detached* and kept for ``grace`` seconds:
an Authenticate on a new connection with a valid access token for the same
player and the resume token re-attaches it, and its streams continue their
sequences (no full sync).  A detached session nobody resumes is dropped.
Resume tokens are single-use: every (re)attachment gets a new one.

At most ``max_detached`` detached sessions are kept (oldest dropped first),
so memory stays bounded however many clients connect and vanish.
"""

from __future__ import annotations

import collections
import hashlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any

from cosmic.net.deltas import Stream

OWNER = "owner"
OBSERVER = "observer"


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class Session:
    def __init__(self, player_id: int, garden_id: int, keep_frames: int) -> None:
        self.id = secrets.token_hex(12)
        self.player_id = player_id
        self.garden_id = garden_id
        self.keep_frames = keep_frames
        self.streams: dict[int, Stream] = {garden_id: Stream(garden_id, OWNER, keep_frames)}
        self.client: Any = None
        self.resume_token: str | None = None
        self.detached_at: float | None = None
        self._expiry: Any = None

    @property
    def own(self) -> Stream:
        return self.streams[self.garden_id]

    @property
    def observed(self) -> list[int]:
        return [gid for gid in self.streams if gid != self.garden_id]

    def observe(self, garden_id: int) -> Stream:
        stream = self.streams.get(garden_id)
        if stream is None:
            stream = Stream(garden_id, OBSERVER, self.keep_frames)
            self.streams[garden_id] = stream
        return stream

    def stop_observing(self, garden_id: int | None = None) -> list[int]:
        """Drop one observed stream (or all); the ids dropped."""
        targets = self.observed if garden_id is None else [garden_id]
        dropped = [gid for gid in targets if gid != self.garden_id and gid in self.streams]
        for gid in dropped:
            del self.streams[gid]
        return dropped

    def __repr__(self) -> str:
        state = "attached" if self.client is not None else "detached"
        return f"<Session {self.id} player={self.player_id} {state}>"


class SessionRegistry:
    def __init__(
        self,
        clock: Any,
        *,
        grace: float,
        keep_frames: int,
        max_detached: int,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.clock = clock
        self.grace = grace
        self.keep_frames = keep_frames
        self.max_detached = max_detached
        self._on_change = on_change
        self.sessions: dict[str, Session] = {}
        self._by_token: dict[str, str] = {}
        self._detached: collections.OrderedDict[str, None] = collections.OrderedDict()

    # -- making and finding ---------------------------------------------------------

    def create(self, player_id: int, garden_id: int) -> Session:
        session = Session(player_id, garden_id, self.keep_frames)
        self.sessions[session.id] = session
        self.rotate(session)
        return session

    def rotate(self, session: Session) -> str:
        """A fresh resume token (the old one stops working)."""
        if session.resume_token is not None:
            self._by_token.pop(_key(session.resume_token), None)
        token = secrets.token_urlsafe(32)
        session.resume_token = token
        self._by_token[_key(token)] = session.id
        return token

    def find(self, resume_token: str, player_id: int) -> Session | None:
        """The session this token resumes, if it exists and is the player's."""
        session_id = self._by_token.get(_key(resume_token))
        session = self.sessions.get(session_id) if session_id is not None else None
        if session is None or session.player_id != player_id:
            return None
        return session

    # -- attaching ----------------------------------------------------------------

    def attach(self, session: Session, client: Any) -> Any:
        """Put ``client`` on the session; returns the client it replaces, if any."""
        previous = session.client
        session.client = client
        session.detached_at = None
        self._detached.pop(session.id, None)
        self._cancel(session)
        self.changed()
        return previous if previous is not client else None

    def detach(self, session: Session, client: Any) -> None:
        """The connection ``client`` dropped; keep the session for the grace window."""
        if session.client is not client or session.id not in self.sessions:
            return
        session.client = None
        if self.grace <= 0 or self.max_detached <= 0:
            self.drop(session)
            return
        session.detached_at = self.clock.seconds()
        self._detached[session.id] = None
        session._expiry = self.clock.callLater(self.grace, self._expire, session.id)
        while len(self._detached) > self.max_detached:
            oldest, _ = self._detached.popitem(last=False)
            if oldest in self.sessions:
                self.drop(self.sessions[oldest])
        self.changed()

    def _expire(self, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is not None:
            session._expiry = None
            if session.client is None:
                self.drop(session)

    def drop(self, session: Session) -> None:
        """Forget the session (its resume token stops working)."""
        self._cancel(session)
        self.sessions.pop(session.id, None)
        self._detached.pop(session.id, None)
        if session.resume_token is not None:
            self._by_token.pop(_key(session.resume_token), None)
        session.streams.clear()
        self.changed()

    def _cancel(self, session: Session) -> None:
        timer, session._expiry = session._expiry, None
        if timer is not None and timer.active():
            timer.cancel()

    def clear(self) -> None:
        for session in list(self.sessions.values()):
            self.drop(session)

    def changed(self) -> None:
        """Sessions or their streams changed (the counts gauge follows)."""
        if self._on_change is not None:
            self._on_change()

    # -- reading ------------------------------------------------------------------

    def attached(self) -> Iterator[Session]:
        return (s for s in self.sessions.values() if s.client is not None)

    def watched_gardens(self) -> set[int]:
        """Every garden some session streams, detached ones included (so a
        resumable session's gardens stay loaded)."""
        return {gid for session in self.sessions.values() for gid in session.streams}

    def counts(self) -> dict[str, int]:
        attached = list(self.attached())
        return {
            "players": len({s.player_id for s in attached}),
            "sessions": len(attached),
            "observers": sum(1 for s in attached if s.observed),
            "detached": len(self._detached),
        }
