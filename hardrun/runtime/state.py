"""Per-container state on the host: what a container created, so it can be undone.

Every container gets a directory `<state root>/<id>/` (default `/run/hardrun`;
`HARDRUN_STATE_DIR` overrides it, e.g. for a test that plays "host" inside its own
network namespace). Its `state` file names the owning hardrun process (pid and start
time, so a reused pid is not mistaken for the owner) and lists every resource the
container holds, one `KIND VALUE` line each: cgroup directories, veth links, nftables
tables, proxy processes, bridge addresses. A resource is recorded *before* it is
created, so a hardrun killed at any moment leaves a record that covers everything it
made; undoing tolerates resources that were never made.

A later hardrun finds directories whose owner is dead (`stale_containers`) and undoes
them (gc.py's `reap_stale`: at the start of `hardrun run`, and `hardrun gc`).

Records are trusted only from a root the caller alone controls (`trusted_root`): the
rootless default lives in the shared /tmp, where another user could otherwise pre-create
it and plant records. Clean-up never follows a symbolic link, and a recorded process is
signalled only while it is still the owner's own child (`recorded_child`).

This module is on the start-up path of every `hardrun run`: plain files, no json,
no pathlib.
"""
from __future__ import annotations

import errno
import os
import stat as stat_module

from ..errors import HardrunError
from .process import stat_fields

DEFAULT_STATE_ROOT = "/run/hardrun"
STATE_FILE = "state"
NETWORK_KINDS = ("proxy", "nft", "veth", "address")


def state_root() -> str:
    """HARDRUN_STATE_DIR, else /run/hardrun for root, else the user's runtime directory."""
    configured = os.environ.get("HARDRUN_STATE_DIR")
    if configured:
        return configured
    if os.geteuid() == 0:
        return DEFAULT_STATE_ROOT
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return os.path.join(runtime_dir, "hardrun")
    return f"/tmp/hardrun-{os.geteuid()}"


class StateDirError(HardrunError):
    """The state root cannot be trusted: nothing is run, read or removed."""
    exit_code = 125


_UNTRUSTED_HINT = ("remove it, or set HARDRUN_STATE_DIR to a directory of your own "
                   "with mode 0700")


class TrustedRoot(str):
    """A state root that `trusted_root` has checked: passed down, it is not walked again."""


# the kernel's limit on symbolic links followed in one lookup
_MAX_LINKS = 40


def trusted_root(root: str | None = None, create: bool = False) -> TrustedRoot | None:
    """The state root once it is safe to trust its records: a real directory (not a
    symbolic link) owned by the caller, closed to group and others, inside directories
    that nobody else can rename it in. `create`: make it (mode 0700) when missing;
    otherwise a missing root is None (there is nothing to clean up).

    The path returned has every symbolic link resolved, so later operations never look
    the links up again. Only root or the caller can change a directory on it (that is
    what is checked), so it names the same directory for as long as hardrun uses it."""
    if isinstance(root, TrustedRoot):
        return root
    root = os.path.abspath(root or state_root())
    try:
        parent, problem = _resolve_checked(os.path.dirname(root), create)
        if problem is None:
            path = os.path.join(parent, os.path.basename(root))
            if create:
                _make_missing(path, 0o700)   # judged below like any root found on disk
            problem = _untrusted_root(os.lstat(path))
    except FileNotFoundError:
        if create:
            raise StateDirError(f"state directory {root} vanished while it was made") from None
        return None
    except OSError as error:     # ENOTDIR, EACCES, ELOOP…: one line, never a traceback
        where = f" ({error.filename})" if error.filename else ""
        raise StateDirError(f"state directory {root} cannot be used: {error.strerror}{where}",
                            hint=_UNTRUSTED_HINT) from None
    if problem is not None:
        raise StateDirError(f"state directory {root} {problem}", hint=_UNTRUSTED_HINT)
    # a resolved path, not a held fd: nobody else can alter it, and callers keep plain paths
    return TrustedRoot(path)


def _make_missing(path: str, mode: int) -> None:
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass


