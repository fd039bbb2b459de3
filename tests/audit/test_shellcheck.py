"""ShellCheck on RUN instructions (HR1020): where findings land in the Dockerfile, the
dialect, declared ARG/ENV names, suppressions, policies, every output format, and an
audit without ShellCheck. Needs Debian's `shellcheck` (scripts/setup.sh --test installs
it): without it these tests fail, they do not skip."""
import json
import os
import shutil
import signal

import pytest

from hardrun.audit.engine import AuditOptions, audit_text
from hardrun.audit import shellcheck
from hardrun.policy import audit_options, load_policy_text
from hardrun.runtime.process import stat_fields

SHELLCHECK = shutil.which("shellcheck")


@pytest.fixture(autouse=True)
def shellcheck_is_installed(tmp_path_factory, monkeypatch):
    assert SHELLCHECK, "shellcheck is not installed: run scripts/setup.sh --test"
    # an empty cache of the test's own: ShellCheck itself judges every script here
    # (tests/audit/test_shellcheck_cache.py tests the cache of its verdicts)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


def findings(text, options=None):
    return audit_text(text, "dockerfile", "Dockerfile", options or AuditOptions())


def sc(text, options=None, suppressed=False):
    """(code, line, column) of the ShellCheck findings, unsuppressed ones unless asked."""
    return sorted((f.rule, f.line, f.column) for f in findings(text, options)
                  if shellcheck.is_code(f.rule) and f.suppressed == suppressed)


def policy_options(text):
    return audit_options(load_policy_text(text, "policy.yaml"))


# --- where a finding lands -----------------------------------------------------------

def test_a_finding_on_a_continuation_line_points_at_that_line_and_column():
    dockerfile = ("FROM debian:12\n"
                  "RUN --mount=type=cache,target=/var/cache/apt \\\n"
                  "    apt-get update && \\\n"
                  "    # Docker drops this comment line\n"
                  "\n"
                  "    cd /tmp; echo finished\n")
    # SC2164 (cd may fail) at line 6, column 5; the blank and comment lines do not end the command
    assert sc(dockerfile) == [("SC2164", 6, 5)]


def test_flags_and_the_keyword_keep_the_columns_of_the_first_line():
    assert sc("FROM debian:12\nRUN --network=none cd /x; echo $1\n") == [
        ("SC2086", 2, 32), ("SC2164", 2, 20)]


def test_a_finding_in_a_heredoc_script_points_at_the_heredoc_line():
    dockerfile = ("FROM debian:12\n"
                  "RUN <<EOF\n"
                  "set -e\n"
                  "for f in $(ls /etc); do\n"
                  "  echo \"$f\"\n"
                  "done\n"
                  "EOF\n")
    assert sc(dockerfile) == [("SC2045", 4, 10)]


def test_a_heredoc_given_to_a_command_is_checked_as_the_shell_sees_it():
    dockerfile = ("FROM debian:12\n"
                  "RUN cat <<EOF > /etc/motd\n"
                  "welcome to $name\n"
                  "EOF\n")
    # an unquoted heredoc expands: `name` is unset (control below declares it)
    assert sc(dockerfile) == [("SC2154", 3, 12)]
    assert sc(dockerfile.replace("RUN cat", "ARG name=x\nRUN cat")) == []


def test_a_heredoc_script_in_another_language_is_not_shell():
    assert sc("FROM python:3.12\nRUN <<EOF\n#!/usr/bin/env python3\nimport os; print(os.name)\nEOF\n") == []


# --- dialect and declared names ---------------------------------------------------------

BASHISM = "RUN [[ -d /opt ]] && echo present\n"


def test_the_stage_shell_decides_the_dialect():
    assert sc("FROM debian:12\n" + BASHISM) == [("SC3010", 2, 5)]      # /bin/sh by default
    assert sc('FROM debian:12\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\n' + BASHISM) == []
    # a stage built FROM another keeps its SHELL
    assert sc('FROM debian:12 AS base\nSHELL ["/bin/bash", "-c"]\nFROM base\n' + BASHISM) == []


def test_powershell_and_cmd_stages_are_not_checked():
    pwsh = 'FROM mcr.microsoft.com/powershell:lts\nSHELL ["pwsh", "-Command"]\nRUN Write-Host $env:PATH; $x = ls\n'
    assert sc(pwsh) == []
    # control: the same stage under sh is checked
    assert sc(pwsh.replace('SHELL ["pwsh", "-Command"]\n', "")) != []


