"""What an operator finds at the manhole prompt: live objects and helpers.

Helpers that read the world return Deferreds (the manhole prints their
result when it arrives), because the world may only be read while no
physics step holds it; so does ``reload()``, whose files are read in a
worker thread.  ``help()`` lists the helpers with their docstrings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer


class LiveSettings:
    """The settings in force now (they change on reload): ``settings.game.target_tps``."""

    def __init__(self, reloader: Any) -> None:
        self._reloader = reloader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reloader.current, name)

    def __repr__(self) -> str:
        return repr(self._reloader.current)


def namespace(root: Any) -> dict[str, Any]:
    game = root.game
    world, loop = game.world, game.loop
    persistence = root.persistence
    websocket = getattr(root, "websocket", None)

    def gardens() -> defer.Deferred[list[dict[str, Any]]]:
        """Loaded gardens: id, owner, name, bodies, event sequence, public."""

        def read() -> list[dict[str, Any]]:
            return [
                {
                    "id": g.id,
                    "owner": g.owner_id,
                    "name": g.name,
                    "bodies": g.bodies.count,
                    "seq": g.seq,
                    "public": g.public,
                }
                for g in world.gardens.values()
            ]

        return loop.when_idle(read)

    def garden(garden_id: int) -> defer.Deferred[dict[str, Any]]:
        """One loaded garden: header, resources, rates, research, body counts by kind."""

        def read() -> dict[str, Any]:
            snap = world.snapshot(garden_id)
            snap["bodies"] = world.garden(garden_id).kind_counts()
            return snap

        return loop.when_idle(read)

    def kick(player_id: int, reason: str = "disconnected by an operator") -> int:
        """Close every WebSocket connection of a player (WS_CONN_006); how many closed."""
        if websocket is None:
            raise RuntimeError("no WebSocket layer in this daemon")
        return websocket.kick(player_id, reason)

    def broadcast(text: str) -> int:
        """Send a Notice {text} to every connected player; how many were sent it."""
        if websocket is None:
            raise RuntimeError("no WebSocket layer in this daemon")
        return websocket.announce(text)

    def reload() -> defer.Deferred[Any]:
        """Re-read the configuration now, as SIGHUP does; answers what was applied."""
        # The SIGHUP path: files read and validated in a thread, not on the
        # reactor, and systemd told RELOADING=1 / READY=1 around it.
        d = root.getServiceNamed("signals").reload("manhole")
        return d.addCallback(
            lambda outcome: (
                "reload failed unexpectedly; see the daemon log" if outcome is None else outcome
            )
        )

    def stats() -> dict[str, Any]:
        """Gardens, bodies, ticks, overruns, queued commands, clients."""
        load = world.load()
        result = {
            **load,
            "ticks": loop.ticks,
            "last_step_ms": round(loop.last_step_seconds * 1000, 3),
            "overruns": {name: rate.overruns for name, rate in loop.rates.items()},
            "tick_errors": {name: rate.errors for name, rate in loop.rates.items()},
            "queued_commands": len(loop.queue),
            "unsaved_gardens": len(game.gardens.dirty()),
        }
        if websocket is not None:
            result.update(websocket.counts())
        return result

    helpers: dict[str, Callable[..., Any]] = {
        "gardens": gardens,
        "garden": garden,
        "kick": kick,
        "broadcast": broadcast,
        "reload": reload,
        "stats": stats,
    }

    def help() -> str:
        """This list."""
        return "\n".join(
            f"{name}(): {(fn.__doc__ or '').strip()}"
            for name, fn in {**helpers, "help": help}.items()
        )

    return {
        **helpers,
        "help": help,
        "root": root,
        "world": world,
        "loop": loop,
        "loader": game.gardens,
        "store": persistence.store,
        "cache": persistence.cache,
        "metrics": root.metrics,
        "settings": LiveSettings(root.reloader),
        "websocket": websocket,
        "sessions": None if websocket is None else websocket.sessions,
    }
