"""The text `hardrun explain` prints, made from the rule file alone."""
from __future__ import annotations

import re
import textwrap

from ..errors import UsageError
from .rules import all_rules, describe


def explain_text(wanted: str) -> str:
    """A rule's documentation by id, every rule of a practice, or for a ShellCheck code
    (SC2086) HR1020's, which reports it, with the code's wiki page first."""
    rules = all_rules()
    key = wanted.strip()
    if re.fullmatch(r"SC[0-9]{4}", key.upper()):
        return _one(describe(key.upper()))
    chosen = [rules[key.upper()]] if key.upper() in rules else [
        rule for rule in rules.values() if rule.practice == key.lower()]
    if not chosen:
        raise UsageError(f"no rule or practice named {wanted!r} (see `hardrun rules`)")
    return "\n".join(_one(rule) for rule in chosen)


def _one(rule) -> str:
    parts = [f"{rule.id}: {rule.title}",
             f"practice: {rule.practice}    severity: {rule.severity}    "
             f"applies to: {', '.join(rule.applies_to)}",
             "", "Why", _indent(rule.why), "", "How to fix", _indent(rule.fix)]
    for label, examples in (("Bad", rule.bad), ("Good", rule.good)):
        for example in examples:
            parts += ["", f"{label} ({example.kind})", _indent(example.text.rstrip())]
    if rule.references:
        parts += ["", "References"] + [f"  {ref}" for ref in rule.references]
    return "\n".join(parts) + "\n"


def _indent(text: str) -> str:
    return textwrap.indent(text.rstrip(), "  ")
