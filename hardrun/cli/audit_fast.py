"""`hardrun audit` without click, for the command lines CI writes.

Importing click costs about 40 ms of CPU, more than auditing a small Dockerfile. The
click command (hardrun/cli/audit.py) stays the definition of `hardrun audit`; this
module reads only argument lists whose meaning is certain (known options with valid
values, paths) and returns None for anything else (help, `-o`, `-`, `--`, unknown or
malformed options, completion), which click then handles. Both run `execute`.
"""
from __future__ import annotations

import sys

from ..audit.findings import KINDS, SEVERITIES
from ..audit.formats import FORMATS

# option -> (parameter, allowed values or None for any text, repeatable)
_VALUED = {
    "-f": ("fmt", FORMATS, False), "--format": ("fmt", FORMATS, False),
    "--fail-on": ("fail_on", SEVERITIES, False),
    "--policy": ("policy_ref", None, False),
    "--kind": ("kind", KINDS, False),
    "--docker-run": ("docker_run_lines", None, True),
}
_FLAGS = {"--no-fail": ("no_fail", True), "--color": ("color", True), "--no-color": ("color", False)}


def parse(argv: list[str]) -> dict | None:
    """The keyword arguments of `execute` for `argv` (after `audit`), or None to let click decide."""
    options = {"paths": [], "fmt": "text", "output": None, "fail_on": None, "no_fail": False,
               "policy_ref": None, "kind": None, "color": None, "docker_run_lines": []}
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if not token.startswith("-"):
            options["paths"].append(token)
            continue
        name, has_value, value = token.partition("=")
        if name in _FLAGS and not has_value:
            parameter, flag = _FLAGS[name]
            options[parameter] = flag
            continue
        if name not in _VALUED or (has_value and name == "-f"):
            return None                       # "-", "--", help, -o, unknown, -fjson, -f=json
        if not has_value:
            if index >= len(argv):
                return None
            value = argv[index]
            index += 1
        parameter, allowed, repeatable = _VALUED[name]
        if value.startswith("-") or (allowed is not None and value not in allowed):
            return None
        if repeatable:
            options[parameter].append(value)
        else:
            options[parameter] = value
    return options


def main(argv: list[str]) -> int | None:
    """Run `hardrun audit` for `argv` and return its exit status, or None (nothing done)
    when click must read this command line."""
    options = parse(argv)
    if options is None or (sys.stdout.encoding or "").lower().replace("-", "") != "utf8":
        return None                           # click knows how to write to other encodings
    try:
        return execute(**options, echo=_echo)
    except KeyboardInterrupt:
        print("\nAborted!", file=sys.stderr)
        return 1
    except BrokenPipeError:
        sys.stdout = None                     # as click does: no second error at exit
        return 1


def _echo(text: str, err: bool = False, color: bool | None = None) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text)
    stream.flush()


def execute(paths, fmt, output, fail_on, no_fail, policy_ref, kind, color, docker_run_lines,
            echo, stdin_text=None) -> int:
    """Audit, write the report, and return the exit status (`echo(text, err=, color=)` writes)."""
    from ..api import audit_with_policy
    from ..audit.formats import render
    from ..errors import HardrunError

    targets = list(paths) or ([] if docker_run_lines else ["."])
    try:
        report, policy = audit_with_policy(targets, policy_ref, kind=kind, stdin_text=stdin_text,
                                           docker_run_lines=tuple(docker_run_lines))
    except HardrunError as error:
        echo(f"hardrun audit: {error if error.path else error.message}\n", err=True)
        return 2
    fail_on = fail_on or policy.fail_on
    if color is None:
        color = output is None and sys.stdout.isatty()
    text = render(fmt, report, color=color, fail_on=fail_on)
    if output:
        with open(output, "w", encoding="utf-8") as stream:
            stream.write(text)
    else:
        echo(text, color=color)
    code = report.exit_code(fail_on)
    return 0 if no_fail and code == 1 else code
