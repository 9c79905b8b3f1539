"""Build the Pythran physics kernels; all metadata lives in setup.cfg."""

import os

from pythran.dist import PythranBuildExt, PythranExtension
from setuptools import setup

# Portable x86-64-v3 (AVX2 + FMA) code: -march=native would emit AVX-512 on
# the build host and crash with SIGILL on CPUs without it.
_ARCH = os.environ.get("COSMIC_BUILD_ARCH", "x86-64-v3")
_FLAGS = ["-O3", "-ffast-math", f"-march={_ARCH}", "-DUSE_XSIMD"]

kernels = PythranExtension(
    "cosmic.physics._kernels",
    sources=["cosmic/physics/kernels.py"],
    extra_compile_args=_FLAGS,
)

setup(ext_modules=[kernels], cmdclass={"build_ext": PythranBuildExt})
