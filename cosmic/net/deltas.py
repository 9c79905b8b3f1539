"""Per-client state frames: quantization, deltas against what the client has, full syncs.

A ``Frame`` is one garden's state at one broadcast, with positions and
velocities quantized to integers (``q = rint(x / quantum)``; the client
computes ``x = q * quantum``).  Frames are built once per garden per
broadcast and shared by every client watching it; nothing mutates one.

A ``Stream`` is one client's view of one garden: the per-client sequence
number of the last frame sent, that frame (the base of the next delta) and
the last few sent frames (so a client that reconnects, or says it has an
older frame, gets a delta against the frame it really has).  The next
message of a stream is

* a ``FullStateSync`` when the client has no base (new stream, unknown
  ``last_sequence``) or the garden's event log no longer reaches back to the
  base (fallen too far behind);
* else a ``StateDelta`` against the base: the events since, only the
  resources / rates / upgrades / research that changed, integer position
  and velocity differences for the bodies that moved, the columns that
  changed for bodies whose attributes changed, added bodies in full and
  the ids of removed ones.

Because the base is always the last frame the client actually received, a
client that was skipped while its connection was congested gets one delta
covering everything it missed (coalescing), and quantization errors never
accumulate: the client's integers equal the server's after every frame.
"""

from __future__ import annotations

import collections
from typing import Any

import attrs
import numpy as np

# Body attributes beside motion, with the dtype kept for comparison.
ATTRIBUTES = {
    "kind": object,
    "name": object,
    "mass": np.float64,
    "radius": np.float64,
    "level": np.int64,
    "life_stage": object,
    "population": np.float64,
    "created_at": np.float64,
}
# Attributes that change while the body lives (created_at never does).
MUTABLE_ATTRIBUTES = ("kind", "name", "mass", "radius", "level", "life_stage", "population")
MAX_QUANTUM_STEPS = 2**53 - 1  # exact integers for every client (JavaScript included)
PROGRESS = ("resources", "rates", "upgrades", "research")


@attrs.frozen
class Quanta:
    position: float = 1e-4  # AU
    velocity: float = 1e-3  # AU per game year

    def as_data(self) -> dict[str, float]:
        return {"position": self.position, "velocity": self.velocity}


def quantize(values: Any, quantum: float) -> np.ndarray:
    """(n, 3) floats -> (n, 3) int64 steps of ``quantum`` (non-finite -> 0)."""
    steps = np.asarray(values, dtype=np.float64).reshape(-1, 3) / quantum
    np.rint(steps, out=steps)
    if steps.size and not np.abs(steps).max() <= MAX_QUANTUM_STEPS:  # NaN fails <= too
        steps[~np.isfinite(steps)] = 0.0
        np.clip(steps, -MAX_QUANTUM_STEPS, MAX_QUANTUM_STEPS, out=steps)
    return steps.astype(np.int64)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """np.array_equal for 1-d id arrays, without its overhead."""
    return a is b or (a.shape == b.shape and bool((a == b).all()))


def dequantize(steps: Any, quantum: float) -> np.ndarray:
    return np.asarray(steps, dtype=np.int64).reshape(-1, 3) * quantum


@attrs.frozen(eq=False)
class Frame:
    """One garden at one broadcast (shared, read-only)."""

    garden_id: int
    garden_seq: int
    game_time: float
    ids: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    attributes: dict[str, np.ndarray]
    progress: dict[str, Any]
    header: dict[str, Any] | None = None


