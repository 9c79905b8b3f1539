"""Leaderboards: served from the cache, rebuilt from the store on a miss."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet import defer, task

from cosmic.cache.interface import CacheUnavailable, CacheView
from cosmic.cache.memory import MemoryCache
from cosmic.cache.resilient import ResilientCache
from cosmic.store.leaderboards import Leaderboards, decode_member, encode_member
from cosmic.store.memory import MemoryStore
from cosmic.store.records import LeaderboardRow


def value(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "not fired"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def seeded(scores: list[tuple[float, float, float | None]]) -> MemoryStore:
    store = MemoryStore()
    owner = value(store.create_account("owner", "Owner ✨", "h", 1.0))
    snapshots = []
    for i, (mass, thought, transcended) in enumerate(scores):
        g = value(store.create_garden(owner.id, f"g{i}", True, 1.0, {}))
        snapshots.append(
            (
                attrs.evolve(
                    g,
                    version=1,
                    total_mass=mass,
                    thought_points=thought,
                    transcended_at=transcended,
                ),
                [],
            )
        )
    value(store.save_gardens(snapshots))
    return store


def boards(store: MemoryStore, clock: task.Clock, ttl: float = 60.0, size: int = 100):
    cache = CacheView(MemoryCache(1000, clock=clock), "leaderboards")
    return Leaderboards(store, cache, ttl, size), cache


def test_served_from_the_cache_and_rebuilt_after_the_ttl() -> None:
    clock = task.Clock()
    store = seeded([(5.0, 1.0, None), (9.0, 2.0, 50.0), (7.0, 3.0, 40.0)])
    lb, cache = boards(store, clock)
    first = value(lb.top("total_mass", 2))
    assert [r.score for r in first] == [9.0, 7.0]
    assert store.calls["top_gardens"] == 1
    assert value(lb.top("total_mass", 3)) == value(store.top_gardens("total_mass", 3))
    assert store.calls["top_gardens"] == 2  # one rebuild + the direct comparison above
    assert cache.hits == 1
    clock.advance(60.0)
    value(lb.top("total_mass", 1))
    assert lb.rebuilds == 2


def test_every_board_matches_the_store_including_ties() -> None:
    clock = task.Clock()
    scores = [(1.0, 5.0, 10.0), (2.0, 5.0, 10.0), (2.0, 5.0, None), (2.0, 1.0, 5.0)]
    store = seeded(scores)
    lb, _ = boards(store, clock)
    for kind in ("total_mass", "thought_points", "transcendence"):
        expected = value(store.top_gardens(kind, 10))
        value(lb.top(kind, 10))  # rebuild
        assert value(lb.top(kind, 10)) == expected, kind  # from the cache
        assert value(lb.top(kind, 2)) == expected[:2], kind


def test_concurrent_misses_share_one_rebuild() -> None:
    clock = task.Clock()
    store = seeded([(1.0, 0.0, None)])
    gate: defer.Deferred[None] = defer.Deferred()
    real = store.top_gardens

    def slow(kind: str, limit: int) -> defer.Deferred[Any]:
        return gate.addCallback(lambda _: real(kind, limit))

    store.top_gardens = slow  # type: ignore[method-assign]
    lb, _ = boards(store, clock)
    waiting = [lb.top("total_mass", 5) for _ in range(10)]
    gate.callback(None)
    assert all(len(value(d)) == 1 for d in waiting)
    assert lb.rebuilds == 1


def test_an_empty_board_is_cached_as_empty() -> None:
    clock = task.Clock()
    store = seeded([(1.0, 0.0, None)])
    lb, _ = boards(store, clock)
    assert value(lb.top("transcendence", 10)) == []
    assert value(lb.top("transcendence", 10)) == []
    assert lb.rebuilds == 1
    value(lb.invalidate())
    value(lb.top("transcendence", 10))
    assert lb.rebuilds == 2


def test_cache_down_serves_from_the_store() -> None:
    clock = task.Clock()
    store = seeded([(3.0, 0.0, None), (4.0, 0.0, None)])

    class Down(MemoryCache):
        backend = "down"

        def ztop(self, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
            return defer.fail(CacheUnavailable("refused"))

    cache = CacheView(ResilientCache(Down(clock=clock), clock=clock), "leaderboards")
    lb = Leaderboards(store, cache, 60.0)
    for _ in range(3):
        assert [r.score for r in value(lb.top("total_mass", 5))] == [4.0, 3.0]


def test_above_the_cached_size_asks_the_store() -> None:
    clock = task.Clock()
    store = seeded([(float(i), 0.0, None) for i in range(5)])
    lb, _ = boards(store, clock, size=2)
    assert len(value(lb.top("total_mass", 4))) == 4
    assert lb.rebuilds == 0


def test_members_round_trip() -> None:
    row = LeaderboardRow(12, 3, "Zoë | 'quoted' 🌱", 1.5)
    for kind in ("total_mass", "transcendence"):
        assert decode_member(encode_member(kind, row), 1.5) == row
    # descending boards sort lower garden ids later in member order, so that
    # the reverse order Redis uses for ties puts them first
    a = encode_member("total_mass", attrs.evolve(row, garden_id=1))
    b = encode_member("total_mass", attrs.evolve(row, garden_id=2))
    assert a > b
