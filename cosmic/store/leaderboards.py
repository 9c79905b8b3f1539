"""Leaderboards served from the cache, rebuilt from the store on a miss.

Each board (total_mass, thought_points, transcendence) is one sorted set of
the top ``size`` gardens, kept for ``ttl`` seconds and then rebuilt from
``store.top_gardens``; freshness is therefore ttl plus the write-behind
interval.  Concurrent misses in one process share one rebuild.  With the
cache down every call is a miss, so boards come from the store directly.

Members are ``<sort key>|<JSON [garden_id, owner_id, owner_name]>`` with a
zero-padded sort key chosen so that Redis' tie order (by member) is the
store's (garden id ascending) in both directions.  A board with no gardens
is remembered as empty (its own key), so it is not rebuilt on every call.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from cosmic.cache.interface import CacheView
from cosmic.store.interface import Store
from cosmic.store.records import LEADERBOARD_KINDS, LeaderboardRow, check_leaderboard_kind

_MAX_ID = 10**19 - 1
_EMPTY = b"empty"


def _ascending(kind: str) -> bool:
    return kind == "transcendence"


def encode_member(kind: str, row: LeaderboardRow) -> str:
    order = row.garden_id if _ascending(kind) else _MAX_ID - row.garden_id
    body = json.dumps([row.garden_id, row.owner_id, row.owner_name], ensure_ascii=False)
    return f"{order:019d}|{body}"


def decode_member(member: str, score: float) -> LeaderboardRow:
    garden_id, owner_id, owner_name = json.loads(member.split("|", 1)[1])
    return LeaderboardRow(int(garden_id), int(owner_id), owner_name, score)


class Leaderboards:
    def __init__(self, store: Store, cache: CacheView, ttl: float, size: int = 100) -> None:
        self.store = store
        self.cache = cache
        self.ttl = ttl
        self.size = size
        self._building: dict[str, list[defer.Deferred[list[LeaderboardRow]]]] = {}
        self.rebuilds = 0

    def top(self, kind: str, limit: int = 10) -> defer.Deferred[list[LeaderboardRow]]:
        """The first ``limit`` rows of a board (best first)."""
        try:
            check_leaderboard_kind(kind)
        except ValueError as exc:
            return defer.fail(exc)
        if limit < 1:
            return defer.succeed([])
        if limit > self.size:
            return self.store.top_gardens(kind, limit)
        return defer.ensureDeferred(self._top(kind, limit))

    async def _top(self, kind: str, limit: int) -> list[LeaderboardRow]:
        cached = await self.cache.ztop(kind, limit, descending=not _ascending(kind))
        if cached is not None:
            return [decode_member(member, score) for member, score in cached]
        if await self.cache.get(f"{kind}:empty") == _EMPTY:
            return []
        rows = await self._rebuild(kind)
        return rows[:limit]

    def _rebuild(self, kind: str) -> defer.Deferred[list[LeaderboardRow]]:
        mine: defer.Deferred[list[LeaderboardRow]] = defer.Deferred()
        waiters = self._building.get(kind)
        if waiters is not None:  # a rebuild is running: share its result
            waiters.append(mine)
            return mine
        waiters = self._building[kind] = [mine]

        def share(result: Any) -> None:
            del self._building[kind]
            for waiter in waiters:
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(result)

        defer.ensureDeferred(self._rebuild_now(kind)).addBoth(share)
        return mine

    async def _rebuild_now(self, kind: str) -> list[LeaderboardRow]:
        self.rebuilds += 1
        rows = await self.store.top_gardens(kind, self.size)
        members = {encode_member(kind, row): row.score for row in rows}
        if members:
            await self.cache.zreplace(kind, members, self.ttl)
        else:
            await self.cache.set(f"{kind}:empty", _EMPTY, self.ttl)
        return rows

    def invalidate(self, kind: str | None = None) -> defer.Deferred[None]:
        """Drop cached boards (all by default): the next read rebuilds them."""
        kinds = LEADERBOARD_KINDS if kind is None else (check_leaderboard_kind(kind),)
        deletes = []
        for name in kinds:
            deletes.append(self.cache.delete(name))
            deletes.append(self.cache.delete(f"{name}:empty"))
        return defer.gatherResults(deletes).addCallback(lambda _: None)