def test_arg_and_env_names_are_declared():
    uses = 'RUN echo "$version" "$app_home"\n'
    assert sc("FROM debian:12\n" + uses) == [("SC2154", 2, 11), ("SC2154", 2, 22)]
    assert sc("ARG version=1\nFROM debian:12\nENV app_home=/app\n" + uses) == []
    # from a parent stage too; an ARG declared after the RUN does not count
    assert sc("FROM debian:12 AS base\nARG version\nENV app_home=/a\nFROM base\n" + uses) == []
    assert sc("FROM debian:12\nENV app_home=/a\n" + uses + "ARG version\n") == [("SC2154", 3, 11)]


def test_runs_are_separate_scripts():
    # a variable set in one RUN does not exist in the next one (each RUN is its own shell)
    assert sc('FROM debian:12\nRUN dir=/opt\nRUN echo "$dir"\n') == [("SC2034", 2, 5), ("SC2154", 3, 11)]


def test_exec_form_run_is_not_shell_code():
    assert sc('FROM debian:12\nRUN ["sh", "-c", "echo $1"]\n') == []


# --- suppressions and policies -----------------------------------------------------

UNQUOTED = "FROM debian:12\nRUN echo $1 \\\n    $2\n"


def test_an_sc_code_is_suppressed_like_any_rule():
    assert sc(UNQUOTED) == [("SC2086", 2, 10), ("SC2086", 3, 5)]     # control
    suppressed = "FROM debian:12\n# hardrun ignore=SC2086 reason=\"positional args are words\"\n" + UNQUOTED[15:]
    assert sc(suppressed) == []
    assert sc(suppressed, suppressed=True) == [("SC2086", 3, 10), ("SC2086", 4, 5)]
    reasons = {f.suppression_reason for f in findings(suppressed) if f.rule == "SC2086"}
    assert reasons == {"positional args are words"}


def test_a_suppression_before_a_heredoc_run_covers_its_script():
    script = "RUN <<EOF\nset -e\necho $1\nEOF\n"
    assert sc("FROM debian:12\n" + script) == [("SC2086", 4, 6)]       # control
    suppressed = "FROM debian:12\n# hardrun ignore=SC2086 reason=x\n" + script
    assert sc(suppressed) == [] and sc(suppressed, suppressed=True) == [("SC2086", 5, 6)]


def test_an_unused_sc_suppression_is_reported_only_when_shellcheck_runs():
    text = "FROM debian:12\n# hardrun ignore=SC2086 reason=x\nRUN true\n"
    assert "HR0001" in {f.rule for f in findings(text)}
    assert "HR0001" not in {f.rule for f in findings(text, AuditOptions(shellcheck=None))}


def test_a_policy_switches_one_code_or_all_of_them():
    text = "FROM debian:12\nRUN cd /x; echo $1\n"
    assert sc(text, policy_options("version: 1\n")) == [("SC2086", 2, 17), ("SC2164", 2, 5)]
    assert sc(text, policy_options("version: 1\nrules: {SC2086: off}\n")) == [("SC2164", 2, 5)]
    assert sc(text, policy_options("version: 1\nrules: {HR1020: off}\n")) == []
    assert sc(text, policy_options("version: 1\npractices: {shellcheck: off}\n")) == []
    raised = findings(text, policy_options("version: 1\nrules: {SC2086: error}\n"))
    assert {(f.rule, f.severity) for f in raised if f.rule.startswith("SC")} == {
        ("SC2086", "error"), ("SC2164", "warning")}


def test_shellcheck_levels_are_kept_under_the_default_policy():
    levels = {(f.rule, f.severity) for f in findings("FROM debian:12\nRUN cd /x; echo $1\n",
                                                      policy_options("version: 1\n"))}
    assert {("SC2086", "info"), ("SC2164", "warning")} <= levels


def test_a_policy_may_exempt_an_sc_code():
    exempting = "version: 1\nexemptions:\n  - {rule: SC2164, reason: legacy scripts}\n"
    result = findings("FROM debian:12\nRUN cd /x; echo $1\n", policy_options(exempting))
    assert {f.rule: f.suppressed for f in result if f.rule.startswith("SC")} == {
        "SC2086": False, "SC2164": True}


