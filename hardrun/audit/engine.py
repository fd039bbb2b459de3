"""The audit engine: find files, parse them, run the rules, apply suppressions."""
from __future__ import annotations

import os
from ..spec.record import dataclass, field  # not dataclasses: see record.py

from ..errors import HardrunError
from .. import frontends
from ..userfiles import audited_root, read_bytes, read_text, within
from ..frontends.registry import BUILD, IMAGE, IMAGE_TRANSPORTS, RUN, front_end
from .findings import AuditedFile, FileError, Finding, Report
from .rules import Rule, all_rules, rules_for
from . import suppressions as supp

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Callable

    from ..spec.run import RunSpec

# Directories never worth auditing: VCS metadata, dependencies, caches, virtualenvs.
IGNORED_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "vendor", "third_party", "third-party",
    "bower_components", ".venv", "venv", "__pycache__", ".tox", ".nox", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", "site-packages", ".terraform",
})
STDIN = "-"
UNUSED_SUPPRESSION = "HR0001"


@dataclass(frozen=True)
class AuditOptions:
    kind: str | None = None                        # force a front end (--kind)
    trusted_registries: tuple[str, ...] | None = None
    # callable(Rule) -> bool, from a policy. None: every rule except the policy-scoped
    # ones (a rule file's `enabled_by`), which only a policy switches on.
    rule_filter: Callable[[Rule], bool] | None = None
    severity_override: dict | None = None          # rule id -> severity, from a policy
    exemptions: tuple = ()                         # policy exemptions: .covers(finding, subjects, images), .reason
    policy: object = None                          # the Policy, read by policy-parameterised checks
    # callable(RunSpec) -> RunSpec applied to hardrun run configs before the checks: the
    # policy's defaults, which `hardrun run --config` fills in too (same verdicts)
    run_defaults: Callable[[RunSpec], RunSpec] | None = None
    # the ShellCheck binary for RUN instructions: "auto" looks on PATH, None runs none
    shellcheck: str | None = "auto"
    code_switches: dict | None = None              # ShellCheck code (SC2086) -> on, off or a severity


@dataclass(frozen=True)
class AuditContext:
    """What a check may know beside its model."""
    path: str
    kind: str
    options: AuditOptions = field(default_factory=AuditOptions)
    dockerignore: tuple[str, ...] | None = None    # patterns beside a Dockerfile, None if none
    text: str = ""                                 # the audited file's text


COMMAND_LINE = "<command-line>"


def audit(paths, options: AuditOptions | None = None, stdin_text: str | None = None,
          docker_run_lines=(), skip_unknown: bool = False, progress=None, images=()) -> Report:
    """Audit files and directories (`-` reads `stdin_text`), `docker run` command
    lines given as text (shown as `<command-line>`) and container images (`images`, and
    the `paths` that name one by transport, `oci:DIR`…) into one Report.

    `skip_unknown`: a file named in `paths` is judged as a file found in a tree is (one
    that no front end recognises is passed over, not an error), as a hook that names
    every changed file needs. `progress`: told `found(total)` once, then
    `done(path)` after each file (see progress.py)."""
    options = options or AuditOptions()
    report = Report()
    images = list(images) + [path for path in paths if _names_image(path)]
    paths = [path for path in paths if not _names_image(path)]
    candidates = _candidates(paths, report)
    if progress is not None:
        candidates = list(candidates)   # the total first: "files done of found"
        progress.found(len(candidates))
    for path, explicit, root in candidates:
        if isinstance(path, _Outside):
            _not_followed(path, options, report)
        else:
            _audit_one(path, explicit and not (skip_unknown and path != STDIN), root, options,
                       report, stdin_text)
        if progress is not None:
            progress.done(path)
    for command_line in docker_run_lines:
        _audit_command_line(command_line, options, report)
    for image in images:
        _audit_image(image, options, report)
    report.findings.sort(key=lambda f: (f.path, f.line or 0, f.rule))
    return report


def _candidates(paths, report: Report):
    """(path, given explicitly, real path of the tree it may read beside itself) for
    every file to audit, in a stable order."""
    for path in paths:
        if path == STDIN:
            yield path, True, os.path.realpath(os.curdir)
        elif os.path.isdir(path):
            real_root = os.path.realpath(path)
            for found in _walk(path, real_root):
                yield found, False, real_root
        elif os.path.exists(path):
            yield path, True, _named_root(path)
        else:
            report.errors.append(FileError(path, "no such file or directory"))


