"""The container's own cgroup: resource limits, OOM detection, and removal.

Layouts: each controller is looked up on its own in /proc/self/mountinfo, so one code
path serves a unified v2 host, a pure v1 host and a hybrid one (v1 controllers under
/sys/fs/cgroup/<controller> plus a v2 mount that holds few or no controllers, as on
Debian hosts booted with systemd's hybrid mode). A controller bound to a v1 hierarchy
is used there; otherwise the v2 mount is used if its root lists the controller.

Device rules are the exception: cgroup v2 has no devices controller to list, and a
BPF_PROG_TYPE_CGROUP_DEVICE program (device_bpf.py) attached to the container's v2 directory
enforces them instead. The v1 devices controller is used where one is mounted, the v2 program
otherwise; HARDRUN_DEVICE_CGROUP=bpf takes the program even on a hybrid host (whose v2 mount
holds no controller but runs device programs all the same), HARDRUN_DEVICE_CGROUP=v1 never.

The parent calls, in this order:

    limits = Limits.from_spec(spec)                  # validates; default pids limit
    cgroup = ContainerCgroup.create(container_id, limits, state, strict=...)
    join = cgroup.open_join()                        # before clone: the child joins itself
    ... clone(flags, join.directory_fd); the child calls join.enter() first ...
    message = cgroup.oom_report(exit_status)         # None, or the line to print
    cgroup.destroy()                                 # kills leftovers, rmdir

`attach(pid)` moves another process in instead (slow: see CgroupJoin). The child must
unshare its cgroup namespace *after* joining (so the namespace root is the container's
cgroup, not hardrun's) and may call `mount_cgroup_view` to give the
container a read-only /sys/fs/cgroup.

This module is imported by every `hardrun run` (the default pids limit): plain classes
and os.path, no dataclasses, pathlib or signal (their imports cost milliseconds).
"""
from __future__ import annotations

import errno
import os
import sys

from ..errors import HardrunError
from ..spec.defaults import DEFAULT_PIDS_LIMIT
# the removal, apart for `hardrun-oci delete`; its names are used from here too (gc, tests)
from .cgroup_removal import cgroup_pids, freezer_file, kill_all, remove_cgroups  # noqa: F401
from .cgroup_removal import read_text as _read, write_value as _write

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import NoReturn

SIGKILL = 9

CPU_PERIOD_US = 100_000
MIN_MEMORY = 6 * 1024 * 1024          # Docker's minimum for --memory
DEFAULT_PARENT = "hardrun"
# Controllers a container cgroup is made in (freezer: v1 only, to stop processes before
# killing them; v2 has cgroup.kill / cgroup.freeze in every cgroup).
WANTED_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
V2_ENABLE = ("memory", "pids", "cpu")
STRICT, BEST_EFFORT = "strict", "best-effort"
DEVICES_FIELD = "linux.resources.devices"     # only OCI bundles ask for a device cgroup
BLOCK_IO_FIELD = "linux.resources.blockIO"     # only OCI bundles ask for blkio (BlockIO below)
# OCI throttle field -> (cgroup v1 file, cgroup v2 io.max key)
THROTTLES = {"throttleReadBpsDevice": ("blkio.throttle.read_bps_device", "rbps"),
             "throttleWriteBpsDevice": ("blkio.throttle.write_bps_device", "wbps"),
             "throttleReadIOPSDevice": ("blkio.throttle.read_iops_device", "riops"),
             "throttleWriteIOPSDevice": ("blkio.throttle.write_iops_device", "wiops")}


