"""The domain stays free of Twisted, and what it saves the store accepts."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import cosmic.game
from cosmic.game import persist
from tests.unit.game.conftest import make_world

SERVICE = "loop"  # the one Twisted piece of cosmic.game


def domain_modules() -> list[str]:
    # Listed from the package directory, so a new module is covered too.
    names = [m.name for m in pkgutil.iter_modules(cosmic.game.__path__)]
    return [f"cosmic.game.{name}" for name in sorted(names) if name != SERVICE]


def test_the_domain_imports_without_twisted() -> None:
    modules = domain_modules()
    assert {"cosmic.game.world", "cosmic.game.persist", "cosmic.game.records"} <= set(modules)
    code = (
        f"import {', '.join(modules)}\n"
        "import sys\n"
        "loaded = sorted(m for m in sys.modules if m == 'twisted' or m.startswith('twisted.'))\n"
        "assert not loaded, loaded[:5]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_what_the_game_saves_is_what_the_store_checks() -> None:
    from cosmic.store.records import check_snapshots

    world, now = make_world()
    world.create_garden(1, 7, "home")
    record, bodies = persist.to_records(world.garden(1), world.buffers.garden(1), now())
    [(checked, state, checked_bodies)] = check_snapshots([(record, bodies)])
    assert checked is record and checked_bodies == bodies
    assert '"format":1' in state
