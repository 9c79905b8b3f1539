"""The suite's own rule: under COSMIC_TEST_REQUIRE_SERVICES=1 a skip fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def run_pytest(tmp_path: Path, require: bool) -> subprocess.CompletedProcess[str]:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_skips():\n    pytest.skip('postgres not reachable')\n"
        "@pytest.mark.xfail(reason='known', strict=True)\n"
        "def test_xfails():\n    assert False\n"
        "def test_passes():\n    pass\n"
    )
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
