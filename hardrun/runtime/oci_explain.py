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

A record that cannot be written (the state directory full or read-only) is not lost
silently: the holder writes an error line into the engine's `--log` (as hardrun-oci's own
errors) and names itself LOST_NAME until a write succeeds again (it keeps every call, so the
next record written is whole); `hardrun inspect` reads that name, which needs no disk, and
says the record is incomplete.

A process `exec` starts gets the container's filter with a listener of its own: `exec`
connects to the holder's socket (SOCKET_FILE in the state directory, 0700 as the directory
is), sends the process's unchanged filter, and the process sends its listener there when it
loads the filter, as the init does; the holder answers each listener by its own filter into
the one record. A holder that is gone fails the exec (its refusals could not be recorded).

`delete` keeps the record (`docker run --rm` deletes the container as it exits): a copy in
the state root of `hardrun run`, `KEPT_DIR/<id>-<UTC time>.json`, which `hardrun gc`
removes once older than KEPT_DAYS days.
"""
from __future__ import annotations

from .. import jsonlite
import os
import time

DENIALS_FILE = "denials.json"
WRITE_INTERVAL = 1.0    # counts are rewritten at most this often; a new call at once
HOLDER_NAME, LOST_NAME = "hr-explain", "hr-explain-lost"    # its comm (15 bytes at most)
SOCKET_FILE = "explain.sock"    # in the state directory: where `exec` hands its listeners over
KEPT_DIR = ".explain"   # in the state root: a dot-name, which its container scans skip
KEPT_DAYS = 7
FINISH_TIMEOUT = 5.0    # how long delete lets a holder whose container is gone write its last record


class Watch:
    """launch.seccomp_watch for an OCI create: the listener the init hands its filter's
    notifications to (the child keeps `listener.child_fd` open until the load)."""

    def __init__(self, listener):
        self.listener = listener


class _HolderConnection:
    """An exec's end towards the holder, in the Listener's place (the child keeps `child_fd`)."""

    def __init__(self, connection):
        self._connection = connection
        self.child_fd = connection.fileno()

    def close(self) -> None:
        self._connection.close()


def connect_exec(bpf, state_path: str) -> tuple:
    """For `exec` in a container created with --explain: the filter `bpf` with its refusals
    notified, and the Watch whose connection to the container's holder has been sent the
    unchanged filter (the process sends its listener there at the load). OSError: no holder."""
    import socket
    from . import seccomp_notify as notify
    notify.require_user_notif("--explain")
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    directory = os.open(state_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # through the directory's fd: a unix socket's path is limited to 108 bytes
        connection.connect(f"/proc/self/fd/{directory}/{SOCKET_FILE}")
        connection.send(bytes(bpf))
    except OSError:
        connection.close()
        raise
    finally:
        os.close(directory)
    filtered = notify.ListenedFilter(notify.explain_program(bytes(bpf)), bpf.flags, connection.fileno())
    return filtered, Watch(_HolderConnection(connection))


def prepare(bpf) -> tuple:
    """The filter `bpf` (a compiled filter) with its refusals notified, and the Watch whose
    listener receives them: (the filter for launch.seccomp_filter, the Watch)."""
    from . import seccomp_notify as notify
    notify.require_user_notif("--explain")
    listener = notify.Listener(bytes(bpf))
    return notify.ListenedFilter(notify.explain_program(bytes(bpf)), bpf.flags, listener.child_fd), Watch(listener)


def spawn_holder(container, watch: Watch, profile_text: str | None, caps, log=None) -> None:
    """Fork the holder (see the module's doc) and record its pid and start time. `log(level,
    message)`: the engine's --log, where it reports a record it cannot write."""
    from .state import process_start_time
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:
        try:
            os.close(read_end)
            os.setsid()
            if os.fork() == 0:
                _holder(container.path, watch.listener, profile_text, caps, write_end, log)
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


def _holder(state_path: str, listener, profile_text: str | None, caps, report_fd: int, log) -> None:
    """The holder's life: stdio to /dev/null, every fd but the listener's socket closed,
    then answer until no process is left under the filter."""
    import signal
    from .syscalls import close_all_but
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        server = _exec_server(state_path)
        # the pid once the socket is there: create returns, and an exec may connect at once
        os.write(report_fd, str(os.getpid()).encode())
        listener.close_child_end()    # through its socket object, before the fds go below
        # none of create's fds (the engine's pipes) stays open in the holder, or the engine
        # would wait for their EOF as long as it lives
        close_all_but((*listener.fds(), server.fileno()))
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        _name_self(HOLDER_NAME)
        recorder = _Recorder(state_path, profile_text, caps, log)
        listener.serve_with_others(server, on_call=recorder.seen)
        recorder.write(listener.calls)
    finally:
        os._exit(0)


def _exec_server(state_path: str):
    """The listening socket SOCKET_FILE in the state directory, where `exec` hands over
    the listeners of the processes it starts."""
    import socket
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    os.chdir(state_path)     # a relative name: a unix socket's path is limited to 108 bytes
    server.bind(SOCKET_FILE)
    os.chdir("/")
    server.listen(8)
    return server


class _Recorder:
    """Writes the explained denials into the state directory (atomic replace)."""

    def __init__(self, state_path: str, profile_text: str | None, caps, log=None):
        self.state_path = state_path
        self.profile_text, self.caps = profile_text, tuple(caps)
        self.log = log
        self.known = 0
        self.written = 0.0
        self.lost = False

    def seen(self, calls) -> None:
        now = time.monotonic()
        if len(calls) != self.known or now - self.written >= WRITE_INTERVAL:
            self.known, self.written = len(calls), now
            self.write(calls)

    def write(self, calls) -> None:
        try:
            written = self._write(calls)
        except Exception:    # noqa: BLE001 - a record that cannot be made never stops the answers
            written = False
        if not written and os.path.isdir(self.state_path):    # gone: `delete` removed it
            self._lose(len(calls))
        elif written and self.lost:
            self.lost = False
            _name_self(HOLDER_NAME)
            self._report("info", f"the record of the refused calls is whole again in {self.state_path}")

    def _lose(self, count: int) -> None:
        """Say once per failing stretch that the record on disk misses calls."""
        if self.lost:
            return
        self.lost = True
        _name_self(LOST_NAME)
        self._report("error", f"--explain: the record of the refused calls cannot be written in {self.state_path} "
                              f"({_why_unwritable(self.state_path)}): `hardrun inspect` shows it incomplete; "
                              f"{count} distinct call(s) refused so far")

    def _report(self, level: str, message: str) -> None:
        if self.log is not None:
            try:
                self.log(level, message)
            except Exception:    # noqa: BLE001 - the answers go on whatever the log does
                pass

    def _write(self, calls) -> bool:
        from .seccomp import default_profile
        from .seccomp_explain import denials
        from .seccomp_profile import parse_profile
        builtin = self.profile_text is None
        profile = default_profile() if self.profile_text is None else parse_profile(
            self.profile_text, path="linux.seccomp", fmt="json")
        from ..userfiles import write_private
        found = [denial.as_json() for denial in denials(calls, profile, self.caps, builtin)]
        text = jsonlite.dumps({"profile": "built-in" if builtin else "linux.seccomp", "denials": found})
        # False once `delete` removed the state directory: nothing left to record into
        return write_private(self.state_path, DENIALS_FILE, text.encode())


def _why_unwritable(path: str) -> str:
    try:
        info = os.statvfs(path)
    except OSError as error:
        return error.strerror or "unreadable"
    if info.f_flag & os.ST_RDONLY:
        return "a read-only file system"
    if info.f_bavail == 0 or info.f_favail == 0:
        return "no space left"
    return "not writable"


def _name_self(name: str) -> None:
    """The holder's comm: LOST_NAME says, without any disk, that its record misses calls."""
    try:
        with open("/proc/self/comm", "w") as handle:
            handle.write(name)
    except OSError:
        pass


def record_lost(record: dict) -> bool:
    """Whether the container's holder (still running) could not write its last record."""
    holder = _running_holder(record)
    if holder is None:
        return False
    try:
        with open(f"/proc/{holder[0]}/comm") as handle:
            return handle.read().strip() == LOST_NAME
    except OSError:
        return False


def _running_holder(record: dict) -> tuple[int, int | None] | None:
    """(pid, start time) of the container's holder while it runs (a reused pid is not it)."""
    from .process import running
    holder = record.get("holder") or {}
    pid, start_time = holder.get("pid"), holder.get("start_time")
    return (pid, start_time) if isinstance(pid, int) and running(pid, start_time) else None


def read_denials(state_path: str) -> list | None:
    """What the holder recorded, or None when the container runs without --explain."""
    recorded = _read_record(state_path)
    return None if recorded is None else list(recorded.get("denials") or [])


def _read_record(state_path: str) -> dict | None:
    """The holder's DENIALS_FILE, or None when there is none or it is not a JSON object."""
    try:
        with open(os.path.join(state_path, DENIALS_FILE)) as handle:
            recorded = jsonlite.loads(handle.read())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def stop_holder(record: dict, finished: bool = False) -> None:
    """Kill the holder (it is the shim's child, not ours: wait until it is gone or a zombie).
    `finished`: no process of the container is left, so the holder is writing its last record
    and leaving: let it, for a while."""
    from .process import poll_until, running
    holder = _running_holder(record)
    if holder is None:
        return
    pid, start_time = holder
    if finished and poll_until(lambda: not running(pid, start_time), timeout=FINISH_TIMEOUT):
        return
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    poll_until(lambda: not running(pid, start_time), timeout=5)


def keep_record(container, incomplete: bool) -> str | None:
    """Copy the container's record, as `delete` removes its state directory, to the state root's
    KEPT_DIR as `<id>-<UTC time>.json`; its path, or None without a state root. OSError: it
    cannot be written (the reason named)."""
    from .state import trusted_root
    from ..userfiles import write_private
    recorded = _read_record(container.path)
    if recorded is None:
        recorded = {"denials": []}
        incomplete = True       # the holder wrote none, or not whole
    root = trusted_root(create=True)
    if root is None:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"{container.id}-{stamp}.json"
    kept = {"id": container.id, "bundle": container.record.get("bundle"), "deleted": stamp,
            "incomplete": incomplete, "profile": recorded.get("profile"), "denials": recorded.get("denials") or []}
    directory = _open_kept(root, create=True)
    try:
        # written through the checked descriptor: never into a directory a link points at
        written = write_private(f"/proc/self/fd/{directory}", name, jsonlite.dumps(kept).encode())
    finally:
        os.close(directory)
    if not written:     # a full file system, or an id too long for a file name with the time
        raise OSError(f"{os.path.join(root, KEPT_DIR, name)} cannot be written")
    return os.path.join(root, KEPT_DIR, name)


def _open_kept(root, create: bool = False) -> int:
    """KEPT_DIR in the trusted state root `root`, opened without following a link (OSError:
    ELOOP for a link, ENOTDIR for anything but a directory, ENOENT when missing)."""
    path = os.path.join(root, KEPT_DIR)
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def prune_kept(root, now: float | None = None) -> list[str]:
    """`hardrun gc`: remove the kept records older than KEPT_DAYS days; what was removed."""
    try:
        directory = _open_kept(root)
    except OSError:          # none, or not a directory of its own (a link is never followed)
        return []
    oldest = (time.time() if now is None else now) - KEPT_DAYS * 86400
    removed = []
    try:
        for name in sorted(os.listdir(directory)):
            try:    # relative to the descriptor: the directory checked is the one pruned
                if os.lstat(name, dir_fd=directory).st_mtime < oldest:
                    os.unlink(name, dir_fd=directory)
                    removed.append(f"--explain record {os.path.join(root, KEPT_DIR, name)}")
            except OSError:
                continue
    finally:
        os.close(directory)
    return removed