def test_policy_validate_accepts_sc_codes_and_refuses_malformed_ones(hardrun, tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("version: 1\nrules:\n  SC2086: off\n  SC2164: error\n")
    bad.write_text("version: 1\nrules:\n  SC20: off\n")
    assert hardrun("policy", "validate", str(good)).returncode == 0
    result = hardrun("policy", "validate", str(bad))
    assert result.returncode == 2 and "bad.yaml: line 3, column 3" in result.stderr


# --- the command line --------------------------------------------------------------

@pytest.fixture
def dockerfile(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_text("FROM debian:12\nUSER 10001\nRUN cd /x; echo $1\n")
    return path


def test_every_format_carries_the_code_line_and_column(hardrun, dockerfile):
    text = hardrun("audit", str(dockerfile)).stdout
    assert f"{dockerfile}:3:5 SC2164 warning Use 'cd ... || exit'" in text
    report = json.loads(hardrun("audit", "-f", "json", str(dockerfile)).stdout)
    found = {(f["rule"], f["line"], f.get("column"), f["practice"]) for f in report["findings"]}
    assert ("SC2164", 3, 5, "shellcheck") in found
    sarif = json.loads(hardrun("audit", "-f", "sarif", str(dockerfile)).stdout)["runs"][0]
    result = next(r for r in sarif["results"] if r["ruleId"] == "SC2164")
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 3, "startColumn": 5}
    descriptor = sarif["tool"]["driver"]["rules"][result["ruleIndex"]]
    assert descriptor["id"] == "SC2164" and descriptor["helpUri"].endswith("/wiki/SC2164")
    junit = hardrun("audit", "-f", "junit", str(dockerfile)).stdout
    assert 'name="SC2164 shellcheck at ' in junit and "Dockerfile:3:5" in junit


def test_without_shellcheck_on_path_nothing_changes(hardrun, dockerfile, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    with_it = hardrun("audit", "-f", "json", str(dockerfile))
    without = hardrun("audit", "-f", "json", str(dockerfile), env={"PATH": str(empty)})
    with_rules = [f["rule"] for f in json.loads(with_it.stdout)["findings"]]
    without_rules = [f["rule"] for f in json.loads(without.stdout)["findings"]]
    assert "SC2164" in with_rules                                   # control
    assert without_rules == [rule for rule in with_rules if not rule.startswith("SC")]
    assert without.stderr == ""
    # naming the binary works without it on PATH
    named = hardrun("audit", "--shellcheck", SHELLCHECK, str(dockerfile), env={"PATH": str(empty)})
    assert "SC2164" in named.stdout


def test_shellcheck_naming_nothing_is_one_clear_line(hardrun, dockerfile):
    result = hardrun("audit", "--shellcheck", "/nonexistent", str(dockerfile))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "hardrun audit: --shellcheck /nonexistent: no executable file there (install Debian's "
        "`shellcheck` package or name the binary)"]


def test_a_shellcheck_that_fails_is_the_files_error(hardrun, dockerfile, tmp_path):
    broken = tmp_path / "shellcheck"
    broken.write_text("#!/bin/sh\necho 'out of order' >&2\nexit 7\n")
    broken.chmod(0o755)
    result = hardrun("audit", "--shellcheck", str(broken), str(dockerfile))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "shellcheck failed (exit 7): out of order" in result.stdout


def test_one_shellcheck_process_for_all_the_runs_of_a_file(tmp_path):
    log = tmp_path / "calls"
    wrapper = tmp_path / "shellcheck"
    wrapper.write_text(f'#!/bin/sh\necho "$#" >> {log}\nexec {SHELLCHECK} "$@"\n')
    wrapper.chmod(0o755)
    text = "FROM debian:12\n" + "".join(f"RUN echo ${n}\n" for n in range(1, 6))
    result = sc(text, AuditOptions(shellcheck=str(wrapper)))
    assert [code for code, _, _ in result] == ["SC2086"] * 5
    assert len(log.read_text().splitlines()) == 1


def test_a_huge_dockerfile_is_checked_up_to_the_cap_and_says_so():
    text = "FROM debian:12\n" + "RUN echo $1\n" * (shellcheck.MAX_SCRIPTS + 5)
    result = findings(text)
    assert sum(f.rule == "SC2086" for f in result) == shellcheck.MAX_SCRIPTS
    cap = [f for f in result if f.rule == "HR1020"]
    assert [(f.line, f.severity) for f in cap] == [(shellcheck.MAX_SCRIPTS + 2, "info")]


# --- the process: found on PATH, run without subprocess, nothing left behind ------------

@pytest.mark.parametrize("path_of", [lambda bin_dir: f"/nonexistent:{bin_dir}", lambda bin_dir: "",
                                     lambda bin_dir: "/nonexistent", lambda bin_dir: f"{bin_dir}:/usr/bin"])
def test_shellcheck_is_found_on_path_as_shutil_which_finds_it(tmp_path, path_of):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "shellcheck").write_text("#!/bin/sh\n")
    (bin_dir / "shellcheck").chmod(0o755)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "shellcheck").write_text("not executable\n")
    path = path_of(bin_dir)
    assert shellcheck._on_path(f"{tmp_path / 'plain'}:{path}") == \
        shutil.which("shellcheck", path=f"{tmp_path / 'plain'}:{path}")
    assert shellcheck._on_path(path) == shutil.which("shellcheck", path=path)


