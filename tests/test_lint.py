"""ruff over the code, the tests and the benchmarks, with the rules of [tool.ruff] in
pyproject.toml: a finding fails the suite."""
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

RUFF = Path(sys.executable).parent / "ruff"   # the `test` extra installs it


def ruff_check(*paths: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    assert RUFF.exists(), f"{RUFF} missing: install the `test` extra"
    return subprocess.run([str(RUFF), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), *paths],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_code_tests_and_benchmarks_have_no_findings():
    done = ruff_check("hardrun", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_control_a_planted_unused_import_and_long_line_are_findings(tmp_path):
    (tmp_path / "planted.py").write_text("import os\n" + "x = " + "1 + " * 40 + "1\n")
    done = ruff_check("planted.py", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "F401" in done.stdout and "E501" in done.stdout
