"""The two plots of docs/performance.rst, from the benches' JSON output.

    .venv/bin/python bench/physics.py --json physics.json
    .venv/bin/python bench/load.py --players N --json load-N.json   # for several N
    .venv/bin/python bench/plots.py --physics physics.json --load load-*.json --out docs/

docs/physics.png
    time per physics step against bodies in the garden, one line per
    algorithm (log-log).
docs/latency.png
    delta delivery latency (p50 and p99) against connected players, from
    the ``hold`` phase of each load run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt


def physics(path: Path, out: Path) -> Path:
    rows = json.loads(path.read_text())["sections"]["scaling"]["rows"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for algorithm in dict.fromkeys(r["algorithm"] for r in rows):
        points = sorted((r["N"], r["ms/step"]) for r in rows if r["algorithm"] == algorithm)
        ax.plot(*zip(*points, strict=True), marker="o", label=algorithm)
    ax.axhline(1000 / 120, color="grey", linestyle=":", label="half a 60 Hz tick")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="bodies in one garden (N)",
        ylabel="ms per step (min of repeats)",
        title="Physics step time by algorithm",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    target = out / "physics.png"
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def latency(paths: list[Path], out: Path) -> Path:
    points = []
    for path in paths:
        run = json.loads(path.read_text())["sections"]["load"]
        hold = run["hold"]
        points.append((hold["connections_held"], hold["latency_p50_ms"], hold["latency_p99_ms"]))
    points.sort()
    players, p50, p99 = zip(*points, strict=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(players, p50, marker="o", label="p50")
    ax.plot(players, p99, marker="o", label="p99")
    ax.axhline(250, color="grey", linestyle=":", label="p99 target (250 ms)")
    ax.set(
        xlabel="connected, authenticated players",
        ylabel="delta delivery latency, ms",
        title="Delta latency against players (one daemon, 2 cores)",
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    target = out / "latency.png"
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--physics", type=Path, help="bench/physics.py --json output")
    parser.add_argument("--load", type=Path, nargs="*", default=[], help="bench/load.py outputs")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    if args.physics:
        print(physics(args.physics, args.out))
    if args.load:
        print(latency(args.load, args.out))


if __name__ == "__main__":
    main()
