"""seccomp --explain and --seccomp-learn: the cost of a system call under each filter.

    sudo .venv/bin/python bench/seccomp_explain.py [--calls 20000] [--repeat 7] [--runs 5]

In one run, side by side, per system call (medians over --repeat rounds of --calls calls,
each round in a fresh forked child that loads the filter):
  * an allowed call (getppid) and a refused one (keyctl) under the built-in profile's
    filter as `hardrun run` loads it, and under the --explain variant of the same filter
    with its listener answered by hardrun's own parent-side thread;
  * the same allowed call under the --seccomp-learn filter (every call goes to the parent).
Then whole runs of `hardrun run` (medians of --runs): `busybox sh -c "echo hi | gzip | gzip -d"`
plain, with --explain, and with --seccomp-learn. The peer of each figure is the plain run in
the same table; the ratios are printed.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GETPPID, KEYCTL = 110, 250


def _per_call_ns(number: int, calls: int, program=None, flags=0, listener=None) -> float:
    from hardrun.runtime import seccomp, seccomp_notify
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
        if program is not None:
            seccomp.set_no_new_privs()
            if listener is None:
                seccomp.load_filter(program, flags)
            else:
                seccomp_notify.ListenedFilter(program, flags, listener.child_fd).load()
        start = time.perf_counter_ns()
        for _ in range(calls):
            syscall(number, 0, -3, 1)
        elapsed = time.perf_counter_ns() - start
        os.write(write_end, str(elapsed / calls).encode())
        os._exit(0)
    os.close(write_end)
    if listener is not None:
        listener.start()
    data = os.read(read_end, 64)
    os.close(read_end)
    os.waitpid(pid, 0)
    if listener is not None:
        listener.stop()
    return float(data)


def per_call(calls: int, repeat: int) -> list[tuple[str, float, float | None]]:
    from hardrun.runtime import seccomp, seccomp_notify
    bpf = seccomp.default_filter(())
    explain = seccomp_notify.explain_program(bpf)
    learn = seccomp_notify.learn_program()

    def median(number, program=None, mode=None):
        figures = []
        for _ in range(repeat):
            listener = None
            if mode == "explain":
                listener = seccomp_notify.Listener(bytes(bpf))
            elif mode == "learn":
                listener = seccomp_notify.Listener(None)
            figures.append(_per_call_ns(number, calls if mode != "learn" else calls // 10,
                                        program, bpf.flags if program is bpf else 0, listener))
        return statistics.median(figures)

    allowed = median(GETPPID, bpf)
    refused = median(KEYCTL, bpf)
    return [
        ("allowed call (getppid), no filter", median(GETPPID), None),
        ("allowed call (getppid), built-in filter", allowed, None),
        ("allowed call (getppid), --explain filter", median(GETPPID, explain, "explain"), allowed),
        ("allowed call (getppid), --seccomp-learn filter", median(GETPPID, learn, "learn"), allowed),
        ("refused call (keyctl), built-in filter", refused, None),
        ("refused call (keyctl), --explain filter", median(KEYCTL, explain, "explain"), refused),
    ]


def whole_runs(runs: int) -> list[tuple[str, float]]:
    command = ["busybox", "sh", "-c", "echo hi | gzip | gzip -d"]
    hardrun = [sys.executable, "-m", "hardrun", "run"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    learned = os.path.join(tempfile.mkdtemp(prefix="hardrun-bench-"), "learned.json")
    variants = [("plain", []), ("--explain", ["--explain"]), ("--seccomp-learn", ["--seccomp-learn", learned])]
    figures = {name: [] for name, _ in variants}
    for _ in range(runs):
        for name, flags in variants:   # interleaved: the machine's noise hits each alike
            start = time.perf_counter()
            subprocess.run(hardrun + flags + ["--"] + command, env=env, check=True, capture_output=True)
            figures[name].append((time.perf_counter() - start) * 1000)
    os.unlink(learned)
    os.rmdir(os.path.dirname(learned))
    return [(name, statistics.median(values)) for name, values in figures.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    print(f"{'per call':52} {'ns':>9} {'ratio':>7}")
    for name, value, peer in per_call(options.calls, options.repeat):
        ratio = f"{value / peer:6.2f}x" if peer else ""
        print(f"{name:52} {value:9.0f} {ratio:>7}")
    print()
    rows = whole_runs(options.runs)
    plain = rows[0][1]
    title = 'hardrun run busybox sh -c "echo hi | gzip | gzip -d"'
    print(f"{title:52} {'ms':>9} {'ratio':>7}")
    for name, value in rows:
        print(f"{name:52} {value:9.1f} {value / plain:6.2f}x")


if __name__ == "__main__":
    main()
