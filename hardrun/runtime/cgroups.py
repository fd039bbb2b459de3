"""The container's own cgroup: resource limits, OOM detection, and removal.

Layouts: each controller is looked up on its own in /proc/self/mountinfo, so one code
path serves a unified v2 host, a pure v1 host and a hybrid one (v1 controllers under
/sys/fs/cgroup/<controller> plus a v2 mount that holds few or no controllers, as on
Debian hosts booted with systemd's hybrid mode). A controller bound to a v1 hierarchy
is used there; otherwise the v2 mount is used if its root lists the controller.

The parent calls, in this order:

    limits = Limits.from_spec(spec)                  # validates; default pids limit
    cgroup = ContainerCgroup.create(container_id, limits, state, strict=...)
    cgroup.attach(child_pid)                         # before the child is released
    ... wait for the child ...
    message = cgroup.oom_report(exit_status)         # None, or the line to print
    cgroup.destroy()                                 # kills leftovers, rmdir

The child must unshare its cgroup namespace *after* `attach` (so the namespace root is
the container's cgroup, not hardrun's) and may call `mount_cgroup_view` to give the
container a read-only /sys/fs/cgroup.
"""
from __future__ import annotations

import _signal as signal  # the C module: `signal` adds an enum import (hardrun run start-up)
import errno
import os
import sys
import time
from pathlib import Path

from ..errors import HardrunError
# Frozen records without the dataclasses import (this module is on hardrun run's start-up path).
from ..spec.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

# A fork bomb stays inside its box unless the user asks otherwise (`--pids-limit -1`).
DEFAULT_PIDS_LIMIT = 1024
CPU_PERIOD_US = 100_000
MIN_MEMORY = 6 * 1024 * 1024          # Docker's minimum for --memory
DEFAULT_PARENT = "hardrun"
# Controllers a container cgroup is made in (freezer: v1 only, to stop processes before
# killing them; v2 has cgroup.kill / cgroup.freeze in every cgroup).
WANTED_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
V2_ENABLE = ("memory", "pids", "cpu")
STRICT, BEST_EFFORT = "strict", "best-effort"


class LimitError(HardrunError):
    """A requested limit could not be applied (hardrun's setup failure: exit 125)."""

    exit_code = 125


# ---------------------------------------------------------------------------- limits

@dataclass(frozen=True)
class Limits:
    memory: int | None = None          # bytes
    memory_swap: int | None = None     # bytes of memory + swap; -1 unlimited
    pids: int | None = DEFAULT_PIDS_LIMIT   # None or <= 0: unlimited
    cpus: float | None = None
    cpu_shares: int | None = None

    @classmethod
    def from_spec(cls, spec, default_pids: int | None = DEFAULT_PIDS_LIMIT) -> "Limits":
        pids = default_pids if spec.pids_limit is None else spec.pids_limit
        limits = cls(memory=spec.memory, memory_swap=spec.memory_swap, pids=pids,
                     cpus=spec.cpus, cpu_shares=spec.cpu_shares)
        limits.validate(spec)
        return limits

    def validate(self, spec=None) -> None:
        def fail(flag: str, message: str):
            line = spec.line_of(flag.lstrip("-").replace("-", "_")) if spec else None
            raise LimitError(f"{flag}: {message}", path=getattr(spec, "path", None), line=line)
        if self.memory is not None and self.memory < MIN_MEMORY:
            fail("--memory", "the minimum memory limit is 6 MiB")
        if self.memory_swap is not None and self.memory_swap != -1:
            if self.memory is None:
                fail("--memory-swap", "needs --memory as well (it is memory plus swap)")
            if self.memory_swap < self.memory:
                fail("--memory-swap", "must be at least --memory (it is memory plus swap)")
        if self.cpus is not None:
            available = os.cpu_count() or 1
            if not 0.01 <= self.cpus <= available:
                fail("--cpus", f"must be between 0.01 and {available} (the CPUs of this host)")
        if self.cpu_shares is not None and self.cpu_shares < 0:
            fail("--cpu-shares", "must not be negative")

    @property
    def effective_memory_swap(self) -> int | None:
        """Docker's rule: --memory without --memory-swap allows as much swap as memory."""
        if self.memory_swap is None and self.memory is not None:
            return 2 * self.memory
        return self.memory_swap


