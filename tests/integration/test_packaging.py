"""A normal (non-editable) build and install of the package, as pip does it.

Guards the packaging pitfalls: a wheel named UNKNOWN-0.0.0, a missing
compiled kernel, spec file or plugin, and `twistd --help` without `cosmic`.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Compiling the kernels inside pip takes minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("packaging")
    source = work / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "dist",
            "*.egg-info",
            "var",
            "__pycache__",
            "*.so",
            "*.cpp",
            ".hypothesis",
            ".pytest_cache",
            ".ruff_cache",
            "dropin.cache",
        ),
    )
    wheels = work / "wheels"
    env = {k: v for k, v in os.environ.items() if k != "SETUPTOOLS_USE_DISTUTILS"}
    subprocess.run(
        [PYTHON, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source)],
        check=True,
        env=env,
        timeout=900,
    )
    target = work / "site"
    (wheel,) = wheels.glob("*.whl")
    subprocess.run(
        [
            PYTHON,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        env=env,
        timeout=300,
    )
    return target


def run_installed(target: Path, *argv: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run(
        argv, cwd=target.parent, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout


def metadata() -> tuple[str, str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser["metadata"]["name"], parser["metadata"]["version"]


def test_distribution_is_named_and_versioned(installed: Path) -> None:
    name, version = metadata()
    (dist_info,) = installed.glob("*.dist-info")
    assert dist_info.name == f"{name.replace('-', '_')}-{version}.dist-info"
    script = "import importlib.metadata as m; print(m.version('cosmic-gardener'))"
    assert run_installed(installed, PYTHON, "-c", script).strip() == version


def test_wheel_holds_the_compiled_kernel_spec_and_plugin(installed: Path) -> None:
    assert list((installed / "cosmic" / "physics").glob("_kernels*.so"))
    assert (installed / "cosmic" / "configspec.ini").is_file()
    for backend in ("postgresql", "sqlite"):
        assert list((installed / "cosmic" / "store" / "migrations" / backend).glob("*.sql"))
    assert (installed / "twisted" / "plugins" / "cosmic_plugin.py").is_file()
    static = installed / "cosmic" / "web" / "static"
    assert (static / "index.html").is_file() and (static / "js" / "main.js").is_file()
    assert not (installed / "twisted" / "__init__.py").exists()
    assert not (installed / "twisted" / "plugins" / "__init__.py").exists()
    shipped = {p.name for p in installed.rglob("etc/cosmic/*.conf")}
    assert shipped == {"cosmic.conf", "development.conf", "production.conf", "test.conf"}


def test_installed_code_is_what_runs_and_twistd_lists_it(installed: Path) -> None:
    # -S skips .pth files, so the editable checkout is not on the path: only
    # the wheel's files and the venv's dependencies are.
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    env = dict(os.environ, PYTHONPATH=f"{installed}{os.pathsep}{site_packages}")
    script = (
        "import sys, cosmic; print(cosmic.__file__);"
        "from twisted.scripts.twistd import run; sys.argv = ['twistd', '--help']; run()"
    )
    result = subprocess.run(
        [PYTHON, "-S", "-c", script],
        cwd=installed.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    first, *listing = result.stdout.splitlines()
    assert Path(first).is_relative_to(installed)
    assert any(line.strip().startswith("cosmic ") for line in listing)
