"""Assemble the game from the settings: physics engine, world, loop, loader, saver.

The services go into the root in this order, so that on stop the loop halts
first, the loader captures the final state, and the saver flushes it last:
write-behind saver, gardens (loader), game loop.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
from twisted.internet import threads
from twisted.logger import Logger

from cosmic.game.loop import GameLoop
from cosmic.game.world import World
from cosmic.gardens import Gardens
from cosmic.metrics import Metrics
from cosmic.physics.engine import PhysicsEngine
from cosmic.readiness import Check, Readiness
from cosmic.settings import Settings
from cosmic.store.service import Persistence
from cosmic.store.writebehind import WriteBehind

log = Logger(namespace="cosmic.game")

# The loop is "not ticking" after this many missed physics intervals.
STALL_INTERVALS = 30


@attrs.define
class Game:
    engine: PhysicsEngine
    world: World
    loop: GameLoop
    gardens: Gardens
    writer: WriteBehind

    def services(self) -> list[Any]:
        return [self.writer, self.gardens, self.loop]

    def check(self) -> Check:
        loop = self.loop
        if not loop.running:
            return Check.fail("game loop stopped")
        interval = loop.rates["physics"].interval
        if loop.last_tick_at is None:
            return Check.ok("game loop started; first tick pending")
        late = loop.clock.seconds() - loop.last_tick_at
        if late > STALL_INTERVALS * interval:
            return Check.fail(f"no physics tick for {late:.1f} s")
        load = self.world.load()
        overruns = loop.rates["physics"].overruns
        return Check.ok(
            f"{load['gardens']} gardens, {load['bodies']} bodies, "
            f"{loop.ticks} ticks, {overruns} overruns"
        )

    def on_reload(self, settings: Settings, changed: tuple[str, ...]) -> None:
        game = settings.game
        self.loop.set_rates(
            tps=game.target_tps,
            resources=game.resource_interval,
            broadcast=1.0 / game.broadcast_hz,
            cleanup=game.cleanup_interval,
        )
        self.gardens.unload_after = game.unload_after

        def apply() -> None:
            self.world.time_scale = game.time_scale
            self.world.offline_cap = game.offline_cap
            self.engine.configure(**physics_options(settings))

        self.loop.when_idle(apply)


def physics_options(settings: Settings) -> dict[str, Any]:
    p = settings.physics
    return {
        "simd_threshold": p.simd_threshold,
        "tree_threshold": p.tree_threshold,
        "theta": p.theta,
        "softening": p.softening,
        "openmp": p.openmp,
        "openmp_threshold": p.openmp_threshold,
    }


def build_game(
    settings: Settings,
    reactor: Any,
    metrics: Metrics,
    persistence: Persistence,
    readiness: Readiness,
) -> Game:
    game = settings.game
    # The same options a reload applies: otherwise a configured theta or
    # softening would be ignored until the first SIGHUP.
    engine = PhysicsEngine(**physics_options(settings), metrics=metrics.physics)
    log.info(
        "physics kernels: {implementation} ({reason})",
        implementation=engine.implementation,
        reason=engine.implementation_reason,
    )
    world = World(engine, now=time.time, time_scale=game.time_scale, offline_cap=game.offline_cap)
    loop = GameLoop(
        world,
        tps=game.target_tps,
        resource_interval=game.resource_interval,
        queue_size=game.command_queue_size,
        clock=reactor,
        reactor=reactor,
        metrics=metrics.game,
    )
    gardens = Gardens(
        world,
        loop,
        persistence.store,
        unload_after=game.unload_after,
        snapshots=persistence.snapshots,
        # Turning captured copies into records costs ~125 ms per 1000 gardens:
        # too long for the reactor thread.  The reactor's own pool, so it is
        # sized by and joined with the reactor.
        run_in_thread=lambda f: threads.deferToThreadPool(reactor, reactor.getThreadPool(), f),
    )
    writer = persistence.write_behind(gardens)
    loop.add_hook("cleanup", game.cleanup_interval, gardens.cleanup)
    built = Game(engine, world, loop, gardens, writer)
    readiness.add("game", built.check)
    return built
