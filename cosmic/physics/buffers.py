"""Structure-of-arrays body buffers shared by every garden.

All bodies of all gardens live in one set of float64 arrays: ``pos``, ``vel``
and ``acc`` of shape ``(3, capacity)`` (row 0 is x), ``mass`` and ``radius``
of shape ``(capacity,)``, and ``ids`` (int64), the game's stable body id.
A garden owns one segment ``[start, start + count)`` with some spare room
after it (``start + cap``); the kernels step all segments in one call.

Growth is geometric: a garden whose segment is full moves to the end of the
used region with twice the room (its old segment becomes a hole); when the
buffers are full, holes are compacted away first and the buffers double only
if that is not enough.  Every per-body array moves together, so ``ids[i]``
always names the body whose data is at index ``i``; look bodies up by id
(``index_of``), never keep an index across a mutation.

Views returned by ``garden()`` are numpy views into the buffers: valid until
the next add, remove, merge or compaction, and writable (the engine reads them
back on the next step; call ``touch()`` after editing positions or masses by
hand so the accelerations are recomputed).  Not thread-safe: mutate only
between steps, from the thread that steps.
"""

from __future__ import annotations

import operator
from collections.abc import Hashable, Iterator
from typing import NamedTuple

import numpy as np

from cosmic.physics.errors import (
    DuplicateBodyError,
    InvalidBodyError,
    UnknownBodyError,
    UnknownGardenError,
)

DEFAULT_GARDEN_RADIUS = 100.0  # AU; a body beyond twice this has escaped
_MIN_SEGMENT = 4


class GardenView(NamedTuple):
    """One garden's slice of the buffers (views, see the module docstring)."""

    garden_id: Hashable
    start: int
    ids: np.ndarray  # (n,) int64
    position: np.ndarray  # (3, n) AU
    velocity: np.ndarray  # (3, n) AU / year
    acceleration: np.ndarray  # (3, n) AU / year^2, at the current positions
    mass: np.ndarray  # (n,) solar masses
    radius: np.ndarray  # (n,) AU
    origin: np.ndarray  # (3,) AU
    garden_radius: float  # AU


def validate_bodies(ids, mass, radius, position, velocity) -> None:
    """Raise InvalidBodyError for the first bad value; arrays are batch-shaped.

    ``position`` and ``velocity`` have shape (n, 3).  Rejected: non-finite
    position or velocity, mass not finite or not positive, radius not finite
    or negative.
    """
    checks = (
        ("position", position, ~np.all(np.isfinite(position), axis=1), "must be finite"),
        ("velocity", velocity, ~np.all(np.isfinite(velocity), axis=1), "must be finite"),
        ("mass", mass, ~(np.isfinite(mass) & (mass > 0.0)), "must be finite and positive"),
        ("radius", radius, ~(np.isfinite(radius) & (radius >= 0.0)), "must be finite and >= 0"),
    )
    for field, values, bad, reason in checks:
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise InvalidBodyError(field, int(ids[k]), values[k].tolist(), reason)


