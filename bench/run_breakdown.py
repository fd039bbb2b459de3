#!/usr/bin/env python3
"""Where `hardrun run --rootfs R -- /bin/true` spends its time (needs root).

Three views of the same start, in a busybox root like bench/run_bench.py's:

1. new processes (wall, medians): the interpreter alone, `hardrun run` with its plan
   cache off, cold (empty) and warm (runtime/plan_cache.py);
2. `python -X importtime` of a warm and a cold start: hardrun's modules and the others;
3. in one process, the steps of a start, each timed on its own (medians): flag parsing,
   the policy look-up, resolution, the plan cache's look-up, completion, the seccomp
   filter from its cache, then the launch (state and cgroup, clone to execve, the
   program's run and exit, clean-up);

the phases of a warm start from `strace -f -ttt` (interpreter, imports, the launch's steps,
clean-up) and the system calls of one warm start (counts, parent and container). hardrun
starts as installed: bin/hardrun under `python -IS`.

    sudo .venv/bin/python bench/run_breakdown.py [-n 30]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run_bench import build_rootfs  # noqa: E402

# the flags of bin/hardrun's first line (`#!python -IS`), which scripts/setup.sh installs
INSTALLED_FLAGS = (ROOT / "bin" / "hardrun").read_text().split("\n", 1)[0].split()[1:]


def _wall(argv, env, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, stdin=subprocess.DEVNULL, cwd="/")
        times.append((time.perf_counter() - started) * 1000)
        if done.returncode:
            raise SystemExit(f"{argv[:3]} failed: {done.stderr.decode()[:300]}")
    return statistics.median(times)


def processes(rootfs: str, plans: str, runs: int) -> list[tuple[str, float]]:
    python = sys.executable
    hardrun = _warm_start(rootfs)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cold_dir = Path(plans) / "cold"
    rows = {"python -c pass": [], "python -IS -c pass": [], "python -IS -c 'import os'": [],
            "hardrun, plan cache off": [], "hardrun, cold plan cache": [], "hardrun, warm plan cache": []}
    for _ in range(runs):      # interleaved
        rows["python -c pass"].append(_wall([python, "-c", "pass"], env, 1))
        rows["python -IS -c pass"].append(_wall([python, "-IS", "-c", "pass"], env, 1))
        rows["python -IS -c 'import os'"].append(_wall([python, "-IS", "-c", "import os"], env, 1))
        rows["hardrun, plan cache off"].append(_wall(hardrun, dict(env, HARDRUN_PLAN_CACHE="off"), 1))
        shutil.rmtree(cold_dir, ignore_errors=True)
        rows["hardrun, cold plan cache"].append(_wall(hardrun, dict(env, HARDRUN_PLAN_CACHE=str(cold_dir)), 1))
        rows["hardrun, warm plan cache"].append(_wall(hardrun, dict(env, HARDRUN_PLAN_CACHE=plans), 1))
    return [(name, statistics.median(values)) for name, values in rows.items()]


def imports(rootfs: str, plans: str, warm: bool, runs: int = 7) -> tuple[float, float]:
    """(hardrun's modules, the others after start-up) in ms, self times summed, medians."""
    argv = [sys.executable, *INSTALLED_FLAGS, "-X", "importtime", str(ROOT / "bin" / "hardrun"), "run",
            "--rootfs", rootfs, "--", "/bin/true"]
    ours, others = [], []
    for _ in range(runs):
        directory = plans if warm else tempfile.mkdtemp(dir=plans)
        env = dict(os.environ, PYTHONPATH=str(ROOT), HARDRUN_PLAN_CACHE=directory)
        stderr = subprocess.run(argv, env=env, capture_output=True, text=True, cwd="/").stderr
        started, own, other = False, 0, 0
        for line in stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)", line)
            if not match:
                continue
            name = match.group(3)
            started = started or name.startswith("hardrun")
            if name.startswith("hardrun"):
                own += int(match.group(1))
            elif started:
                other += int(match.group(1))
        ours.append(own / 1000)
        others.append(other / 1000)
    return statistics.median(ours), statistics.median(others)


