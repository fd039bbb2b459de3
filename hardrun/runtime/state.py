"""Per-container state on the host: what a container created, so it can be undone.

Every container gets a directory `<state root>/<id>/` (default `/run/hardrun`,
`HARDRUN_STATE_DIR` overrides it, e.g. for a test that plays "host" inside its own
network namespace). `state.json` names the owning hardrun process (pid and start
time, so a reused pid is not mistaken for the owner) and lists every resource the
container holds: cgroup directories, veth links, published ports, proxy processes,
addresses. A resource is recorded *before* it is created, so a hardrun killed at any
moment leaves a record that covers everything it made; undoing tolerates resources
that were never made.

A later hardrun finds directories whose owner is dead (`stale_containers`) and
undoes them (`reap_stale`, called at the start of `hardrun run` and by `hardrun gc`).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

DEFAULT_STATE_ROOT = "/run/hardrun"
# A staging directory without a readable state file is only abandoned once this old (s).
ABANDONED_AFTER = 60
STATE_FILE = "state.json"
LOCK_FILE = "lock"


def state_root() -> Path:
    return Path(os.environ.get("HARDRUN_STATE_DIR") or DEFAULT_STATE_ROOT)


def new_container_id() -> str:
    """16 hex digits: unique enough for a host, short enough for interface names."""
    return os.urandom(8).hex()   # not secrets: it imports hashlib and random at start-up


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = text[text.rindex(b")") + 2:].split()
    return int(fields[19])


def process_alive(pid: int | None, start_time: int | None) -> bool:
    if not pid:
        return False
    current = process_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


class ContainerState:
    """The state directory of one container, owned by the hardrun process that made it."""

    def __init__(self, path: Path, data: dict):
        self.path = path
        self.data = data

    @property
    def id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, container_id: str, root: Path | None = None) -> "ContainerState":
        """Make `<root>/<id>/` atomically (a half-written directory is never visible)."""
        root = root or state_root()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        pid = os.getpid()
        data = {"id": container_id, "pid": pid, "start_time": process_start_time(pid),
                "resources": {}}
        staging = root / f".new-{container_id}"
        staging.mkdir(mode=0o700)
        (staging / STATE_FILE).write_text(json.dumps(data))
        (staging / LOCK_FILE).touch()
        final = root / container_id
        os.rename(staging, final)
        return cls(final, data)

    @classmethod
    def load(cls, path: Path) -> "ContainerState | None":
        try:
            data = json.loads((path / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        return cls(path, data)

    def owner_alive(self) -> bool:
        return process_alive(self.data.get("pid"), self.data.get("start_time"))

    def resources(self, kind: str) -> list:
        return list(self.data["resources"].get(kind, []))

    def record(self, kind: str, value) -> None:
        """Note a resource (before creating it) and persist the record."""
        self.data["resources"].setdefault(kind, []).append(value)
        self._save()

    def record_all(self, kind: str, values) -> None:
        """Note several resources with one write (each write is a file replace on disk)."""
        self.data["resources"].setdefault(kind, []).extend(values)
        self._save()

    def forget_all(self, kind: str) -> None:
        if self.data["resources"].pop(kind, None):
            self._save()

    def forget(self, kind: str, value) -> None:
        """Drop a resource from the record (after removing it)."""
        items = self.data["resources"].get(kind, [])
        if value in items:
            items.remove(value)
            self._save()

    def file(self, name: str) -> Path:
        return self.path / name

    def _save(self) -> None:
        temporary = self.path / f".{STATE_FILE}.tmp"
        temporary.write_text(json.dumps(self.data))
        os.rename(temporary, self.path / STATE_FILE)

    @contextmanager
    def locked(self, blocking: bool = True):
        """Exclusive lock while undoing, so two reapers never work on one container."""
        try:
            fd = os.open(self.path / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:   # undone and removed by someone else meanwhile
            yield False
            return
        try:
            flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
            try:
                fcntl.flock(fd, flags)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def container_states(root: Path | None = None) -> list[ContainerState]:
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
        state = ContainerState.load(root / name)
        if state is not None:
            states.append(state)
    return states


def stale_containers(root: Path | None = None) -> list[ContainerState]:
    return [state for state in container_states(root) if not state.owner_alive()]


def undo(state: ContainerState) -> list[str]:
    """Remove everything `state` records; return the problems met (empty: all gone)."""
    problems: list[str] = []
    resources = state.data["resources"]
    if any(kind in resources for kind in ("veth", "publish", "proxy", "address")):
        from . import network
        problems += network.undo(state)
    if "cgroups" in resources:
        from . import cgroups
        problems += cgroups.undo(state)
    if not problems:
        state.remove()
    return problems


def reap_stale(root: Path | None = None) -> list[str]:
    """Undo the containers of dead hardrun processes; return problems (one line each)."""
    problems: list[str] = []
    for state in stale_containers(root):
        with state.locked(blocking=False) as acquired:
            if not acquired or not state.path.exists():
                continue
            problems += [f"{state.id}: {problem}" for problem in undo(state)]
    _remove_abandoned_staging(root or state_root())
    return problems


def _remove_abandoned_staging(root: Path) -> None:
    """`.new-<id>` directories of a hardrun killed inside `ContainerState.create`."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return
    for name in names:
        if not name.startswith(".new-"):
            continue
        path = root / name
        state = ContainerState.load(path)
        if state is None:
            # Not written yet: another hardrun may be creating it this very moment.
            try:
                if time.time() - path.stat().st_mtime < ABANDONED_AFTER:
                    continue
            except FileNotFoundError:
                continue
        elif state.owner_alive():
            continue
        shutil.rmtree(path, ignore_errors=True)


def ignore_missing(error: OSError) -> bool:
    return error.errno in (errno.ENOENT, errno.ESRCH)
