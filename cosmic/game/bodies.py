"""The game's per-body columns, kept row-aligned with a garden's physics segment.

Position, velocity, mass and radius live in the physics buffers.  What only
the game needs (kind, level, birth time, life) lives here, one numpy column
each.  The physics segment appends new bodies at its end and removes bodies
keeping the survivors' order, so doing the same here keeps row ``i`` of these
columns about the body at ``view.ids[i]``; ``check_aligned`` asserts it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_COLUMNS = (
    ("ids", np.int64),
    ("kind", np.int8),
    ("level", np.int16),
    ("stage", np.int8),
    ("created_at", np.float64),
    ("population", np.float64),
    ("stage_time", np.float64),
    ("outside_time", np.float64),
)


class GardenBodies:
    """Columns for one garden's bodies; grows geometrically like the buffers."""

    ids: np.ndarray
    kind: np.ndarray
    level: np.ndarray
    stage: np.ndarray
    created_at: np.ndarray
    population: np.ndarray
    stage_time: np.ndarray
    outside_time: np.ndarray

    def __init__(self, capacity: int = 8) -> None:
        self.count = 0
        for name, dtype in _COLUMNS:
            setattr(self, "_" + name, np.zeros(max(capacity, 1), dtype=dtype))
        self._refresh_views()
        # Custom names only: a default name is derived from kind and id.
        self.names: dict[int, str] = {}

    def _refresh_views(self) -> None:
        for name, _ in _COLUMNS:
            setattr(self, name, getattr(self, "_" + name)[: self.count])

    def _reserve(self, need: int) -> None:
        capacity = self._ids.shape[0]
        if need <= capacity:
            return
        while capacity < need:
            capacity *= 2
        for name, dtype in _COLUMNS:
            old = getattr(self, "_" + name)
            grown = np.zeros(capacity, dtype=dtype)
            grown[: self.count] = old[: self.count]
            setattr(self, "_" + name, grown)

    def append(
        self,
        ids: Iterable[int],
        kind: Iterable[int],
        created_at: Iterable[float],
        *,
        level: Iterable[int] | None = None,
        stage: Iterable[int] | None = None,
        population: Iterable[float] | None = None,
        stage_time: Iterable[float] | None = None,
    ) -> None:
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        n = ids.shape[0]
        self._reserve(self.count + n)
        rows = slice(self.count, self.count + n)
        self._ids[rows] = ids
        self._kind[rows] = np.asarray(kind, dtype=np.int8).reshape(n)
        self._created_at[rows] = np.asarray(created_at, dtype=np.float64).reshape(n)
        self._level[rows] = 1 if level is None else np.asarray(level, np.int16).reshape(n)
        self._stage[rows] = 0 if stage is None else np.asarray(stage, np.int8).reshape(n)
        self._population[rows] = (
            0.0 if population is None else np.asarray(population, np.float64).reshape(n)
        )
        self._stage_time[rows] = (
            0.0 if stage_time is None else np.asarray(stage_time, np.float64).reshape(n)
        )
        self._outside_time[rows] = 0.0
        self.count += n
        self._refresh_views()

    def remove(self, body_ids: Iterable[int]) -> None:
        """Drop rows by id, keeping the survivors' order (as the physics does)."""
        gone = np.isin(self.ids, np.fromiter(body_ids, dtype=np.int64))
        if not gone.any():
            return
        keep = np.flatnonzero(~gone)
        k = keep.shape[0]
        for name, _ in _COLUMNS:
            column = getattr(self, "_" + name)
            column[:k] = column[keep]
        for body_id in self.ids[gone].tolist():
            self.names.pop(body_id, None)
        self.count = k
        self._refresh_views()

    def row(self, body_id: int) -> int | None:
        hit = np.flatnonzero(self.ids == body_id)
        return int(hit[0]) if hit.shape[0] else None

    def check_aligned(self, physics_ids: np.ndarray) -> None:
        if not np.array_equal(self.ids, physics_ids):
            raise AssertionError("game columns and physics segment disagree on body order")

    def nbytes(self) -> int:
        return sum(getattr(self, "_" + name).nbytes for name, _ in _COLUMNS)
