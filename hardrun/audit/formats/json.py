"""The JSON output contract of PRACTICES.md, exactly."""
from __future__ import annotations

import json

from ... import __version__


def render_json(report) -> str:
    document = {
        "tool": {"name": "hardrun", "version": __version__},
        "files": [{"path": f.path, "kind": f.kind} for f in report.files],
        "findings": [f.as_json() for f in report.findings],
        "errors": [e.as_json() for e in report.errors],
    }
    return json.dumps(document, indent=2) + "\n"
