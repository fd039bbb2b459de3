"""The JSON output contract of `hardrun audit --format json`, exactly.

One document: `tool` {name, version}; `files` [{path, kind}], kind one of the front-end
registry's kinds; `findings` [{rule, practice, severity, path, line, subject, message,
suppressed}], severity `error`, `warning` or `info`, line 1-based or null for a finding
about something missing from the whole file, subject the compose service, Kubernetes
object/container or run command (null for Dockerfiles), suppressed findings kept with
`"suppressed": true`, and `column` (1-based) added where it is known (ShellCheck's
findings, whose `rule` is the SC code and practice `shellcheck`); `errors` [{path,
message}] for files that could not be read or parsed (the other files are still
audited). Practice names are fixed spellings. Only when the audit ran against a baseline
(`--baseline`, `--write-baseline`), each finding also has `baseline` ("unchanged", "new"
or "expired") and `fingerprint`. A finding of
an image (kind `image`) also has `image`, `image_digest` (the manifest), `layer` (index
from 0, null for the config), `layer_digest`, `image_path` (the path inside the image)
and `removed_in` (the later layer that deleted the file, else null).
"""
from __future__ import annotations

from ...jsonlite import encode_basestring_ascii

from ... import __version__


def render_json(report) -> str:
    """The report as `json.dumps(document, indent=2)` would write it, byte for byte.

    json.dumps with an indent runs its pure-Python encoder, which builds a list of
    every token (tens of MiB for tens of thousands of findings); each finding here is
    one string of C-encoded scalars instead: several times faster, a fraction of the memory.
    """
    tool = {"name": "hardrun", "version": __version__}
    sections = [
        ("tool", "{\n" + _members(tool, "    ") + "\n  }"),
        ("files", _list({"path": f.path, "kind": f.kind} for f in report.files)),
        ("findings", _findings(report.findings)),
        ("errors", _list(e.as_json() for e in report.errors)),
    ]
    return "{\n" + ",\n".join(f'  "{name}": {body}' for name, body in sections) + "\n}\n"


def _list(objects) -> str:
    """A list of flat objects (an iterable of dicts) at the second level of the document."""
    body = ",\n".join("    {\n" + _members(item, "      ") + "\n    }" for item in objects)
    return "[\n" + body + "\n  ]" if body else "[]"


def _findings(findings) -> str:
    """`_list(f.as_json() for f in findings)`, faster: a finding with only the eight
    members of a plain audit is written from one template, and the strings that recur
    (rule, practice, severity, path, message, subject) are encoded once each."""
    text = _Encoded()
    text[None] = "null"
    items = []
    for finding in findings:
        if finding.column or finding.baseline is not None or finding.image \
                or type(finding.suppressed) is not bool or type(finding.line) not in (int, type(None)):
            items.append("    {\n" + _members(finding.as_json(), "      ") + "\n    }")
            continue
        line = "null" if finding.line is None else str(finding.line)
        items.append(f'    {{\n      "rule": {text[finding.rule]},\n      "practice": {text[finding.practice]},\n'
                     f'      "severity": {text[finding.severity]},\n      "path": {text[finding.path]},\n'
                     f'      "line": {line},\n      "subject": {text[finding.subject]},\n'
                     f'      "message": {text[finding.message]},\n'
                     f'      "suppressed": {"true" if finding.suppressed else "false"}\n    }}')
    return "[\n" + ",\n".join(items) + "\n  ]" if items else "[]"


class _Encoded(dict):
    """A string -> its JSON encoding, each string encoded once (a dict look-up in C for the
    strings met before; None is given "null" by the caller)."""

    def __missing__(self, value: str) -> str:
        found = self[value] = encode_basestring_ascii(value)
        return found


def _members(item: dict, indent: str) -> str:
    return ",\n".join(f"{indent}{encode_basestring_ascii(key)}: {_scalar(value)}"
                      for key, value in item.items())


def _scalar(value) -> str:
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"not a JSON scalar of the report: {value!r}")
