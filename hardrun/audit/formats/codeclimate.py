"""GitLab Code Quality (Code Climate issues): a JSON list, one issue per finding.

The fields GitLab's documentation requires (docs.gitlab.com, "Code Quality", section
"Code Quality report format"): `description`, `check_name`, `fingerprint`, `severity`
(info, minor, major, critical or blocker) and `location.path` with `location.lines.begin`.
Findings suppressed in the source or by the policy are left out (GitLab has no notion of
them); baselined ones stay, with the same stable fingerprint as in the baseline, so that
GitLab's comparison with the target branch shows them as existing, not new. A file that
could not be audited is a `blocker` issue, as it makes the audit exit 2.
"""
from __future__ import annotations

import json

from ..baseline import fingerprints

_SEVERITY = {"error": "critical", "warning": "major", "info": "info"}
UNREADABLE = "hardrun/unreadable-file"


def render_codeclimate(report) -> str:
    findings = [(finding, fingerprint) for finding, fingerprint
                in zip(report.findings, fingerprints(report.findings)) if not finding.suppressed]
    issues = [_issue(finding, fingerprint) for finding, fingerprint in findings]
    issues.extend(_error_issue(error) for error in report.errors)
    return json.dumps(issues, indent=2) + "\n"


def _issue(finding, fingerprint: str) -> dict:
    subject = f"[{finding.subject}] " if finding.subject else ""
    return {
        "type": "issue",
        "check_name": finding.rule,
        "description": f"{finding.rule} {subject}{finding.message}",
        "categories": ["Security"],
        "severity": _SEVERITY[finding.severity],
        "fingerprint": fingerprint,
        "location": {"path": finding.path, "lines": {"begin": finding.line or 1}},
    }


def _error_issue(error) -> dict:
    import hashlib
    fingerprint = hashlib.sha256(f"{error.path}\0{UNREADABLE}".encode("utf-8", "surrogateescape"))
    return {
        "type": "issue",
        "check_name": UNREADABLE,
        "description": f"could not be audited: {error.message}",
        "categories": ["Bug Risk"],
        "severity": "blocker",
        "fingerprint": fingerprint.hexdigest()[:32],
        "location": {"path": error.path, "lines": {"begin": 1}},
    }
