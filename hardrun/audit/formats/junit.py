"""JUnit XML: a test suite per audited file, a test case per finding (failed unless
suppressed, which is reported as skipped), an error case per unreadable file."""
from __future__ import annotations

from xml.sax.saxutils import quoteattr as _quoteattr, escape as _escape

from ...display import printable
from .text import location


# Control characters are not allowed in XML 1.0 and would reach the terminal of whoever
# reads the report: every text from an audited file goes through printable().
def quoteattr(text: str) -> str:
    return _quoteattr(printable(text))


def escape(text: str) -> str:
    return _escape(printable(text))


def render_junit(report) -> str:
    by_path: dict[str, list] = {f.path: [] for f in report.files}
    for finding in report.findings:
        by_path.setdefault(finding.path, []).append(finding)
    suites = [_suite(path, findings) for path, findings in by_path.items()]
    suites.extend(_error_suite(error) for error in report.errors)
    failures = sum(1 for f in report.findings if _failed(f))
    tests = sum(max(1, len(v)) for v in by_path.values()) + len(report.errors)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuites name="hardrun audit" tests="{tests}" failures="{failures}" '
            f'errors="{len(report.errors)}">\n' + "".join(suites) + "</testsuites>\n")


def _suite(path: str, findings) -> str:
    failures = sum(1 for f in findings if _failed(f))
    skipped = len(findings) - failures
    cases = "".join(_case(f) for f in findings) or (
        f'    <testcase classname={quoteattr(path)} name="no findings"/>\n')
    return (f'  <testsuite name={quoteattr(path)} tests="{max(1, len(findings))}" '
            f'failures="{failures}" errors="0" skipped="{skipped}">\n{cases}  </testsuite>\n')


def _case(finding) -> str:
    where = location(finding)
    if finding.image is not None:     # the layer and the path inside the image
        where += f" [{finding.subject}]"
    name = quoteattr(f"{finding.rule} {finding.practice} at {where}")
    text = escape(f"{where} {finding.rule} {finding.severity} {finding.message}")
    if finding.suppressed:
        body = f"<skipped message={quoteattr(finding.suppression_reason or 'suppressed')}/>"
    elif finding.baselined:
        body = '<skipped message="baselined"/>'
    else:
        body = (f"<failure type={quoteattr(finding.severity)} "
                f"message={quoteattr(finding.message)}>{text}</failure>")
    return f"    <testcase classname={quoteattr(finding.path)} name={name}>{body}</testcase>\n"


def _failed(finding) -> bool:
    """A failure unless a comment, the policy or the baseline accepts it."""
    return not finding.suppressed and not finding.baselined


def _error_suite(error) -> str:
    return (f'  <testsuite name={quoteattr(error.path)} tests="1" failures="0" errors="1" skipped="0">\n'
            f'    <testcase classname={quoteattr(error.path)} name="parse">'
            f'<error message={quoteattr(error.message)}/></testcase>\n  </testsuite>\n')
