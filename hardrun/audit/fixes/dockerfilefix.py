"""Fixes for Dockerfiles, as edits of the instruction's own source lines: an added flag
after `install`, an `rm -rf` appended to the RUN, `COPY` for `ADD`."""
from __future__ import annotations

import re

from ..checks.buildutil import buildcontext, packages, stages
from .edits import Edit

DOCKERFILE_RULES = frozenset({"HR1011", "HR1017"})
_APT_INSTALL = re.compile(r"\b(?:apt-get|apt|aptitude)(?:\s+-[-\w=]+)*\s+install\b")
_PIP_INSTALL = re.compile(r"\b(?:pip[0-9.]*|python[0-9.]*\s+-m\s+pip)(?:\s+-[-\w=]+)*\s+install\b")
APT_LISTS_CLEANUP = "rm -rf /var/lib/apt/lists/*"
# Flags ADD and COPY share; ADD's own (--checksum, --keep-git-dir, --unpack) keep it ADD.
_COPY_FLAGS = frozenset({"chown", "chmod", "link", "exclude"})


def dockerfile_edits(text: str, dockerfile, findings) -> tuple[list[Edit], list]:
    """(edits, the findings they fix) for a Dockerfile parsed into `dockerfile`."""
    lines = _Lines(text)
    edits, fixed = [], []
    chain = stages.final_chain_indexes(dockerfile)
    pip_no_cache = packages.pip_cache_disabled(dockerfile, chain)
    for finding in findings:
        instruction = _instruction_at(dockerfile, finding.line)
        if instruction is None:
            continue
        if finding.rule == "HR1011":
            edit = _add_to_copy(lines, instruction)
        else:
            problems = packages.package_cache_problem_kinds(instruction, pip_no_cache)
            kind = next((k for k, (line, message) in problems.items()
                         if line == finding.line and message == finding.message), None)
            edit = _package_cache_fix(lines, instruction, kind, finding.line)
        if edit is not None:
            edits.append(edit)
            fixed.append(finding)
    return edits, fixed


class _Lines:
    """The offsets of a text's lines (1-based), their ends before the line break."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]

    def span(self, line: int) -> tuple[int, int]:
        start = self.starts[line - 1]
        end = self.starts[line] if line < len(self.starts) else len(self.text)
        while end > start and self.text[end - 1] in "\r\n":
            end -= 1
        return start, end

    def line(self, line: int) -> str:
        start, end = self.span(line)
        return self.text[start:end]


def _instruction_at(dockerfile, line: int | None):
    for stage in dockerfile.stages:
        for instruction in stage.instructions:
            if line is not None and instruction.line <= line <= instruction.end_line:
                return instruction
    return None


def _package_cache_fix(lines: _Lines, instruction, kind: str | None, line: int) -> Edit | None:
    if kind == "recommends":
        return _after_once(lines, line, _APT_INSTALL, " --no-install-recommends")
    if kind == "pip":
        return _after_once(lines, line, _PIP_INSTALL, " --no-cache-dir")
    if kind == "apt-lists":
        return _append_cleanup(lines, instruction)
    return None


def _after_once(lines: _Lines, line: int, pattern: re.Pattern, flag: str) -> Edit | None:
    """`flag` inserted after the one match of `pattern` on `line` (none or several: no fix)."""
    matches = list(pattern.finditer(lines.line(line)))
    if len(matches) != 1:
        return None
    offset = lines.span(line)[0] + matches[0].end()
    return Edit(offset, offset, flag)


def _append_cleanup(lines: _Lines, instruction) -> Edit | None:
    """` && rm -rf /var/lib/apt/lists/*` at the end of a shell-form RUN."""
    if instruction.exec_form is not None or instruction.heredocs:
        return None
    _, end = lines.span(instruction.end_line)
    body = lines.text[:end].rstrip(" \t")
    if body.endswith(("&", "|", "\\", "(", "{")):
        return None            # a background job or an open construct: not mechanical
    joiner = " " if body.endswith(";") else " && "
    return Edit(len(body), end, joiner + APT_LISTS_CLEANUP)


def _add_to_copy(lines: _Lines, instruction) -> Edit | None:
    """`ADD` -> `COPY` when every source is a local non-archive path and no flag is ADD's own."""
    sources = buildcontext.copy_sources(instruction)
    if instruction.heredocs or not sources or any(
            buildcontext.is_remote_source(s) or buildcontext.is_archive(s) or "$" in s
            for s in sources):
        return None
    if any(key not in _COPY_FLAGS for key, _ in instruction.flags):
        return None
    start, end = lines.span(instruction.line)
    match = re.match(r"[ \t]*(ADD)\b", lines.text[start:end], re.IGNORECASE)
    if match is None:
        return None
    keyword = match.group(1)
    copy = "COPY" if keyword.isupper() else "copy" if keyword.islower() else "Copy"
    return Edit(start + match.start(1), start + match.end(1), copy)