def _named_root(path: str) -> str:
    """What a file named on the command line may read beside itself: the current
    directory when the file lies in it, else the file's own directory."""
    directory = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    current = os.path.realpath(os.curdir)
    return current if within(directory, current) else directory


def _walk(root: str, real_root: str):
    """Files under `root`; a symlink leading out of it is yielded as an _Outside."""
    for directory, subdirs, files in os.walk(root, onerror=None):
        subdirs[:] = sorted(d for d in subdirs if d not in IGNORED_DIRS)
        for name in sorted(files):
            path = os.path.join(directory, name)
            yield _Outside(path) if _outside(path, real_root) else path


class _Outside(str):
    """A path found while walking a tree that is a symlink to a file outside the tree."""


def _outside(path: str, real_root: str) -> bool:
    return os.path.islink(path) and not within(path, real_root)


def _not_followed(path: str, options: AuditOptions, report: Report) -> None:
    """A symlink out of the audited tree is never read (nor quoted in an error); one the
    audit would have read by its name alone is reported as not followed."""
    if options.kind is not None or frontends.detect_kind(path, "") is not None:
        report.errors.append(FileError(_display(path), "symbolic link to a file outside the "
                                       "audited directory: not followed (name the file itself "
                                       "to audit it)"))


def _audit_one(path: str, explicit: bool, root: str, options: AuditOptions, report: Report,
               stdin_text: str | None) -> None:
    shown = "<stdin>" if path == STDIN else _display(path)
    try:
        if path != STDIN and not explicit and options.kind is None:
            # Walking a tree: decide by name (and for scripts, a peek) before reading it all.
            if frontends.detect_kind(path) is None:
                return
        text = stdin_text if path == STDIN else read_text(path)
        assert text is not None, "audit() is given the text of a `-` path"
        kind = options.kind or frontends.detect_kind(path, text[:4096]) or (
            frontends.sniff_kind(text) if explicit else None)
        if kind is None:
            if explicit:
                raise HardrunError("cannot tell what kind of file this is (use --kind)")
            return
        if not explicit and options.kind is None and not frontends.claims(kind, text, path):
            return   # e.g. a shell script without any docker run line
        report.files.append(AuditedFile(shown, kind))
        report.findings.extend(audit_text(text, kind, shown, options, source_path=path,
                                          root=root))
    except HardrunError as error:
        report.errors.append(FileError(shown, error.located()))
    except Exception as error:   # a parser's bug (or exhaustion) loses its file, never the run
        report.errors.append(FileError(shown, _unexpected(error)))


def _audit_command_line(command_line: str, options: AuditOptions, report: Report) -> None:
    try:
        report.files.append(AuditedFile(COMMAND_LINE, "docker-run"))
        if not frontends.claims("docker-run", command_line, COMMAND_LINE):
            raise HardrunError("expected a docker run, docker create, podman run or nerdctl run "
                               "command")
        report.findings.extend(audit_text(command_line, "docker-run", COMMAND_LINE, options))
    except HardrunError as error:
        report.errors.append(FileError(COMMAND_LINE, error.located()))
    except Exception as error:
        report.errors.append(FileError(COMMAND_LINE, _unexpected(error)))


def _names_image(path: str) -> bool:
    """A positional argument that names an image by transport (`oci:DIR`,
    `docker-archive:FILE`…) rather than a file that exists under that name."""
    transport, colon, rest = path.partition(":")
    return bool(colon and rest) and transport in IMAGE_TRANSPORTS and not os.path.lexists(path)


def _audit_image(name: str, options: AuditOptions, report: Report) -> None:
    """One image, by the image rules; an image that cannot be read is a FileError under
    the name it was given (the others are still audited)."""
    try:
        model = frontends.parse("image", name, name)[0]
        shown = f"{model.name}@{model.digest}"      # the image as named, pinned by digest
        report.files.append(AuditedFile(shown, "image"))
        context = AuditContext(shown, "image", options)
        report.findings.extend(finding for finding, _ in _run_checks(rules_for(IMAGE), [model], context))
    except HardrunError as error:
        report.errors.append(FileError(name, error.located()))
    except Exception as error:
        report.errors.append(FileError(name, _unexpected(error)))


