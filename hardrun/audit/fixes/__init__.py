"""`hardrun audit --fix`: the findings that have one safe mechanical fix, fixed in place.

Each fix is a text edit (edits.py) of the file as it was read: what is not fixed stays
byte for byte. A file is fixed only when it was read and parsed; the fixed text must
parse again and audit clean for what was fixed (else nothing is written and the file is
named as not fixed); it is written as a new file renamed over the old one (userfiles.py:
a symlink is refused, never followed), keeping its mode.
"""
from __future__ import annotations

from ...spec.record import dataclass  # not dataclasses: see record.py

from .dockerfilefix import DOCKERFILE_RULES
from .yamlfix import COMPOSE_RULES, KUBERNETES_RULES

FIXABLE = {"compose": COMPOSE_RULES, "kubernetes": KUBERNETES_RULES, "dockerfile": DOCKERFILE_RULES}
FIXABLE_RULES = frozenset().union(*FIXABLE.values())
_BOM = "\ufeff"


@dataclass(frozen=True)
class FileFix:
    path: str
    before: str
    after: str
    fixed: tuple             # the Findings the edits fix

    def diff(self) -> str:
        import difflib
        import os
        old, new = (self.path, self.path) if os.path.isabs(self.path) else \
            (f"a/{self.path}", f"b/{self.path}")
        return "".join(difflib.unified_diff(self.before.splitlines(keepends=True),
                                            self.after.splitlines(keepends=True), old, new))


def plan_fixes(report, options) -> tuple[list[FileFix], list[str]]:
    """(the fixes of `report`'s fixable unsuppressed findings, one per file that changes;
    a message for each file that has such findings but could not be fixed safely).
    `options`: the AuditOptions the report was made with, to audit the fixed text."""
    kinds = {audited.path: audited.kind for audited in report.files}
    broken = {error.path for error in report.errors}
    by_path: dict[str, list] = {}
    for finding in report.findings:
        kind = kinds.get(finding.path)
        if not finding.suppressed and kind in FIXABLE and finding.rule in FIXABLE[kind]:
            by_path.setdefault(finding.path, []).append(finding)
    fixes, problems = [], []
    for path, findings in by_path.items():
        if path in broken:
            continue                   # never touch a file that could not be parsed
        try:
            fix = _fix_file(path, kinds[path], findings, options)
        except _NotFixed as error:
            problems.append(f"{path}: not fixed: {error}")
            continue
        if fix is not None:
            fixes.append(fix)
    return fixes, problems


def write_fixes(fixes) -> None:
    """Write each fixed file in place (HardrunError if one cannot be written)."""
    from ...userfiles import write_text
    for fix in fixes:
        write_text(fix.path, fix.after, keep_mode=True)


class _NotFixed(Exception):
    pass


def _fix_file(path: str, kind: str, findings: list, options) -> FileFix | None:
    from ...errors import HardrunError
    from ...userfiles import decode, read_bytes
    try:
        data = read_bytes(path)
        text = decode(data)
    except HardrunError as error:
        raise _NotFixed(error.located()) from None
    bom = _BOM if data.startswith(_BOM.encode()) else ""
    edits, fixed = _edits(kind, text, path, findings)
    if not edits:
        return None
    from .edits import apply
    after = apply(text, edits)
    _verify(after, kind, path, fixed, findings, options)
    return FileFix(path, bom + text, bom + after, tuple(fixed))


def _edits(kind: str, text: str, path: str, findings: list):
    from ...errors import HardrunError
    try:
        if kind == "dockerfile":
            from ...frontends import parse
            from .dockerfilefix import dockerfile_edits
            return dockerfile_edits(text, parse(kind, text, path), findings)
        from .edits import YamlText
        from .yamlfix import compose_edits, kubernetes_edits
        document = YamlText(text, path)
        return (compose_edits if kind == "compose" else kubernetes_edits)(document, findings)
    except HardrunError as error:
        raise _NotFixed(error.located()) from None


def _verify(after: str, kind: str, path: str, fixed: list, findings: list, options) -> None:
    """The fixed text parses and has fewer findings of each fixed (rule, subject)."""
    from collections import Counter
    from ...errors import HardrunError
    from ..engine import audit_text
    try:
        remaining = audit_text(after, kind, path, options, source_path=path)
    except HardrunError as error:
        raise _NotFixed(f"the fixed text would not parse ({error.located()})") from None
    before = Counter((f.rule, f.subject) for f in findings)
    now = Counter((f.rule, f.subject) for f in remaining if not f.suppressed)
    for key, count in Counter((f.rule, f.subject) for f in fixed).items():
        if now[key] > before[key] - count:
            raise _NotFixed(f"{key[0]} would remain after the fix")
