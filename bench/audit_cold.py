"""Cold start of `hardrun audit -f json` on one small Dockerfile, next to hadolint and a
bare `python -c pass`, and optionally another checkout of hardrun (a before/after in one
run; `--baseline` may be given several times, `NAME=DIR` to name a column).

    .venv/bin/python bench/audit_cold.py [--runs 30] [--module] [--baseline [NAME=]DIR ...]

Each figure is a new process (bytecode cached and the rules cache filled, as an
installed tool runs; a private XDG_CACHE_HOME). The tools' runs are interleaved and the
medians of wall time and of CPU time (user + system of the child) are printed with the
ratios to hadolint: on a shared machine the CPU figures say more than the wall ones.
Each checkout runs as the installed `hardrun` command does: its bin/hardrun script
(`python -P DIR/bin/hardrun`, from its own directory); `--module` runs `python -P -m
hardrun` instead, whose runpy imports importlib.util, contextlib and warnings (about
1.5 ms) that the command never needs.
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

ROOT = Path(__file__).resolve().parent.parent
SMALL = "FROM alpine:3.20\nRUN apk add --no-cache curl\nUSER 10001\n"


def run_once(argv, env, cwd) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{argv[0]} failed: {argv}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def hardrun_argv(checkout: Path, module: bool) -> list:
    started = ["-m", "hardrun"] if module else [str(checkout / "bin" / "hardrun")]
    return [sys.executable, "-P", *started]


def commands(small: str, baselines: list[str], module: bool = False) -> dict:
    """name -> (argv, cwd, extra environment)."""
    tools = {"hardrun": ([*hardrun_argv(ROOT, module), "audit", "-f", "json", small], ROOT,
                         {"PYTHONPATH": str(ROOT)})}
    for number, baseline in enumerate(baselines):
        name, _, directory = baseline.rpartition("=")
        name = name or ("baseline" if len(baselines) == 1 else f"baseline{number + 1}")
        tools[name] = ([*hardrun_argv(Path(directory), module), "audit", "-f", "json", small],
                       Path(directory), {"PYTHONPATH": directory})
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint:
        tools["hadolint"] = ([hadolint, "--no-fail", "-f", "json", small], ROOT, {})
    tools["python -c pass"] = ([sys.executable, "-c", "pass"], ROOT, {})
    return tools


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs of each command (default 30)")
    parser.add_argument("--baseline", metavar="[NAME=]DIR", action="append", default=[],
                        help="another checkout to time beside this one (repeatable)")
    parser.add_argument("--module", action="store_true",
                        help="run each checkout as `python -m hardrun`, not its bin/hardrun script")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        small = os.path.join(work, "Dockerfile")
        Path(small).write_text(SMALL)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env["XDG_CACHE_HOME"] = os.path.join(work, "cache")
        tools = commands(small, options.baseline, options.module)
        for argv, cwd, extra in tools.values():   # warm-up: bytecode, rules cache, page cache
            run_once(argv, dict(env, **extra), cwd)
        runs: dict[str, list] = {name: [] for name in tools}
        for _ in range(options.runs):
            for name, (argv, cwd, extra) in tools.items():
                runs[name].append(run_once(argv, dict(env, **extra), cwd))
    medians = {name: (statistics.median(r[0] for r in got) * 1000, statistics.median(r[1] for r in got) * 1000)
               for name, got in runs.items()}
    started = "python -m hardrun" if options.module else "bin/hardrun"
    print(f"cold start, one small Dockerfile ({started}); medians of {options.runs} interleaved runs\n")
    print(f"{'command':<16}{'wall ms':>9}{'cpu ms':>9}{'cpu/hadolint':>14}")
    for name, (wall, cpu) in medians.items():
        ratio = f"{cpu / medians['hadolint'][1]:.2f}" if "hadolint" in medians else "-"
        print(f"{name:<16}{wall:>9.1f}{cpu:>9.1f}{ratio:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