def _unexpected(error: Exception) -> str:
    """The file's error when a parser ran out of stack or memory, or failed in a way it
    does not report itself: that file alone is lost."""
    if isinstance(error, RecursionError):
        return "nested too deeply to audit (a parser's recursion limit was reached)"
    if isinstance(error, MemoryError):
        return "too large to audit (out of memory)"
    return f"internal error while auditing this file ({type(error).__name__}: {error}); please report it"


def audit_text(text: str, kind: str, shown: str, options: AuditOptions,
               source_path: str | None = None, root: str | None = None) -> list[Finding]:
    """Findings for one file's text. Raises HardrunError if it cannot be parsed. With a
    `root` (a real path), files the audited one names are read only from inside it."""
    known = all_rules()
    suppressions = supp.parse_suppressions(text, known)
    with audited_root(root):
        models = frontends.parse(kind, text, shown)
    if kind == "hardrun" and options.run_defaults is not None:
        models = [options.run_defaults(model) for model in models]
    evidence = _Evidence(text)
    if front_end(kind).model == BUILD:
        context = AuditContext(shown, kind, options, _dockerignore(source_path, root), text)
        raw = list(_run_checks(rules_for(BUILD, kind), [models], context, evidence))
    else:
        raw = list(_run_checks(rules_for(RUN, kind), models, AuditContext(shown, kind, options),
                               evidence))
    if not suppressions:          # most files: nothing to match, nothing unused
        return [finding for finding, _ in raw]
    findings = [_suppress(finding, suppressions, anchor) for finding, anchor in raw]
    findings.extend(_unused(suppressions, known, shown, options, evidence))
    return findings


# An evidence line longer than this (a one-line JSON config) is cut: enough to show and
# to fingerprint, without copying megabytes into every finding.
MAX_EVIDENCE = 500


class _Evidence:
    """The source line a finding points at, given to each Finding as it is made (one
    record per finding, not a second copy with the evidence added)."""
    __slots__ = ("text", "lines")

    def __init__(self, text: str):
        self.text = text
        self.lines: list[str] | None = None

    def __call__(self, line: int | None) -> str | None:
        if not line:
            return None
        if self.lines is None:
            self.lines = self.text.split("\n")   # lines counted as the front ends count them: on \n only
        lines = self.lines
        return lines[line - 1].rstrip("\r")[:MAX_EVIDENCE] if line <= len(lines) else None


def check_runspecs(specs, options: AuditOptions | None = None) -> list[Finding]:
    """Findings of the run rules over RunSpecs built elsewhere (e.g. `hardrun run` flags)."""
    options = options or AuditOptions()
    findings: list[Finding] = []
    for spec in specs:
        shown = spec.path or "<command line>"
        context = AuditContext(shown, spec.kind, options)
        findings.extend(finding for finding, _ in _run_checks(rules_for(RUN), [spec], context))
    return findings


def rule_enabled(rule: Rule, options: AuditOptions) -> bool:
    if options.rule_filter is None:
        return rule.enabled_by is None
    return bool(options.rule_filter(rule))


def _run_checks(pairs, models, context: AuditContext, evidence=None):
    """(finding, anchor line) pairs; the anchor is where a run model is declared, or the
    instruction a hit on one of its heredoc lines belongs to. `evidence`: line -> the
    source line a finding shows (an _Evidence), None for findings without a file."""
    kind, options = context.kind, context.options
    active = _active(pairs, kind, options)
    for model in models:
        anchor = getattr(model, "line", None)     # where a RunSpec is declared; a Dockerfile has none
        model_subject = getattr(model, "subject", None)
        for rule, check_fn in active:
            for hit in check_fn(model, context) or ():
                subject = hit.subject if hit.subject is not None else model_subject
                severity = _severity(rule, hit, options)
                if severity is None:
                    continue
                line = hit.line
                finding = Finding(hit.rule or rule.id, rule.practice, severity, context.path,
                                  line, subject, hit.message or rule.message, column=hit.column,
                                  evidence=evidence(line) if evidence is not None else None,
                                  image=hit.image)
                yield _exempt(finding, model, options.exemptions), hit.anchor or anchor


# (pairs, kind, options, the enabled pairs) of the last _active answer: every file of a
# kind in one audit asks the same question (the objects are kept, so `is` cannot be fooled
# by a reused id)
_LAST_ACTIVE: list = [None, None, None, []]