def _resolve_checked(directory: str, create: bool) -> tuple[str, str | None]:
    """`directory` with its symbolic links resolved, component by component (lstat, never
    following one unchecked): every directory passed through must be one nobody else can
    change (`_untrusted_ancestor`) and every link followed root's or the caller's, else
    another user could repoint it once it is checked. (resolved path, problem or None)."""
    resolved = "/"
    problem = _untrusted_ancestor(resolved, os.lstat(resolved))
    pending = directory.split("/")[::-1]
    links = 0
    while pending and problem is None:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, name)
        if create:
            _make_missing(candidate, 0o755)
        info = os.lstat(candidate)
        if not stat_module.S_ISLNK(info.st_mode):
            problem = _untrusted_ancestor(candidate, info)
            resolved = candidate
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), candidate)
        if info.st_uid not in (0, os.geteuid()):
            problem = f"is reached through {candidate}, a symbolic link that uid {info.st_uid} owns"
            break
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = "/"
        pending += target.split("/")[::-1]
    return resolved, problem


def _untrusted_root(info: os.stat_result) -> str | None:
    if stat_module.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat_module.S_ISDIR(info.st_mode):
        return "is not a directory"
    if info.st_uid != os.geteuid():
        return f"is owned by uid {info.st_uid}, not by uid {os.geteuid()}"
    if info.st_mode & 0o077:
        return f"is open to group or others (mode {info.st_mode & 0o7777:04o}, expected 0700)"
    return None


def _untrusted_ancestor(directory: str, info: os.stat_result) -> str | None:
    """Another user who owns, or may write, a directory above the root could rename the
    root away and put their own in its place (a sticky directory such as /tmp forbids it)."""
    if not stat_module.S_ISDIR(info.st_mode):
        return f"is inside {directory}, which is not a directory"
    if info.st_uid not in (0, os.geteuid()):
        return f"is inside {directory}, which uid {info.st_uid} owns"
    if info.st_mode & 0o022 and not info.st_mode & stat_module.S_ISVTX:
        return (f"is inside {directory}, which others may write "
                f"(mode {info.st_mode & 0o7777:04o}, not sticky)")
    return None


def new_container_id() -> str:
    """16 hex digits: unique enough for a host, short enough for interface names."""
    return os.urandom(8).hex()


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), None if no such process."""
    fields = stat_fields(pid)
    return None if fields is None else int(fields[19])


def _parent_and_start(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a running process, None if no such process."""
    fields = stat_fields(pid)
    return None if fields is None else (int(fields[1]), int(fields[19]))


def process_alive(pid: int | None, start_time: int | None) -> bool:
    if not pid:
        return False
    current = process_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


def remove_tree(path: str) -> None:
    """rm -r that never follows a symbolic link (a link is removed, never what it points
    at), each entry opened relative to its checked parent; missing entries are fine.
    No shutil: its import is not free."""
    parent, name = os.path.split(os.path.abspath(path))
    try:
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        _remove_entry(parent_fd, name)
    finally:
        os.close(parent_fd)


def _remove_entry(parent_fd: int, name: str) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
    except FileNotFoundError:
        return
    except OSError as error:
        if error.errno not in (errno.ELOOP, errno.ENOTDIR):     # a symbolic link or a file
            raise
        _unlink(parent_fd, name)
        return
    try:
        with os.scandir(fd) as entries:
            children = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        for child, is_directory in children:
            if is_directory:
                _remove_entry(fd, child)
            else:
                _unlink(fd, child)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except FileNotFoundError:
        pass


def _unlink(parent_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=parent_fd)
    except FileNotFoundError:
        pass