class BlockIO:
    """`linux.resources.blockIO` as read (hardrun.runtime.bundle): a weight (10-1000), a leaf
    weight, per-device weights ((major, minor, weight or None, leaf weight or None)) and
    throttles (field -> ((major, minor, rate), ...))."""

    __slots__ = ("weight", "leaf_weight", "weight_device", "throttles")

    def __init__(self, weight: int | None = None, leaf_weight: int | None = None, weight_device: tuple = (),
                 throttles: dict | None = None):
        self.weight, self.leaf_weight = weight, leaf_weight
        self.weight_device, self.throttles = weight_device, dict(throttles or {})

    def fields(self) -> list[str]:
        """The fields this asks for, as named in errors."""
        asked = [name for name, value in (("weight", self.weight), ("leafWeight", self.leaf_weight),
                                          ("weightDevice", self.weight_device)) if value]
        return [f"{BLOCK_IO_FIELD}.{name}" for name in asked + [k for k, v in self.throttles.items() if v]]

    def writes(self, version: int, exists) -> list[tuple[str, list]]:
        """(field, [(file, value)...]) for a cgroup of `version`; `exists(file)`: whether the
        cgroup has that file (BFQ's weight files are used where the plain ones are missing, as
        runc does)."""
        return _block_io_v2(self, exists) if version == 2 else _block_io_v1(self, exists)


def _device(major: int, minor: int) -> str:
    return f"{major}:{minor}"


def _block_io_v1(block: BlockIO, exists) -> list[tuple[str, list]]:
    weight_file = "blkio.weight" if exists("blkio.weight") or not exists("blkio.bfq.weight") else "blkio.bfq.weight"
    found: list[tuple[str, list]] = []      # (field, [(file, value)]), as writes() returns
    if block.weight:
        found.append(("weight", [(weight_file, block.weight)]))
    if block.leaf_weight:
        found.append(("leafWeight", [("blkio.leaf_weight", block.leaf_weight)]))
    if block.weight_device:
        writes = [(weight_file + "_device", f"{_device(major, minor)} {weight}")
                  for major, minor, weight, _ in block.weight_device if weight]
        writes += [("blkio.leaf_weight_device", f"{_device(major, minor)} {leaf}")
                   for major, minor, _, leaf in block.weight_device if leaf]
        found.append(("weightDevice", writes))
    for name, entries in block.throttles.items():
        if entries:
            found.append((name, [(THROTTLES[name][0], f"{_device(major, minor)} {rate}")
                                 for major, minor, rate in entries]))
    return [(f"{BLOCK_IO_FIELD}.{name}", writes) for name, writes in found]


def blkio_to_io_weight(weight: int) -> int:
    """cgroup v1 blkio.weight [10, 1000] -> v2 io.weight [1, 10000], as runc converts."""
    return 1 + (min(max(weight, 10), 1000) - 10) * 9999 // 990


def _block_io_v2(block: BlockIO, exists) -> list[tuple[str, list]]:
    bfq = exists("io.bfq.weight")
    found = []
    if block.weight:
        found.append(("weight", [("io.bfq.weight", block.weight) if bfq
                                 else ("io.weight", f"default {blkio_to_io_weight(block.weight)}")]))
    if block.leaf_weight:
        found.append(("leafWeight", [("io.leaf_weight (cgroup v2 has no leaf weight)", block.leaf_weight)]))
    if block.weight_device:
        found.append(("weightDevice", [
            ("io.bfq.weight", f"{_device(major, minor)} {weight}") if bfq
            else ("io.weight", f"{_device(major, minor)} {blkio_to_io_weight(weight)}")
            for major, minor, weight, _ in block.weight_device if weight]
            + [("io.leaf_weight (cgroup v2 has no leaf weight)", leaf)
               for _, _, _, leaf in block.weight_device if leaf]))
    for name, entries in block.throttles.items():
        if entries:     # a rate of 0 removes the limit, as in v1
            found.append((name, [("io.max", f"{_device(major, minor)} {THROTTLES[name][1]}={rate or 'max'}")
                                 for major, minor, rate in entries]))
    return [(f"{BLOCK_IO_FIELD}.{name}", writes) for name, writes in found]


class LimitError(HardrunError):
    """A requested limit could not be applied (hardrun's setup failure: exit 125)."""

    exit_code = 125