def format_bytes(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000], as runc converts."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


# ---------------------------------------------------------------------------- layout

@dataclass(frozen=True)
class Hierarchy:
    mountpoint: str
    version: int                       # 1 or 2
    controllers: frozenset = field(default_factory=frozenset)
    options: str = ""                  # v1 mount options naming the hierarchy


@dataclass(frozen=True)
class Layout:
    hierarchies: tuple = ()

    @property
    def unified(self) -> Hierarchy | None:
        return next((h for h in self.hierarchies if h.version == 2), None)

    @property
    def kind(self) -> str:
        v1 = [h for h in self.hierarchies if h.version == 1 and h.controllers]
        if not v1:
            return "unified" if self.unified else "none"
        return "hybrid" if self.unified else "v1"

    def hierarchy_for(self, controller: str) -> Hierarchy | None:
        for hierarchy in self.hierarchies:
            if hierarchy.version == 1 and controller in hierarchy.controllers:
                return hierarchy
        unified = self.unified
        if unified and controller in unified.controllers:
            return unified
        return None


def detect_layout(mountinfo: str = "/proc/self/mountinfo") -> Layout:
    hierarchies = []
    seen = set()
    with open(mountinfo) as lines:
        for line in lines:
            hierarchy = _parse_mountinfo_line(line)
            # one entry per hierarchy: the first mount of it wins (later ones are binds)
            key = (hierarchy.version, hierarchy.options) if hierarchy else None
            if hierarchy and key not in seen:
                seen.add(key)
                hierarchies.append(hierarchy)
    return Layout(tuple(hierarchies))


def _parse_mountinfo_line(line: str) -> Hierarchy | None:
    before, _, after = line.partition(" - ")
    fields, tail = before.split(), after.split()
    # the mount root (fields[3]) is not checked: inside a cgroup namespace it reads "/.."
    if len(fields) < 5 or len(tail) < 3:
        return None
    mountpoint = fields[4].replace("\\040", " ")
    fstype, super_options = tail[0], tail[2]
    if fstype == "cgroup2":
        try:
            controllers = Path(mountpoint, "cgroup.controllers").read_text().split()
        except OSError:
            controllers = []
        return Hierarchy(mountpoint, 2, frozenset(controllers))
    if fstype == "cgroup":
        options = [o for o in super_options.split(",") if o not in ("rw", "ro")]
        controllers = [o for o in options if "=" not in o and o not in ("none", "noprefix",
                                                                       "xattr", "cpuset_v2_mode")]
        return Hierarchy(mountpoint, 1, frozenset(controllers), ",".join(options))
    return None


def cgroup_parent() -> str:
    return os.environ.get("HARDRUN_CGROUP_PARENT", DEFAULT_PARENT).strip("/")


# ---------------------------------------------------------------------------- cgroup

def _warn(message: str) -> None:
    print(f"hardrun: warning: {message}", file=sys.stderr)


def _write(path: Path, value) -> None:
    with open(path, "w") as handle:
        handle.write(str(value))


