"""Sessions: resume tokens, the grace window, take-over and cleanup (task.Clock)."""

from __future__ import annotations

from twisted.internet.task import Clock

from cosmic.net.sessions import SessionRegistry


def registry(clock: Clock, **kw) -> SessionRegistry:
    options = {"grace": 30.0, "keep_frames": 4, "max_detached": 100, **kw}
    return SessionRegistry(clock, **options)


def test_resume_inside_the_grace_window() -> None:
    clock = Clock()
    reg = registry(clock)
    session = reg.create(7, 70)
    reg.attach(session, "conn-1")
    token = session.resume_token
    reg.detach(session, "conn-1")
    assert reg.counts() == {"players": 0, "sessions": 0, "observers": 0, "detached": 1}
    clock.advance(29.9)
    assert reg.find(token, 7) is session
    assert reg.attach(session, "conn-2") is None
    fresh = reg.rotate(session)
    assert fresh != token and reg.find(token, 7) is None and reg.find(fresh, 7) is session
    clock.advance(100)
    assert session.id in reg.sessions  # attached: no expiry
    assert reg.counts()["sessions"] == 1


def test_an_abandoned_session_is_dropped_after_the_grace_window() -> None:
    clock = Clock()
    reg = registry(clock)
    session = reg.create(7, 70)
    reg.attach(session, "conn")
    token = session.resume_token
    reg.detach(session, "conn")
    clock.advance(30.0)
    assert reg.sessions == {} and reg.find(token, 7) is None
    assert clock.getDelayedCalls() == []
    assert reg.counts()["detached"] == 0


def test_a_token_only_resumes_its_own_players_session() -> None:
    clock = Clock()
    reg = registry(clock)
    session = reg.create(7, 70)
    assert reg.find(session.resume_token, 8) is None
    assert reg.find("not-a-token", 7) is None


def test_attaching_a_new_connection_returns_the_one_it_replaces() -> None:
    clock = Clock()
    reg = registry(clock)
    session = reg.create(7, 70)
    reg.attach(session, "old")
    assert reg.attach(session, "new") == "old"
    reg.detach(session, "old")  # the old connection's late goodbye changes nothing
    assert session.client == "new" and reg.counts()["detached"] == 0


def test_detached_sessions_are_bounded_oldest_first() -> None:
    clock = Clock()
    reg = registry(clock, max_detached=2)
    sessions = [reg.create(p, p * 10) for p in range(1, 5)]
    for s in sessions:
        conn = object()
        reg.attach(s, conn)
        reg.detach(s, conn)
        clock.advance(1)
    assert [s.player_id for s in reg.sessions.values()] == [3, 4]
    assert len(clock.getDelayedCalls()) == 2


def test_no_grace_means_dropped_at_once() -> None:
    clock = Clock()
    reg = registry(clock, grace=0.0)
    session = reg.create(7, 70)
    reg.attach(session, "c")
    reg.detach(session, "c")
    assert reg.sessions == {}


def test_counts_players_observers_and_watched_gardens() -> None:
    clock = Clock()
    changes = []
    reg = SessionRegistry(
        clock, grace=30, keep_frames=4, max_detached=10, on_change=lambda: changes.append(1)
    )
    a1, a2, b = reg.create(1, 10), reg.create(1, 10), reg.create(2, 20)
    for s, c in ((a1, "x"), (a2, "y"), (b, "z")):
        reg.attach(s, c)
    b.observe(10)
    assert reg.counts() == {"players": 2, "sessions": 3, "observers": 1, "detached": 0}
    assert reg.watched_gardens() == {10, 20}
    assert b.stop_observing(20) == []  # one's own garden is not "observed"
    assert b.stop_observing() == [10]
    reg.detach(b, "z")
    assert reg.watched_gardens() == {10, 20}  # kept loaded for a resume
    assert changes
    reg.clear()
    assert reg.sessions == {} and clock.getDelayedCalls() == []
