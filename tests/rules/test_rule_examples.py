"""Every rule's bad/good examples (from rules/*.yaml) are tests: a bad example must
produce an unsuppressed finding of that rule, a good one must not. An example that
carries a `policy:` is judged under that policy (policy-scoped rules need one)."""
import pytest

from hardrun.audit.engine import AuditOptions, audit_text
from hardrun.audit.rules import all_rules, checks
from hardrun.audit.shellcheck import GROUP_RULE, is_code
from hardrun.policy import audit_options, expired_exemption_findings, load_policy_text

RULES = all_rules()


def _cases(which):
    for rule in RULES.values():
        for number, example in enumerate(getattr(rule, which)):
            yield pytest.param(rule, example, id=f"{rule.id}-{which}{number}-{example.kind}")


def _image_rule_ids(example):
    """An image example is built as an OCI layout (tests/image_examples.py) and audited."""
    import tempfile
    from pathlib import Path

    from hardrun.audit.engine import audit
    from tests.image_examples import build_example
    with tempfile.TemporaryDirectory() as directory:
        report = audit([], AuditOptions(), images=[build_example(example.text, Path(directory))])
    assert not report.errors, report.errors
    return {f.rule for f in report.findings if not f.suppressed}


def _rule_ids(example):
    if example.kind == "image":
        return _image_rule_ids(example)
    if example.policy is None:
        findings = audit_text(example.text, example.kind, f"example.{example.kind}", AuditOptions())
    else:
        policy = load_policy_text(example.policy, "example-policy.yaml")
        findings = audit_text(example.text, example.kind, f"example.{example.kind}",
                              audit_options(policy))
        findings += expired_exemption_findings(policy)
    # ShellCheck's findings are reported under their own codes (SC2086) by HR1020
    return {GROUP_RULE if is_code(f.rule) else f.rule for f in findings if not f.suppressed}


@pytest.mark.parametrize("rule,example", list(_cases("bad")))
def test_bad_example_is_found(rule, example):
    assert rule.id in _rule_ids(example)


@pytest.mark.parametrize("rule,example", list(_cases("good")))
def test_good_example_is_clean(rule, example):
    assert rule.id not in _rule_ids(example)


def test_every_rule_has_examples_and_a_check():
    registered = checks()
    for rule in RULES.values():
        assert rule.bad and rule.good, f"{rule.id} needs bad and good examples"
        # HR0xxx are about suppressions and policies themselves, produced by the engine.
        assert rule.id in registered or rule.id.startswith("HR0"), f"{rule.id} has no check"


def test_every_example_kind_is_one_the_rule_applies_to():
    for rule in RULES.values():
        for example in rule.bad + rule.good:
            assert example.kind in rule.applies_to, (rule.id, example.kind)


def test_policy_scoped_rules_are_off_without_a_policy_and_their_examples_carry_one():
    for rule in RULES.values():
        if rule.enabled_by is None:
            continue
        assert all(example.policy for example in rule.bad + rule.good), rule.id
        for example in rule.bad:
            findings = audit_text(example.text, example.kind, "example", AuditOptions())
            assert rule.id not in {f.rule for f in findings}, rule.id