def _median_ms(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def in_process(rootfs: str, plans: str, runs: int) -> list[tuple[str, float]]:
    os.environ["HARDRUN_PLAN_CACHE"] = plans
    from hardrun.frontends.docker_argv import parse_hardrun_args
    from hardrun.policy.discover import find_policy
    from hardrun.runtime import config, hooks, parent, plan_cache, seccomp
    argv = ["--rootfs", rootfs, "--", "/bin/true"]
    spec, options = parse_hardrun_args(argv)
    fixed = config.resolve_fixed(spec)
    key = plan_cache.key_of(argv)
    plan_cache.store(plans, key, spec, options, fixed)
    rows = [
        ("flag parsing (docker_argv)", _median_ms(lambda: parse_hardrun_args(argv), runs)),
        ("policy look-up (.hardrun.yaml)", _median_ms(lambda: find_policy("."), runs)),
        ("resolution (config.resolve_fixed)", _median_ms(lambda: config.resolve_fixed(spec), runs)),
        ("plan cache: key and verified look-up", _median_ms(lambda: plan_cache.lookup(plans, plan_cache.key_of(argv)),
                                                            runs)),
        ("completion (config.complete, id lease)", _median_ms(lambda: _complete(config, spec, fixed), runs)),
        ("seccomp filter from its cache", _median_ms(lambda: seccomp.prepare_filter(seccomp.default_filter(())),
                                                     runs)),
    ]
    return rows + _launch_steps(config, hooks, parent, spec, fixed, runs)


def _complete(config, spec, fixed):
    lease = config.lease_id_range(spec)
    try:
        return config.complete(spec, fixed, id_lease=lease)
    finally:
        if lease is not None:
            lease.release()


def _launch_steps(config, hooks, parent, spec, fixed, runs: int) -> list[tuple[str, float]]:
    """parent.run with its steps timed through wrappers (the same code, timestamps added)."""
    spans: dict[str, list[float]] = {}
    marks: dict[str, float] = {}

    def timed(owner, name, label):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                marks[label] = time.perf_counter()
                spans.setdefault(label, []).append((marks[label] - started) * 1000)
        setattr(owner, name, wrapper)
        return original

    originals = [(hooks.Hooks, "prepare", timed(hooks.Hooks, "prepare", "state record and cgroup (hooks.prepare)")),
                 (hooks.Hooks, "finish", timed(hooks.Hooks, "finish", "clean-up (hooks.finish)")),
                 (parent.k, "clone", timed(parent.k, "clone", "clone with the namespaces")),
                 (parent, "_read_all", timed(parent, "_read_all", "id maps, then the container's steps to execve")),
                 (parent, "_wait", timed(parent, "_wait", "/bin/true runs and exits (wait)"))]
    whole = []
    try:
        for _ in range(runs):
            lease = config.lease_id_range(spec)
            cfg = config.complete(spec, fixed, id_lease=lease)
            started = time.perf_counter()
            if parent.run(cfg, hooks.Hooks(cfg)) != 0:
                raise SystemExit("the container failed")
            whole.append((time.perf_counter() - started) * 1000)
            lease.release()
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    rows = [(label, statistics.median(values)) for label, values in spans.items()]
    return rows + [("the launch in all (parent.run)", statistics.median(whole))]


def _warm_start(rootfs: str) -> list[str]:
    return [sys.executable, *INSTALLED_FLAGS, str(ROOT / "bin" / "hardrun"), "run", "--rootfs", rootfs, "--",
            "/bin/true"]


# (phase, the strace line that ends it); the phases of one warm start, in order
MILESTONES = [("interpreter start (to the first hardrun module)", r"openat\(.*/hardrun/__pycache__/"),
              ("hardrun's entry imports, to the plan cache read", r"openat\(.*\.plan\""),
              ("plan check, applier imports, completion, seccomp, state, cgroup", r"clone3?\("),
              ("clone to the container's first mount", r"mount\("),
              ("the container's mounts and pivot_root", r"pivot_root\("),
              ("cgroup view, masked paths, capabilities, seccomp load", r"execve\(\"/bin/true"),
              ("/bin/true runs and exits", r"\+\+\+ exited"),
              ("clean-up: cgroups, state, id range, exit", r"exit_group\(")]


def timeline(rootfs: str, plans: str, runs: int = 5) -> list[tuple[str, float]]:
    """Medians of the phases of a warm start under `strace -f -ttt` (every system call slowed
    by the tracer: read the shares, not the times)."""
    spans: dict[str, list[float]] = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT), HARDRUN_PLAN_CACHE=plans)
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as temp:
            trace = Path(temp) / "trace"
            subprocess.run(["strace", "-f", "-ttt", "-o", str(trace), *_warm_start(rootfs)], env=env,
                           capture_output=True, check=True, cwd="/")
            lines = trace.read_text().splitlines()
        stamps = [float(line.split()[1]) for line in lines]
        previous, at = stamps[0], 0
        for name, pattern in MILESTONES:
            while not re.search(pattern, lines[at]):
                at += 1
            spans.setdefault(name, []).append((stamps[at] - previous) * 1000)
            previous = stamps[at]
        spans.setdefault("in all (under strace)", []).append((stamps[-1] - stamps[0]) * 1000)
    return [(name, statistics.median(values)) for name, values in spans.items()]


