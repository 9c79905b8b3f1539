"""The suite's own rule: under COSMIC_TEST_REQUIRE_SERVICES=1 a skip fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


SAMPLE = (
    "import pytest\n"
    "def test_skips():\n    pytest.skip('postgres not reachable')\n"
    "@pytest.mark.xfail(reason='known', strict=True)\n"
    "def test_xfails():\n    assert False\n"
    "def test_passes():\n    pass\n"
)
# As tests/unit/physics does without the compiled kernels: the module is
# skipped while it is collected, before any test item exists.
MODULE_SKIP = (
    "import pytest\n"
    "pytest.importorskip('cosmic_no_such_module')\n"
    "def test_never_collected():\n    pass\n"
)
WITH_MODULE_SKIP = {
    "test_compiled.py": MODULE_SKIP,
    "test_plain.py": "def test_passes():\n    pass\n",
}


def run_pytest(
    tmp_path: Path, require: bool, files: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    for name, text in (files or {"test_sample.py": SAMPLE}).items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "COSMIC_TEST_REQUIRE_SERVICES"}
    if require:
        env["COSMIC_TEST_REQUIRE_SERVICES"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:twisted",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_skip_is_a_failure_when_services_are_required(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, require=True)
    assert result.returncode == 1
    assert "1 failed, 1 passed, 1 xfailed" in result.stdout
    assert "forbids skips: Skipped: postgres not reachable" in result.stdout


def test_skip_is_a_skip_otherwise(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, require=False)
    assert result.returncode == 0
    assert "1 passed, 1 skipped, 1 xfailed" in result.stdout


def test_a_module_skipped_while_collected_fails_when_services_are_required(
    tmp_path: Path,
) -> None:
    result = run_pytest(tmp_path, require=True, files=WITH_MODULE_SKIP)
    assert result.returncode != 0
    assert "1 error" in result.stdout and "skipped" not in result.stdout.splitlines()[-1]
    assert "forbids skips: Skipped: could not import 'cosmic_no_such_module'" in result.stdout


def test_a_module_skipped_while_collected_is_a_skip_otherwise(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, require=False, files=WITH_MODULE_SKIP)
    assert result.returncode == 0
    assert "1 passed, 1 skipped" in result.stdout