# ---------------------------------------------------------------------------- limits

class Limits:
    """What the container's cgroup enforces. `pids_is_default`: the pids limit is the
    default policy's, not the user's (when it cannot apply, that is a warning)."""

    __slots__ = ("memory", "memory_swap", "pids", "cpus", "cpu_shares", "pids_is_default", "devices", "block_io",
                 "devices_asked", "devices_flag", "devices_required")

    def __init__(self, memory: int | None = None, memory_swap: int | None = None,
                 pids: int | None = DEFAULT_PIDS_LIMIT, cpus: float | None = None,
                 cpu_shares: int | None = None, pids_is_default: bool = False, devices: tuple = (),
                 block_io: BlockIO | None = None, devices_asked: bool = False):
        self.memory = memory                # bytes
        self.memory_swap = memory_swap      # bytes of memory + swap; -1 unlimited
        self.pids = pids                    # None or <= 0: unlimited
        self.cpus = cpus
        self.cpu_shares = cpu_shares
        self.pids_is_default = pids_is_default
        self.devices = devices              # (file, line) writes of a v1 devices cgroup (device_rules)
        self.block_io = block_io            # None: no blkio request
        # the config listed device rules: without a v1 devices controller that is an error;
        # runc's default rules alone (an empty list) are applied where the controller exists
        self.devices_asked = devices_asked
        self.devices_flag = DEVICES_FIELD   # how errors name the device rules (hardrun run: --device)
        self.devices_required = True        # never best-effort (hardrun run: only when they narrow a --device)

    def __repr__(self) -> str:
        return "Limits(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__) + ")"

    @classmethod
    def from_spec(cls, spec, default_pids: int | None = DEFAULT_PIDS_LIMIT) -> "Limits":
        default = spec.pids_limit is None
        limits = cls(memory=spec.memory, memory_swap=spec.memory_swap,
                     pids=default_pids if default else spec.pids_limit, cpus=spec.cpus,
                     cpu_shares=spec.cpu_shares, pids_is_default=default)
        limits.validate(spec)
        return limits

    def validate(self, spec=None) -> None:
        def fail(flag: str, message: str) -> NoReturn:
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

class Hierarchy:
    __slots__ = ("mountpoint", "version", "controllers", "options")

    def __init__(self, mountpoint: str, version: int, controllers=frozenset(), options: str = ""):
        self.mountpoint = mountpoint
        self.version = version                  # 1 or 2
        self.controllers = frozenset(controllers)
        self.options = options                  # v1 mount options naming the hierarchy

    def __repr__(self) -> str:
        return (f"Hierarchy({self.mountpoint!r}, v{self.version}, "
                f"{sorted(self.controllers)}, {self.options!r})")


DEVICE_CGROUP_VARIABLE = "HARDRUN_DEVICE_CGROUP"


class Layout:
    """`device_cgroup`: where device rules go: "bpf" (a program in the v2 hierarchy, even where a
    v1 devices controller is mounted), "v1" (only that controller), "" (the v1 controller where
    mounted, else the program); None: as HARDRUN_DEVICE_CGROUP says."""

    __slots__ = ("hierarchies", "device_cgroup")

    def __init__(self, hierarchies=(), device_cgroup: str | None = None):
        self.hierarchies = tuple(hierarchies)
        self.device_cgroup = _device_cgroup_choice() if device_cgroup is None else device_cgroup

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
        if controller == "devices":
            return self._devices_hierarchy()
        for hierarchy in self.hierarchies:
            if hierarchy.version == 1 and controller in hierarchy.controllers:
                return hierarchy
        unified = self.unified
        if unified and controller in unified.controllers:
            return unified
        return None


    def _devices_hierarchy(self) -> Hierarchy | None:
        """The v1 devices hierarchy, else (or when a program is asked for) the v2 one."""
        v1 = next((h for h in self.hierarchies if h.version == 1 and "devices" in h.controllers), None)
        if self.device_cgroup == "bpf" or (v1 is None and self.device_cgroup != "v1"):
            return self.unified
        return v1