def _active(pairs, kind: str, options: AuditOptions) -> list:
    """The (rule, check) pairs of `pairs` that judge `kind` and that `options` enable."""
    last = _LAST_ACTIVE
    if last[0] is pairs and last[1] == kind and last[2] is options:
        return last[3]
    active = [(rule, check_fn) for rule, check_fn in pairs
              if kind in rule.applies_to and rule_enabled(rule, options)]
    last[:] = [pairs, kind, options, active]
    return active


def _severity(rule: Rule, hit, options: AuditOptions) -> str | None:
    """The severity of `hit` under the options' policy; None when the policy switches off
    the code it is reported under (a ShellCheck code: `rules: {SC2086: off}`)."""
    switch = (options.code_switches or {}).get(hit.rule) if hit.rule else None
    if switch == "off":
        return None
    if switch not in (None, "on"):
        return switch
    return (options.severity_override or {}).get(rule.id) or hit.severity or rule.severity


def _exempt(finding: Finding, model, exemptions) -> Finding:
    """`finding` marked suppressed when a policy exemption covers it."""
    if not exemptions:
        return finding
    subjects = tuple(s for s in (finding.subject, getattr(model, "name", None)) if s)
    images = _images(model)
    for exemption in exemptions:
        if exemption.covers(finding, subjects, images):
            return Finding(**{**finding.__dict__, "suppressed": True, "exempted_by_policy": True,
                              "suppression_reason": f"policy exemption: {exemption.reason}"})
    return finding


def _images(model) -> tuple[str, ...]:
    """The image a RunSpec starts, or every base image of a Dockerfile's stages."""
    image = getattr(model, "image", None)
    if image:
        return (image,)
    return tuple(stage.base for stage in getattr(model, "stages", ()) or () if getattr(stage, "base", None))


def _suppress(finding: Finding, suppressions, anchor: int | None = None) -> Finding:
    """Mark `finding` suppressed when a comment covers its line or, for run configs, the
    line declaring its object: a comment cannot sit between the continuation lines of a
    `docker run` command, so one before the command covers all of its flags (and one
    before a `RUN <<EOF` covers the lines of its heredoc)."""
    covering = supp.match(suppressions, finding.rule, finding.line)
    if covering is None and anchor is not None and anchor != finding.line:
        covering = supp.match(suppressions, finding.rule, anchor)
    if covering is None:
        return finding
    return Finding(**{**finding.__dict__, "suppressed": True,
                      "suppression_reason": covering.reason})


def _unused(suppressions, known: dict[str, Rule], shown: str, options: AuditOptions,
            evidence: _Evidence) -> list[Finding]:
    rule = known[UNUSED_SUPPRESSION]
    out = []
    for suppression in suppressions:
        for rule_id in suppression.rules:
            if rule_id not in suppression.used and not _unjudged(rule_id, options):
                out.append(Finding(rule.id, rule.practice, rule.severity, shown, suppression.line,
                                   None, f"suppression of {rule_id} matches no finding: remove it",
                                   evidence=evidence(suppression.line)))
    return out


def _unjudged(rule_id: str, options: AuditOptions) -> bool:
    """A ShellCheck code when no ShellCheck runs: its suppressions cannot be judged unused."""
    if rule_id in all_rules():
        return False
    from . import shellcheck
    return shellcheck.binary(options.shellcheck) is None


def _dockerignore(path: str | None, root: str | None) -> tuple[str, ...] | None:
    """Patterns of the .dockerignore that applies to the Dockerfile at `path`, None if none.

    BuildKit first looks for `<Dockerfile>.dockerignore` beside the Dockerfile, then
    `.dockerignore` at the context root, which is usually the Dockerfile's directory.
    One that leads out of `root` is the Dockerfile's error, never read.
    """
    if not path or path == STDIN:
        return None
    for candidate in (path + ".dockerignore", os.path.join(os.path.dirname(path), ".dockerignore")):
        if not os.path.lexists(candidate):
            continue
        if root is not None and not within(candidate, root):
            raise HardrunError(f"{_display(candidate)} leads outside the audited directory: "
                               "not followed")
        try:
            text = read_bytes(candidate).decode("utf-8", errors="replace")
        except HardrunError as error:
            # auditing as if there were none would judge the build context wrongly
            raise HardrunError(f"{_display(candidate)}: {error.message}") from None
        return tuple(line.strip() for line in text.splitlines()
                     if line.strip() and not line.lstrip().startswith("#"))
    return None


def _display(path: str) -> str:
    return path[2:] if path.startswith("./") else path
