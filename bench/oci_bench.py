"""hardrun-oci against runc and crun: `RUNTIME run --bundle B ID` of `/bin/true`, end to end.

    .venv/bin/python bench/oci_bench.py [--rounds 21]      (as root)

One busybox bundle (written by hardrun's OCI writer, hardrun/spec/oci.py) is run by each
runtime in turn, interleaved round by round so that a busy machine weighs on all of them
alike; each figure is the median wall time of one whole `run` process (create, start,
wait, delete). hardrun-oci runs three times: as configured by default (the policy gate,
the floor: no_new_privs, its seccomp allowlist from the cache, and a user namespace of the
container's own with its idmapped root), with `--no-floor` under the built-in `default`
policy, and with `--userns keep` (no user namespace added, as runc). Nothing here is a test.

`--per-command` times each call an engine makes instead, one process each, on a bundle of
`/bin/sleep`: `create`, `start`, `state`, `kill KILL` and `delete --force`; then, on a second
container, the shim's own order (this process is a subreaper, as the shim): `kill KILL`, the
init reaped, then `delete` without --force, timed alone ("delete, reaped").
`--also NAME=PATH` adds another hardrun-oci (e.g. an earlier checkout's) to the same rounds.
`--verdict-miss` (with `--per-command`): each `create` gets an empty verdict cache of its
own, so that the policy gate judges the bundle every time (a new bundle's first create).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_bundle(base: Path, args=("/bin/true",)) -> Path:
    from hardrun.spec import oci as writer
    from hardrun.spec.defaults import MASKED_PATHS, READONLY_PATHS
    from tests.rootfs import build_rootfs
    bundle = base / ("bundle" if args == ("/bin/true",) else "bundle-" + Path(args[0]).name)
    bundle.mkdir()
    build_rootfs(bundle / "rootfs")
    document = writer.config(
        args=list(args), env=["PATH=/bin"], cwd="/", user={"uid": 0, "gid": 0},
        capability_sets=writer.capabilities(["CHOWN"], False), no_new_privileges=True, root="rootfs",
        read_only=True, hostname="bench", namespaces={"mount", "pid", "ipc", "uts", "network"}, mounts=[],
        masked_paths=MASKED_PATHS, readonly_paths=READONLY_PATHS)
    (bundle / "config.json").write_text(json.dumps(document))
    return bundle


def runtimes(base: Path, also: list[str]) -> dict:
    hardrun = str(ROOT / ".venv" / "bin" / "hardrun-oci")
    found = {"hardrun-oci": [hardrun, "--root", str(base / "hardrun")],
             "hardrun-oci --no-floor": [hardrun, "--root", str(base / "hardrun-nofloor"), "--no-floor"],
             # the default adds a user namespace and an idmapped root; keep is runc's choice
             "hardrun-oci --userns keep": [hardrun, "--root", str(base / "hardrun-keep"), "--userns", "keep"]}
    for index, item in enumerate(also):
        name, _, path = item.partition("=")
        found[name] = [path, "--root", str(base / f"also-{index}")]
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path:
            found[name] = [path, "--root", str(base / name)]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--per-command", action="store_true", help="time create, start, state, kill, delete")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                        help="another hardrun-oci to run in the same rounds")
    parser.add_argument("--verdict-miss", action="store_true",
                        help="with --per-command: every create judges the bundle (an empty verdict cache)")
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="hardrun-oci-bench-"))
    try:
        commands = runtimes(base, options.also)
        # as an installed tool runs: its bytecode compiled and cached
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "hardrun")], check=True,
                       stdout=subprocess.DEVNULL)
        environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        if options.per_command:
            per_command(make_bundle(base, ("/bin/sleep", "60")), commands, options.rounds, environment,
                        base / "verdicts" if options.verdict_miss else None)
            return 0
        bundle = make_bundle(base)
        times: dict = {name: [] for name in commands}
        for round_number in range(options.rounds + 1):       # round 0 warms caches up
            for name, command in list(commands.items()):
                started = time.perf_counter()
                done = subprocess.run(command + ["run", "--bundle", str(bundle), f"b{round_number}"],
                                      stdin=subprocess.DEVNULL, capture_output=True, env=environment)
                elapsed = time.perf_counter() - started
                if done.returncode != 0:     # e.g. crun 1.8 refuses a cgroup v1/v2 hybrid host
                    print(f"{name}: left out, it failed: {done.stderr.decode(errors='replace').strip()}")
                    del commands[name], times[name]
                    continue
                if round_number:
                    times[name].append(elapsed)
        reference = statistics.median(times["runc"]) if "runc" in times else None
        print(f"{'runtime':<24} {'median ms':>10} {'vs runc':>8}   ({options.rounds} rounds, interleaved)")
        for name, values in times.items():
            median = statistics.median(values)
            ratio = f"{median / reference:.2f}x" if reference else "-"
            print(f"{name:<24} {median * 1000:>10.1f} {ratio:>8}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


PER_COMMAND = ("create", "start", "state", "kill", "delete")
REAPED = "delete, reaped"
PR_SET_CHILD_SUBREAPER = 36


def as_subreaper() -> None:
    """A created init comes back to this process when `create` exits, as to an engine's shim."""
    import ctypes
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_all() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def timed(argv: list, env: dict | None = None) -> tuple[int, float, float]:
    """(exit status, wall seconds, CPU seconds of the process: user + system, from wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def reaped_delete(command: list, bundle: Path, container: str, pid_file: Path) -> tuple[float, float] | None:
    """The shim's order: create, start, kill, reap the init, then `delete` (timed: wall and
    CPU); None if a call failed."""
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    for args in (["create", "--bundle", str(bundle), "--pid-file", str(pid_file), container], ["start", container],
                 ["kill", container, "KILL"]):
        if subprocess.run(command + args, **quiet).returncode != 0:
            return None
    pid = int(pid_file.read_text())
    os.waitpid(pid, 0)
    status, wall, cpu = timed(command + ["delete", container])
    return (wall, cpu) if status == 0 else None


def per_command(bundle: Path, commands: dict, rounds: int, environment: dict, verdicts: Path | None) -> None:
    """Each call of a container's life, one process each, timed alone; output to /dev/null
    (a created init holds the stdio it inherited). `verdicts`: where each create gets an
    empty verdict cache of its own (None: the runtimes' usual cache)."""
    steps = PER_COMMAND + (REAPED,)
    times: dict = {(name, step): [] for name in commands for step in steps}
    cpu_times: dict = {(name, step): [] for name in commands for step in steps}
    as_subreaper()
    for round_number in range(rounds + 1):
        for runtime_number, (name, command) in enumerate(list(commands.items())):
            container = f"p{round_number}"
            for step, args in zip(PER_COMMAND, (["create", "--bundle", str(bundle), container],
                                                ["start", container], ["state", container],
                                                ["kill", container, "KILL"], ["delete", "--force", container])):
                env = environment
                if verdicts is not None and step == "create":
                    env = {**environment, "HARDRUN_VERDICT_CACHE": str(verdicts / f"{container}-{runtime_number}")}
                status, elapsed, cpu = timed(command + args, env)
                if status != 0 and step != "kill":    # crun 1.8 refuses this hybrid host
                    print(f"{name}: left out, its {step} failed (exit {status})")
                    subprocess.run(command + ["delete", "--force", container], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                    del commands[name]
                    break
                if round_number:
                    times[(name, step)].append(elapsed)
                    cpu_times[(name, step)].append(cpu)
            else:
                measured = reaped_delete(command, bundle, f"q{round_number}", bundle.parent / f"pid-{round_number}")
                if measured is None:
                    print(f"{name}: left out, a call of the reaped delete failed")
                    del commands[name]
                elif round_number:
                    times[(name, REAPED)].append(measured[0])
                    cpu_times[(name, REAPED)].append(measured[1])
            reap_all()
    for title, values in (("median ms per call", times), ("median CPU ms per call (user + system, wait4)", cpu_times)):
        print(f"{title} ({rounds} rounds, interleaved; the ratio to runc in brackets)")
        print_table(values, list(commands), steps)


def print_table(values: dict, names: list, steps: tuple) -> None:
    print(f"| runtime | {' | '.join(steps)} |")
    print(f"|---|{'---:|' * len(steps)}")
    for name in names:
        cells = []
        for step in steps:
            median = statistics.median(values[(name, step)])
            reference = values.get(("runc", step))
            ratio = f" ({median / statistics.median(reference):.1f}x)" if reference and name != "runc" else ""
            cells.append(f"{median * 1000:.1f}{ratio}")
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    sys.exit(main())
