"""Take the kernel's cgroup-migration wait off the start-up path (cgroup v1).

Moving a process between cgroups takes a global lock whose writer waits for an RCU
grace period (5-20 ms here) unless another move ended within about one grace period
before. Every `hardrun run` moves its child into the container's cgroup, so that wait
lands on every start. `start()` (called as the process begins) runs a thread that moves
*itself* into the cgroup it already sits in, which pays the wait while the parent imports,
validates and prepares, then repeats that no-op move every few milliseconds so that the
lock stays in its fast mode; `stop()` (before clone) ends the thread, and the child's
move, milliseconds later, is fast.

Side effects: none. A v1 `tasks` write moves only the writing thread; the target is the
cgroup /proc/self/cgroup names, under a mount of that hierarchy's root; the thread ends
before clone (`stop` waits until the kernel no longer counts it). Any failure just ends
the thread: this changes timing, never what is enforced.
"""
from __future__ import annotations

import os
import time
import _thread

INTERVAL = 0.003        # below one grace period: the lock never returns to its slow mode
GIVE_UP_AFTER = 1000    # intervals (3 s): a caller that never clones does not keep a thread

_stop = None            # a lock held while the thread may run; released by stop()
_done = None            # released by the thread as it ends
_threads_before = 1     # the process's thread count when the warm-up started


def start() -> None:
    """Start warming (as root only; a no-op when already started or nothing fits)."""
    global _stop, _done, _threads_before
    if _stop is not None or os.geteuid() != 0:
        return
    try:
        target = _own_tasks_file()
        _threads_before = _thread_count()
    except (OSError, ValueError, IndexError):
        return
    if target is None:
        return
    _stop, _done = _thread.allocate_lock(), _thread.allocate_lock()
    _stop.acquire()
    _done.acquire()
    try:
        _thread.start_new_thread(_keep_warm, (target, _stop, _done))
    except RuntimeError:
        _stop = _done = None


def stop() -> None:
    """End the thread and return once the kernel no longer counts it (clone copies only
    the calling thread: locks the other one held would stay held in the child)."""
    global _stop, _done
    if _stop is None:
        return
    _stop.release()
    _done.acquire()
    _stop = _done = None
    for _ in range(1000):           # it released `_done`; let it finish exiting
        if _thread_count() <= _threads_before:
            return
        time.sleep(0.0001)


def _keep_warm(target: str, stop_lock, done_lock) -> None:
    try:
        tid = str(_thread.get_native_id()).encode()
        fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        try:
            for _ in range(GIVE_UP_AFTER):
                os.write(fd, tid)          # the first write waits for the grace period
                if stop_lock.acquire(True, INTERVAL):
                    break
        finally:
            os.close(fd)
    except OSError:
        pass
    finally:
        done_lock.release()


def _own_tasks_file() -> str | None:
    """`tasks` of this thread's cgroup in a v1 hierarchy mounted at its root."""
    own = {}
    with open("/proc/self/cgroup") as lines:
        for line in lines:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers:
                own[controllers] = path
    with open("/proc/self/mountinfo") as lines:
        for line in lines:
            before, _, after = line.partition(" - ")
            fields, tail = before.split(), after.split()
            if len(fields) < 5 or len(tail) < 3 or tail[0] != "cgroup" or fields[3] != "/":
                continue
            options = [o for o in tail[2].split(",") if o not in ("rw", "ro")]
            for controllers, path in own.items():
                if set(controllers.split(",")) <= set(options) and "\\" not in fields[4]:
                    return f"{fields[4]}{path.rstrip('/')}/tasks"
    return None


def _thread_count() -> int:
    with open("/proc/self/stat", "rb") as handle:
        data = handle.read()
    return int(data[data.rindex(b")") + 2:].split()[17])
