"""Every rule's bad/good examples (from rules/*.yaml) are tests: a bad example must
produce an unsuppressed finding of that rule, a good one must not."""
import pytest

from hardrun.audit.engine import AuditOptions, audit_text
from hardrun.audit.rules import all_rules, checks

RULES = all_rules()


def _cases(which):
    for rule in RULES.values():
        for number, example in enumerate(getattr(rule, which)):
            yield pytest.param(rule, example, id=f"{rule.id}-{which}{number}-{example.kind}")


def _rule_ids(example):
    findings = audit_text(example.text, example.kind, f"example.{example.kind}", AuditOptions())
    return {f.rule for f in findings if not f.suppressed}


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
        assert rule.id in registered or rule.id == "HR0001", f"{rule.id} has no check"


def test_every_example_kind_is_one_the_rule_applies_to():
    for rule in RULES.values():
        for example in rule.bad + rule.good:
            assert example.kind in rule.applies_to, (rule.id, example.kind)
