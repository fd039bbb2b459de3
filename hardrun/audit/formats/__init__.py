"""Report formatters: `render(fmt, report, ...)` returns the report as text in `fmt`.

Each format is a module with one `render_<fmt>(report) -> str` (the text format also
takes `color` and `fail_on`), imported only when that format is asked for.
"""
from __future__ import annotations

FORMATS = ("text", "json", "sarif", "junit", "codeclimate", "html")


def render(fmt: str, report, *, color: bool = False, fail_on: str = "warning") -> str:
    if fmt == "text":
        from .text import render_text
        return render_text(report, color=color, fail_on=fail_on)
    if fmt == "json":
        from .json import render_json
        return render_json(report)
    if fmt == "sarif":
        from .sarif import render_sarif
        return render_sarif(report)
    if fmt == "junit":
        from .junit import render_junit
        return render_junit(report)
    if fmt == "codeclimate":
        from .codeclimate import render_codeclimate
        return render_codeclimate(report)
    if fmt == "html":
        from .html import render_html
        return render_html(report, fail_on=fail_on)
    raise ValueError(fmt)
