"""`hardrun run --policy` and `--config`: the runtime gate refuses with the audit's rule
ids and messages and exit status 3 before anything is created, fills unspecified
settings with the policy's defaults, and runs what the run config describes."""
import json
import re

import pytest

from tests.conftest import run_hardrun

REFUSED = 3


def rule_lines(text):
    """`RULE severity message` of each finding line (path and line numbers aside)."""
    return sorted(re.sub(r"^\S+ ", "", line) for line in text.splitlines()
                  if re.match(r"^\S+ HR\d{4} ", line))


@pytest.mark.parametrize("policy,flags,rule", [
    ("baseline", ["--cap-add", "SYS_ADMIN"], "HR3001"),
    ("baseline", ["-v", "/var/run/docker.sock:/var/run/docker.sock"], "HR3002"),
    ("baseline", ["--security-opt", "seccomp=unconfined"], "HR2008"),
    ("strict", ["-u", "1000", "--read-write"], "HR2006"),
    ("restricted", ["-u", "1000", "--security-opt", "no-new-privileges=false"], "HR2005"),
])
def test_refused_before_anything_is_created(tmp_path, policy, flags, rule):
    marker = tmp_path / "ran"
    result = run_hardrun("run", "--policy", policy, *flags, "-v", f"{tmp_path}:/out",
                         "--", "/bin/sh", "-c", "touch /out/ran")
    assert result.returncode == REFUSED, result.stderr
    assert f" {rule} error " in result.stderr
    assert f"refused by policy {policy}" in result.stderr
    assert not marker.exists()


@pytest.mark.runtime
def test_allowed_container_runs(tmp_path):
    result = run_hardrun("run", "--policy", "baseline", "--", "/bin/echo", "hello")
    assert (result.returncode, result.stdout) == (0, "hello\n"), result.stderr


def test_policy_defaults_fill_unspecified_settings():
    result = run_hardrun("run", "--policy", "strict", "--dry-run", "--", "/bin/true")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["process"]["user"]["uid"] == 65534            # strict's runtime.user
    assert config["process"]["noNewPrivileges"] is True and config["root"]["readonly"] is True


def test_explicit_user_wins_over_the_policy_default():
    result = run_hardrun("run", "--policy", "strict", "-u", "1000", "--dry-run", "--", "/bin/true")
    assert json.loads(result.stdout)["process"]["user"]["uid"] == 1000


def test_run_gate_and_audit_print_the_same_findings(tmp_path):
    config = tmp_path / "web.yaml"
    config.write_text("apiVersion: hardrun/v1\nkind: Run\nname: web\nuser: \"1000\"\n"
                      "capabilities: {add: [SYS_ADMIN, NET_RAW]}\n"
                      "mounts:\n  - {type: bind, source: /etc, target: /host-etc}\n"
                      "command: [/bin/true]\n")
    for policy in ("baseline", "restricted", "strict"):
        audited = run_hardrun("audit", "--policy", policy, str(config))
        gated = run_hardrun("run", "--policy", policy, "--config", str(config))
        assert audited.returncode == 1 and gated.returncode == REFUSED
        assert rule_lines(audited.stdout) == rule_lines(gated.stderr) != []
        assert f"{config}:5 HR3001 error" in gated.stderr or policy == "strict"


@pytest.mark.runtime
def test_config_describes_the_container_that_runs(tmp_path):
    config = tmp_path / "hello.yaml"
    config.write_text("apiVersion: hardrun/v1\nkind: Run\nname: hello\nuser: \"1000:1000\"\n"
                      "command: [/bin/sh, -c, 'echo $GREETING; id -u']\nenv: {GREETING: from-config}\n")
    result = run_hardrun("run", "--policy", "restricted", "--config", str(config))
    assert (result.returncode, result.stdout) == (0, "from-config\n1000\n"), result.stderr


def test_flags_override_the_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("apiVersion: hardrun/v1\nkind: Run\nuser: \"1000\"\ncommand: [/bin/true]\n")
    result = run_hardrun("run", "--config", str(config), "-u", "2000", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["process"]["user"]["uid"] == 2000


def test_repository_policy_is_discovered(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".hardrun.yaml").write_text("version: 1\nextends: baseline\n")
    result = run_hardrun("run", "--cap-add", "NET_ADMIN", "--dry-run", "--", "/bin/true", cwd=tmp_path)
    assert result.returncode == REFUSED and "HR3001" in result.stderr
    outside = run_hardrun("run", "--cap-add", "NET_ADMIN", "--dry-run", "--", "/bin/true",
                          cwd=tmp_path / ".git")
    assert outside.returncode == REFUSED       # .git itself is inside the repository


def test_without_a_policy_file_nothing_is_gated(tmp_path):
    result = run_hardrun("run", "--cap-add", "NET_ADMIN", "--dry-run", "--", "/bin/true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_warn_gate_prints_and_runs(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nextends: baseline\nruntime: {gate: warn}\n")
    result = run_hardrun("run", "--policy", str(policy), "--cap-add", "NET_ADMIN", "--dry-run",
                         "--", "/bin/true")
    assert result.returncode == 0 and "HR3001 error" in result.stderr


def test_bad_policy_or_config_is_a_one_line_usage_error(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nfail-on: never\n")
    result = run_hardrun("run", "--policy", str(policy), "--", "/bin/true")
    assert result.returncode == 125
    assert f"{policy}: line 2, column 10:" in result.stderr and "Traceback" not in result.stderr
    config = tmp_path / "c.yaml"
    config.write_text("apiVersion: hardrun/v1\nkind: Run\nmounts: [{type: bind, target: /x}]\n")
    result = run_hardrun("run", "--config", str(config))
    assert result.returncode == 125 and "a bind mount needs a source" in result.stderr