def _device_cgroup_choice() -> str:
    """HARDRUN_DEVICE_CGROUP: `bpf`, `v1`, or empty (the v1 controller where mounted)."""
    choice = os.environ.get(DEVICE_CGROUP_VARIABLE, "")
    if choice not in ("", "bpf", "v1"):
        raise HardrunError(f"{DEVICE_CGROUP_VARIABLE}={choice}: expected bpf or v1")
    return choice


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
            controllers = _read(os.path.join(mountpoint, "cgroup.controllers")).split()
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
    """HARDRUN_CGROUP_PARENT, else `hardrun`; a separate state root (HARDRUN_STATE_DIR)
    gets a parent of its own, so its `hardrun gc` never judges another root's cgroups."""
    configured = os.environ.get("HARDRUN_CGROUP_PARENT")
    if configured:
        return configured.strip("/")
    state_root = os.environ.get("HARDRUN_STATE_DIR")
    if state_root:
        import zlib
        return f"{DEFAULT_PARENT}-{zlib.crc32(os.path.abspath(state_root).encode()):08x}"
    return DEFAULT_PARENT


# ---------------------------------------------------------------------------- cgroup

def _warn(message: str) -> None:
    print(f"hardrun: warning: {message}", file=sys.stderr)


class ContainerCgroup:
    """One container's cgroup directories (one per v1 hierarchy, or one on v2)."""

    def __init__(self, container_id: str, limits: Limits, layout: Layout, state=None,
                 strict: bool = True, warn=_warn, relative: str | None = None):
        self.container_id = container_id
        self.relative = relative             # below each hierarchy's root (an OCI cgroupsPath)
        self.limits = limits
        self.layout = layout
        self.state = state
        self.strict = strict
        self.warn = warn
        self.paths: dict[str, str] = {}      # controller -> its cgroup directory
        self.skipped: list[str] = []         # flags whose limit was not applied

    # ---- creation

    @classmethod
    def create(cls, container_id: str, limits: Limits, state=None, *, strict: bool = True,
               layout: Layout | None = None, warn=_warn, relative: str | None = None) -> "ContainerCgroup":
        """Make the cgroup(s) and write every limit; raise LimitError (strict) or warn.
        `relative`: the path below each hierarchy's root, else hardrun's parent / the id."""
        cgroup = cls(container_id, limits, layout or detect_layout(), state, strict, warn, relative)
        try:
            cgroup._make_directories()
            cgroup._apply_limits()
        except BaseException:
            cgroup.destroy()
            raise
        return cgroup

    @classmethod
    def existing(cls, container_id: str, paths, layout: Layout | None = None) -> "ContainerCgroup":
        """The cgroups a container was created with (their recorded `paths`), each controller
        mapped to the directory of its hierarchy (OCI `update`)."""
        cgroup = cls(container_id, Limits(), layout or detect_layout())
        for path in paths:
            for hierarchy in cgroup.layout.hierarchies:
                if path.startswith(hierarchy.mountpoint + "/"):
                    for controller in cgroup._controllers_in(hierarchy):
                        cgroup.paths[controller] = path
        return cgroup

    def _controllers_in(self, hierarchy: Hierarchy) -> list[str]:
        found = [controller for controller in WANTED_CONTROLLERS + ("devices", "blkio", "io")
                 if self.layout.hierarchy_for(controller) is hierarchy]
        # as before device programs: a v2 directory stood for memory, pids and cpu
        return found or (["memory", "pids", "cpu"] if hierarchy.version == 2 and not hierarchy.controllers else [])

    def _make_directories(self) -> None:
        relative = self.relative or os.path.join(cgroup_parent(), self.container_id)
        planned = {}                          # controller -> (hierarchy, path)
        for controller in WANTED_CONTROLLERS + (("devices",) if self.limits.devices else ()) + \
                ((self._block_io_controller(),) if self._block_io_fields() else ()):
            hierarchy = self.layout.hierarchy_for(controller)
            if hierarchy is not None:
                planned[controller] = (hierarchy, os.path.join(hierarchy.mountpoint, relative))
        paths = list(dict.fromkeys(path for _, path in planned.values()))
        if self.state is not None and paths:
            self.state.record("cgroup", *paths)   # recorded first: a crash leaves a trace
        made = {}
        for controller, (hierarchy, path) in planned.items():
            if path not in made:
                made[path] = self._make_one(hierarchy, path)
            if made[path]:
                self.paths[controller] = path

    def _make_one(self, hierarchy: Hierarchy, path: str) -> bool:
        try:
            if hierarchy.version == 2:
                self._enable_v2_controllers(hierarchy, os.path.dirname(path))
            attempt = 1
            while True:     # until made, taken over or the third attempt fails
                try:
                    os.mkdir(path)
                    return True
                except FileExistsError:
                    # a leftover of a container of this name that died before its clean-up:
                    # taken over when empty (as runc does), never when something runs in it
                    if cgroup_pids(path):
                        raise
                    return True
                except FileNotFoundError:   # no parent yet (or one removed meanwhile): make it
                    if attempt == 3:
                        raise
                    attempt += 1
                    os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as error:
            self._cannot(f"cannot create cgroup {path}: {error.strerror}",
                         flags=self._flags_needing(hierarchy), hint=_privilege_hint(error))
            return False

    def _enable_v2_controllers(self, hierarchy: Hierarchy, parent: str) -> None:
        wanted = [c for c in V2_ENABLE + (("io",) if self._block_io_fields() else ()) if c in hierarchy.controllers
                  and self.layout.hierarchy_for(c) is hierarchy]
        os.makedirs(parent, exist_ok=True)
        for directory in (hierarchy.mountpoint, parent):
            control = os.path.join(directory, "cgroup.subtree_control")
            enabled = _read(control).split()
            for controller in wanted:
                if controller not in enabled:
                    _write(control, f"+{controller}")

    def _flags_needing(self, hierarchy: Hierarchy) -> list[str]:
        flags = []
        for controller, flag in (("memory", "--memory"), ("pids", "--pids-limit"),
                                 ("cpu", "--cpus"), ("cpu", "--cpu-shares"),
                                 ("devices", DEVICES_FIELD)):
            if self.layout.hierarchy_for(controller) is hierarchy and self._requested(flag):
                flags.append(flag)
        if self.layout.hierarchy_for(self._block_io_controller()) is hierarchy:
            flags += self._block_io_fields()
        return flags

    def _block_io_fields(self) -> list[str]:
        return self.limits.block_io.fields() if self.limits.block_io is not None else []

    def _block_io_controller(self) -> str:
        """blkio (v1), else io (v2)."""
        return "blkio" if self.layout.hierarchy_for("blkio") is not None else "io"

    def _requested(self, flag: str) -> bool:
        limits = self.limits
        return {"--memory": limits.memory is not None,
                "--memory-swap": limits.memory_swap is not None,
                "--pids-limit": limits.pids is not None and limits.pids > 0,
                "--cpus": limits.cpus is not None,
                "--cpu-shares": limits.cpu_shares is not None,
                DEVICES_FIELD: bool(limits.devices)}.get(flag, flag in self._block_io_fields())

    # ---- limits

    def apply_limits(self, limits: Limits) -> None:
        """Write `limits` to the existing cgroups (OCI `update`)."""
        self.limits = limits
        self._apply_limits()

    def _apply_limits(self) -> None:
        for flag, controller, writes in self._planned_writes():
            if not self._requested(flag):
                continue
            path = self.paths.get(controller)
            if path is None:
                if flag == DEVICES_FIELD and not self.limits.devices_asked:
                    continue    # only runc's defaults, and no v1 devices controller to hold them
                if self.layout.hierarchy_for(controller) is None:
                    self._cannot(f"the {'blkio/io' if flag.startswith(BLOCK_IO_FIELD) else controller} cgroup "
                                 "controller is not available on this host" +
                                 (" (no v1 devices controller and no cgroup v2 mount for a BPF device program)"
                                  if controller == "devices" else ""), flags=[flag])
                continue       # creating the directory failed: already reported
            if flag == DEVICES_FIELD and self._device_program_wanted():
                self._attach_device_program(path, writes)
                continue
            self._write_limit(flag, path, writes)

    def _device_program_wanted(self) -> bool:
        hierarchy = self.layout.hierarchy_for("devices")
        return hierarchy is not None and hierarchy.version == 2

    def _attach_device_program(self, path: str, writes) -> None:
        from .device_bpf import attach
        try:
            attach(path, writes)
        except OSError as error:     # device_bpf's one line: what failed, where, the errno
            self._cannot(str(error.strerror), flags=[DEVICES_FIELD], hint=_privilege_hint(error))

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
        yield DEVICES_FIELD, "devices", list(limits.devices)     # in order: the last matching rule wins
        if limits.block_io is not None:
            controller = self._block_io_controller()
            hierarchy = self.layout.hierarchy_for(controller)
            path = self.paths.get(controller)
            for name, writes in limits.block_io.writes(hierarchy.version if hierarchy else 1,
                                                       lambda file: path is not None and
                                                       os.path.exists(os.path.join(path, file))):
                yield name, controller, writes

    def _write_limit(self, flag: str, path: str, writes) -> None:
        for name, value in writes:
            target = os.path.join(path, name)
            if not os.path.exists(target):
                implicit = flag == "--memory-swap" and self.limits.memory_swap is None
                if implicit:     # Docker's implied swap: nothing to do without swap accounting
                    return
                why = ("the kernel has no such blkio/io setting here: weights need the BFQ I/O scheduler"
                       if flag.startswith(BLOCK_IO_FIELD) else
                       "kernel without this accounting; for swap, boot with swapaccount=1")
                self._cannot(f"{target} does not exist ({why})", flags=[flag])
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
        only_default = flags == ["--pids-limit"] and self.limits.pids_is_default
        restricting = DEVICES_FIELD in flags and self.limits.devices_required
        flags = [self.limits.devices_flag if flag == DEVICES_FIELD else flag for flag in flags]
        if restricting:
            raise LimitError(f"{', '.join(flags)} cannot be applied: {reason}",
                             hint="run hardrun as root" if hint else None)
        if self.strict and not only_default:
            raise LimitError(f"{', '.join(flags)} cannot be applied: {reason}",
                             hint=hint or "or pass --limits best-effort to run without it")
        for flag in flags:
            if flag not in self.skipped:
                self.skipped.append(flag)
                why = ("the default pids limit" if only_default
                       else f"{flag} not applied (--limits best-effort)")
                self.warn(f"{why}: {reason}")

    # ---- runtime

    def open_join(self) -> "CgroupJoin":
        """What the container's first process needs to enter every container cgroup."""
        join, opened = CgroupJoin(), set()
        try:
            for controller, path in self.paths.items():
                if path not in opened:
                    opened.add(path)
                    hierarchy = self.layout.hierarchy_for(controller)
                    # only called after create(), whose paths are all of controllers it found a hierarchy for
                    assert hierarchy is not None, f"no hierarchy for {controller}"
                    self._open_for_join(join, hierarchy, path)
        except BaseException:
            join.close()
            raise
        return join

    def _open_for_join(self, join: "CgroupJoin", hierarchy: Hierarchy, path: str) -> None:
        try:
            if hierarchy.version == 2:
                join.directory_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            else:
                join.tasks_fds.append(os.open(os.path.join(path, "tasks"), os.O_WRONLY | os.O_CLOEXEC))
        except OSError as error:
            self._cannot(f"cannot open {path} to join it: {error.strerror}",
                         flags=self._flags_needing(hierarchy) or ["cgroup"])

    def attach(self, pid: int) -> None:
        """Move `pid` into every container cgroup (call before the child runs the payload)."""
        for path in dict.fromkeys(self.paths.values()):
            try:
                _write(os.path.join(path, "cgroup.procs"), pid)
            except OSError as error:
                self._cannot(f"cannot move process {pid} into {path}: {error.strerror}",
                             flags=self._flags_for_path(path) or ["cgroup"])

    def _flags_for_path(self, path: str) -> list[str]:
        hierarchy = next((h for h in self.layout.hierarchies
                          if path.startswith(h.mountpoint + "/")), None)
        return self._flags_needing(hierarchy) if hierarchy else []

    def read(self, controller: str, name: str) -> str:
        return _read(os.path.join(self.paths[controller], name))

    def oom_kills(self) -> int:
        """How many processes the kernel OOM killer killed in this cgroup."""
        path = self.paths.get("memory")
        if path is None:
            return 0
        for name in ("memory.events", "memory.oom_control"):
            try:
                text = _read(os.path.join(path, name))
            except FileNotFoundError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def oom_report(self, exit_status: int) -> str | None:
        """What to print (after `hardrun: `) when the OOM killer struck: exit status 137
        means it got the payload, otherwise some other process of the container."""
        if self.oom_kills() == 0:
            return None
        limit = f" (memory limit {format_bytes(self.limits.memory)})" if self.limits.memory else ""
        if exit_status == 128 + SIGKILL:
            return f"container killed by the OOM killer{limit}"
        return f"warning: the OOM killer killed a process in the container{limit}"

    def freeze(self, frozen: bool = True) -> bool:
        """Freeze (or thaw) every process of the container at once; False when there is
        no freezer, or the kernel did not report the cgroup frozen within a second."""
        for path in dict.fromkeys(self.paths.values()):
            freezer = freezer_file(path)
            if freezer:
                _write(freezer[0], freezer[1] if frozen else freezer[2])
                return not frozen or _wait_frozen(path)
        return False

    def destroy(self, timeout: float = 10.0) -> list[str]:
        """Kill what is left inside, wait until empty, rmdir; return problems."""
        problems = _remove_with_parents(list(dict.fromkeys(self.paths.values())), timeout)
        self.paths = {}
        return problems


