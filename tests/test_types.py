"""mypy over the packages [tool.mypy] in pyproject.toml names (hardrun/spec/ and
hardrun/runtime/): a type error fails the suite."""
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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


def test_no_module_is_exempted_from_the_checks():
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"].get("overrides", [])
    exempted = [o["module"] for o in overrides if o.get("ignore_errors")]
    assert exempted == [], f"modules whose type errors are ignored: {exempted}"


@pytest.mark.parametrize("module, planted", [
    ("spec/run.py", "\n\ndef _planted() -> int:\n    return RunSpec().rootfs\n"),
    # the runtime's plan and its system-call seam are checked too
    ("runtime/config.py", "\n\ndef _planted() -> int:\n    return str(1)\n"),
    ("runtime/child.py", "\n\ndef _planted() -> int:\n    return str(1)\n"),
    # so are the modules once exempted (hooks.py among them)
    ("runtime/hooks.py", "\n\ndef _planted() -> int:\n    return str(1)\n"),
    # the top-level modules (the bottom layer)
    ("userfiles.py", "\n\ndef _planted() -> int:\n    return read_text('x')\n"),
    ("jsonlite.py", "\n\ndef _planted() -> int:\n    return dumps(1)\n"),
    # the shared parsing helpers: a record's field and a plain function
    ("parsing/shell_words.py", "\n\ndef _planted() -> int:\n    return Word('x', 1).text\n"),
    ("parsing/yamlsafe.py", "\n\ndef _planted() -> int:\n    return str(1)\n"),
])
def test_control_a_planted_type_error_in_a_copy_is_found(tmp_path, module, planted):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "hardrun", tmp_path / "hardrun",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "data"))
    with open(tmp_path / "hardrun" / module, "a") as source:
        source.write(planted)
    line = (tmp_path / "hardrun" / module).read_text().count("\n")     # the planted `return`
    done = mypy(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"hardrun/{module}:{line}: error: Incompatible return value type" in done.stdout, done.stdout
