"""Every flag the help shows exists, and every flag that exists is shown and tested.

A cheap guard: walking the click commands and the `hardrun run` flag table, each option
must appear in its command's `--help`, and its long spelling must be used by at least one
test elsewhere in tests/ (a new flag comes with a test of what it does).
"""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hardrun.cli import cli
from hardrun.frontends.docker_flags import FLAGS
from tests.helpers import run_hardrun

TESTS = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()


def _test_sources() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(TESTS.rglob("*.py"))
                     if path.resolve() != THIS)


SOURCES = _test_sources()


def used_in_tests(spelling: str) -> bool:
    """`spelling` (e.g. --no-color) occurs as a whole flag, not inside a longer one."""
    return re.search(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", SOURCES) is not None


def _commands(command: click.Command, path: tuple[str, ...]):
    yield path, command
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            yield from _commands(command.get_command(context, name), path + (name,))


COMMANDS = list(_commands(cli, ()))
OPTIONS = [(path, spelling, param)
           for path, command in COMMANDS
           for param in command.params if isinstance(param, click.Option)
           for spelling in param.opts + param.secondary_opts]


def _ids(values):
    return [" ".join(("hardrun", *path, spelling)) for path, spelling, _ in values]


def help_of(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="hardrun")
    assert result.exit_code == 0, result.output
    return result.output


def test_the_walk_reaches_every_command():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"audit", "rules", "explain", "inspect", "export", "gc", "policy", "policy list",
            "policy show", "policy validate"} <= names


@pytest.mark.parametrize("path, spelling, param", OPTIONS, ids=_ids(OPTIONS))
def test_click_option_is_in_help(path, spelling, param):
    assert re.search(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", help_of(path))
    assert param.help, f"{spelling} has no help text"


@pytest.mark.parametrize("path, spelling, param",
                         [o for o in OPTIONS if o[1].startswith("--")], ids=_ids(
                             [o for o in OPTIONS if o[1].startswith("--")]))
def test_click_option_is_used_by_a_test(path, spelling, param):
    assert used_in_tests(spelling), f"no test in tests/ uses `hardrun {' '.join(path)} {spelling}`"


def test_top_level_help_lists_every_command_and_run():
    text = help_of(())
    for path, _ in COMMANDS:
        if len(path) == 1:
            assert re.search(rf"^\s+{path[0]}\s", text, re.M), path
    assert re.search(r"^\s+run\s", text, re.M), "`hardrun run` is missing from `hardrun --help`"


# `hardrun run` refuses to start (125) and is tested below; every other command's usage
# error is one line naming the command, exit 2
LEAVES = [path for path, command in COMMANDS if path and path != ("run",) and not isinstance(command, click.Group)]


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(path) for path in LEAVES])
def test_a_bad_flag_is_one_line_and_exit_2(path):
    result = run_hardrun(*path, "--zzzz")
    command = " ".join(("hardrun", *path))
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"{command}: No such option '--zzzz' (see `{command} --help`)\n"


@pytest.mark.parametrize("args, message", [
    (("policy", "show", "nosuch"), "hardrun policy show: no policy 'nosuch'"),
    (("export", "--to", "kyverno", "--policy", "baseline", "--image", "nginx"),
     "hardrun export: --to kyverno exports the policy's controls"),
    (("export", "--to", "oci", "--config", "/nonexistent/run.yaml"),
     "hardrun export: Invalid value for '--config': File '/nonexistent/run.yaml' does not exist"),
    (("export",), "hardrun export: Missing option '--to'. Choose from: docker-run, compose,"),
    (("inspect", "x1"), "hardrun inspect: PID must be a number, not 'x1'"),
    (("inspect", "999999999"), "hardrun inspect: "),
    (("rules", "--practice", "nosuch"), "hardrun rules: Invalid value for '--practice': no practice named"),
    (("explain", "HR9999"), "hardrun explain: no rule or practice named 'HR9999'"),
    (("pull",), "hardrun pull: Missing argument 'REFERENCE'"),
    (("audit", "-f"), "hardrun audit: Option '-f' requires an argument"),
    (("policy", "nosuch"), "hardrun policy: No such command 'nosuch'"),
    (("nosuch",), "hardrun: No such command 'nosuch'"),
])
def test_a_usage_error_is_one_line_and_exit_2(args, message):
    result = run_hardrun(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1, result.stderr


def test_a_group_without_a_command_still_shows_its_help():
    result = run_hardrun("policy")
    assert result.returncode == 2 and "Commands:" in result.stdout + result.stderr


# ---------------------------------------------------------------- `hardrun run`

RUNTIME_FLAGS = [flag for flag in FLAGS if flag.runtime]
RUN_HELP = None


def run_help() -> str:
    global RUN_HELP
    if RUN_HELP is None:
        result = run_hardrun("run", "--help")
        assert result.returncode == 0, result.stderr
        RUN_HELP = result.stdout
    return RUN_HELP


def _spellings(flag):
    return [f"--{flag.name}", *(f"--{alias}" for alias in flag.aliases),
            *([f"-{flag.short}"] if flag.short else [])]


@pytest.mark.parametrize("flag", RUNTIME_FLAGS, ids=[f.name for f in RUNTIME_FLAGS])
def test_run_flag_is_in_help_with_its_spellings(flag):
    line = next((line for line in run_help().splitlines()
                 if re.search(rf"(?<![\w-])--{re.escape(flag.name)}(?![\w-])", line)), None)
    assert line is not None, f"--{flag.name} is missing from `hardrun run --help`"
    for spelling in _spellings(flag):
        assert re.search(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", line), spelling
    assert flag.help, f"--{flag.name} has no help text"


@pytest.mark.parametrize("flag", RUNTIME_FLAGS, ids=[f.name for f in RUNTIME_FLAGS])
def test_run_flag_is_used_by_a_test(flag):
    missing = [spelling for spelling in _spellings(flag)
               if spelling.startswith("--") and not used_in_tests(spelling)]
    assert not missing, f"no test in tests/ uses `hardrun run {' '.join(missing)}`"


def test_run_help_shows_only_supported_flags():
    shown = set(re.findall(r"(?<![\w-])--([a-z][\w-]*)", run_help()))
    supported = {name for flag in RUNTIME_FLAGS for name in (flag.name, *flag.aliases)}
    assert shown <= supported, shown - supported
    assert not {"detach", "oom-kill-disable", "gpus", "device-cgroup-rule"} & shown


@pytest.mark.parametrize("spelling", ["--detach", "--oom-kill-disable", "--gpus", "--device-cgroup-rule"])
def test_run_refuses_a_flag_its_help_does_not_show(spelling):
    result = run_hardrun("run", "--dry-run", spelling, "x", "--", "true")
    assert result.returncode == 125
    assert f"unknown flag: {spelling}" in result.stderr and "Traceback" not in result.stderr
