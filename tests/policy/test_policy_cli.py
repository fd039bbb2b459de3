"""`hardrun policy list|show|validate` and `hardrun audit --policy`, as a user runs them."""
import json

import yaml

from tests.helpers import run_hardrun

RUN_CONFIG = """apiVersion: hardrun/v1
kind: Run
name: web
image: nginx:1.27
user: "101"
capabilities: {add: [SYS_ADMIN]}
"""


def test_policy_list_names_the_builtins():
    result = run_hardrun("policy", "list")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["baseline", "default", "restricted", "strict"]


def test_policy_show_prints_the_effective_policy_which_loads_again(tmp_path):
    result = run_hardrun("policy", "show", "restricted")
    assert result.returncode == 0
    assert result.stdout.startswith("# effective policy: restricted -> baseline")
    document = yaml.safe_load(result.stdout)
    assert document["allowed-capabilities"] == ["NET_BIND_SERVICE"]
    assert document["practices"]["privileged"] == "error"          # inherited from baseline
    shown = tmp_path / "shown.yaml"
    shown.write_text(result.stdout)
    assert run_hardrun("policy", "validate", str(shown)).returncode == 0


def test_policy_show_without_argument_uses_the_repository_policy(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".hardrun.yaml").write_text("version: 1\nextends: baseline\nfail-on: warning\n")
    result = run_hardrun("policy", "show", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ".hardrun.yaml -> baseline" in result.stdout.splitlines()[0]
    assert yaml.safe_load(result.stdout)["fail-on"] == "warning"


def test_policy_validate_reports_file_line_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  HR9999: off\n")
    good = tmp_path / "good.yaml"
    good.write_text("version: 1\nextends: restricted\n")
    result = run_hardrun("policy", "validate", str(good), str(bad))
    assert result.returncode == 2
    assert f"{good}: ok" in result.stdout
    assert result.stderr.strip() == f"{bad}: line 3, column 3: unknown rule HR9999 (see `hardrun rules`)"
    assert "Traceback" not in result.stderr


def test_policy_validate_reports_every_error_in_document_order(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 2\n"
        "fail-on: sometimes\n"
        "rules:\n"
        "  HR9999: off\n"
        "  HR2001: loud\n"
        "allowed-capabilities: [NET_BIND_SERVICE, CAP_FLY]\n"
        "exemptions:\n"
        "  - rule: HR2001\n"
        "  - reason: moved\n"
        "    rule: HR0000\n"
        "    expires: 2027-13-01\n"
        "colour: blue\n")
    result = run_hardrun("policy", "validate", str(bad))
    assert result.returncode == 2 and result.stdout == ""
    lines = [line.split(": ", 1)[1] for line in result.stderr.splitlines()]
    assert [line.split(":", 1)[0] for line in lines] == [
        "line 1, column 10", "line 2, column 10", "line 4, column 3", "line 5, column 11",
        "line 6, column 42", "line 8, column 5", "line 10, column 11", "line 11, column 14",
        "line 12, column 1"]
    assert all(line.startswith(f"{bad}: ") for line in result.stderr.splitlines())
    assert "version: expected 1, found 2" in lines[0]
    assert "unknown rule HR9999" in lines[2] and "unknown rule HR0000" in lines[6]
    assert "exemptions[0]: missing required key 'reason'" in lines[5]
    assert "unknown key 'colour'" in lines[8]


def test_policy_validate_of_unreadable_yaml_is_one_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules: [\n")
    result = run_hardrun("policy", "validate", str(bad))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"{bad}: line 3, column 1: invalid YAML")


def test_policy_show_unknown_name_is_one_line_error():
    result = run_hardrun("policy", "show", "nosuch")
    assert result.returncode == 2 and "no policy 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr


def test_audit_policy_gates_and_exit_status_follows_its_threshold(tmp_path):
    config = tmp_path / "web.yaml"
    config.write_text(RUN_CONFIG)
    default = run_hardrun("audit", str(config))
    assert "HR2003 error" in default.stdout and "HR3001" not in default.stdout
    result = run_hardrun("audit", "--policy", "baseline", str(config))
    assert result.returncode == 1
    assert f"{config}:6 HR3001 error [web] capability SYS_ADMIN is added" in result.stdout
    assert "failing at error and above" in result.stdout
    lowered = tmp_path / "p.yaml"
    lowered.write_text("version: 1\nextends: baseline\nrules: {HR3001: warning}\n")
    assert run_hardrun("audit", "--policy", str(lowered), str(config)).returncode == 0
    assert run_hardrun("audit", "--policy", str(lowered), "--fail-on", "warning",
                       str(config)).returncode == 1


def test_audit_discovers_the_repository_policy_and_keeps_exempted_findings_in_json(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "web.yaml").write_text(RUN_CONFIG)
    (tmp_path / ".hardrun.yaml").write_text(
        "version: 1\nextends: baseline\nexemptions:\n"
        "  - {rule: HR3001, services: [web], reason: FUSE mounts inside, expires: 2999-01-01}\n")
    result = run_hardrun("audit", "-f", "json", "deploy", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    findings = json.loads(result.stdout)["findings"]
    assert [(f["rule"], f["suppressed"]) for f in findings] == [("HR3001", True)]


def test_audit_reports_an_expired_exemption_and_fails(tmp_path):
    config = tmp_path / "web.yaml"
    config.write_text(RUN_CONFIG)
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nextends: baseline\nfail-on: warning\nexemptions:\n"
                      "  - {rule: HR3001, reason: temporary, expires: 2021-05-01}\n")
    result = run_hardrun("audit", "--policy", str(policy), str(config))
    assert result.returncode == 1
    assert f"{policy}:5 HR0002 warning exemption of rule HR3001 expired on 2021-05-01" in result.stdout
    assert f"{config}:6 HR3001 error" in result.stdout


def test_audit_with_an_invalid_policy_exits_2_with_the_location(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nfail-on: sometimes\n")
    result = run_hardrun("audit", "--policy", str(policy), str(tmp_path))
    assert result.returncode == 2
    assert f"{policy}: line 2, column 10: fail-on: expected one of" in result.stderr


def test_exempted_findings_are_external_suppressions_in_sarif(tmp_path):
    import jsonschema
    from tests.helpers import DATA
    config = tmp_path / "web.yaml"
    config.write_text(RUN_CONFIG)
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nextends: baseline\nexemptions:\n"
                      "  - {practice: cap-not-allowed, reason: needs mount for FUSE}\n")
    result = run_hardrun("audit", "--policy", str(policy), "-f", "sarif", str(config))
    assert result.returncode == 0
    document = json.loads(result.stdout)
    schema = json.loads((DATA / "sarif" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(document, schema)
    (finding,) = document["runs"][0]["results"]
    assert finding["ruleId"] == "HR3001"
    assert finding["suppressions"] == [{"kind": "external", "status": "accepted",
                                        "justification": "policy exemption: needs mount for FUSE"}]