class ContainerCgroup:
    """One container's cgroup directories (one per v1 hierarchy, or one on v2)."""

    def __init__(self, container_id: str, limits: Limits, layout: Layout, state=None,
                 strict: bool = True, warn: Callable[[str], None] = _warn):
        self.container_id = container_id
        self.limits = limits
        self.layout = layout
        self.state = state
        self.strict = strict
        self.warn = warn
        self.paths: dict[str, Path] = {}     # controller -> its cgroup directory
        self.skipped: list[str] = []         # flags whose limit was not applied

    # ---- creation

    @classmethod
    def create(cls, container_id: str, limits: Limits, state=None, *, strict: bool = True,
               layout: Layout | None = None, warn: Callable[[str], None] = _warn
               ) -> "ContainerCgroup":
        """Make the cgroup(s) and write every limit; raise LimitError (strict) or warn."""
        cgroup = cls(container_id, limits, layout or detect_layout(), state, strict, warn)
        try:
            cgroup._make_directories()
            cgroup._apply_limits()
        except BaseException:
            cgroup.destroy()
            raise
        return cgroup

    def _make_directories(self) -> None:
        parent = cgroup_parent()
        planned = {}
        for controller in WANTED_CONTROLLERS:
            hierarchy = self.layout.hierarchy_for(controller)
            if hierarchy is not None:
                planned[controller] = (hierarchy, Path(hierarchy.mountpoint, parent, self.container_id))
        if self.state is not None:
            # recorded first (one write for all): a crash leaves a trace
            self.state.record_all("cgroups", list(dict.fromkeys(str(path) for _, path in planned.values())))
        for controller, (hierarchy, path) in planned.items():
            if path not in self.paths.values():
                if not self._make_one(hierarchy, path):
                    continue
            self.paths[controller] = path

    def _make_one(self, hierarchy: Hierarchy, path: Path) -> bool:
        try:
            if hierarchy.version == 2:
                self._enable_v2_controllers(hierarchy, path.parent)
            path.parent.mkdir(exist_ok=True)
            path.mkdir()
            return True
        except OSError as error:
            self._cannot(f"cannot create cgroup {path}: {error.strerror}",
                         flags=self._flags_needing(hierarchy), hint=_privilege_hint(error))
            return False

    def _enable_v2_controllers(self, hierarchy: Hierarchy, parent: Path) -> None:
        wanted = [c for c in V2_ENABLE if c in hierarchy.controllers
                  and self.layout.hierarchy_for(c) is hierarchy]
        root = Path(hierarchy.mountpoint)
        parent.mkdir(exist_ok=True)
        for directory in (root, parent):
            enabled = (directory / "cgroup.subtree_control").read_text().split()
            for controller in wanted:
                if controller not in enabled:
                    _write(directory / "cgroup.subtree_control", f"+{controller}")

    def _flags_needing(self, hierarchy: Hierarchy) -> list[str]:
        flags = []
        for controller, flag in (("memory", "--memory"), ("pids", "--pids-limit"),
                                 ("cpu", "--cpus"), ("cpu", "--cpu-shares")):
            if self.layout.hierarchy_for(controller) is hierarchy and self._requested(flag):
                flags.append(flag)
        return flags

    def _requested(self, flag: str) -> bool:
        limits = self.limits
        return {"--memory": limits.memory is not None,
                "--memory-swap": limits.memory_swap is not None,
                "--pids-limit": limits.pids is not None and limits.pids > 0,
                "--cpus": limits.cpus is not None,
                "--cpu-shares": limits.cpu_shares is not None}[flag]

    # ---- limits

    def _apply_limits(self) -> None:
        for flag, controller, writes in self._planned_writes():
            if not self._requested(flag):
                continue
            path = self.paths.get(controller)
            if path is None:
                if self.layout.hierarchy_for(controller) is None:
                    self._cannot(f"the {controller} cgroup controller is not available on this "
                                 f"host", flags=[flag])
                continue       # creating the directory failed: already reported
            self._write_limit(flag, path, writes)

    def _planned_writes(self):
        """(flag, controller, [(file, value)...]) for the layout of each controller."""
        limits = self.limits
        v2 = {c: (self.layout.hierarchy_for(c) or Hierarchy("", 1)).version == 2
              for c in ("memory", "pids", "cpu")}
        swap = limits.effective_memory_swap
        if v2["memory"]:
            yield "--memory", "memory", [("memory.max", limits.memory)]
            if swap is not None and limits.memory is not None:
                value = "max" if swap == -1 else swap - limits.memory
                yield "--memory-swap", "memory", [("memory.swap.max", value)]
        else:
            yield "--memory", "memory", [("memory.limit_in_bytes", limits.memory)]
            if swap is not None:
                yield "--memory-swap", "memory", [("memory.memsw.limit_in_bytes", swap)]
        yield "--pids-limit", "pids", [("pids.max", limits.pids)]
        if limits.cpus is not None:
            quota = max(1000, round(limits.cpus * CPU_PERIOD_US))
            if v2["cpu"]:
                yield "--cpus", "cpu", [("cpu.max", f"{quota} {CPU_PERIOD_US}")]
            else:
                yield "--cpus", "cpu", [("cpu.cfs_period_us", CPU_PERIOD_US),
                                        ("cpu.cfs_quota_us", quota)]
        if limits.cpu_shares is not None:
            if v2["cpu"]:
                yield "--cpu-shares", "cpu", [("cpu.weight", shares_to_weight(limits.cpu_shares))]
            else:
                yield "--cpu-shares", "cpu", [("cpu.shares", max(limits.cpu_shares, 2))]

    def _write_limit(self, flag: str, path: Path, writes) -> None:
        for name, value in writes:
            target = path / name
            if not target.exists():
                implicit = flag == "--memory-swap" and self.limits.memory_swap is None
                if implicit:     # Docker's implied swap: nothing to do without swap accounting
                    return
                self._cannot(f"{target} does not exist (kernel without this accounting; "
                             f"for swap, boot with swapaccount=1)", flags=[flag])
                return
            try:
                _write(target, value)
            except OSError as error:
                self._cannot(f"cannot write {value} to {target}: {error.strerror}",
                             flags=[flag], hint=_privilege_hint(error))
                return

    def _cannot(self, reason: str, flags: list[str], hint: str | None = None) -> None:
        if not flags:
            return            # nothing was asked of this controller
        if self.strict:
            raise LimitError(f"{', '.join(flags)} cannot be applied: {reason}",
                             hint=hint or "or pass --limits best-effort to run without it")
        for flag in flags:
            if flag not in self.skipped:
                self.skipped.append(flag)
                self.warn(f"{flag} not applied (--limits best-effort): {reason}")

    # ---- runtime

    def attach(self, pid: int) -> None:
        """Move `pid` into every container cgroup (call before the child runs the payload)."""
        for path in dict.fromkeys(self.paths.values()):
            try:
                _write(path / "cgroup.procs", pid)
            except OSError as error:
                self._cannot(f"cannot move process {pid} into {path}: {error.strerror}",
                             flags=self._flags_for_path(path) or ["cgroup"])

    def _flags_for_path(self, path: Path) -> list[str]:
        hierarchy = next((h for h in self.layout.hierarchies
                          if str(path).startswith(h.mountpoint + "/")), None)
        return self._flags_needing(hierarchy) if hierarchy else []

    def read(self, controller: str, name: str) -> str:
        return (self.paths[controller] / name).read_text()

    def oom_kills(self) -> int:
        """How many processes the kernel OOM killer killed in this cgroup."""
        path = self.paths.get("memory")
        if path is None:
            return 0
        for name in ("memory.events", "memory.oom_control"):
            try:
                text = (path / name).read_text()
            except FileNotFoundError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def oom_report(self, exit_status: int) -> str | None:
        """The line to print when the OOM killer struck (exit 137 means it got the payload)."""
        if self.oom_kills() == 0:
            return None
        limit = f" (memory limit {format_bytes(self.limits.memory)})" if self.limits.memory else ""
        if exit_status == 128 + signal.SIGKILL:
            return f"hardrun: container killed by the OOM killer{limit}"
        return f"hardrun: warning: the OOM killer killed a process in the container{limit}"

    def destroy(self, timeout: float = 10.0) -> list[str]:
        """Kill what is left inside, wait until empty, rmdir; return problems."""
        problems = remove_cgroups(list(dict.fromkeys(self.paths.values())), timeout)
        if self.state is not None and not problems:
            self.state.forget_all("cgroups")
        self.paths = {}
        return problems


