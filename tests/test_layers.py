"""The layers of the package (docs/architecture.md, "Layers"), as the import-linter
contracts in pyproject.toml state them: spec < frontends < audit < policy < cli over a
bottom layer, the runtime on spec and the bottom layer only, no cycles in a package."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"   # the `test` extra installs it


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """lint-imports over the `hardrun` package in `tree`, with `tree`'s pyproject.toml."""
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} missing: install the `test` extra"
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)})


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "hardrun", tmp_path / "hardrun",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "data"))
    return tmp_path


def test_the_package_keeps_its_layer_contracts():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_copy_of_the_package_keeps_them_too(tmp_path):
    # control for the tests below: the copy they plant imports in is itself clean
    done = lint_imports(copy_of_the_package(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


def plant(tree: Path, module: str, line: str) -> None:
    path = tree / "hardrun" / module
    path.write_text(path.read_text(encoding="utf-8") + "\n\n" + line + "\n", encoding="utf-8")


PLANTED = {
    # a lazy import counts too
    "a front end importing the policy layer": (
        "frontends/compose.py", "def _planted():\n    from ..policy import load",
        "hardrun.frontends.compose -> hardrun.policy.load"),
    "the runtime importing a front end": (
        "runtime/config.py", "from ..frontends import docker_flags",
        "hardrun.runtime is not allowed to import hardrun.frontends"),
    "a cycle between sibling modules": (
        "frontends/detect.py", "def _planted():\n    from . import docker_run",
        "No cycles are allowed in hardrun.frontends"),
}


@pytest.mark.parametrize("name", PLANTED)
def test_a_planted_bad_import_breaks_a_contract(tmp_path, name):
    module, line, reported = PLANTED[name]
    tree = copy_of_the_package(tmp_path)
    plant(tree, module, line)
    done = lint_imports(tree)
    assert done.returncode == 1
    assert reported in done.stdout
