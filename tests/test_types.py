"""mypy over what [tool.mypy] in pyproject.toml names (the whole hardrun package: spec/,
runtime/, parsing/, frontends/, images/, policy/, audit/, cli/ and the top-level
modules): a type error fails the suite."""
import glob
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


def _unjudged(files: list[str]) -> list[str]:
    """The modules of the hardrun package that none of `files` (mypy's paths: a directory,
    a file or a glob, relative to the root) names."""
    judged = set()
    for entry in files:
        for name in glob.glob(entry, root_dir=ROOT):     # as mypy expands them
            path = ROOT / name
            judged.update(path.rglob("*.py") if path.is_dir() else [path])
    return sorted(str(path.relative_to(ROOT)) for path in (ROOT / "hardrun").rglob("*.py")
                  if path not in judged)


def test_every_module_of_the_package_is_judged():
    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    assert _unjudged(files) == []


def test_control_a_module_left_out_of_the_files_is_noticed():
    assert "hardrun/cli/oci.py" in _unjudged(["hardrun/*.py", "hardrun/spec", "hardrun/runtime"])
    assert _unjudged(["hardrun/*.py", "hardrun/spec/", "hardrun/runtime/*.py"]) != []


def test_no_module_is_exempted_from_the_checks():
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"].get("overrides", [])
    exempted = [o["module"] for o in overrides if o.get("ignore_errors")]
    assert exempted == [], f"modules whose type errors are ignored: {exempted}"


# (module, text appended to it whose `return` is a type error)
PLANTED = [
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
    # the front ends: a parser's record and a module-level function
    ("frontends/docker_argv.py", "\n\ndef _planted() -> int:\n    return ParsedRun().image\n"),
    ("frontends/compose.py", "\n\ndef _planted() -> int:\n    return str(1)\n"),
    # images: a manifest's record and a module holding a stub-wrong call of the standard library
    ("images/manifest.py", "\n\ndef _planted() -> int:\n    return Descriptor('t', 'd', 1).digest\n"),
    ("images/layers.py", "\n\ndef _planted() -> int:\n    return clean_path('x')\n"),
    # policy: a policy's record and the module reading policy files
    ("policy/model.py", "\n\ndef _planted() -> int:\n    return HostMount('/srv').path\n"),
    ("policy/load.py", "\n\ndef _planted() -> int:\n    return str(1)\n"),
    # audit: a finding's field, the engine, and a check module two packages down
    ("audit/findings.py", "\n\ndef _planted() -> int:\n    return Finding('r', 'p', 's', 'f', 1, None, 'm').path\n"),
    ("audit/engine.py", "\n\ndef _planted() -> int:\n    return str(1)\n"),
    ("audit/checks/buildutil/installs.py", "\n\ndef _planted() -> int:\n    return str(1)\n"),
    # cli: the fast option parser's record and hardrun-oci, whose imports are lazy
    ("cli/options.py", "\n\ndef _planted() -> int:\n    return Option('--x', dest='x', help='h').dest\n"),
    ("cli/oci.py", "\n\ndef _planted() -> int:\n    return str(1)\n"),
]


@pytest.fixture(scope="module")
def planted_copy(tmp_path_factory):
    """A copy of the tree with every error of PLANTED in it, each module's line of it, and
    mypy's one run over the copy (a run costs seconds: not one per module)."""
    tree = tmp_path_factory.mktemp("planted")
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    shutil.copytree(ROOT / "hardrun", tree / "hardrun",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "data"))
    lines = {}
    for module, planted in PLANTED:
        with open(tree / "hardrun" / module, "a") as source:
            source.write(planted)
        lines[module] = (tree / "hardrun" / module).read_text().count("\n")     # the planted `return`
    return lines, mypy(tree)


@pytest.mark.parametrize("module", [module for module, _ in PLANTED])
def test_control_a_planted_type_error_in_a_copy_is_found(planted_copy, module):
    lines, done = planted_copy
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"hardrun/{module}:{lines[module]}: error: Incompatible return value type" in done.stdout, done.stdout
