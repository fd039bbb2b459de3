"""Byte-for-byte comparison of `hardrun audit` outputs of this checkout and another one.

    .venv/bin/python bench/audit_outputs.py --baseline DIR

Audits every file of tests/data and examples/ one at a time (JSON) and each of the two
trees whole (JSON, SARIF and text), with each checkout as `python -P -m hardrun` from
its own directory, and prints the inputs whose output or exit status differ. This
checkout audits each input twice, with one cache directory for the whole run: the
first audit fills its caches (ShellCheck's verdicts, the rules and policy snapshot),
the second is served from them, and both must equal the baseline's. For changes meant
to alter nothing but speed. Exit 1 when something differs.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = ("tests/data", "examples")


def audit(checkout: str, cache: str, args: list[str]) -> tuple[int, bytes, bytes]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=checkout, XDG_CACHE_HOME=cache)
    # run from this checkout's directory: the paths in the reports are the same for both
    done = subprocess.run([sys.executable, "-P", "-m", "hardrun", "audit", "--no-fail", *args],
                          cwd=ROOT, env=env, capture_output=True)
    return done.returncode, done.stdout, done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, metavar="DIR", help="the other checkout")
    options = parser.parse_args()
    runs = [["-f", "json", str(path.relative_to(ROOT))] for tree in TREES
            for path in sorted((ROOT / tree).rglob("*")) if path.is_file()]
    runs += [["-f", fmt, tree] for tree in TREES for fmt in ("json", "sarif", "text")]
    differ = 0
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as baseline_cache:
        for args in runs:
            expected = audit(options.baseline, baseline_cache, args)
            for attempt in ("uncached", "cached"):
                if audit(str(ROOT), cache, args) != expected:
                    differ += 1
                    print(f"differs ({attempt}):", " ".join(args))
    print(f"{len(runs)} inputs, {2 * len(runs)} audits of this checkout, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