class BodyBuffers:
    """The SoA buffers and the garden segments laid out in them."""

    def __init__(self, capacity: int = 256, gardens: int = 16) -> None:
        capacity = max(int(capacity), _MIN_SEGMENT)
        self.pos = np.zeros((3, capacity))
        self.vel = np.zeros((3, capacity))
        self.acc = np.zeros((3, capacity))
        self.mass = np.zeros(capacity)
        self.radius = np.zeros(capacity)
        self.ids = np.full(capacity, -1, dtype=np.int64)
        self._top = 0  # first index after the last segment
        self._holes = 0  # room inside dead or moved segments
        # Per-garden tables, indexed by slot.
        slots = max(int(gardens), 1)
        self.seg_start = np.zeros(slots, dtype=np.int64)
        self.seg_count = np.zeros(slots, dtype=np.int64)
        self.seg_cap = np.zeros(slots, dtype=np.int64)
        self.seg_fresh = np.zeros(slots, dtype=np.int64)
        self.seg_origin = np.zeros((slots, 3))
        self.seg_limit = np.zeros(slots)
        self.seg_alive = np.zeros(slots, dtype=bool)
        self._slot: dict[Hashable, int] = {}
        self._garden_of: list[Hashable | None] = [None] * slots
        self._free: list[int] = list(range(slots - 1, -1, -1))

    # ---------------------------------------------------------------- info
    @property
    def capacity(self) -> int:
        return int(self.mass.shape[0])

    @property
    def used(self) -> int:
        """Index after the last segment (live bodies, spare room and holes)."""
        return self._top

    @property
    def holes(self) -> int:
        return self._holes

    @property
    def total_bodies(self) -> int:
        return int(self.seg_count[self.seg_alive].sum())

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, garden_id: object) -> bool:
        return garden_id in self._slot

    def garden_ids(self) -> Iterator[Hashable]:
        return iter(list(self._slot))

    def slot_of(self, garden_id: Hashable) -> int:
        try:
            return self._slot[garden_id]
        except KeyError:
            raise UnknownGardenError(garden_id) from None

    def garden_of_slot(self, slot: int) -> Hashable:
        return self._garden_of[slot]

    def body_count(self, garden_id: Hashable) -> int:
        return int(self.seg_count[self.slot_of(garden_id)])

    # ------------------------------------------------------------- gardens
    def add_garden(
        self,
        garden_id: Hashable,
        *,
        radius: float = DEFAULT_GARDEN_RADIUS,
        origin=(0.0, 0.0, 0.0),
        capacity: int = 0,
    ) -> None:
        """Register an (active) garden; bodies beyond ``2 * radius`` of ``origin`` escape."""
        if garden_id in self._slot:
            raise ValueError(f"garden {garden_id!r} is already in the physics engine")
        radius = float(radius)
        if not (np.isfinite(radius) and radius > 0.0):
            raise ValueError(f"garden {garden_id!r}: radius must be finite and > 0, got {radius}")
        origin = np.asarray(origin, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(origin)):
            raise ValueError(f"garden {garden_id!r}: origin must be finite, got {origin.tolist()}")
        if not self._free:
            self._grow_slots()
        slot = self._free.pop()
        self._slot[garden_id] = slot
        self._garden_of[slot] = garden_id
        self.seg_alive[slot] = True
        self.seg_start[slot] = self._top
        self.seg_count[slot] = 0
        self.seg_cap[slot] = 0
        self.seg_fresh[slot] = 1
        self.seg_origin[slot] = origin
        self.seg_limit[slot] = 2.0 * radius
        if capacity > 0:
            self._reserve(slot, int(capacity))

    def remove_garden(self, garden_id: Hashable) -> None:
        """Forget a garden and its bodies (its room is reused after compaction)."""
        slot = self.slot_of(garden_id)
        s, cap = int(self.seg_start[slot]), int(self.seg_cap[slot])
        self.ids[s : s + cap] = -1
        if s + cap == self._top:
            self._top = s
        else:
            self._holes += cap
        del self._slot[garden_id]
        self._garden_of[slot] = None
        self.seg_alive[slot] = False
        self.seg_count[slot] = 0
        self.seg_cap[slot] = 0
        self._free.append(slot)

    # -------------------------------------------------------------- bodies
    def add_body(
        self,
        garden_id: Hashable,
        body_id: int,
        *,
        mass: float,
        radius: float,
        position,
        velocity=(0.0, 0.0, 0.0),
    ) -> int:
        """Add one body; returns ``body_id`` (the only stable handle)."""
        body_id = operator.index(body_id)
        self.add_bodies(
            garden_id,
            np.array([body_id], dtype=np.int64),
            mass=np.array([mass], dtype=np.float64),
            radius=np.array([radius], dtype=np.float64),
            position=np.asarray(position, dtype=np.float64).reshape(1, 3),
            velocity=np.asarray(velocity, dtype=np.float64).reshape(1, 3),
        )
        return body_id

    def add_bodies(self, garden_id: Hashable, ids, *, mass, radius, position, velocity) -> None:
        """Add n bodies at once (loading a garden); ``position``/``velocity`` are (n, 3)."""
        slot = self.slot_of(garden_id)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        n = ids.shape[0]
        mass = np.asarray(mass, dtype=np.float64).reshape(n)
        radius = np.asarray(radius, dtype=np.float64).reshape(n)
        position = np.asarray(position, dtype=np.float64).reshape(n, 3)
        velocity = np.asarray(velocity, dtype=np.float64).reshape(n, 3)
        validate_bodies(ids, mass, radius, position, velocity)
        s, count = int(self.seg_start[slot]), int(self.seg_count[slot])
        uniq, seen = np.unique(ids, return_counts=True)
        if np.any(seen > 1):
            raise DuplicateBodyError(garden_id, int(uniq[seen > 1][0]))
        clash = np.isin(ids, self.ids[s : s + count])
        if clash.any():
            raise DuplicateBodyError(garden_id, int(ids[clash][0]))
        if n == 0:
            return
        self._reserve(slot, count + n)
        s = int(self.seg_start[slot])
        sl = slice(s + count, s + count + n)
        self.ids[sl] = ids
        self.mass[sl] = mass
        self.radius[sl] = radius
        self.pos[:, sl] = position.T
        self.vel[:, sl] = velocity.T
        self.acc[:, sl] = 0.0
        self.seg_count[slot] = count + n
        self.seg_fresh[slot] = 1

    def remove_bodies(self, garden_id: Hashable, body_ids) -> int:
        """Remove bodies by id (unknown ids are ignored); returns how many went.

        The survivors keep their order and shift down inside the segment.
        """
        slot = self.slot_of(garden_id)
        s, n = int(self.seg_start[slot]), int(self.seg_count[slot])
        gone = np.isin(self.ids[s : s + n], np.asarray(body_ids, dtype=np.int64).reshape(-1))
        removed = int(gone.sum())
        if removed == 0:
            return 0
        keep = np.flatnonzero(~gone) + s
        k = keep.shape[0]
        for arr in (self.ids, self.mass, self.radius):
            arr[s : s + k] = arr[keep]
        for arr in (self.pos, self.vel, self.acc):
            arr[:, s : s + k] = arr[:, keep]
        self.ids[s + k : s + n] = -1
        self.seg_count[slot] = k
        self.seg_fresh[slot] = 1
        return removed

    def index_of(self, garden_id: Hashable, body_id: int) -> int:
        """Buffer index of a body now (changes when the buffers change)."""
        slot = self.slot_of(garden_id)
        s, n = int(self.seg_start[slot]), int(self.seg_count[slot])
        hit = np.flatnonzero(self.ids[s : s + n] == body_id)
        if hit.shape[0] == 0:
            raise UnknownBodyError(garden_id, body_id)
        return s + int(hit[0])

    def garden(self, garden_id: Hashable) -> GardenView:
        """Views of one garden's bodies (valid until the next mutation)."""
        slot = self.slot_of(garden_id)
        s, n = int(self.seg_start[slot]), int(self.seg_count[slot])
        sl = slice(s, s + n)
        return GardenView(
            garden_id=garden_id,
            start=s,
            ids=self.ids[sl],
            position=self.pos[:, sl],
            velocity=self.vel[:, sl],
            acceleration=self.acc[:, sl],
            mass=self.mass[sl],
            radius=self.radius[sl],
            origin=self.seg_origin[slot],
            garden_radius=float(self.seg_limit[slot]) / 2.0,
        )

    def touch(self, garden_id: Hashable) -> None:
        """Mark a garden's accelerations stale (after editing its views by hand)."""
        self.seg_fresh[self.slot_of(garden_id)] = 1

    def locate(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Slots and body ids of buffer indices (which must hold live bodies)."""
        indices = np.asarray(indices, dtype=np.int64)
        live = np.flatnonzero(self.seg_alive & (self.seg_count > 0))
        order = live[np.argsort(self.seg_start[live], kind="stable")]
        k = np.searchsorted(self.seg_start[order], indices, side="right") - 1
        return order[k], self.ids[indices]

    # -------------------------------------------------------------- layout
    def compact(self) -> None:
        """Pack the live segments from index 0, each with a quarter spare room."""
        live = np.flatnonzero(self.seg_alive)
        live = live[np.argsort(self.seg_start[live], kind="stable")]
        caps = [_spare(int(self.seg_count[k])) for k in live]
        capacity = self.capacity
        while capacity < sum(caps):
            capacity *= 2
        old = (self.pos, self.vel, self.acc, self.mass, self.radius, self.ids)
        self._allocate(capacity)
        cursor = 0
        for slot, cap in zip(live.tolist(), caps, strict=True):
            s, n = int(self.seg_start[slot]), int(self.seg_count[slot])
            self._copy_from(old, s, cursor, n)
            self.seg_start[slot] = cursor
            self.seg_cap[slot] = cap
            cursor += cap
        self._top = cursor
        self._holes = 0

    def _reserve(self, slot: int, need: int) -> None:
        """Make the segment of ``slot`` hold at least ``need`` bodies."""
        cap = int(self.seg_cap[slot])
        if need <= cap:
            return
        start = int(self.seg_start[slot])
        new_cap = max(need, 2 * cap, _MIN_SEGMENT)
        at_tail = start + cap == self._top
        if at_tail and start + new_cap <= self.capacity:
            self.seg_cap[slot] = new_cap
            self._top = start + new_cap
            return
        if self._top + new_cap > self.capacity and self._holes > 0:
            self.compact()
            cap = int(self.seg_cap[slot])
            if need <= cap:
                return
            start = int(self.seg_start[slot])
            new_cap = max(need, 2 * cap, _MIN_SEGMENT)
            at_tail = start + cap == self._top
        if at_tail:
            # Grow in place at the end of the used region.
            self._ensure_capacity(start + new_cap)
            self.seg_cap[slot] = new_cap
            self._top = start + new_cap
            return
        self._ensure_capacity(self._top + new_cap)
        n = int(self.seg_count[slot])
        arrays = (self.pos, self.vel, self.acc, self.mass, self.radius, self.ids)
        self._copy_from(arrays, start, self._top, n)
        self.ids[start : start + cap] = -1
        self._holes += cap
        self.seg_start[slot] = self._top
        self.seg_cap[slot] = new_cap
        self._top += new_cap

    def _ensure_capacity(self, need: int) -> None:
        if need <= self.capacity:
            return
        capacity = self.capacity
        while capacity < need:
            capacity *= 2
        old = (self.pos, self.vel, self.acc, self.mass, self.radius, self.ids)
        top = self._top
        self._allocate(capacity)
        self._copy_from(old, 0, 0, top)

    def _allocate(self, capacity: int) -> None:
        self.pos = np.zeros((3, capacity))
        self.vel = np.zeros((3, capacity))
        self.acc = np.zeros((3, capacity))
        self.mass = np.zeros(capacity)
        self.radius = np.zeros(capacity)
        self.ids = np.full(capacity, -1, dtype=np.int64)

    def _copy_from(self, old, src: int, dst: int, n: int) -> None:
        pos, vel, acc, mass, radius, ids = old
        a, b = slice(src, src + n), slice(dst, dst + n)
        self.pos[:, b] = pos[:, a]
        self.vel[:, b] = vel[:, a]
        self.acc[:, b] = acc[:, a]
        self.mass[b] = mass[a]
        self.radius[b] = radius[a]
        self.ids[b] = ids[a]

    def _grow_slots(self) -> None:
        old = self.seg_alive.shape[0]
        new = 2 * old
        for name in ("seg_start", "seg_count", "seg_cap", "seg_fresh", "seg_limit", "seg_alive"):
            arr = getattr(self, name)
            grown = np.zeros(new, dtype=arr.dtype)
            grown[:old] = arr
            setattr(self, name, grown)
        origin = np.zeros((new, 3))
        origin[:old] = self.seg_origin
        self.seg_origin = origin
        self._garden_of.extend([None] * (new - old))
        self._free.extend(range(new - 1, old - 1, -1))


def _spare(count: int) -> int:
    return count + max(count // 4, _MIN_SEGMENT)
