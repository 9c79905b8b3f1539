"""The physics engine: one batched step of every active garden per tick.

``PhysicsEngine.step()`` is one blocking call meant for one worker thread
(the compiled kernels release the GIL while they run).  Per garden the body
count picks the algorithm:

==================  =====================================================
bodies              algorithm (label of the metrics)
==================  =====================================================
n < simd_threshold  ``scalar``: plain pair loop
below tree          ``direct``: vectorised symmetric direct sum
                    (``direct_omp`` from ``openmp_threshold`` bodies
                    when OpenMP is enabled)
>= tree_threshold   ``tree``: Barnes-Hut (``tree_omp`` with OpenMP)
==================  =====================================================

Gardens sharing an algorithm are stepped by one kernel call, so a tick costs
at most a handful of calls whatever the number of gardens.  Without the
compiled module every garden runs the numpy reference (label ``reference``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Hashable, Iterable
from typing import NamedTuple

import numpy as np

from cosmic.physics import reference
from cosmic.physics.buffers import BodyBuffers
from cosmic.physics.errors import PhysicsError, UnknownBodyError

G = 4.0 * math.pi**2  # AU^3 / (solar mass * year^2)

DEFAULT_DT = 1e-3  # years per step
DEFAULT_SOFTENING = 1e-3  # AU
DEFAULT_SIMD_THRESHOLD = 16
DEFAULT_TREE_THRESHOLD = 4000
DEFAULT_THETA = 0.4  # 99% of bodies within 0.5% force error (tests, bench)
DEFAULT_LEAF_SIZE = 32
DEFAULT_OPENMP_THRESHOLD = 2000

ALGORITHMS = ("scalar", "direct", "direct_omp", "tree", "tree_omp", "reference")
# Compiled export used by each algorithm.
_EXPORT = {
    "scalar": "step_scalar",
    "direct": "step_direct",
    "direct_omp": "step_full",
    "tree": "step_tree",
    "tree_omp": "step_tree",
    "reference": "step",
}


class Collision(NamedTuple):
    """Two bodies of one garden whose spheres overlap after the step."""

    garden_id: Hashable
    body_a: int
    body_b: int


class Escape(NamedTuple):
    """A body farther than twice the garden radius from the garden origin."""

    garden_id: Hashable
    body_id: int


class Merge(NamedTuple):
    garden_id: Hashable
    survivor: int
    absorbed: int


class StepResult(NamedTuple):
    collisions: tuple[Collision, ...]
    escapes: tuple[Escape, ...]
    bodies: int  # bodies stepped
    evaluations: int  # pair force evaluations
    seconds: dict[str, float]  # kernel wall time by algorithm


class PhysicsEngine:
    """Batched N-body stepping over ``BodyBuffers``.

    The game adds gardens and bodies through ``engine.bodies`` (see
    ``BodyBuffers``), calls ``step()`` once per tick from its physics thread,
    and applies the returned collisions (``merge``) and escapes
    (``bodies.remove_bodies``) between steps.
    """

    def __init__(
        self,
        *,
        dt: float = DEFAULT_DT,
        softening: float = DEFAULT_SOFTENING,
        simd_threshold: int = DEFAULT_SIMD_THRESHOLD,
        tree_threshold: int = DEFAULT_TREE_THRESHOLD,
        theta: float = DEFAULT_THETA,
        leaf_size: int = DEFAULT_LEAF_SIZE,
        openmp: bool = False,
        openmp_threshold: int = DEFAULT_OPENMP_THRESHOLD,
        metrics=None,
        implementation: str | None = None,
        bodies: BodyBuffers | None = None,
    ) -> None:
        from cosmic.physics import load_kernels

        module, self.implementation, self.implementation_reason = load_kernels(implementation)
        self._kernels = module
        self._omp = None
        self.openmp_reason = "disabled"
        self.bodies = bodies if bodies is not None else BodyBuffers()
        self.metrics = metrics
        self.dt = DEFAULT_DT
        self.softening = DEFAULT_SOFTENING
        self.simd_threshold = DEFAULT_SIMD_THRESHOLD
        self.tree_threshold = DEFAULT_TREE_THRESHOLD
        self.theta = DEFAULT_THETA
        self.leaf_size = DEFAULT_LEAF_SIZE
        self.openmp = False
        self.openmp_threshold = DEFAULT_OPENMP_THRESHOLD
        self.configure(
            dt=dt,
            softening=softening,
            simd_threshold=simd_threshold,
            tree_threshold=tree_threshold,
            theta=theta,
            leaf_size=leaf_size,
            openmp=openmp,
            openmp_threshold=openmp_threshold,
        )
        if metrics is not None:
            metrics.implementation.labels(implementation=self.implementation).set(1)

    # ------------------------------------------------------------ settings
    def configure(
        self,
        *,
        dt: float | None = None,
        softening: float | None = None,
        simd_threshold: int | None = None,
        tree_threshold: int | None = None,
        theta: float | None = None,
        leaf_size: int | None = None,
        openmp: bool | None = None,
        openmp_threshold: int | None = None,
    ) -> None:
        """Change settings between steps (a SIGHUP reload); all are checked first."""
        new = {
            "dt": self.dt if dt is None else float(dt),
            "softening": self.softening if softening is None else float(softening),
            "simd_threshold": self.simd_threshold if simd_threshold is None else simd_threshold,
            "tree_threshold": self.tree_threshold if tree_threshold is None else tree_threshold,
            "theta": self.theta if theta is None else float(theta),
            "leaf_size": self.leaf_size if leaf_size is None else leaf_size,
            "openmp": self.openmp if openmp is None else bool(openmp),
            "openmp_threshold": (
                self.openmp_threshold if openmp_threshold is None else openmp_threshold
            ),
        }
        problems = []
        if not (math.isfinite(new["dt"]) and new["dt"] >= 0.0):
            problems.append(f"dt must be finite and >= 0, got {new['dt']}")
        if not (math.isfinite(new["softening"]) and new["softening"] >= 0.0):
            problems.append(f"softening must be finite and >= 0, got {new['softening']}")
        if not (0.0 < new["theta"] <= 1.0):
            problems.append(f"theta must be in (0, 1], got {new['theta']}")
        for key in ("simd_threshold", "tree_threshold", "leaf_size", "openmp_threshold"):
            value = new[key]
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                problems.append(f"{key} must be an integer >= 1, got {value!r}")
        if problems:
            raise ValueError("; ".join(problems))
        stale = (
            new["softening"] != self.softening
            or new["theta"] != self.theta
            or new["leaf_size"] != self.leaf_size
        )
        for key, value in new.items():
            setattr(self, key, int(value) if isinstance(value, np.integer) else value)
        if self.openmp and self._omp is None:
            self._omp, self.openmp_reason = _load_openmp(self.implementation)
        elif not self.openmp:
            self.openmp_reason = "disabled"
        if stale:
            self.bodies.seg_fresh[:] = 1

    @property
    def openmp_active(self) -> bool:
        return self.openmp and self._omp is not None

    def algorithm_for(self, n: int) -> str:
        """The algorithm a garden of ``n`` bodies is stepped with."""
        if self.implementation == "reference":
            return "reference"
        omp = self.openmp_active
        if n >= self.tree_threshold:
            return "tree_omp" if omp else "tree"
        if n < self.simd_threshold:
            return "scalar"
        if omp and n >= self.openmp_threshold:
            return "direct_omp"
        return "direct"

    def _classify(self, counts: np.ndarray) -> np.ndarray:
        """Vectorised ``algorithm_for``: indices into ALGORITHMS."""
        if self.implementation == "reference":
            return np.full(counts.shape, ALGORITHMS.index("reference"))
        code = np.where(counts < self.simd_threshold, 0, 1)
        if self.openmp_active:
            code = np.where((code == 1) & (counts >= self.openmp_threshold), 2, code)
        tree = ALGORITHMS.index("tree_omp" if self.openmp_active else "tree")
        return np.where(counts >= self.tree_threshold, tree, code)

    # ---------------------------------------------------------------- step
    def step(self, dt: float | None = None) -> StepResult:
        """Advance every garden by one kick-drift-kick step of ``dt`` years."""
        dt = self.dt if dt is None else float(dt)
        if not (math.isfinite(dt) and dt >= 0.0):
            raise ValueError(f"dt must be finite and >= 0, got {dt}")
        b = self.bodies
        live = np.flatnonzero(b.seg_alive & (b.seg_count > 0))
        if live.shape[0] == 0:
            return StepResult((), (), 0, 0, {})
        codes = self._classify(b.seg_count[live])
        eps2 = self.softening * self.softening
        pairs, gone, seconds = [], [], {}
        bodies = evaluations = 0
        for code in np.unique(codes).tolist():
            algorithm = ALGORITHMS[code]
            sel = live[codes == code]
            module = self._omp if algorithm.endswith("_omp") else self._kernels
            kernel = getattr(module, _EXPORT[algorithm])
            counts = b.seg_count[sel]
            started = time.perf_counter()
            hit, out, evals = kernel(
                b.pos,
                b.vel,
                b.acc,
                b.mass,
                b.radius,
                b.seg_start[sel],
                counts,
                b.seg_fresh[sel],
                b.seg_origin[sel],
                b.seg_limit[sel],
                dt,
                eps2,
                G,
                self.theta,
                self.leaf_size,
            )
            elapsed = time.perf_counter() - started
            b.seg_fresh[sel] = 0
            n = int(counts.sum())
            bodies += n
            evaluations += int(evals)
            seconds[algorithm] = elapsed
            pairs.append(hit)
            gone.append(out)
            if self.metrics is not None:
                self.metrics.duration.labels(algorithm=algorithm).observe(elapsed)
                self.metrics.bodies.labels(algorithm=algorithm).inc(n)
                self.metrics.pairs.labels(algorithm=algorithm).inc(int(evals))
        return StepResult(
            self._collisions(np.concatenate(pairs)),
            self._escapes(np.concatenate(gone)),
            bodies,
            evaluations,
            seconds,
        )

    def _collisions(self, flat: np.ndarray) -> tuple[Collision, ...]:
        if flat.shape[0] == 0:
            return ()
        slots, ids = self.bodies.locate(flat)
        garden = self.bodies.garden_of_slot
        return tuple(
            Collision(garden(s), a, c)
            for s, a, c in zip(
                slots[0::2].tolist(), ids[0::2].tolist(), ids[1::2].tolist(), strict=True
            )
        )

    def _escapes(self, indices: np.ndarray) -> tuple[Escape, ...]:
        if indices.shape[0] == 0:
            return ()
        slots, ids = self.bodies.locate(indices)
        garden = self.bodies.garden_of_slot
        return tuple(
            Escape(garden(s), i) for s, i in zip(slots.tolist(), ids.tolist(), strict=True)
        )

    # -------------------------------------------------------------- merges
    def merge(self, garden_id: Hashable, body_a: int, body_b: int) -> Merge:
        """Merge two bodies; the heavier keeps its id (``body_a`` on a tie).

        Mass and momentum are conserved (see ``reference.merged``).  The
        absorbed body is removed.  Raises UnknownBodyError if either is gone.
        """
        if body_a == body_b:
            raise PhysicsError(f"garden {garden_id!r}: cannot merge body {body_a} with itself")
        b = self.bodies
        ia, ib = b.index_of(garden_id, body_a), b.index_of(garden_id, body_b)
        if b.mass[ib] > b.mass[ia]:
            ia, ib = ib, ia
            body_a, body_b = body_b, body_a
        m, x, v, r = reference.merged(
            b.mass[ia], b.pos[:, ia], b.vel[:, ia], b.radius[ia],
            b.mass[ib], b.pos[:, ib], b.vel[:, ib], b.radius[ib],
        )  # fmt: skip
        b.mass[ia], b.radius[ia] = m, r
        b.pos[:, ia], b.vel[:, ia] = x, v
        b.remove_bodies(garden_id, [body_b])
        return Merge(garden_id, body_a, body_b)

    def merge_collisions(self, collisions: Iterable[Collision]) -> list[Merge]:
        """Merge each colliding pair in order, skipping pairs already merged away.

        A chain (a hits b, b hits c) merges a and b now; c is found again on
        the next step if it still overlaps the merged body.
        """
        done = []
        for c in collisions:
            try:
                done.append(self.merge(c.garden_id, c.body_a, c.body_b))
            except UnknownBodyError:
                continue
        return done

    # --------------------------------------------------------- diagnostics
    def energy(self, garden_id: Hashable) -> float:
        """Total (softened) energy of one garden, O(n^2) numpy: for tests and tools."""
        v = self.bodies.garden(garden_id)
        return reference.total_energy(
            v.position, v.velocity, v.mass, self.softening * self.softening, G
        )

    def momentum(self, garden_id: Hashable) -> np.ndarray:
        v = self.bodies.garden(garden_id)
        return v.velocity @ v.mass


def _load_openmp(implementation: str):
    """The OpenMP build, or None and the reason it is not used."""
    if implementation != "compiled":
        return None, "the compiled kernels are not in use"
    # libgomp reads this once, when it is loaded: spinning idle threads
    # would otherwise burn a core between ticks.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    try:
        from cosmic.physics import _kernels_omp
    except ImportError as exc:
        return None, f"OpenMP kernels unavailable: {exc}"
    return _kernels_omp, "enabled"
