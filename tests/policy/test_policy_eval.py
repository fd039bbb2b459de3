"""Evaluating policies: rule switches and severities, exemptions (and their expiry),
evaluate_runspec, and gate_run's verdicts and hardened defaults."""
import datetime

import pytest

from hardrun.audit.engine import AuditOptions, audit_text
from hardrun.audit.rules import all_rules
from hardrun.policy import (GATE_REFUSED_EXIT, audit_options, evaluate_runspec,
                            expired_exemption_findings, gate_run,
                            load_policy, load_policy_text)
from hardrun.spec.run import Mount, RunSpec

CONFIG = """apiVersion: hardrun/v1
kind: Run
name: web
image: registry.example/web:1.4
user: "1000"
capabilities:
  add: [NET_RAW]
mounts:
  - {type: bind, source: /srv/data, target: /data}
"""


def findings(policy_text, text=CONFIG, path="deploy/web.hardrun.yaml"):
    """Findings of the policy-scoped rules alone (the default run rules switched off)."""
    policy = load_policy_text(policy_text + "default-rules: off\n", "policy.yaml")
    return audit_text(text, "hardrun", path, audit_options(policy))


def test_policy_scoped_rules_follow_their_settings():
    found = findings("version: 1\nallowed-capabilities: [NET_BIND_SERVICE]\n")
    assert [(f.rule, f.line) for f in found] == [("HR3001", 7)]
    assert "NET_RAW" in found[0].message
    assert findings("version: 1\nallowed-capabilities: [NET_RAW]\n") == []


def test_rule_switch_and_severity_override():
    policy = "version: 1\nallowed-capabilities: []\nallowed-host-mounts: [/srv]\n"
    assert {f.rule: f.severity for f in findings(policy)} == {"HR3001": "error", "HR3002": "error"}
    regraded = findings(policy + "rules: {HR3001: info}\npractices: {host-mount-not-allowed: off}\n")
    assert [(f.rule, f.severity) for f in regraded] == [("HR3001", "info")]


def test_default_rules_severity_and_off():
    rule = all_rules()["HR3001"]
    strict = load_policy("strict")
    assert strict.rule_severity(rule) == "error"
    off = load_policy_text("version: 1\ndefault-rules: off\nrules: {HR3004: warning}\n")
    assert off.rule_severity(rule) is None
    assert off.rule_severity(all_rules()["HR3004"]) == "warning"


def test_default_policy_is_todays_behaviour():
    default = load_policy("default")
    assert default.fail_on == "warning"
    for rule in all_rules().values():
        expected = None if rule.enabled_by else rule.severity
        assert default.rule_severity(rule) == expected, rule.id


def test_exemption_suppresses_only_what_it_covers():
    base = "version: 1\nallowed-capabilities: []\nexemptions:\n"
    covered = findings(base + "  - {rule: HR3001, files: ['deploy/*'], services: [web], "
                              "images: ['registry.example/*'], reason: needs ping}\n")
    assert [(f.rule, f.suppressed, f.suppression_reason) for f in covered] == [
        ("HR3001", True, "policy exemption: needs ping")]
    for scope in ("files: ['other/*']", "services: [db]", "images: ['docker.io/*']"):
        found = findings(base + f"  - {{practice: cap-not-allowed, {scope}, reason: r}}\n")
        assert [f.suppressed for f in found] == [False], scope


def test_expired_exemption_stops_applying_and_is_reported():
    policy_text = ("version: 1\nallowed-capabilities: []\nexemptions:\n"
                   "  - {rule: HR3001, reason: temporary, expires: 2020-01-01}\n")
    policy = load_policy_text(policy_text, "policy.yaml")
    spec = RunSpec(cap_add=("NET_RAW",), user="1000")
    result = evaluate_runspec(spec, policy)
    assert [(f.rule, f.suppressed) for f in result if f.rule == "HR3001"] == [("HR3001", False)]
    expired = [f for f in result if f.rule == "HR0002"]
    assert [(f.path, f.line, f.severity) for f in expired] == [("policy.yaml", 4, "warning")]
    assert "expired on 2020-01-01" in expired[0].message


def test_exemption_valid_until_its_expiry_day_inclusive():
    policy = load_policy_text("version: 1\nexemptions:\n  - {rule: HR3001, reason: r, expires: 2030-06-30}\n")
    exemption = policy.exemptions[0]
    assert not exemption.expired(datetime.date(2030, 6, 30))
    assert exemption.expired(datetime.date(2030, 7, 1))


def test_gate_run_refuses_with_the_audit_findings():
    policy = load_policy("baseline")
    spec = RunSpec(cap_add=("SYS_ADMIN",), mounts=(Mount("bind", "/var/run/docker.sock",
                                                         "/var/run/docker.sock"),))
    verdict, found, hardened = gate_run(spec, policy)
    assert verdict.refused and not verdict.allowed and str(verdict) == "refuse"
    assert {f.rule for f in found} >= {"HR3001", "HR3002"}
    assert GATE_REFUSED_EXIT not in (0, 1, 2, 124, 125, 126, 127)


