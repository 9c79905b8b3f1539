"""Physics benchmark: numpy reference vs compiled kernels vs Barnes-Hut tree.

    .venv/bin/python bench/physics.py [--json FILE] [--quick]

Every figure is the time of one ``PhysicsEngine.step()`` (one kick-drift-kick
step, one force evaluation, overlap and escape checks, Python overhead
included), measured side by side in one run.  Each is the minimum over
repeats (noise only adds time); the JSON has the medians too.  "pairs/s" is
the direct-sum equivalent N(N-1)/2 / time for every algorithm, so the rates
compare the time to the same answer.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import report

from cosmic.physics import IMPLEMENTATION, IMPLEMENTATION_REASON, G, PhysicsEngine
from cosmic.physics import reference as ref

HALF_TICK = 1.0 / 120.0  # half of a 60 Hz tick, seconds
SIZES = (16, 64, 256, 1000, 4000, 10000)


def disk(rng: np.random.Generator, n: int):
    """A star and n - 1 light bodies in a thick disk of radius 90 AU, near-circular orbits."""
    r = rng.uniform(1.0, 90.0, size=n)
    phi = rng.uniform(0.0, 2.0 * np.pi, size=n)
    pos = np.column_stack([r * np.cos(phi), r * np.sin(phi), rng.normal(scale=1.0, size=n)])
    speed = np.sqrt(G / r)
    vel = np.column_stack([-speed * np.sin(phi), speed * np.cos(phi), np.zeros(n)])
    mass = 10.0 ** rng.uniform(-9, -5, size=n)
    pos[0], vel[0], mass[0] = 0.0, 0.0, 1.0
    return pos, vel, mass, np.full(n, 1e-5)


def engine_with(algorithm: str, gardens: int, n: int, seed: int = 1) -> PhysicsEngine:
    """An engine whose every garden of n bodies is stepped with ``algorithm``."""
    kw = {"implementation": "reference"} if algorithm == "reference" else {}
    if algorithm == "scalar":
        kw.update(simd_threshold=n + 1, tree_threshold=10**9)
    elif algorithm in ("direct", "direct_omp"):
        kw.update(simd_threshold=1, tree_threshold=10**9)
    elif algorithm in ("tree", "tree_omp"):
        kw.update(simd_threshold=1, tree_threshold=1)
    if algorithm.endswith("_omp"):
        kw.update(openmp=True, openmp_threshold=1)
    engine = PhysicsEngine(**kw)
    rng = np.random.default_rng(seed)
    for g in range(gardens):
        pos, vel, mass, radius = disk(rng, n)
        engine.bodies.add_garden(g)
        engine.bodies.add_bodies(
            g, np.arange(n), mass=mass, radius=radius, position=pos, velocity=vel
        )
    if algorithm != "reference" and gardens and engine.algorithm_for(n) != algorithm:
        raise RuntimeError(f"{algorithm} unavailable: {engine.openmp_reason}")
    engine.step(1e-4)  # accelerations now current: later steps do one force evaluation
    return engine


def time_step(algorithm: str, n: int, gardens: int = 1, budget: float = 1.5, quick=False):
    engine = engine_with(algorithm, gardens, n)
    once = report.time_call(lambda: engine.step(1e-4), repeats=1)["min"]
    repeats = max(3, min(50, int(budget / max(once, 1e-6))))
    if quick:
        repeats = max(3, repeats // 5)
    inner = max(1, int(2e-3 / max(once, 1e-9)))
    return report.time_call(lambda: engine.step(1e-4), repeats=repeats, inner=inner)


def scaling(algorithms, quick):
    rows, raw = [], {}
    for n in SIZES:
        pairs = n * (n - 1) / 2
        base = None
        for algorithm in algorithms:
            if algorithm == "scalar" and n > 1000:
                continue
            if quick and algorithm == "reference" and n > 4000:
                continue
            t = time_step(algorithm, n, quick=quick)
            raw[f"{algorithm}@{n}"] = t
            if algorithm == "reference":
                base = t["min"]
            rows.append(
                {
                    "N": n,
                    "algorithm": algorithm,
                    "ms/step": t["min"] * 1e3,
                    "median ms": t["median"] * 1e3,
                    "Gpairs/s": pairs / t["min"] / 1e9,
                    "x reference": (base / t["min"]) if base else None,
                }
            )
    return rows, raw


def threshold(quick):
    rows = []
    for n in (2, 4, 8, 12, 16, 24, 32, 48, 64):
        gardens = 200
        ts = {a: time_step(a, n, gardens=gardens, budget=0.5, quick=quick)["min"] for a in
              ("scalar", "direct")}  # fmt: skip
        rows.append(
            {
                "N": n,
                "gardens": gardens,
                "scalar us/garden": ts["scalar"] / gardens * 1e6,
                "direct us/garden": ts["direct"] / gardens * 1e6,
                "faster": "scalar" if ts["scalar"] < ts["direct"] else "direct",
            }
        )
    return rows


def largest_n(algorithm, quick, lo=500, hi=40000):
    """Largest N whose step fits in half a 60 Hz tick (bisection on min time)."""
    while hi - lo > (lo // 20 if quick else lo // 50):
        mid = (lo + hi) // 2
        if time_step(algorithm, mid, budget=0.3, quick=True)["min"] <= HALF_TICK:
            lo = mid
        else:
            hi = mid
    return lo


def crossover(quick):
    rows = []
    found = None
    for n in (1000, 2000, 3000, 4000, 5000, 6000, 8000):
        d = time_step("direct", n, budget=0.6, quick=quick)["min"]
        t = time_step("tree", n, budget=0.6, quick=quick)["min"]
        rows.append({"N": n, "direct ms": d * 1e3, "tree ms": t * 1e3, "tree/direct": t / d})
        if found is None and t < d:
            found = n
    return rows, found


def tree_error(n=4000):
    from cosmic.physics import DEFAULT_LEAF_SIZE, DEFAULT_THETA
    from cosmic.physics import _kernels as k

    rng = np.random.default_rng(5)
    rows = []
    for theta in (0.3, DEFAULT_THETA, 0.7):
        pos, _, mass, _ = disk(rng, n)
        x = np.ascontiguousarray(pos.T)
        acc = np.zeros_like(x)
        k.step_tree(
            x, np.zeros_like(x), acc, mass, np.zeros(n), np.array([0]), np.array([n]),
            np.array([1]), np.zeros((1, 3)), np.array([1e9]), 0.0, 1e-6, G, theta,
            DEFAULT_LEAF_SIZE,
        )  # fmt: skip
        want = ref.accelerations(x, mass, 1e-6, G)
        err = np.linalg.norm(acc - want, axis=0) / np.linalg.norm(want, axis=0)
        rows.append(
            {
                "theta": theta,
                "median %": 100 * float(np.median(err)),
                "p99 %": 100 * float(np.quantile(err, 0.99)),
                "max %": 100 * float(err.max()),
                "rms %": 100 * float(np.linalg.norm(acc - want) / np.linalg.norm(want)),
            }
        )
    return rows


def gil_demo(n=4000):
    """Main-thread Python progress while a worker thread runs one step.

    If the kernel held the GIL, the main thread would stall for the whole
    call; released, it keeps counting at (nearly) its idle rate.
    """
    engine = engine_with("direct", 1, n)
    step_time = report.time_call(lambda: engine.step(1e-4), repeats=3)["min"]

    def count_until(event):
        started, c = time.perf_counter(), 0
        while not event.is_set():
            c += 1
        return c / (time.perf_counter() - started)

    idle = threading.Event()
    threading.Timer(0.2, idle.set).start()
    idle_rate = count_until(idle)
    done = threading.Event()

    def worker():
        for _ in range(10):
            engine.step(1e-4)
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    busy_rate = count_until(done)
    thread.join()
    return {
        "N": n,
        "steps in worker": 10,
        "step ms": step_time * 1e3,
        "main-thread rate while stepping / idle rate": busy_rate / idle_rate,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    args = parser.parse_args(argv)

    print(f"kernels: {IMPLEMENTATION} ({IMPLEMENTATION_REASON})")
    info = report.machine()
    print(
        f"machine: {info.get('cpu')}, {info['cpus']} cpus, load {info['load_average']}, "
        f"OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']}"
    )
    if IMPLEMENTATION != "compiled":
        print("compiled kernels missing: build them first (see docs/performance.rst)")
        return 1
    algorithms = ["reference", "scalar", "direct", "tree"]
    try:
        engine_with("tree_omp", 0, 1)
        omp = PhysicsEngine(openmp=True).openmp_active
    except RuntimeError:
        omp = False
    if omp:
        algorithms += ["direct_omp", "tree_omp"]
    sections = {}

    print("\n## time per step, one garden of N bodies (min of repeats)")
    rows, raw = scaling(algorithms, args.quick)
    print(report.table(rows))
    sections["scaling"] = {"rows": rows, "raw": raw}

    print("\n## scalar vs vectorised direct sum for small gardens (simd_threshold)")
    rows = threshold(args.quick)
    print(report.table(rows))
    sections["threshold"] = rows

    print("\n## 1000 gardens x 50 bodies, one step of all")
    many = {a: time_step(a, 50, gardens=1000, quick=args.quick) for a in ("reference", "direct")}
    rows = [
        {"algorithm": a, "ms/step": t["min"] * 1e3, "median ms": t["median"] * 1e3}
        for a, t in many.items()
    ]
    print(report.table(rows))
    sections["many_gardens"] = rows

    print("\n## tree vs direct crossover")
    rows, cross = crossover(args.quick)
    print(report.table(rows))
    print(f"tree faster from N = {cross}")
    sections["crossover"] = {"rows": rows, "tree_faster_from": cross}

    print("\n## largest N per garden inside half a 60 Hz tick (8.33 ms)")
    largest = {a: largest_n(a, args.quick) for a in ("direct", "tree")}
    print(report.table([{"algorithm": a, "largest N": n} for a, n in largest.items()]))
    sections["largest_n_half_tick"] = largest

    print("\n## tree force error vs direct sum (N = 4000 disk, relative per body)")
    rows = tree_error()
    print(report.table(rows))
    sections["tree_error"] = rows

    print("\n## GIL: main-thread Python progress while a worker thread steps")
    gil = gil_demo()
    print(report.table([gil]))
    sections["gil"] = gil

    r1000 = raw["reference@1000"]["min"] / raw["direct@1000"]["min"]
    rate1000 = 1000 * 999 / 2 / raw["direct@1000"]["min"] / 1e9
    best_rate = max(n * (n - 1) / 2 / raw[f"direct@{n}"]["min"] / 1e9 for n in (1000, 4000))
    targets = [
        ("compiled >= 15x reference at N=1000", r1000, 15.0, r1000 >= 15.0),
        ("direct >= 0.6 G pairs/s on one core", best_rate, 0.6, best_rate >= 0.6),
        ("1000 bodies stepped <= 1.5 ms", raw["direct@1000"]["min"] * 1e3, 1.5,
         raw["direct@1000"]["min"] <= 1.5e-3),
        ("1000 gardens x 50 bodies <= 5 ms", many["direct"]["min"] * 1e3, 5.0,
         many["direct"]["min"] <= 5e-3),
    ]  # fmt: skip
    print("\n## targets")
    rows = [{"target": t, "measured": v, "limit": lim, "met": ok} for t, v, lim, ok in targets]
    print(report.table(rows))
    sections["targets"] = rows
    print(f"(pairs/s at N=1000: {rate1000:.3f} G)")

    if args.json:
        report.write_json(
            args.json, "physics", sections, command=" ".join(["bench/physics.py", *(argv or [])])
        )
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    sys.exit(main(sys.argv[1:]))
