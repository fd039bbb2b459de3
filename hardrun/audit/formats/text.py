"""`path:line rule severity message`, one finding a line, then a summary line."""
from __future__ import annotations

from ...display import printable

_COLORS = {"error": "\033[31m", "warning": "\033[33m", "info": "\033[36m"}
_DIM, _RESET = "\033[2m", "\033[0m"


def render_text(report, *, color: bool, fail_on: str) -> str:
    # Paths, subjects, messages and reasons come from audited files: printable() keeps
    # their control characters from reaching the terminal (only our colours do).
    lines = []
    for finding in report.findings:
        where = location(finding)
        severity = finding.severity
        if color:
            severity = f"{_COLORS[severity]}{severity}{_RESET}"
        message = finding.message
        if finding.subject:
            message = f"[{finding.subject}] {message}"
        line = f"{printable(where)} {finding.rule} {severity} {printable(message)}"
        if finding.baseline in ("unchanged", "expired"):
            line += " (baselined)" if finding.baselined else " (baseline entry expired)"
        if finding.suppressed:
            reason = f": {finding.suppression_reason}" if finding.suppression_reason else ""
            line += f" (suppressed{printable(reason)})"
        if color and (finding.suppressed or finding.baselined):
            line = f"{_DIM}{line}{_RESET}"
        lines.append(line)
    for error in report.errors:
        lines.append(printable(f"{error.path}: error: {error.message}"))
    lines.append(summary_line(report, fail_on))
    return "\n".join(lines) + "\n"


def location(finding) -> str:
    """`path:line`, `path:line:column` where the column is known, or the path alone."""
    if not finding.line:
        return finding.path
    return f"{finding.path}:{finding.line}:{finding.column}" if finding.column else \
        f"{finding.path}:{finding.line}"


def summary_line(report, fail_on: str) -> str:
    """The last line of the text report (all that `--quiet` prints)."""
    active = [f for f in report.findings if not f.suppressed and not f.baselined]
    counts = {s: sum(1 for f in active if f.severity == s) for s in ("error", "warning", "info")}
    suppressed = sum(1 for f in report.findings if f.suppressed)
    baselined = sum(1 for f in report.findings if f.baselined and not f.suppressed)
    parts = [f"{len(report.files)} file{'s' if len(report.files) != 1 else ''} audited",
             f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info"]
    if suppressed:
        parts.append(f"{suppressed} suppressed")
    if baselined:
        parts.append(f"{baselined} baselined")
    if report.errors:
        parts.append(f"{len(report.errors)} file(s) could not be audited")
    verdict = "FAIL" if report.exit_code(fail_on) else "ok"
    return f"{verdict}: " + ", ".join(parts) + f" (failing at {fail_on} and above)"
