"""Inline suppressions: `# hardrun ignore=HR1001[,HR1002] reason="…"` and
`# hardrun global ignore=HR1001 reason="…"`. ShellCheck codes (`SC2086`) are rule ids too.

A line suppression covers the findings on the first code line after the comment
(blank lines and other comments in between are passed over) and on the lines that
continue it with a trailing backslash; a global one covers the whole file. Unknown
rule ids are errors; suppressions that cover nothing are reported by the engine as
HR0001 findings.
"""
from __future__ import annotations

from ..parsing.patterns import lazy

from ..errors import ParseError
from ..spec.record import dataclass, field  # not dataclasses: see record.py

_DIRECTIVE = lazy(r"^\s*#\s*hardrun\s+(global\s+)?ignore\s*=\s*([A-Za-z0-9_,\s]+?)"
                        r"(?:\s+reason\s*=\s*(\"[^\"]*\"|'[^']*'|\S+))?\s*$")
_SHELLCHECK_CODE = lazy(r"^SC[0-9]{4}$")     # hardrun.audit.shellcheck.CODE
_MENTION = lazy(r"^\s*#\s*hardrun\s+(global\s+)?ignore\b")


@dataclass
class Suppression:
    line: int                 # line of the comment
    rules: tuple[str, ...]
    target: int | None        # the line it covers; None for a global suppression
    reason: str | None
    is_global: bool = False
    used: set = field(default_factory=set)
    last: int | None = None   # the last line of the covered instruction (continuation lines)


def parse_suppressions(text: str, known_rules) -> list[Suppression]:
    """Every suppression comment of `text`; raises ParseError on a malformed one."""
    found: list[Suppression] = []
    if "hardrun" not in text:
        return found      # every directive names hardrun: most files need no line-by-line pass
    pending: list[Suppression] = []
    continued: list[Suppression] = []   # covering an instruction that goes on (trailing `\`)
    # Lines are counted as the front ends count them: on `\n` only (`\r\n` is one break).
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if _MENTION.match(stripped):
                found.append(_parse_one(stripped, number, known_rules, pending))
            continue
        for suppression in continued:
            suppression.last = number
        for suppression in pending:
            suppression.target = suppression.last = number
        continued = continued + pending if stripped.endswith("\\") else []
        pending = []
    return found


def _parse_one(comment: str, number: int, known_rules, pending: list) -> Suppression:
    match = _DIRECTIVE.match(comment)
    if not match:
        raise ParseError('malformed suppression: expected `# hardrun [global] ignore=HR1234[,…] '
                         'reason="…"`', line=number)
    is_global, ids, reason = match.groups()
    rules = tuple(part.strip().upper() for part in ids.split(",") if part.strip())
    unknown = [rule for rule in rules if rule not in known_rules and not _SHELLCHECK_CODE.match(rule)]
    if unknown or not rules:
        raise ParseError(f"unknown rule id {', '.join(unknown) or '(none)'} in suppression "
                         "(`hardrun rules` lists them)", line=number)
    suppression = Suppression(number, rules, None, reason.strip("\"'") if reason else None,
                              is_global=bool(is_global))
    if not suppression.is_global:
        pending.append(suppression)
    return suppression


def match(suppressions: list[Suppression], rule: str, line: int | None) -> Suppression | None:
    """The suppression covering a finding of `rule` at `line`, if any (marks it used)."""
    for suppression in suppressions:
        if rule not in suppression.rules:
            continue
        if suppression.is_global or (line is not None and suppression.target is not None
                                     and suppression.last is not None    # set with the target
                                     and suppression.target <= line <= suppression.last):
            suppression.used.add(rule)
            return suppression
    return None
