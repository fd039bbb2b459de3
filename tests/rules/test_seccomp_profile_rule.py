"""HR2030: the seccomp profile a run config names allows a dangerous call."""
import json

from hardrun.audit.checks.seccomp_profile import allowed_dangerous_calls
from hardrun.audit.engine import audit

BUILTIN = "hardrun/data/seccomp/default.json"


def _rule_hits(path):
    return [f for f in audit([str(path)]).findings if f.rule == "HR2030"]


def test_a_compose_files_profile_is_read_beside_it(tmp_path):
    (tmp_path / "profile.json").write_text(json.dumps(
        {"defaultAction": "SCMP_ACT_ERRNO",
         "syscalls": [{"names": ["read", "unshare"], "action": "SCMP_ACT_ALLOW"}]}))
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  web:\n    image: nginx:1.27\n    security_opt:\n      - seccomp:profile.json\n")
    hits = _rule_hits(compose)
    assert [(h.subject, h.line) for h in hits] == [("unshare", 5)]
    # control: the same compose file with a narrow profile
    (tmp_path / "profile.json").write_text(json.dumps(
        {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}))
    assert _rule_hits(compose) == []


def test_argument_filters_and_capability_gates_are_not_findings():
    with open(BUILTIN) as handle:
        assert allowed_dangerous_calls(json.load(handle)) == []
    bare = {"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["clone", "personality"], "action": "SCMP_ACT_ALLOW"}]}
    assert allowed_dangerous_calls(bare) == ["clone", "personality"]
    deny_list = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["bpf"], "action": "SCMP_ACT_ERRNO"}]}
    assert "bpf" not in allowed_dangerous_calls(deny_list) and "keyctl" in allowed_dangerous_calls(deny_list)


def test_a_missing_or_broken_profile_is_no_finding_and_no_error(tmp_path):
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  web:\n    image: nginx:1.27\n    security_opt:\n      - seccomp:missing.json\n")
    report = audit([str(compose)])
    assert not [f for f in report.findings if f.rule == "HR2030"] and not report.errors
    (tmp_path / "missing.json").write_text("{ not json")
    report = audit([str(compose)])
    assert not [f for f in report.findings if f.rule == "HR2030"] and not report.errors


def test_hr2030_says_why_in_the_words_of_the_one_table(tmp_path):
    from hardrun.spec.seccomp_calls import DANGEROUS_CALLS, WHY
    assert set(DANGEROUS_CALLS) <= set(WHY)
    (tmp_path / "profile.json").write_text(json.dumps(
        {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ALLOW"}]}))
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  web:\n    image: nginx:1.27\n    security_opt:\n      - seccomp:profile.json\n")
    [hit] = _rule_hits(compose)
    assert hit.message == f"the seccomp profile profile.json allows clone: {WHY['clone']}"
