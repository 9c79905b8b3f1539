"""Loading the compiled kernels leaves the process's floating point alone.

Linking with -ffast-math pulls in crtfastmath.o, whose constructor turns on
flush-to-zero and denormals-are-zero for the process when the module loads
(setup.py passes the flag to the compiler only).  Then every subnormal in
numpy and plain Python arithmetic silently becomes 0.0, far from the physics.
A fresh interpreter is used so that the import is the first one.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

CHECKS = """
import numpy as np
tiny = np.finfo(np.float64).tiny  # the smallest normal double
assert 5e-324 > 0, "the smallest subnormal compares as zero (denormals-are-zero)"
assert tiny / 2 > 0, "plain Python arithmetic flushes subnormals to zero"
halves = np.array([tiny, 1e-310, 3e-320]) * 0.5
assert (halves > 0).all(), f"numpy flushes subnormals to zero: {halves}"
assert np.nextafter(0.0, 1.0) == 5e-324
"""


def compiled_modules() -> list[str]:
    names = ["cosmic.physics._kernels", "cosmic.physics._kernels_omp"]
    return [name for name in names if importlib.util.find_spec(name) is not None]


def test_subnormals_survive_importing_the_compiled_kernels() -> None:
    modules = compiled_modules()
    if "cosmic.physics._kernels" not in modules:
        pytest.skip("compiled kernels not built")
    code = "".join(f"import {name}\n" for name in modules) + CHECKS
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_the_checks_hold_without_the_kernels() -> None:
    # The baseline: were this to fail, the test above would prove nothing.
    result = subprocess.run(
        [sys.executable, "-c", CHECKS], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
