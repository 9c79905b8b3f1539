"""The API's thin adapter over the game facade (cosmic.gameplay.Game).

Reads run inside ``loop.when_idle`` (never while a physics step holds the
world); commands go through ``loop.submit`` exactly like the WebSocket's.
A garden can be unloaded by cleanup between "ensure loaded" and the read or
command that follows; both retry a few times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.logger import Logger

from cosmic.game.errors import InvalidCommand
from cosmic.store.records import AccountRecord
from cosmic.web.api import errors

log = Logger(namespace="cosmic.web.api")

T = TypeVar("T")
_UNLOADED = object()
ATTEMPTS = 3


def garden_name(account: AccountRecord) -> str:
    return f"{account.display_name}'s garden"


class GameAccess:
    def __init__(self, game: Any) -> None:
        self.game = game

    @property
    def world(self) -> Any:
        return self.game.world

    async def player_garden(self, account: AccountRecord) -> int:
        """The account's garden id (created on first use)."""
        return await self.game.gardens.garden_for(account.id, garden_name(account))

    async def read(self, garden_id: int, work: Callable[[], T]) -> T:
        """``work()`` on the reactor thread while the garden is loaded and no
        step runs; GardenNotFound when the garden does not exist."""
        for _ in range(ATTEMPTS):
            await self.game.gardens.ensure_loaded(garden_id)

            def idle() -> Any:
                if garden_id not in self.world.gardens:
                    return _UNLOADED
                return work()

            result = await self.game.loop.when_idle(idle)
            if result is not _UNLOADED:
                return result
        raise errors.unavailable("the garden is being unloaded; retry")

    async def submit(self, garden_id: int, command: Any) -> Any:
        """Queue a command for the owner's garden, keeping the garden loaded."""
        for _ in range(ATTEMPTS):
            await self.game.gardens.ensure_loaded(garden_id)
            await self.game.loop.when_idle(lambda: self.world.watch(garden_id))
            try:
                return await self.game.loop.submit(command)
            except InvalidCommand:
                if garden_id in self.world.gardens:
                    raise
                # unloaded meanwhile: load again and retry
        raise errors.unavailable("the garden is being unloaded; retry")

    async def forget_gardens(self, player_id: int, garden_ids: list[int]) -> None:
        """Take a deleted player's gardens out of the world and the loader."""
        for garden_id in garden_ids:
            await self.game.gardens.forget(garden_id)
