"""`hardrun audit` parses its common command lines without click; click parses the rest.

The two parsers read one declaration (hardrun/cli/audit.py OPTIONS), and the fast one
must never disagree with click: it either gives click's values or hands the words over.
"""
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from hardrun.cli.audit import OPTIONS, _click_command
from hardrun.cli.options import NotFast, parse
from tests.helpers import ROOT, hardrun_env


def click_values(argv):
    context = _click_command().make_context("audit", list(argv))
    values = dict(context.params)
    return values, values.pop("paths")


WORDS = st.sampled_from([
    "-f", "--format", "--format=json", "-fjson", "json", "sarif", "xml", "-o", "--output",
    "report.txt", "--fail-on", "error", "warning", "--fail-on=info", "--no-fail", "--no-fail=1",
    "--policy", "strict", "--kind", "compose", "dockerfile", "--color", "--no-color",
    "--docker-run", "docker run --privileged alpine", "--docker-run=docker run x", "Dockerfile",
    "-", "--", "-x", "--unknown", "--help", "-o=out", "k8s/", "--kind=nothing", "-q", "--quiet",
    "--baseline", "base.yaml", "--write-baseline=base.yaml", "--skip-unknown", "-qf", "--fix", "--diff",
    "--shellcheck", "/usr/bin/shellcheck", "--image", "oci:dir", "--image=oci-archive:x.tar",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(WORDS, max_size=8))
def test_the_fast_parser_gives_clicks_values_or_hands_over(argv):
    try:
        fast = parse(argv, OPTIONS)
    except NotFast:
        return
    assert fast == click_values(argv)


def test_plain_command_lines_take_the_fast_path():
    for argv in (["Dockerfile"], ["-f", "sarif", "-o", "out.sarif", "."], ["--no-color", "-"],
                 ["--docker-run", "docker run x", "--docker-run=docker run y", "--fail-on=error"]):
        assert parse(argv, OPTIONS) == click_values(argv)


@pytest.mark.parametrize("argv", [["--help"], ["-fjson", "x"], ["--format", "xml"],
                                  ["--unknown"], ["-o"], ["--no-fail=yes"], ["-o", "/"]])
def test_help_and_mistakes_go_to_click(argv):
    with pytest.raises(NotFast):
        parse(argv, OPTIONS)


def test_audit_does_not_import_click(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM alpine:3.20\nUSER app\n")
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "hardrun", "audit",
                             str(dockerfile)], capture_output=True, text=True,
                            env=hardrun_env(), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert "hardrun.frontends.dockerfile" in imported      # control: the audit did run
    assert "click" not in imported


def test_a_closed_pipe_ends_the_audit_quietly(tmp_path):
    for index in range(600):
        (tmp_path / f"Dockerfile.{index}").write_text("FROM alpine\nRUN curl x | sh\n")
    full = subprocess.run([sys.executable, "-m", "hardrun", "audit", str(tmp_path)],
                          capture_output=True, env=hardrun_env(), cwd=ROOT)
    assert len(full.stdout) > 4 * 65536       # control: more than a pipe holds, so it breaks
    command = (f"{sys.executable} -m hardrun audit {tmp_path} | head -c 1 >/dev/null; "
               "exit ${PIPESTATUS[0]}")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                            env=hardrun_env(), cwd=ROOT)
    assert result.stderr == "" and result.returncode == 1
