"""Removing a container's cgroups: what is left in them killed, the wait until they are
empty, the rmdir. Apart from cgroups.py (the layouts, the set-up and the limits) so that
`hardrun-oci delete`, which engines call for every container, loads only this (about a
millisecond of its start); cgroups.py imports these names back for its own callers."""
from __future__ import annotations

import errno
import os

SIGKILL = 9


def cgroup_pids(path: str) -> list[int]:
    try:
        return [int(pid) for pid in read_text(os.path.join(path, "cgroup.procs")).split()]
    except FileNotFoundError:
        return []


def kill_all(paths: list[str]) -> None:
    """SIGKILL every process in the cgroups, frozen first so none can fork meanwhile."""
    for path in paths:
        if os.path.exists(os.path.join(path, "cgroup.kill")):
            write_value(os.path.join(path, "cgroup.kill"), 1)
            continue
        freezer = freezer_file(path)
        if freezer:
            write_value(freezer[0], freezer[1])
        for pid in cgroup_pids(path):
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
        if freezer:
            write_value(freezer[0], freezer[2])


def freezer_file(path: str):
    for name, frozen, thawed in (("freezer.state", "FROZEN", "THAWED"), ("cgroup.freeze", 1, 0)):
        if os.path.exists(os.path.join(path, name)):
            return os.path.join(path, name), frozen, thawed
    return None


def remove_cgroups(paths: list[str], timeout: float = 10.0) -> list[str]:
    """Kill, wait until every cgroup is empty, then rmdir each; problems as lines. The
    waits between tries grow from a millisecond (a process killed a moment ago has
    usually left its cgroup by the second try) to at most 10 ms, until `timeout`."""
    import time
    existing = [str(path) for path in paths]
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        # rmdir first: the kernel refuses (EBUSY) while a process is inside, and a finished
        # container usually leaves none, so reading every cgroup.procs first only costs time.
        for path in list(existing):
            try:
                os.rmdir(path)
                existing.remove(path)
            except (FileNotFoundError, NotADirectoryError):
                existing.remove(path)
            except OSError as error:
                if error.errno != errno.EBUSY:
                    return [f"cannot remove cgroup {path}: {error.strerror}"]
        if not existing:
            return []
        if time.monotonic() > deadline:
            return [f"cgroup {path} still busy after {timeout:.0f} s" for path in existing]
        if any(cgroup_pids(path) for path in existing):
            kill_all(existing)
        time.sleep(pause)
        pause = min(pause * 2, 0.01)


def write_value(path: str, value) -> None:
    with open(path, "w") as handle:
        handle.write(str(value))


def read_text(path: str) -> str:
    with open(path) as handle:
        return handle.read()