class CgroupJoin:
    """How the container's first process enters its cgroups by itself. Moving *another*
    process takes a global lock whose writer waits for an RCU grace period (5-20 ms on
    this kind of host) on every start; these two ways take no such lock:

    - v2: clone3(CLONE_INTO_CGROUP, directory_fd): the child starts inside;
    - v1: the child writes "0" to each `tasks` fd in `enter()`. That moves the writing
      thread alone, without the global lock (Linux 6.1 and later; older kernels wait).
      The fds are opened here, as root: v1 checks the opener's credentials, not the
      writer's, so the child may already be in its user namespace.
    """
    __slots__ = ("directory_fd", "tasks_fds")

    def __init__(self):
        self.directory_fd: int | None = None
        self.tasks_fds: list[int] = []

    def enter(self) -> None:
        """In the child, single-threaded, before anything else runs."""
        for fd in self.tasks_fds:
            os.write(fd, b"0")
        self.close()

    def close(self) -> None:
        for fd in self.tasks_fds + ([self.directory_fd] if self.directory_fd is not None else []):
            os.close(fd)
        self.directory_fd, self.tasks_fds = None, []


def _privilege_hint(error: OSError) -> str | None:
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "run hardrun as root, or pass --limits best-effort to run without limits"
    return None


# ---------------------------------------------------------------------------- removal