class ContainerState:
    """The state directory of one container, owned by the hardrun process that made it."""

    __slots__ = ("path", "pid", "start_time", "items")

    def __init__(self, path: str, pid: int | None, start_time: int | None, items: list):
        self.path = path
        self.pid = pid
        self.start_time = start_time
        self.items = items                  # [(kind, value)] in creation order

    @property
    def id(self) -> str:
        return os.path.basename(self.path)

    @classmethod
    def create(cls, container_id: str, root: str | None = None) -> "ContainerState":
        """Make `<root>/<id>/` atomically (a half-written directory is never visible)."""
        root = trusted_root(root, create=True)
        assert root is not None, "create=True raises StateDirError rather than return None"
        pid = os.getpid()
        state = cls(os.path.join(root, container_id), pid, process_start_time(pid), [])
        # the staging name says who makes it: a reaper can tell an abandoned one at once
        staging = os.path.join(root, f".new-{pid}.{state.start_time}.{container_id}")
        os.mkdir(staging, 0o700)
        state._write(staging)
        os.rename(staging, state.path)
        return state

    @classmethod
    def load(cls, path: str) -> "ContainerState | None":
        """The record in `path`, None when it is unreadable, malformed, reached through a
        symbolic link or not the caller's own (such an entry is never acted upon)."""
        lines = _read_own_record(path)
        if lines is None:
            return None
        pid = start_time = None
        items = []
        try:
            for line in lines:
                kind, _, value = line.partition(" ")
                if kind == "pid":
                    pid = int(value)
                elif kind == "start":
                    start_time = int(value) if value != "-" else None
                elif kind:
                    items.append((kind, value))
        except ValueError:
            return None
        return cls(path, pid, start_time, items)

    def owner_alive(self) -> bool:
        return process_alive(self.pid, self.start_time)

    def recorded_child(self, item: str) -> int | None:
        """The pid of a `PID START` record (a process the owner forked, e.g. a port proxy)
        when that process still runs, started at START, as the child of this container's
        live owner; else None. A reused pid, a record naming someone else's process, or
        one left by a dead owner (its children died with it) is never signalled."""
        try:
            pid, start = (int(value) for value in item.split())
        except ValueError:
            return None
        if self.start_time is None or not self.owner_alive():
            return None
        return pid if _parent_and_start(pid) == (self.pid, start) else None

    def resources(self, kind: str) -> list[str]:
        return [value for item_kind, value in self.items if item_kind == kind]

    def has_any(self, kinds) -> bool:
        return any(kind in kinds for kind, _ in self.items)

    def record(self, kind: str, *values: str) -> None:
        """Note resources (before creating them) and persist the record in one write.
        Undoing tolerates what is already gone, so nothing is struck off as it goes: the
        record is simply removed with the directory once everything is undone."""
        for value in values:
            if "\n" in value or " " in kind:
                raise ValueError(f"unrecordable resource {kind} {value!r}")
            self.items.append((kind, value))
        self._save()

    def forget(self, kind: str, value: str) -> None:
        """Drop a resource from the record (after removing it)."""
        if (kind, value) in self.items:
            self.items.remove((kind, value))
            self._save()

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _write(self, directory: str) -> None:
        start = "-" if self.start_time is None else str(self.start_time)
        lines = [f"pid {self.pid}", f"start {start}"]
        lines += [f"{kind} {value}" for kind, value in self.items]
        temporary = os.path.join(directory, f".{STATE_FILE}.tmp")
        with open(temporary, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.rename(temporary, os.path.join(directory, STATE_FILE))

    def _save(self) -> None:
        self._write(self.path)

    def try_lock(self) -> int | None:
        """An exclusive lock on the directory while undoing (None: someone else holds it,
        or it is gone)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            import fcntl   # only a reaper locks
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def remove(self) -> None:
        remove_tree(self.path)


def _read_own_record(path: str) -> list[str] | None:
    """The lines of `path`/state, opened without following symbolic links; None unless
    the directory and the file are the caller's own."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        directory = os.open(path, flags | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        if os.fstat(directory).st_uid != os.geteuid():
            return None
        handle = os.open(STATE_FILE, flags, dir_fd=directory)
    except OSError:
        return None
    finally:
        os.close(directory)
    with open(handle, "rb") as record:
        if os.fstat(record.fileno()).st_uid != os.geteuid():
            return None
        try:
            return record.read().decode().splitlines()
        except UnicodeDecodeError:
            return None


def entry_names(root: TrustedRoot) -> list[str]:
    """Every name in a checked state root, sorted (none once it is gone)."""
    try:
        return sorted(os.listdir(root))
    except FileNotFoundError:
        return []


def container_entries(root: TrustedRoot) -> list[tuple[str, "ContainerState | None"]]:
    """(path, its record or None when unreadable) of each container entry in a checked
    root (`net/` and dot-names excluded)."""
    paths = [os.path.join(root, name) for name in entry_names(root)
             if not name.startswith(".") and name != "net"]
    return [(path, ContainerState.load(path)) for path in paths]


def container_states(root: str | None = None) -> list[ContainerState]:
    """Every readable container record under the root."""
    root = trusted_root(root)
    if root is None:
        return []
    return [state for _, state in container_entries(root) if state is not None]


def container_of_process(pid: int, root: str | None = None) -> "ContainerState | None":
    """The live container record whose owner (the `hardrun run` process) is `pid` or one
    of its ancestors, None for a process of no hardrun container."""
    owners = {(state.pid, state.start_time): state for state in container_states(root) if state.owner_alive()}
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        found = _parent_and_start(pid)
        if found is None:
            return None
        if (pid, found[1]) in owners:
            return owners[(pid, found[1])]
        pid = found[0]
    return None


def stale_containers(root: str | None = None) -> list[ContainerState]:
    return [state for state in container_states(root) if not state.owner_alive()]


def missing(error: OSError) -> bool:
    return error.errno in (errno.ENOENT, errno.ESRCH)