def _attributes(bodies: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for name, dtype in ATTRIBUTES.items():
        column = np.empty(len(bodies[name]), dtype=object) if dtype is object else None
        if column is not None:
            column[:] = list(bodies[name])
        else:
            column = np.asarray(bodies[name], dtype=dtype)
        out[name] = column
    return out


def _progress(source: dict[str, Any]) -> dict[str, Any]:
    return {key: source[key] for key in PROGRESS}


def frame_from_snapshot(garden_id: int, snapshot: dict[str, Any], quanta: Quanta) -> Frame:
    """A frame from ``world.snapshot(garden_id)``."""
    bodies = snapshot["bodies"]
    header = snapshot["garden"]
    return Frame(
        garden_id=garden_id,
        garden_seq=int(header["seq"]),
        game_time=float(header["game_time"]),
        ids=np.asarray(bodies["ids"], dtype=np.int64),
        position=quantize(bodies["position"], quanta.position),
        velocity=quantize(bodies["velocity"], quanta.velocity),
        attributes=_attributes(bodies),
        progress=_progress(snapshot),
        header=dict(header),
    )


def frame_from_delta(
    garden_id: int, delta: dict[str, Any], previous: Frame, quanta: Quanta
) -> Frame:
    """A frame from ``world.delta(...)``; body attributes (which a delta does
    not carry) come from ``previous``, whose ids must be the same."""
    ids = np.asarray(delta["motion"]["ids"], dtype=np.int64)
    if not _same(ids, previous.ids):
        raise ValueError("the bodies changed: build this frame from a snapshot")
    ids = previous.ids  # shared: later comparisons are identity checks
    return Frame(
        garden_id=garden_id,
        garden_seq=int(delta["seq"]),
        game_time=float(delta["game_time"]),
        ids=ids,
        position=quantize(delta["motion"]["position"], quanta.position),
        velocity=quantize(delta["motion"]["velocity"], quanta.velocity),
        attributes=previous.attributes,
        progress=_progress(delta),
        header=previous.header,
    )


def _columns(frame: Frame, rows: Any, names: Any) -> dict[str, list[Any]]:
    return {name: frame.attributes[name][rows].tolist() for name in names}


def full_data(frame: Frame, quanta: Quanta) -> dict[str, Any]:
    """The data of a FullStateSync (without garden_id / sequence)."""
    bodies = {"ids": frame.ids.tolist(), **_columns(frame, slice(None), ATTRIBUTES)}
    bodies["position"] = frame.position.ravel().tolist()
    bodies["velocity"] = frame.velocity.ravel().tolist()
    return {
        "garden": frame.header,
        "garden_seq": frame.garden_seq,
        "game_time": frame.game_time,
        **frame.progress,
        "quantum": quanta.as_data(),
        "bodies": bodies,
    }


def _changed_items(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    if new == old:
        return {}
    return {key: value for key, value in new.items() if old.get(key) != value}


def delta_data(base: Frame, current: Frame, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The data of a StateDelta from ``base`` to ``current`` (without
    garden_id / sequence / base): only what changed."""
    out: dict[str, Any] = {"garden_seq": current.garden_seq, "game_time": current.game_time}
    if events:
        out["events"] = events
    for key in ("resources", "rates", "upgrades"):
        changed = _changed_items(current.progress[key], base.progress[key])
        if changed:
            out[key] = changed
    if current.progress["research"] != base.progress["research"]:
        out["research"] = current.progress["research"]
    if current.header is not None and current.header != base.header:
        changed = _changed_items(current.header, base.header or {})
        changed.pop("seq", None)
        changed.pop("game_time", None)
        if changed:
            out["garden"] = changed

    if _same(current.ids, base.ids):
        rows_now: Any = slice(None)
        rows_base: Any = slice(None)
        kept = current.ids
        added = removed = None
    else:
        kept, rows_now, rows_base = np.intersect1d(
            current.ids, base.ids, assume_unique=True, return_indices=True
        )
        added = np.flatnonzero(~np.isin(current.ids, base.ids, assume_unique=True))
        removed = base.ids[~np.isin(base.ids, current.ids, assume_unique=True)]

    dp = current.position[rows_now] - base.position[rows_base]
    dv = current.velocity[rows_now] - base.velocity[rows_base]
    moved = np.logical_or((dp != 0).any(axis=1), (dv != 0).any(axis=1))
    if moved.all():
        out["motion"] = {
            "ids": kept.tolist(),
            "position": dp.ravel().tolist(),
            "velocity": dv.ravel().tolist(),
        }
    elif moved.any():
        out["motion"] = {
            "ids": kept[moved].tolist(),
            "position": dp[moved].ravel().tolist(),
            "velocity": dv[moved].ravel().tolist(),
        }

    if current.attributes is not base.attributes and len(kept):
        differs = {
            name: current.attributes[name][rows_now] != base.attributes[name][rows_base]
            for name in MUTABLE_ATTRIBUTES
        }
        rows = np.zeros(len(kept), dtype=bool)
        for mask in differs.values():
            rows |= mask
        if rows.any():
            rows_at = np.flatnonzero(rows)
            source = rows_at if isinstance(rows_now, slice) else np.asarray(rows_now)[rows_at]
            names = [name for name, mask in differs.items() if mask.any()]
            out["changed"] = {"ids": kept[rows_at].tolist(), **_columns(current, source, names)}

    if added is not None and len(added):
        out["added"] = {
            "ids": current.ids[added].tolist(),
            **_columns(current, added, ATTRIBUTES),
            "position": current.position[added].ravel().tolist(),
            "velocity": current.velocity[added].ravel().tolist(),
        }
    if removed is not None and len(removed):
        out["removed"] = removed.tolist()
    return out


class Stream:
    """One client's view of one garden (see the module docstring)."""

    def __init__(self, garden_id: int, role: str, keep: int = 8) -> None:
        self.garden_id = garden_id
        self.role = role  # "owner" or "observer"
        self.sequence = 0
        self.base: Frame | None = None
        self.base_sequence = 0
        self.sent: collections.deque[tuple[int, Frame]] = collections.deque(maxlen=keep)
        self.full_reason: str | None = "new"
        self.coalesced = 0
        self.sent_tick = 0  # the broadcast that last sent this stream a frame

    @property
    def needs_full(self) -> bool:
        return self.full_reason is not None or self.base is None

    def force_full(self, reason: str) -> None:
        self.full_reason = reason

    def rebase(self, last_sequence: int | None) -> bool:
        """Make the frame the client says it has the base; False (and a full
        sync next) when that frame is not one of the kept ones."""
        if last_sequence is not None:
            for sequence, frame in self.sent:
                if sequence == last_sequence:
                    self.base = frame
                    self.base_sequence = sequence
                    self.full_reason = None
                    return True
        self.full_reason = "unknown_sequence" if last_sequence else "requested"
        return False

    def message(
        self,
        current: Frame,
        events: list[dict[str, Any]] | None,
        quanta: Quanta,
        cache: dict[tuple[int, int], dict[str, Any]] | None = None,
        server_time: float | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """The next message for this stream, and record it as sent.

        ``events`` are the garden's events after ``self.base.garden_seq``, or
        None when the event log no longer reaches that far (full sync).
        ``cache`` (for one broadcast, while its frames live) shares the body
        of identical deltas and full syncs between clients of one garden.
        ``server_time`` (ms) is when the frame was built, so that a client can
        measure how late it arrives.
        """
        self.sequence += 1
        head: dict[str, Any] = {"garden_id": self.garden_id, "sequence": self.sequence}
        if server_time is not None:
            head["server_time"] = server_time
        if self.needs_full or events is None or self.base is None:
            if current.header is None:
                raise ValueError("a full sync needs a frame built from a snapshot")
            key = (id(current), 0)
            body = cache.get(key) if cache is not None else None
            if body is None:
                body = full_data(current, quanta)
                if cache is not None:
                    cache[key] = body
            kind, data = "FullStateSync", {**head, "role": self.role, **body}
            self.full_reason = None
        else:
            key = (id(current), id(self.base))
            body = cache.get(key) if cache is not None else None
            if body is None:
                body = delta_data(self.base, current, events)
                if cache is not None:
                    cache[key] = body
            data = {**head, "base": self.base_sequence, **body}
            kind = "StateDelta"
        self.base = current
        self.base_sequence = self.sequence
        self.sent.append((self.sequence, current))
        return kind, data
