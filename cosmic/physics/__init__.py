"""N-body physics for the gardens: Pythran-compiled kernels, numpy reference.

Units: AU, solar masses, years; ``G = 4 pi^2``.  Pure numpy plus the
compiled module; no Twisted here.  The game layer uses:

- ``PhysicsEngine`` (``engine.py``): settings, ``step()``, ``merge()``;
- ``engine.bodies`` (``BodyBuffers``, ``buffers.py``): gardens and bodies in
  shared structure-of-arrays buffers;
- ``IMPLEMENTATION`` (``"compiled"`` or ``"reference"``) and
  ``IMPLEMENTATION_REASON``: which kernels this process runs and why, for the
  daemon to log once at start (the engine also sets the
  ``physics_kernel_info{implementation}`` gauge).
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

from cosmic.physics import reference
from cosmic.physics.buffers import DEFAULT_GARDEN_RADIUS, BodyBuffers, GardenView
from cosmic.physics.errors import (
    DuplicateBodyError,
    InvalidBodyError,
    PhysicsError,
    UnknownBodyError,
    UnknownGardenError,
)

_SOURCE = Path(__file__).with_name("kernels.py")


def load_kernels(prefer: str | None = None):
    """Return ``(module, implementation, reason)`` for the step kernels.

    The compiled ``_kernels`` is used when it imports and was built from the
    ``kernels.py`` next to it (Pythran stores the source's SHA-256 in the
    module; a stale build would silently run old code).  Otherwise, or with
    ``prefer="reference"``, the numpy reference, with the reason.
    """
    if prefer not in (None, "compiled", "reference"):
        raise ValueError(f"unknown physics implementation {prefer!r}")
    if prefer == "reference":
        return reference, "reference", "reference implementation requested"
    try:
        module = importlib.import_module("cosmic.physics._kernels")
    except ImportError as exc:
        return reference, "reference", f"compiled kernels unavailable ({exc})"
    stale = _stale(module)
    if stale:
        return reference, "reference", stale
    return module, "compiled", f"Pythran kernels {module.__file__}"


def _stale(module) -> str | None:
    try:
        built_from = module.__pythran__[1]
        source = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()
    except (AttributeError, IndexError, OSError):
        return None  # no source shipped next to it: trust the build
    if built_from != source:
        return (
            f"compiled kernels are stale (built from another kernels.py): rebuild {module.__file__}"
        )
    return None


_module, IMPLEMENTATION, IMPLEMENTATION_REASON = load_kernels()
del _module

from cosmic.physics.engine import (  # noqa: E402  (engine imports load_kernels from here)
    ALGORITHMS,
    DEFAULT_DT,
    DEFAULT_LEAF_SIZE,
    DEFAULT_SIMD_THRESHOLD,
    DEFAULT_SOFTENING,
    DEFAULT_THETA,
    DEFAULT_TREE_THRESHOLD,
    Collision,
    Escape,
    G,
    Merge,
    PhysicsEngine,
    StepResult,
)

__all__ = [
    "ALGORITHMS",
    "DEFAULT_DT",
    "DEFAULT_GARDEN_RADIUS",
    "DEFAULT_LEAF_SIZE",
    "DEFAULT_SIMD_THRESHOLD",
    "DEFAULT_SOFTENING",
    "DEFAULT_THETA",
    "DEFAULT_TREE_THRESHOLD",
    "IMPLEMENTATION",
    "IMPLEMENTATION_REASON",
    "BodyBuffers",
    "Collision",
    "DuplicateBodyError",
    "Escape",
    "G",
    "GardenView",
    "InvalidBodyError",
    "Merge",
    "PhysicsEngine",
    "PhysicsError",
    "StepResult",
    "UnknownBodyError",
    "UnknownGardenError",
    "load_kernels",
]
