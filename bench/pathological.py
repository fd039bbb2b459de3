"""Audit pathological inputs of the size cap under a time budget.

    .venv/bin/python bench/pathological.py [--budget 60] [--only NAME]

Not a test (it times things). Each input is one file just under the 8 MiB cap, built
to drive one parser or pattern into its worst case: a parser-directive line of blanks,
a `RUN` line of `a.a.a…` before `://@` (the URL-userinfo pattern), deep nesting of
substitutions and compose defaults, long lines for every front end. Each is audited by
one `hardrun audit -f json` process; the exit status is 1 when any takes longer than
--budget seconds or ends with a traceback (exit status 2 for a refused file is fine).
Before the patterns were bounded the first two took hours at this size.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CAP = 8 * 1024 * 1024
ROOM = CAP - 4096          # what a generator may fill, leaving room for its frame


def _fill(unit: str) -> str:
    return unit * (ROOM // len(unit))


def inputs() -> dict[str, tuple[str, str]]:
    """name -> (file name, content)."""
    blanks = _fill(" \t")
    dots = _fill("a.")
    return {
        "directive of blanks": ("Dockerfile", "# syntax=x" + blanks + "y\nFROM alpine:3.20\n"),
        "directive of blanks, no end": ("Dockerfile", "# escape=`" + blanks + "\nFROM alpine:3.20\n"),
        "url userinfo run": ("Dockerfile", "FROM alpine:3.20\nRUN echo " + dots + " ://@\n"),
        "url userinfo env": ("Dockerfile", "FROM alpine:3.20\nENV U=" + dots + "://u:@\n"),
        "many schemes": ("Dockerfile", "FROM alpine:3.20\nRUN echo " + _fill("a://b:") + "\n"),
        "command substitutions": ("Dockerfile", "FROM alpine:3.20\nRUN " + _fill("$(") + "\n"),
        "quoted substitutions": ("Dockerfile", "FROM alpine:3.20\nRUN " + _fill('"$(') + "\n"),
        "nested defaults": ("Dockerfile", "FROM alpine:3.20\nARG A\nENV X=" + _fill("${A:-") + "\n"),
        "continuations": ("Dockerfile", "FROM alpine:3.20\nRUN " + _fill("x \\\n") + "true\n"),
        "json brackets": ("Dockerfile", "FROM alpine:3.20\nCMD " + _fill("[") + "\n"),
        "unclosed expansions in a url": ("Dockerfile", "FROM alpine:3.20\nRUN echo http://u:" +
                                         _fill("${") + "x@h\n"),
        "apt options of brackets": ("Dockerfile", "FROM alpine:3.20\nRUN echo 'trusted=yes " +
                                    _fill("[") + "' > /etc/apt/sources.list\n"),
        "curlrc redirections": ("Dockerfile", "FROM alpine:3.20\nRUN echo insecure " + _fill(">") +
                                " curlrc\n"),
        "newlines before trusted-host": ("Dockerfile", "FROM alpine:3.20\nRUN echo '" +
                                         _fill("\\n") + "x trusted-host=' > pip.conf\n"),
        "substitution openers": ("Dockerfile", "FROM alpine:3.20\nRUN sh -c '" + _fill("$(") + "'\n"),
        "substitution backticks": ("Dockerfile", "FROM alpine:3.20\nRUN sh -c " + _fill("`") + "\n"),
        "compose nested defaults": ("compose.yaml", "services:\n  web:\n    image: \"" +
                                    _fill("${A:-") + "\"\n"),
        "compose unclosed nesting": ("compose.yaml", "services:\n  web:\n    image: \"" +
                                     _fill("${") + "}\"\n"),
        "compose url value": ("compose.yaml", "services:\n  web:\n    image: alpine:3.20\n"
                              "    environment:\n      U: \"" + dots + " ://@\"\n"),
        "compose flow nesting": ("compose.yaml", "services:\n  web:\n    labels: " + _fill("[") + "\n"),
        "docker run line": ("run.sh", "#!/bin/sh\ndocker run -e U=" + dots + "://@ alpine\n"),
        "docker run blanks": ("run.sh", "#!/bin/sh\ndocker run " + blanks + "alpine\n"),
        "kubernetes long value": ("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
                                  "spec:\n  containers:\n  - name: c\n    image: \"" + dots +
                                  " ://@\"\n"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per file")
    parser.add_argument("--only", help="run only the inputs whose name contains this")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=ROOT)
    failed = 0
    with tempfile.TemporaryDirectory() as folder:
        for name, (file_name, content) in inputs().items():
            if args.only and args.only not in name:
                continue
            assert len(content.encode()) <= CAP, name
            directory = os.path.join(folder, name.replace(" ", "-"))
            os.mkdir(directory)
            with open(os.path.join(directory, file_name), "w", encoding="utf-8") as stream:
                stream.write(content)
            started = time.perf_counter()
            try:
                result = subprocess.run([sys.executable, "-m", "hardrun", "audit", "-f", "json",
                                         file_name], cwd=directory, env=env, capture_output=True,
                                        text=True, timeout=args.budget * 4)
                seconds = time.perf_counter() - started
                crashed = "Traceback" in result.stderr or result.returncode not in (0, 1, 2)
                outcome = f"exit {result.returncode}" + (" TRACEBACK" if crashed else "")
            except subprocess.TimeoutExpired:
                seconds, crashed, outcome = time.perf_counter() - started, True, "killed"
            slow = seconds > args.budget
            failed += slow or crashed
            mark = "OVER BUDGET" if slow else ""
            print(f"{name:32} {seconds:7.2f} s  {outcome:10} {mark}", flush=True)
    print(f"{failed} input(s) over the {args.budget:g} s budget or crashed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
