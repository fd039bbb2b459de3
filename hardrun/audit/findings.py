"""What an audit produces."""
from __future__ import annotations

from ..spec.record import dataclass, field  # not dataclasses: see record.py

SEVERITIES = ("info", "warning", "error")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Hit:
    """What a check yields: where, about what, and (optionally) a specific message."""
    line: int | None
    message: str | None = None
    subject: str | None = None
    severity: str | None = None   # a check may lower/raise the rule's severity (e.g. .dockerignore)
    rule: str | None = None       # reported under this id instead of the rule's (ShellCheck's SC2086)
    column: int | None = None     # 1-based, where the check knows it
    anchor: int | None = None     # the instruction's first line, for a hit on a heredoc line
    image: ImageLocation | None = None   # where in an image (image rules only)

    # Written out rather than record.py's generic one: checks make a Hit per finding,
    # and this is about three times faster (the fields above, in their order).
    def __init__(self, line, message=None, subject=None, severity=None, rule=None, column=None,
                 anchor=None, image=None):
        self.__dict__.update({"line": line, "message": message, "subject": subject,
                              "severity": severity, "rule": rule, "column": column,
                              "anchor": anchor, "image": image})


@dataclass(frozen=True)
class ImageLocation:
    """Where an image finding lies: the image (as named, and its manifest digest), the
    layer (index from 0 and digest; None for the config) and the path inside the image."""
    image: str
    digest: str
    layer: int | None = None
    layer_digest: str | None = None
    path: str | None = None           # absolute, `/etc/shadow`
    removed_in: int | None = None     # the later layer that deleted the file

    def as_json(self) -> dict:
        return {"name": self.image, "digest": self.digest, "layer": self.layer,
                "layer_digest": self.layer_digest, "path": self.path, "removed_in": self.removed_in}

    def flat_json(self) -> dict:
        """The members an image finding adds to its JSON object (which stays flat)."""
        return {"image": self.image, "image_digest": self.digest, "layer": self.layer,
                "layer_digest": self.layer_digest, "image_path": self.path,
                "removed_in": self.removed_in}


@dataclass(frozen=True)
class Finding:
    rule: str
    practice: str
    severity: str
    path: str
    line: int | None
    subject: str | None
    message: str
    suppressed: bool = False
    suppression_reason: str | None = None
    exempted_by_policy: bool = False   # suppressed by a policy exemption, not a source comment
    column: int | None = None          # 1-based, where known (ShellCheck's findings)
    # The offending source line as written (None when the finding has no line): what a
    # baseline fingerprints and an HTML report shows. Not part of a finding's identity.
    evidence: str | None = field(default=None, compare=False)
    # Against a baseline (--baseline): "unchanged" (accepted there), "new", or "expired"
    # (accepted by an entry whose `expires` has passed); None without a baseline.
    baseline: str | None = None
    fingerprint: str | None = field(default=None, compare=False)
    image: ImageLocation | None = None      # image findings: image, layer and path

    # Written out, as Hit's: one Finding per finding of every file (the fields above, in order).
    def __init__(self, rule, practice, severity, path, line, subject, message, suppressed=False,
                 suppression_reason=None, exempted_by_policy=False, column=None, evidence=None,
                 baseline=None, fingerprint=None, image=None):
        self.__dict__.update({
            "rule": rule, "practice": practice, "severity": severity, "path": path, "line": line,
            "subject": subject, "message": message, "suppressed": suppressed,
            "suppression_reason": suppression_reason, "exempted_by_policy": exempted_by_policy,
            "column": column, "evidence": evidence, "baseline": baseline,
            "fingerprint": fingerprint, "image": image})

    @property
    def baselined(self) -> bool:
        """Accepted by a baseline entry still in force: counted, but never failing."""
        return self.baseline == "unchanged"

    def as_json(self) -> dict:
        return {
            "rule": self.rule, "practice": self.practice, "severity": self.severity,
            "path": self.path, "line": self.line, "subject": self.subject,
            "message": self.message, "suppressed": self.suppressed,
        } | ({"column": self.column} if self.column else {}) | self._baseline_json() \
            | (self.image.flat_json() if self.image else {})

    def _baseline_json(self) -> dict:
        """Only present when the audit ran against a baseline: the JSON contract of a
        plain audit stays as it was."""
        if self.baseline is None:
            return {}
        return {"baseline": self.baseline, "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class FileError:
    path: str
    message: str          # "line 3: unterminated heredoc <<EOF"

    def as_json(self) -> dict:
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True)
class AuditedFile:
    path: str
    kind: str


@dataclass
class Report:
    files: list[AuditedFile] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)

    def failing(self, fail_on: str) -> list[Finding]:
        """Unsuppressed findings at or above `fail_on` that no baseline accepts."""
        rank = severity_rank(fail_on)
        return [f for f in self.findings
                if not f.suppressed and not f.baselined and severity_rank(f.severity) >= rank]

    def exit_code(self, fail_on: str) -> int:
        """2 when a file could not be read or parsed, 1 when findings reach `fail_on`, else 0."""
        if self.errors:
            return 2
        return 1 if self.failing(fail_on) else 0
