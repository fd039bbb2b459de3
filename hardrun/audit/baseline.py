"""Baselines: accept today's findings, fail only on new ones (`--baseline`, `--write-baseline`).

A finding's fingerprint is what survives unrelated edits: its file, subject, rule and a
hash of the offending line's text with its whitespace normalised (the message for a
finding about the whole file), never its line number, so inserting a line above keeps an
accepted finding accepted. Identical findings in one file (the same line written twice)
are told apart by their order. The path is part of the fingerprint: the same finding in
two files is two entries.

The baseline file is YAML that hardrun writes and people may edit: each entry may carry
a `reason` and an `expires` date, as a policy exemption does; an expired entry stops
accepting its finding, which then counts again and is marked `expired`.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections import Counter
from ..spec.record import dataclass  # not dataclasses: see record.py

from ..errors import HardrunError, ParseError
from ..spec.record import replace
from .findings import Finding, Report

VERSION = 1
_SCHEMA = {
    "type": "object",
    "required": ["version", "findings"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": VERSION},
        "findings": {"type": "array", "items": {
            "type": "object",
            "required": ["fingerprint", "rule", "path"],
            "additionalProperties": False,
            "properties": {
                "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "rule": {"type": "string", "minLength": 1},
                "path": {"type": "string", "minLength": 1},
                "subject": {"type": ["string", "null"]},
                "message": {"type": "string"},
                "reason": {"type": "string", "minLength": 1},
                "expires": {"type": "string", "format": "date"},
            },
        }},
    },
}


@dataclass(frozen=True)
class Entry:
    fingerprint: str
    rule: str
    path: str
    subject: str | None = None
    message: str | None = None
    reason: str | None = None
    expires: datetime.date | None = None
    line: int | None = None        # where the entry is written in the baseline file

    def expired(self, today: datetime.date) -> bool:
        return self.expires is not None and today > self.expires


@dataclass(frozen=True)
class Baseline:
    path: str
    entries: tuple[Entry, ...]

    def by_fingerprint(self) -> dict[str, Entry]:
        return {entry.fingerprint: entry for entry in self.entries}


def fingerprints(findings) -> list[str]:
    """One fingerprint per finding, in order (see the module's docstring)."""
    seen: Counter = Counter()
    out = []
    for finding in findings:
        key = (_path(finding.path), finding.subject or "", finding.rule, _evidence(finding))
        seen[key] += 1
        text = "\0".join(key + (str(seen[key]),))
        out.append(hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32])
    return out


def _path(path: str) -> str:
    return os.path.normpath(path).replace(os.sep, "/")


def _evidence(finding: Finding) -> str:
    """The offending text with runs of whitespace made one space (re-indenting a file
    keeps its findings accepted); the message when the finding has no line."""
    return " ".join((finding.evidence if finding.evidence is not None else finding.message).split())


def load_baseline(path: str) -> Baseline:
    """The baseline at `path`; ParseError at the file's line for anything malformed."""
    from ..parsing.marked import parse_marked, validate_located
    from ..userfiles import read_text
    try:
        text = read_text(path)
    except HardrunError as error:
        raise ParseError(f"cannot read the baseline: {error.message}", path=path) from None
    document = parse_marked(text, path, "empty baseline: expected `version: 1` and `findings:`")
    validate_located(_SCHEMA, document, path)
    data = document.data
    assert isinstance(data, dict), "the schema's document is an object"
    entries = tuple(_entry(item, document.where(("findings", index))[0])
                    for index, item in enumerate(data["findings"]))
    _no_duplicates(entries, path)
    return Baseline(path, entries)


def _entry(item: dict, line: int) -> Entry:
    expires = item.get("expires")
    return Entry(item["fingerprint"], item["rule"], item["path"], item.get("subject"),
                 item.get("message"), item.get("reason"),
                 datetime.date.fromisoformat(expires) if expires else None, line)


def _no_duplicates(entries, path: str) -> None:
    first: dict[str, int | None] = {}
    for entry in entries:
        if entry.fingerprint in first:
            raise ParseError(f"fingerprint {entry.fingerprint} is listed twice (first at line "
                             f"{first[entry.fingerprint]})", path=path, line=entry.line)
        first[entry.fingerprint] = entry.line


def apply_baseline(report: Report, baseline: Baseline, today: datetime.date | None = None) -> list[Entry]:
    """Mark each finding of `report` unchanged, new or expired against `baseline`, in
    place; returns the expired entries that matched a finding (to be said)."""
    today = today or datetime.date.today()
    accepted = baseline.by_fingerprint()
    expired = []
    marked = []
    for finding, fingerprint in zip(report.findings, fingerprints(report.findings)):
        entry = accepted.get(fingerprint)
        state = "new"
        if entry is not None:
            state = "expired" if entry.expired(today) else "unchanged"
            if state == "expired":
                expired.append(entry)
        marked.append(replace(finding, baseline=state, fingerprint=fingerprint))
    report.findings[:] = marked
    return expired


def expired_notice(baseline: Baseline, entry: Entry) -> str:
    """The line said about an expired entry that still matches a finding."""
    assert entry.expires is not None
    where = f"{entry.path}" + (f" [{entry.subject}]" if entry.subject else "")
    return (f"{baseline.path}:{entry.line}: baseline entry for {entry.rule} at {where} expired on "
            f"{entry.expires.isoformat()}: the finding counts again (fix it, or renew the entry "
            "with a reason)")


def render_baseline(report: Report, previous: Baseline | None = None) -> str:
    """A baseline accepting every unsuppressed finding of `report`, keeping the `reason`
    and `expires` of entries `previous` already had for the same fingerprint."""
    kept = previous.by_fingerprint() if previous else {}
    today = datetime.date.today().isoformat()
    lines = [
        f"# hardrun audit baseline, written on {today}: findings accepted as they are.",
        "# `hardrun audit --baseline FILE` fails only on findings not listed here. An entry",
        "# may carry `reason:` and `expires: YYYY-MM-DD`, as a policy exemption does.",
        f"version: {VERSION}",
    ]
    entries = []
    for finding, fingerprint in zip(report.findings, fingerprints(report.findings)):
        if finding.suppressed:
            continue
        entries.append(_entry_lines(finding, fingerprint, kept.get(fingerprint)))
    lines.append("findings:" + ("" if entries else " []"))
    for entry_lines in entries:
        lines.extend(entry_lines)
    return "\n".join(lines) + "\n"


def _entry_lines(finding: Finding, fingerprint: str, old: Entry | None) -> list[str]:
    # JSON strings are YAML double-quoted scalars: any path or message stays one line.
    out = [f"- fingerprint: {fingerprint}", f"  rule: {finding.rule}",
           f"  path: {json.dumps(finding.path)}"]
    if finding.subject is not None:
        out.append(f"  subject: {json.dumps(finding.subject)}")
    out.append(f"  message: {json.dumps(finding.message)}")
    if old is not None and old.reason:
        out.append(f"  reason: {json.dumps(old.reason)}")
    if old is not None and old.expires:
        out.append(f"  expires: {old.expires.isoformat()}")
    return out