def _wait_frozen(path: str, timeout: float = 1.0) -> bool:
    from .process import poll_until
    return poll_until(lambda: _freezer_state(path) == "FROZEN", timeout)


def _freezer_state(path: str) -> str:
    try:  # v1 reports FREEZING until every task is frozen; v2 says so in cgroup.events
        return _read(os.path.join(path, "freezer.state")).strip()
    except FileNotFoundError:
        return "FROZEN" if "frozen 1" in _read(os.path.join(path, "cgroup.events")) else ""


def remove_empty_parents(paths: list[str]) -> None:
    """The parents of per-state-root cgroups go with their last container (`hardrun/`
    itself stays, like any runtime's parent cgroup)."""
    for path in paths:
        parent = os.path.dirname(path)
        if os.path.basename(parent) != DEFAULT_PARENT:
            try:
                os.rmdir(parent)
            except OSError:          # not empty (another container), or gone already
                pass


def undo(state) -> list[str]:
    """Remove the cgroups a (dead) container's state records. Only the container's own
    cgroup under hardrun's parent in a mounted hierarchy is touched: removing one kills
    what runs in it, so a record naming any other directory (one that merely ends the
    same way) is left alone."""
    recorded = state.resources("cgroup")
    own = _container_cgroups(state.id)
    foreign = [f"cgroup {path} is not container {state.id}'s: left alone"
               for path in recorded if path not in own]
    return foreign + _remove_with_parents([path for path in recorded if path in own])


