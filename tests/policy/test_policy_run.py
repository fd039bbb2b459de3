"""`hardrun run --policy` and `--config`: the runtime gate refuses with the audit's rule
ids and messages and exit status 3 before anything is created, fills unspecified
settings with the policy's defaults, and runs what the run config describes."""
import json
import re

import pytest

from tests.helpers import run_hardrun

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


# ---------------------------------------------- a repository's policy may only tighten

def repository(tmp_path, policy_text):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".hardrun.yaml").write_text(policy_text)
    return tmp_path


def dry_run(*args, **kwargs):
    result = run_hardrun("run", *args, "--dry-run", "--", "/bin/true", **kwargs)
    return result, (json.loads(result.stdout) if result.returncode == 0 else None)


@pytest.mark.parametrize("runtime,flags,setting", [
    ("pids-limit: 4194304", [], "runtime.pids-limit 4194304"),
    ("user: '1000'", ["--userns", "host"], "runtime.user 1000"),
])
def test_a_discovered_policy_cannot_loosen_the_run(tmp_path, runtime, flags, setting):
    checkout = repository(tmp_path, f"version: 1\nruntime:\n  gate: warn\n  {runtime}\n")
    refused, _ = dry_run(*flags, cwd=checkout)
    assert refused.returncode == 125 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"hardrun: {checkout}/.hardrun.yaml: {setting} would loosen `hardrun run` (without the "
        f"policy: {'1024' if 'pids' in setting else 'root'}); a policy found in the repository may "
        f"only tighten it (name the policy with --policy {checkout}/.hardrun.yaml to accept it)"]
    # control: the same policy named explicitly is honoured
    named, config = dry_run("--policy", ".hardrun.yaml", *flags, cwd=checkout)
    assert named.returncode == 0, named.stderr
    if "pids" in setting:
        assert config["linux"]["resources"]["pids"]["limit"] == 4194304
    else:
        assert config["process"]["user"]["uid"] == 1000


def test_a_discovered_policy_may_tighten_the_run(tmp_path):
    checkout = repository(tmp_path, "version: 1\nruntime:\n  gate: warn\n  pids-limit: 100\n"
                                    "  memory: 64m\n  user: '1000'\n")
    result, config = dry_run(cwd=checkout)
    assert result.returncode == 0, result.stderr
    assert config["linux"]["resources"]["pids"]["limit"] == 100
    assert config["linux"]["resources"]["memory"]["limit"] == 64 << 20
    assert config["process"]["user"]["uid"] == 1000
    _, plain = dry_run(cwd=tmp_path / ".git")     # inside the checkout: the same policy
    assert plain["linux"]["resources"]["pids"]["limit"] == 100
    _, outside = dry_run(cwd=tmp_path.parent)      # control: hardrun's own defaults
    assert outside["linux"]["resources"]["pids"]["limit"] == 1024


def test_any_other_change_by_a_discovered_policy_is_refused():
    """The judges cover the settings a policy changes today; a setting added later that
    changes the run is refused from a discovered policy until it is judged (fail closed)."""
    from hardrun.errors import UsageError
    from hardrun.policy.evaluate import harden, refuse_loosening
    from hardrun.policy.model import Policy
    from hardrun.spec.run import RunSpec
    policy = Policy(name=".hardrun.yaml", chain=(), discovered=True)
    spec = RunSpec(command=("/bin/true",))
    same = harden(spec, policy)
    refuse_loosening(spec, same, policy)         # control: nothing changed, nothing refused
    for change in ({"seccomp": "unconfined"}, {"cap_add": ("SYS_ADMIN",)},
                   {"namespaces": {**same.namespaces, "user": "host"}}):
        with pytest.raises(UsageError, match="would loosen"):
            refuse_loosening(spec, same.evolve(**change), policy)


# ------------------------------------- `extends` never prints the file it points at

SECRET = "ghp_0123456789abcdefSECRETTOKEN"


def secret_file(tmp_path):
    secret = tmp_path / "token"
    secret.write_text(SECRET + "\n")
    return secret


@pytest.mark.parametrize("command", [("audit", "."), ("run", "--dry-run", "--", "/bin/true")])
def test_a_repository_policy_cannot_extend_a_file_outside_the_repository(tmp_path, command):
    secret = secret_file(tmp_path)
    (tmp_path / "checkout").mkdir()
    checkout = repository(tmp_path / "checkout", f"version: 1\nextends: {secret}\n")
    result = run_hardrun(*command, cwd=checkout)
    assert result.returncode == (2 if command[0] == "audit" else 125)
    assert SECRET not in result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert (f"{checkout}/.hardrun.yaml: line 2, column 10: a repository's policy may extend only "
            "built-in policies and files inside the repository") in result.stderr
    # control: the loader itself quotes what it finds when asked about that file directly
    direct = run_hardrun("policy", "validate", str(secret))
    assert SECRET in direct.stderr


def test_an_invalid_parent_is_located_but_never_quoted(tmp_path):
    secret = secret_file(tmp_path)
    child = tmp_path / "child.yaml"
    child.write_text(f"version: 1\nextends: {secret}\n")
    result = run_hardrun("audit", "--policy", str(child), str(child))
    assert result.returncode == 2 and SECRET not in result.stderr
    assert (f"{secret}: line 1, column 1: not a valid policy (extended by {child}; its content is "
            f"not shown: check it with `hardrun policy validate {secret}`)") in result.stderr
    # control: the same file named as the policy itself is quoted (the user named it)
    named = run_hardrun("audit", "--policy", str(secret), str(child))
    assert SECRET in named.stderr


def test_a_repository_policy_linking_out_of_the_repository_is_not_read(tmp_path):
    secret = secret_file(tmp_path)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".git").mkdir()
    (checkout / ".hardrun.yaml").symlink_to(secret)
    result = run_hardrun("audit", ".", cwd=checkout)
    assert result.returncode == 2 and SECRET not in result.stderr
    assert "a .hardrun.yaml that links out of its repository is not used" in result.stderr
    # control: a link and an `extends` inside the repository are followed
    (checkout / "team.yaml").write_text("version: 1\nextends: baseline\n")
    (checkout / "policy.yaml").write_text("version: 1\nextends: team.yaml\n")
    (checkout / ".hardrun.yaml").unlink()
    (checkout / ".hardrun.yaml").symlink_to(checkout / "policy.yaml")
    inside = run_hardrun("run", "--cap-add", "NET_ADMIN", "--dry-run", "--", "/bin/true", cwd=checkout)
    assert inside.returncode == REFUSED and "HR3001" in inside.stderr
