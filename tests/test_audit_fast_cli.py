"""`hardrun audit` reads usual command lines without click: same reports, same exit
status, and every command line it is not sure of goes to click."""
import subprocess
import sys

import pytest

from hardrun.cli.audit_fast import parse
from tests.conftest import DATA, ROOT, run_hardrun


def test_usual_options_are_read():
    options = parse(["-f", "json", "a", "--fail-on=error", "--no-fail", "--policy", "strict",
                     "--kind", "compose", "--no-color", "--docker-run", "docker run x", "b",
                     "--docker-run=podman run y"])
    assert options["paths"] == ["a", "b"]
    assert (options["fmt"], options["fail_on"], options["no_fail"], options["policy_ref"],
            options["kind"], options["color"]) == ("json", "error", True, "strict", "compose", False)
    assert options["docker_run_lines"] == ["docker run x", "podman run y"]


@pytest.mark.parametrize("argv", [
    ["-h"], ["--help"], ["-"], ["--", "x"], ["-o", "out.json", "x"], ["--output=out", "x"],
    ["-f", "xml"], ["-fjson"], ["-f=json"], ["--fail-on", "fatal"], ["--policy"],
    ["--policy", "-x"], ["--color=yes"], ["--unknown"], ["--kind", "helm"],
])
def test_anything_else_is_left_to_click(argv):
    assert parse(argv) is None


def _click(*args):
    """The same command line forced through the click command."""
    code = "import sys; from hardrun.cli import cli; cli.main(args=sys.argv[1:], prog_name='hardrun')"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, cwd=ROOT)


@pytest.mark.parametrize("args", [
    ("audit", "-f", "json", str(DATA / "dockerfiles"), "--fail-on", "error"),
    ("audit", "--docker-run", "docker run --privileged alpine", "--policy", "strict"),
    ("audit", str(ROOT / "no-such-file"), "--no-fail"),
    ("audit", "--policy", "no-such-policy", str(ROOT / "examples")),
])
def test_fast_path_and_click_give_the_same_result(args):
    fast, slow = run_hardrun(*args, cwd=ROOT), _click(*args)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)
    assert fast.stdout or fast.stderr


def test_click_is_not_imported_on_the_fast_path():
    code = ("import sys; from hardrun.__main__ import main\n"
            "try:\n    main(['audit', sys.argv[1]])\n"
            "except SystemExit:\n    pass\n"
            "print('click' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples")], capture_output=True,
                            text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.stderr.strip().splitlines()[-1] == "False"
