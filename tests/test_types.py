"""mypy over the packages [tool.mypy] in pyproject.toml names (hardrun/spec/): a type
error fails the suite."""
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

MYPY = Path(sys.executable).parent / "mypy"   # the `test` extra installs it


def mypy(tree: Path) -> subprocess.CompletedProcess:
    """mypy in `tree`, with `tree`'s pyproject.toml choosing the files and the checks."""
    assert MYPY.exists(), f"{MYPY} missing: install the `test` extra"
    return subprocess.run([str(MYPY), "--no-incremental", "--cache-dir", "/dev/null"], cwd=tree,
                          capture_output=True, text=True, timeout=300)


def test_the_typed_packages_have_no_type_errors():
    done = mypy(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_control_a_planted_type_error_in_a_copy_is_found(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "hardrun" / "spec", tmp_path / "hardrun" / "spec",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "hardrun" / "__init__.py").write_text("")
    with open(tmp_path / "hardrun" / "spec" / "run.py", "a") as run:
        run.write("\n\ndef _planted() -> int:\n    return RunSpec().rootfs\n")
    done = mypy(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "run.py" in done.stdout and "Incompatible return value type" in done.stdout