def _container_cgroups(container_id: str) -> set[str]:
    """Where `_make_directories` puts the container's cgroups, in every mounted hierarchy."""
    return {os.path.join(hierarchy.mountpoint, cgroup_parent(), container_id)
            for hierarchy in detect_layout().hierarchies}


def _remove_with_parents(paths: list[str], timeout: float = 10.0) -> list[str]:
    problems = remove_cgroups(paths, timeout)
    if not problems:
        remove_empty_parents(paths)
    return problems


def orphaned_cgroups(layout: Layout | None = None, known_ids: set | None = None) -> list[str]:
    """Container cgroups under the hardrun parent that no state directory accounts for."""
    layout = layout or detect_layout()
    known_ids = known_ids or set()
    found = []
    for hierarchy in layout.hierarchies:
        parent = os.path.join(hierarchy.mountpoint, cgroup_parent())
        try:
            children = [entry for entry in os.scandir(parent) if entry.is_dir()]
        except OSError:
            continue
        found += [entry.path for entry in children if entry.name not in known_ids]
    return found


# ---------------------------------------------------------------------------- inside

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096


def mount_cgroup_view(target: str, layout: Layout | None = None, k=None) -> None:
    """Mount a read-only cgroup filesystem at `target` (the container's /sys/fs/cgroup).

    Call in the child after it unshared its cgroup namespace (after joining), with the
    new root's /sys mounted: each hierarchy then shows the container's cgroup as its root.
    `k`: the system calls, hardrun.runtime.syscalls (the default) or a test's recording fake.
    """
    if k is None:
        from . import syscalls
        k = syscalls
    layout = layout or detect_layout()
    locked = MS_NOSUID | MS_NODEV | MS_NOEXEC
    v1 = [h for h in layout.hierarchies if h.version == 1]
    if not v1:
        k.mount("cgroup2", target, "cgroup2", locked | MS_RDONLY)
        return
    k.mount("tmpfs", target, "tmpfs", locked, "mode=755,size=64k")
    for hierarchy in layout.hierarchies:
        name = os.path.basename(hierarchy.mountpoint)
        directory = os.path.join(target, name)
        k.mkdir(directory, 0o755)
        if hierarchy.version == 2:
            k.mount("cgroup2", directory, "cgroup2", locked | MS_RDONLY)
        else:
            k.mount("cgroup", directory, "cgroup", locked | MS_RDONLY, hierarchy.options or None)
    # the tmpfs holding the mount points last, so nothing can be added beside them
    k.mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | locked)