def _privilege_hint(error: OSError) -> str | None:
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "run hardrun as root, or pass --limits best-effort to run without limits"
    return None


# ---------------------------------------------------------------------------- removal

def cgroup_pids(path: Path) -> list[int]:
    try:
        return [int(pid) for pid in (path / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def kill_all(paths: list[Path]) -> None:
    """SIGKILL every process in the cgroups, frozen first so none can fork meanwhile."""
    for path in paths:
        if (path / "cgroup.kill").exists():
            _write(path / "cgroup.kill", 1)
            continue
        freezer = _freezer_file(path)
        if freezer:
            _write(freezer[0], freezer[1])
        for pid in cgroup_pids(path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if freezer:
            _write(freezer[0], freezer[2])


def _freezer_file(path: Path):
    if (path / "freezer.state").exists():
        return path / "freezer.state", "FROZEN", "THAWED"
    if (path / "cgroup.freeze").exists():
        return path / "cgroup.freeze", 1, 0
    return None


def remove_cgroups(paths: list[Path], timeout: float = 10.0) -> list[str]:
    """Kill, wait until every cgroup is empty, then rmdir each; problems as lines."""
    existing = [path for path in paths if path.is_dir()]
    deadline = time.monotonic() + timeout
    while existing:
        if any(cgroup_pids(path) for path in existing):
            kill_all(existing)
        for path in list(existing):
            try:
                path.rmdir()
                existing.remove(path)
            except FileNotFoundError:
                existing.remove(path)
            except OSError as error:
                if error.errno != errno.EBUSY:
                    return [f"cannot remove cgroup {path}: {error.strerror}"]
        if existing and time.monotonic() > deadline:
            return [f"cgroup {path} still busy after {timeout:.0f} s" for path in existing]
        if existing:
            time.sleep(0.01)
    return []


def undo(state) -> list[str]:
    """Remove the cgroups a (dead) container's state records."""
    problems = remove_cgroups([Path(p) for p in state.resources("cgroups")])
    if not problems:
        for path in state.resources("cgroups"):
            state.forget("cgroups", path)
    return problems


def orphaned_cgroups(layout: Layout | None = None, known_ids: set | None = None) -> list[Path]:
    """Container cgroups under the hardrun parent that no state directory accounts for."""
    layout = layout or detect_layout()
    known_ids = known_ids or set()
    found = []
    for hierarchy in layout.hierarchies:
        parent = Path(hierarchy.mountpoint, cgroup_parent())
        try:
            children = [child for child in parent.iterdir() if child.is_dir()]
        except OSError:
            continue
        found += [child for child in children if child.name not in known_ids]
    return found


# ---------------------------------------------------------------------------- inside

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096


def mount_cgroup_view(target: str, layout: Layout | None = None, mount=None) -> None:
    """Mount a read-only cgroup filesystem at `target` (the container's /sys/fs/cgroup).

    Call in the child after it unshared its cgroup namespace (after `attach`), with the
    new root's /sys mounted: each hierarchy then shows the container's cgroup as its root.
    `mount(source, target, fstype, flags, data)` defaults to libc's mount(2).
    """
    layout = layout or detect_layout()
    mount = mount or _libc_mount
    locked = MS_NOSUID | MS_NODEV | MS_NOEXEC
    v1 = [h for h in layout.hierarchies if h.version == 1]
    if not v1:
        mount("cgroup2", target, "cgroup2", locked | MS_RDONLY, "")
        return
    mount("tmpfs", target, "tmpfs", locked, "mode=755,size=64k")
    for hierarchy in layout.hierarchies:
        name = os.path.basename(hierarchy.mountpoint)
        directory = os.path.join(target, name)
        os.mkdir(directory, 0o755)
        if hierarchy.version == 2:
            mount("cgroup2", directory, "cgroup2", locked | MS_RDONLY, "")
        else:
            mount("cgroup", directory, "cgroup", locked | MS_RDONLY, hierarchy.options)
    # the tmpfs holding the mount points last, so nothing can be added beside them
    mount("", target, "", MS_REMOUNT | MS_BIND | MS_RDONLY | locked, "")


def _libc_mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.mount(source.encode(), target.encode(), fstype.encode() or None,
                        ctypes.c_ulong(flags), data.encode() or None)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount {fstype or 'remount'} on {target}: {os.strerror(code)}")
