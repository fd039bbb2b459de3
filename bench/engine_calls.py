"""Where the time of `ctr run --rm` goes: each call the shim makes to the runtime, timed.

    sudo .venv/bin/python bench/engine_calls.py [--engine ctr|docker] [--repeat 11] [--also NAME=PATH]...

Starts a private containerd or dockerd (tests/engines/daemons.py), then runs
`ctr run --rm --runc-binary W bb:1 ID true` (or `docker run --rm --network none --runtime W bb:1
true`, timed-R a runtime of the daemon's) interleaved for each runtime, where W is a small
`bash` wrapper that execs nothing but times the real runtime: for every call the shim makes it
logs the subcommand, its wall time and its CPU time (user + system of the runtime and the
children it waited for: the wrapper's cutime and cstime). Prints, per runtime: the median of each subcommand,
the number of calls per container, the time spent inside runtime calls per container, and the
rest of `ctr run` (the engine's own work, and the container's life between `start` and its exit).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine_bench import Failed, as_installed, timed  # noqa: E402
from tests.engines import daemons  # noqa: E402
from tests.rootfs import build_rootfs  # noqa: E402

WRAPPER = """#!/bin/bash
start=$EPOCHREALTIME
{binary} "$@"
status=$?
end=$EPOCHREALTIME
read -r -a stat < /proc/$$/stat
echo "$start $end ${{stat[15]}} ${{stat[16]}} $status $*" >> {log}
exit $status
"""
OPTIONS_WITH_VALUES = {"--root", "--log", "--log-format", "--policy", "--userns"}


def subcommand(argv: list[str], status: int) -> str:
    """The first word that is neither a global option nor its value, with its --force and
    a failure's exit status (the shim deletes twice: the second finds nothing)."""
    skip = False
    for index, word in enumerate(argv):
        if skip:
            skip = False
        elif word in OPTIONS_WITH_VALUES:
            skip = True
        elif not word.startswith("-"):
            force = " --force" if "--force" in argv[index:] else ""
            return word + force + (f" (exit {status})" if status else "")
    return "?"


def seconds(ticks: str) -> float:
    """A clock-tick count of /proc/PID/stat."""
    return int(ticks) / os.sysconf("SC_CLK_TCK")


def read_log(path: Path) -> list[tuple[str, float, float]]:
    """(subcommand, wall seconds, cpu seconds) per call."""
    calls = []
    for line in path.read_text().splitlines():
        words = line.split()
        start, end, user, system = float(words[0]), float(words[1]), seconds(words[2]), seconds(words[3])
        calls.append((subcommand(words[5:], int(words[4])), end - start, user + system))
    return calls


def wrap(directory: Path, name: str, binary: str) -> tuple[str, Path]:
    log = directory / f"{name}.log"
    wrapper = directory / f"{name}-wrapper"
    wrapper.write_text(WRAPPER.format(binary=binary, log=log))
    wrapper.chmod(0o755)
    return str(wrapper), log


def ctr_run(containerd: daemons.Containerd):
    def command(name: str, wrapper: str, round_number: int) -> float:
        return timed([daemons.CTR, "--address", str(containerd.socket), "run", "--rm", "--runc-binary", wrapper,
                      "--runc-root", str(containerd.runc_root), daemons.CRI_IMAGE, f"calls-{name}-{round_number}",
                      "true"])
    return command


def docker_run(docker: daemons.Docker):
    def command(name: str, _wrapper: str, _round_number: int) -> float:
        return timed([daemons.DOCKER, "run", "--rm", "--network", "none", "--runtime", "timed-" + name,
                      daemons.IMAGE, "true"], env=docker.env)
    return command


def run_rounds(command, wrappers: dict, repeat: int, warmup: int) -> dict:
    """Per runtime: a list of (wall of the engine's run, calls of that run)."""
    results: dict = {name: [] for name in wrappers}
    names = list(wrappers)
    for round_number in range(warmup + repeat):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            wrapper, log = wrappers[name]
            log.write_text("")
            elapsed = command(name, wrapper, round_number)
            time.sleep(0.05)   # the shim's last `delete` is logged after ctr returns
            if round_number >= warmup:
                results[name].append((elapsed, read_log(log)))
    return results


def report(results: dict) -> None:
    for name, runs in results.items():
        per_command: dict = defaultdict(list)
        counts: dict = defaultdict(list)
        inside = []
        for _elapsed, calls in runs:
            seen: dict = defaultdict(int)
            for command, wall, cpu in calls:
                per_command[command].append((wall, cpu))
                seen[command] += 1
            for command in per_command:
                counts[command].append(seen[command])
            inside.append(sum(wall for _c, wall, _cpu in calls))
        total = statistics.median(elapsed for elapsed, _calls in runs)
        print(f"\n{name}: run median {total * 1000:.0f} ms, inside runtime calls "
              f"{statistics.median(inside) * 1000:.0f} ms per container ({len(runs)} runs)")
        print("| call | calls per container | wall median (ms) | CPU median (ms) |")
        print("|---|---:|---:|---:|")
        for command, samples in per_command.items():
            print(f"| {command} | {statistics.median(counts[command]):.0f} | "
                  f"{statistics.median(w for w, _ in samples) * 1000:.1f} | "
                  f"{statistics.median(c for _, c in samples) * 1000:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--engine", choices=("ctr", "docker"), default="ctr")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                        help="another runtime binary (or a wrapper script) in the same rounds")
    args = parser.parse_args()
    runtimes = {"runc": daemons.RUNC, "hardrun": daemons.hardrun_oci()}
    for item in args.also:
        name, _, path = item.partition("=")
        runtimes[name] = os.path.abspath(path)
    daemons.require(daemons.CONTAINERD, daemons.CTR, *runtimes.values())
    as_installed()
    rootfs = build_rootfs(daemons.short_tempdir("hr-bench-rootfs-"))
    logs = daemons.short_tempdir("hr-bench-calls-")
    wrappers = {name: wrap(logs, name, binary) for name, binary in runtimes.items()}
    if args.engine == "ctr":
        engine = daemons.Containerd(daemons.short_tempdir("hr-bench-containerd-"), {"runc": daemons.RUNC})
    else:   # Docker's own runc is a runtime name too: every runtime here goes through its wrapper
        engine = daemons.Docker(daemons.short_tempdir("hr-bench-docker-"),
                                {"timed-" + name: {"path": wrapper} for name, (wrapper, _log) in wrappers.items()})
    try:
        engine.start()
        if isinstance(engine, daemons.Containerd):
            engine.import_image(rootfs, "default")
            command = ctr_run(engine)
        else:
            engine.import_image(rootfs)
            command = docker_run(engine)
        report(run_rounds(command, wrappers, args.repeat, args.warmup))
    except Failed as error:
        print(f"failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        engine.stop()
        daemons.remove_tree(rootfs)
        daemons.remove_tree(logs)


if __name__ == "__main__":
    main()