def test_gate_run_fills_hardened_defaults_from_the_policy():
    verdict, found, hardened = gate_run(RunSpec(), load_policy("strict"))
    assert hardened.no_new_privileges is True and hardened.read_only_root is True
    assert hardened.cap_drop == ("ALL",) and hardened.seccomp == "default"
    assert hardened.user == "65534:65534" and hardened.pids_limit == 1024
    assert hardened.memory == 1024 ** 3
    assert not any(f.rule.startswith("HR3") for f in found)


def test_gate_run_keeps_explicit_settings_and_judges_them():
    policy = load_policy("restricted")
    verdict, found, hardened = gate_run(RunSpec(user="0", seccomp="unconfined"), policy)
    assert hardened.user == "0" and hardened.seccomp == "unconfined"
    assert {"HR3008", "HR3009"} <= {f.rule for f in found}
    assert verdict.refused


def test_default_policy_warns_instead_of_refusing():
    policy = load_policy_text("version: 1\nallowed-capabilities: []\nruntime: {gate: warn}\n"
                              "default-rules: off\n")
    verdict, found, _ = gate_run(RunSpec(cap_add=("NET_RAW",), user="1000"), policy)
    assert verdict.allowed and verdict.warned and [f.rule for f in found] == ["HR3001"]


def test_both_gates_agree_on_the_same_container():
    policy = load_policy("restricted")
    audited = audit_text(CONFIG, "hardrun", "run.yaml", audit_options(policy))
    from hardrun.frontends.hardrun_config import parse_run_config
    spec = parse_run_config(CONFIG, "run.yaml")[0]
    _, gated, _ = gate_run(spec, policy)
    def key(finding):
        return finding.rule, finding.line, finding.message
    assert sorted(map(key, audited)) == sorted(map(key, gated))


def test_policy_scoped_and_default_rules_report_together():
    policy = load_policy_text("version: 1\nallowed-capabilities: []\n")
    rules = {f.rule for f in audit_text(CONFIG, "hardrun", "run.yaml", audit_options(policy))}
    assert "HR3001" in rules and "HR2011" in rules          # writable host mount (default rule)


def test_without_a_policy_policy_scoped_rules_stay_off():
    assert not [f for f in audit_text(CONFIG, "hardrun", "run.yaml", AuditOptions())
                if f.rule.startswith("HR3")]


def test_find_policy_walks_up_to_the_repository_root(tmp_path):
    from hardrun.policy import find_policy
    (tmp_path / ".git").mkdir()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_policy(deep) == "default"
    (tmp_path / ".hardrun.yaml").write_text("version: 1\n")
    assert find_policy(deep) == str(tmp_path / ".hardrun.yaml")
    assert find_policy(deep / "Dockerfile") == str(tmp_path / ".hardrun.yaml")


def test_trusted_registries_reach_build_and_run_rules():
    policy = load_policy_text("version: 1\ntrusted-registries: [registry.example, docker.io/library]\n")
    run_rules = {(f.rule, f.practice) for f in audit_text(CONFIG, "hardrun", "run.yaml", audit_options(policy))}
    assert ("HR2017", "untrusted-base") not in run_rules              # registry.example/web is trusted
    other = CONFIG.replace("registry.example/web:1.4", "ghcr.io/someone/web:1.4")
    messages = [f.message for f in audit_text(other, "hardrun", "run.yaml", audit_options(policy))
                if f.practice == "untrusted-base"]
    assert messages and "not a trusted registry" in messages[0]
    dockerfile = "FROM quay.io/org/base:1.0\nUSER 1000\nHEALTHCHECK CMD true\n"
    build = [f for f in audit_text(dockerfile, "dockerfile", "Dockerfile", audit_options(policy))
             if f.practice == "untrusted-base"]
    assert build and "not a trusted registry" in build[0].message


def test_expired_exemption_severity_follows_the_policy():
    base = "version: 1\nexemptions:\n  - {rule: HR3001, reason: r, expires: 2020-01-01}\n"
    def severity(extra):
        return [f.severity for f in expired_exemption_findings(load_policy_text(base + extra))]
    assert severity("") == ["warning"]
    assert severity("default-rules: error\n") == ["error"]
    assert severity("default-rules: off\n") == ["warning"]       # still reported
    assert severity("rules: {HR0002: off}\n") == []


@pytest.mark.parametrize("user,root", [("0", True), ("root", True), ("0:0", True), ("root:wheel", True),
                                       ("1000", False), ("app", False), ("rooter", False), ("10", False)])
def test_non_root_policy_knows_root_by_uid_and_by_name(user, root):
    """restricted's non-root setting (HR3008): uid 0 and the name root, with or without a
    group, are root; other users (the control) are not."""
    _, found, _ = gate_run(RunSpec(user=user), load_policy("restricted"))
    assert ("HR3008" in {f.rule for f in found}) is root, [(f.rule, f.message) for f in found]