def test_the_scripts_directory_is_removed_after_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert sc("FROM debian:12\nRUN echo $1\nRUN cd /x\n") == [("SC2086", 2, 10), ("SC2164", 3, 5)]
    assert list(tmp_path.iterdir()) == []


def test_a_shellcheck_that_hangs_is_killed_and_is_one_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    hanging = tmp_path / "shellcheck"
    hanging.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/pid\nexec sleep 60\n")
    hanging.chmod(0o755)
    monkeypatch.setattr(shellcheck, "TIMEOUT", 0.5)
    with pytest.raises(shellcheck.HardrunError, match="no answer in 0.5 seconds"):
        shellcheck.check(str(hanging), [shellcheck.Script("sh", (), ("true",), 2, 2)])
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):      # killed and reaped
        os.kill(pid, 0)
    assert list((tmp_path / "scratch").iterdir()) == []


def test_no_scratch_directory_is_one_error_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing"))
    with pytest.raises(shellcheck.HardrunError, match="shellcheck could not check the RUN instructions"):
        shellcheck.check(SHELLCHECK, [shellcheck.Script("sh", (), ("true",), 2, 2)])
    monkeypatch.setenv("TMPDIR", str(tmp_path))      # control: with a directory it runs
    assert shellcheck.check(SHELLCHECK, [shellcheck.Script("sh", (), ("true",), 2, 2)]) == []


def interrupting_shellcheck(tmp_path):
    """A fake ShellCheck that records its pid, waits until hardrun waits on its output
    (poll(2), system call 7), interrupts it with SIGUSR1 and stays (a straggler if let be)."""
    fake = tmp_path / "shellcheck"
    fake.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/pid\n"
                    "until read -r call rest < /proc/$PPID/syscall && [ \"$call\" = 7 ]; do :; done\n"
                    "kill -USR1 $PPID\nexec sleep 60\n")
    fake.chmod(0o755)
    return fake


class Interrupted(Exception):
    pass


def interrupted(signum, frame):
    raise Interrupted()


def shellcheck_interrupted(tmp_path, fake) -> int:
    """Run the fake until its signal interrupts the wait; its pid."""
    previous = signal.signal(signal.SIGUSR1, interrupted)
    try:
        with pytest.raises(Interrupted):
            shellcheck.check(str(fake), [shellcheck.Script("sh", (), ("true",), 2, 2)])
    finally:
        signal.signal(signal.SIGUSR1, previous)
    return int((tmp_path / "pid").read_text())


def test_a_shellcheck_interrupted_otherwise_than_by_the_timeout_is_killed_and_reaped(tmp_path, monkeypatch):
    """The wait for ShellCheck's output ends in an error that is not the timeout: the process
    is killed and reaped all the same (no straggler, no zombie). Control: without that step
    (_stop a no-op, as before) the same interruption leaves ShellCheck running."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    pid = shellcheck_interrupted(tmp_path, interrupting_shellcheck(tmp_path))
    assert not os.path.exists(f"/proc/{pid}")       # killed and reaped: not even a zombie
    monkeypatch.setattr(shellcheck, "_stop", lambda pid: None)
    (tmp_path / "control").mkdir()
    pid = shellcheck_interrupted(tmp_path / "control", interrupting_shellcheck(tmp_path / "control"))
    try:
        assert stat_fields(pid)[0] not in (b"Z", b"X")     # still running
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
