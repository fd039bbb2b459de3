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
them (`reap_stale`: at the start of `hardrun run`, and `hardrun gc`).

This module is on the start-up path of every `hardrun run`: plain files, no json,
no pathlib.
"""
from __future__ import annotations

import errno
import os

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


def new_container_id() -> str:
    """16 hex digits: unique enough for a host, short enough for interface names."""
    return os.urandom(8).hex()


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    return int(text[text.rindex(b")") + 2:].split()[19])


def process_alive(pid: int | None, start_time: int | None) -> bool:
    if not pid:
        return False
    current = process_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


def remove_tree(path: str) -> None:
    """rm -r without shutil (its import is not free); missing entries are fine."""
    try:
        entries = os.scandir(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        os.unlink(path)
        return
    with entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                remove_tree(entry.path)
            else:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    pass
    try:
        os.rmdir(path)
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
        root = root or state_root()
        os.makedirs(root, mode=0o700, exist_ok=True)
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
        try:
            with open(os.path.join(path, STATE_FILE)) as handle:
                lines = handle.read().splitlines()
        except OSError:
            return None
        pid = start_time = None
        items = []
        for line in lines:
            kind, _, value = line.partition(" ")
            if kind == "pid":
                pid = int(value)
            elif kind == "start":
                start_time = int(value) if value != "-" else None
            elif kind:
                items.append((kind, value))
        return cls(path, pid, start_time, items)

    def owner_alive(self) -> bool:
        return process_alive(self.pid, self.start_time)

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


def container_states(root: str | None = None) -> list[ContainerState]:
    """Every container state directory under the root (`net/` and dot-names excluded)."""
    root = root or state_root()
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    states = []
    for name in sorted(names):
        if name.startswith(".") or name == "net":
            continue
        state = ContainerState.load(os.path.join(root, name))
        if state is not None:
            states.append(state)
    return states


def stale_containers(root: str | None = None) -> list[ContainerState]:
    return [state for state in container_states(root) if not state.owner_alive()]


def undo(state: ContainerState) -> list[str]:
    """Remove everything `state` records; return the problems met (empty: all gone)."""
    problems: list[str] = []
    if state.has_any(NETWORK_KINDS):
        from . import network
        problems += network.undo(state)
    if state.resources("cgroup"):
        from . import cgroups
        problems += cgroups.undo(state)
    if not problems:
        state.remove()
    return problems


def reap_stale(root: str | None = None) -> tuple[list[str], list[str]]:
    """Undo the containers of dead hardrun processes: (ids undone, problems as lines)."""
    root = root or state_root()
    undone: list[str] = []
    problems: list[str] = []
    for state in stale_containers(root):
        fd = state.try_lock()
        if fd is None:
            continue
        try:
            if not os.path.exists(state.path):     # undone by another reaper meanwhile
                continue
            found = undo(state)
            problems += [f"{state.id}: {problem}" for problem in found]
            if not found:
                undone.append(state.id)
        finally:
            os.close(fd)
    _remove_abandoned_staging(root)
    return undone, problems


def _remove_abandoned_staging(root: str) -> None:
    """`.new-PID.START.ID` directories of a hardrun killed inside `ContainerState.create`."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return
    for name in names:
        if not name.startswith(".new-"):
            continue
        pid, _, rest = name[len(".new-"):].partition(".")
        start, _, _ = rest.partition(".")
        try:
            alive = process_alive(int(pid), None if start == "None" else int(start))
        except ValueError:
            alive = False
        if not alive:
            remove_tree(os.path.join(root, name))


def missing(error: OSError) -> bool:
    return error.errno in (errno.ENOENT, errno.ESRCH)
