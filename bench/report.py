"""Small helpers every bench shares: timing, a text table, a JSON report.

A bench builds rows (dicts), prints them with ``table()`` and, given
``--json FILE``, writes ``{"bench": ..., "machine": ..., "sections": {...}}``
with ``write_json()``.  Runnable benches live next to this file and import it
as ``report`` (the bench directory is on ``sys.path`` when a bench runs).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def time_call(fn: Callable[[], Any], *, repeats: int, inner: int = 1) -> dict[str, float]:
    """Run ``fn`` ``repeats x inner`` times; seconds per call as min and median.

    ``min`` is the figure to compare on a noisy machine (noise only adds
    time); ``median`` shows what a typical call costs.
    """
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - started) / inner)
    return {"min": min(samples), "median": statistics.median(samples), "repeats": repeats}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for var in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "OMP_WAIT_POLICY"):
        info[var] = os.environ.get(var)
    return info


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0.0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return "" if value is None else str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as an aligned text table (also valid reStructuredText "simple table")."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[k]) for row in cells)) for k, c in enumerate(columns)]
    rule = "  ".join("=" * w for w in widths)
    head = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([rule, head, rule, *body, rule])


def write_json(path: str, bench: str, sections: dict[str, Any], **extra: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(
            {"bench": bench, "machine": machine(), "sections": sections, **extra},
            f,
            indent=2,
            sort_keys=True,
        )
        f.write("\n")
