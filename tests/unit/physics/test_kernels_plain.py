"""kernels.py run as plain Python computes what the numpy reference computes.

The compiled module is built from this file, and Pythran accepts code that
plain Python would reject or compute differently (or the other way round);
running the source uncompiled checks that the source itself, not only its
build, is right.  The file is loaded under another name so that this is the
source next to the package, not whatever ``cosmic.physics.kernels`` is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import cosmic.physics
from cosmic.physics import G, reference

SOURCE = Path(cosmic.physics.__file__).with_name("kernels.py")
EXPORTS = ("step_scalar", "step_direct", "step_full", "step_tree")


@pytest.fixture(scope="module")
def plain():
    spec = importlib.util.spec_from_file_location("cosmic_kernels_plain", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not hasattr(module, "__pythran__")  # really the source, not a build
    return module


def tiny_system() -> dict[str, np.ndarray]:
    """Two gardens (5 and 3 bodies) with a free slot between them: one
    overlapping pair in the first, one body beyond its escape limit in the
    second."""
    rng = np.random.default_rng(11)
    cap = 9
    pos = rng.uniform(-5.0, 5.0, size=(3, cap))
    pos[:, 1] = pos[:, 0] + [0.01, 0.0, 0.0]  # overlaps body 0
    pos[:, 8] = [70.0, 0.0, 0.0]  # beyond the second garden's limit
    radius = np.full(cap, 1e-3)
    radius[[0, 1]] = 0.05
    return {
        "pos": pos,
        "vel": rng.normal(scale=0.5, size=(3, cap)),
        "acc": np.zeros((3, cap)),
        "mass": 10.0 ** rng.uniform(-6, 0, size=cap),
        "radius": radius,
        "starts": np.array([0, 6], dtype=np.int64),
        "counts": np.array([5, 3], dtype=np.int64),
        "fresh": np.ones(2, dtype=np.int64),
        "origins": np.zeros((2, 3)),
        "limits": np.array([60.0, 60.0]),
    }


def run(fn, system, leaf: int):
    b = {k: v.copy() for k, v in system.items()}
    pairs, escaped, _ = fn(
        b["pos"], b["vel"], b["acc"], b["mass"], b["radius"], b["starts"], b["counts"],
        b["fresh"], b["origins"], b["limits"], 1e-3, 1e-6, G, 1e-3, leaf,
    )  # fmt: skip
    return b, set(map(tuple, np.reshape(pairs, (-1, 2)).tolist())), set(escaped.tolist())


@pytest.mark.parametrize("name", EXPORTS)
def test_each_export_uncompiled_matches_the_reference(plain, name) -> None:
    system = tiny_system()
    # leaf 1 makes step_tree build and walk a real tree (theta 1e-3 opens
    # every cell, so it is a direct sum up to rounding).
    got, pairs, escaped = run(getattr(plain, name), system, leaf=1)
    want, want_pairs, want_escaped = run(reference.step, system, leaf=1)
    for key in ("pos", "vel", "acc"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-11, atol=1e-13, err_msg=key)
    assert pairs == want_pairs == {(0, 1)}
    assert escaped == want_escaped == {8}
    assert not np.array_equal(got["pos"], system["pos"])  # it did step