def syscalls(rootfs: str, plans: str) -> tuple[Counter, Counter]:
    """System calls of a warm start, (hardrun's process, the container's), by name."""
    with tempfile.TemporaryDirectory() as temp:
        trace = Path(temp) / "trace"
        env = dict(os.environ, PYTHONPATH=str(ROOT), HARDRUN_PLAN_CACHE=plans)
        subprocess.run(["strace", "-f", "-o", str(trace), *_warm_start(rootfs)], env=env, capture_output=True,
                       check=True, cwd="/")
        lines = trace.read_text().splitlines()
    first = lines[0].split()[0]
    calls: tuple[Counter, Counter] = (Counter(), Counter())
    for line in lines:
        pid, _, rest = line.partition(" ")
        match = re.match(r"\s*(\w+)\(", rest)
        if match:
            calls[pid != first][match.group(1)] += 1
    return calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run_breakdown.py needs root")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "hardrun")], check=True,
                   stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="hardrun-breakdown-") as temp:
        os.chmod(temp, 0o755)
        rootfs = str(build_rootfs(Path(temp)))
        plans = os.path.join(temp, "plans")
        os.mkdir(plans, 0o700)
        print("new processes (wall ms, medians, interleaved)")
        for name, value in processes(rootfs, plans, args.runs):
            print(f"  {name:<44}{value:8.2f}")
        print("imports (python -X importtime, self times summed, ms)")
        for warm in (False, True):
            own, other = imports(rootfs, plans, warm)
            print(f"  {'warm' if warm else 'cold'} plan cache: hardrun's modules {own:6.2f}, others {other:6.2f}")
        print("steps in one process (ms, medians)")
        for name, value in in_process(rootfs, plans, args.runs):
            print(f"  {name:<44}{value:8.3f}")
        print("phases of a warm start under strace -f -ttt (ms, medians of 5)")
        for name, value in timeline(rootfs, plans):
            print(f"  {name:<64}{value:8.2f}")
        ours, container = syscalls(rootfs, plans)
        for label, counted in (("hardrun's process", ours), ("the container", container)):
            top = ", ".join(f"{name} {count}" for name, count in counted.most_common(12))
            print(f"system calls of a warm start, {label}: {sum(counted.values())} ({top})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
