"""`hardrun-oci --explain`: the calls a container's seccomp filter refused, recorded per container.

`hardrun run --explain` answers the filter's notifications from its own parent process.
Under an engine `create` exits while the init is held, so `create` leaves a holder: a
process of its own (forked twice, in a session of its own, with /dev/null as its stdio and
no other fd of create's: the engine waits for EOF on the pipes it gave `create`) that holds
the listener's end of a socket pair. At `start` the init loads the filter with a listener
and sends it there (hardrun.runtime.seccomp_notify, as `hardrun run` does); the holder
answers every refused call with the errno the unchanged filter gives, never CONTINUE, and
writes what it saw to `denials.json` in the container's state directory, where
`hardrun inspect PID` reads it.

Fail closed: a holder that is gone before `start` makes the hand-over fail, and the init
with it (the process never runs); a holder that dies later leaves the listener closed, and
the kernel fails every notified call with ENOSYS: still refused (only the errno differs from
the profile's), never allowed. `delete` kills the holder (pid and start time recorded, so a
reused pid is never signalled). The holder exits by itself when no process is left under
the filter. It is not in the container's cgroup, so the engine never counts it as one of
the container's processes; its parent is the engine's shim (a subreaper), which reaps it.
"""
from __future__ import annotations

import json
import os
import time

DENIALS_FILE = "denials.json"
WRITE_INTERVAL = 1.0    # counts are rewritten at most this often; a new call at once


class Watch:
    """launch.seccomp_watch for an OCI create: the listener the init hands its filter's
    notifications to (the child keeps `listener.child_fd` open until the load)."""

    def __init__(self, listener):
        self.listener = listener


def prepare(bpf) -> tuple:
    """The filter `bpf` (a compiled filter) with its refusals notified, and the Watch whose
    listener receives them: (the filter for launch.seccomp_filter, the Watch)."""
    from . import seccomp_notify as notify
    notify.require_user_notif("--explain")
    listener = notify.Listener(bytes(bpf))
    return notify.ListenedFilter(notify.explain_program(bytes(bpf)), bpf.flags, listener.child_fd), Watch(listener)


def spawn_holder(container, watch: Watch, profile_text: str | None, caps) -> None:
    """Fork the holder (see the module's doc) and record its pid and start time."""
    from .state import process_start_time
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:
        try:
            os.close(read_end)
            os.setsid()
            if os.fork() == 0:
                _holder(container.path, watch.listener, profile_text, caps, write_end)
            os._exit(0)
        finally:
            os._exit(1)
    os.close(write_end)
    os.waitpid(first, 0)
    with os.fdopen(read_end, "rb") as handle:
        reported = handle.read()
    if not reported:
        raise OSError("the seccomp listener's holder did not start")
    pid = int(reported)
    container.record["holder"] = {"pid": pid, "start_time": process_start_time(pid)}
    container.save()


def _holder(state_path: str, listener, profile_text: str | None, caps, report_fd: int) -> None:
    """The holder's life: stdio to /dev/null, every fd but the listener's socket closed,
    then answer until no process is left under the filter."""
    import signal
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.write(report_fd, str(os.getpid()).encode())
        listener.close_child_end()    # through its socket object, before the fds go below
        low = 3
        for fd in sorted(listener.fds()):
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, 1 << 20)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        recorder = _Recorder(state_path, profile_text, caps)
        listener.serve(on_call=recorder.seen)
        recorder.write(listener.calls)
    finally:
        os._exit(0)


class _Recorder:
    """Writes the explained denials into the state directory (atomic replace)."""

    def __init__(self, state_path: str, profile_text: str | None, caps):
        self.state_path = state_path
        self.profile_text, self.caps = profile_text, tuple(caps)
        self.known = 0
        self.written = 0.0

    def seen(self, calls) -> None:
        now = time.monotonic()
        if len(calls) != self.known or now - self.written >= WRITE_INTERVAL:
            self.known, self.written = len(calls), now
            self.write(calls)

    def write(self, calls) -> None:
        try:
            self._write(calls)
        except Exception:    # noqa: BLE001 - a record that cannot be made never stops the answers
            pass

    def _write(self, calls) -> None:
        from .seccomp import default_profile
        from .seccomp_explain import denials
        from .seccomp_profile import parse_profile
        builtin = self.profile_text is None
        profile = default_profile() if self.profile_text is None else parse_profile(
            self.profile_text, path="linux.seccomp", fmt="json")
        from ..userfiles import write_private
        found = [denial.as_json() for denial in denials(calls, profile, self.caps, builtin)]
        text = json.dumps({"profile": "built-in" if builtin else "linux.seccomp", "denials": found})
        # False once `delete` removed the state directory: nothing left to record into
        write_private(self.state_path, DENIALS_FILE, text.encode())


def read_denials(state_path: str) -> list | None:
    """What the holder recorded, or None when the container runs without --explain."""
    try:
        with open(os.path.join(state_path, DENIALS_FILE)) as handle:
            return list(json.load(handle).get("denials") or [])
    except (OSError, ValueError):
        return None


def stop_holder(record: dict) -> None:
    """Kill the holder (it is the shim's child, not ours: wait until it is gone or a zombie)."""
    from .process import poll_until, running
    holder = record.get("holder") or {}
    pid, start_time = holder.get("pid"), holder.get("start_time")
    if not isinstance(pid, int) or not running(pid, start_time):
        return
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    poll_until(lambda: not running(pid, start_time), timeout=5)
