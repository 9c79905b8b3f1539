"""Build the Pythran physics kernels; all metadata lives in setup.cfg.

``cosmic.physics._kernels`` is always built.  ``cosmic.physics._kernels_omp``
(the same source with OpenMP, used only when the engine is configured with
``openmp=True``) is built when ``COSMIC_BUILD_OPENMP=1``: it doubles the
compile time and is off by default at run time anyway.
"""

import os

from pythran.dist import PythranBuildExt, PythranExtension
from setuptools import setup

SOURCE = "cosmic/physics/kernels.py"

# Portable x86-64-v3 (AVX2 + FMA) code: -march=native would emit AVX-512 on
# the build host and crash with SIGILL on CPUs without it.  The flags go to
# the compiler only: -ffast-math at link time would pull in crtfastmath.o,
# which turns on flush-to-zero for the whole Python process when the module
# loads (a test checks that subnormals survive the import).
_ARCH = os.environ.get("COSMIC_BUILD_ARCH", "x86-64-v3")
# GCC gives up vectorising a loop that needs more than 10 run-time alias
# checks; the pair loops read and write seven arrays, so allow more (GCC flag).
_FLAGS = [
    "-O3",
    "-ffast-math",
    f"-march={_ARCH}",
    "-DUSE_XSIMD",
    "--param=vect-max-version-for-alias-checks=100",
]

extensions = [
    PythranExtension("cosmic.physics._kernels", sources=[SOURCE], extra_compile_args=_FLAGS),
]
if os.environ.get("COSMIC_BUILD_OPENMP") == "1":
    extensions.append(
        PythranExtension(
            "cosmic.physics._kernels_omp",
            sources=[SOURCE],
            extra_compile_args=[*_FLAGS, "-fopenmp"],
            extra_link_args=["-fopenmp"],
        )
    )

setup(ext_modules=extensions, cmdclass={"build_ext": PythranBuildExt})
