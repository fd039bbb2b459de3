"""The OCI reader: a bundle's `config.json` -> hardrun's one runtime plan (config.RuntimeConfig).

`hardrun-oci` (hardrun.runtime.oci) runs what this module returns with the same child
steps `hardrun run` uses (hardrun.runtime.child). The config is honoured as the runtime
spec says, with no default of hardrun's added (the floor, `raise_floor`, is applied to
the document beforehand, and every change it makes is listed). Whatever the config asks
for that hardrun cannot apply is a BundleError naming the field (`linux.intelRdt: not
supported`): nothing is silently dropped.

How the config's fields map onto the plan:

- the kernel file systems (`/proc`, `/sys`, `/dev`, `/dev/pts`, `/dev/shm` as tmpfs,
  `/dev/mqueue`, `/sys/fs/cgroup`) are mounted by the child as `hardrun run` mounts them
  (always nosuid, noexec, and nodev but for /dev); `bind` and `tmpfs` mounts become
  MountPlans (nosuid and nodev always);
- `linux.namespaces` with a `path` are joined (network, ipc, uts, cgroup: by the child;
  pid: by the parent for the child it clones; with a new user namespace, all but cgroup
  before it by hardrun-oci, hardrun.runtime.oci_userns); the others are created;
- `linux.seccomp` is compiled with hardrun's libseccomp code (seccomp_profile), the
  rlimits set by the parent (prlimit), the five capability sets set as given.
"""
from __future__ import annotations

import os
import posixpath

from ..errors import UsageError
from ..spec.capabilities import NUMBERS
from ..spec.defaults import DOCKER_DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS
from ..spec.oci import CAPABILITY_SETS, NAMESPACE_TYPES
from ..spec.oci_config import OciFields, TextLocator, decode, with_linux_decoded
from ..spec.record import dataclass, field
from .. import jsonlite
from .mounts import MountPlan, TMPFS_DATA_KEYS

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import NoReturn

    from ..spec.oci_config import OciConfig, OciLinux, OciProcess, OciResources
    from .config import RuntimeConfig

CONFIG_FILE = "config.json"
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# The mounts the child makes itself, as `hardrun run` does (destination -> type).
KERNEL_MOUNTS = {"/proc": ("proc",), "/sys": ("sysfs",), "/dev": ("tmpfs",), "/dev/pts": ("devpts",),
                 "/dev/mqueue": ("mqueue",), "/sys/fs/cgroup": ("cgroup", "cgroup2")}
JOINABLE_BY_CHILD = ("network", "ipc", "uts", "cgroup")
# rlimit type -> hardrun's ulimit name (hardrun.runtime.ulimits.RLIMITS)
_MOUNT_OPTIONS_IGNORED = ("nosuid", "nodev", "rprivate", "private", "rslave", "slave", "relatime",
                          "norelatime", "strictatime", "noatime", "nodiratime", "bind", "rbind")


class BundleError(UsageError):
    """config.json asks for something hardrun cannot apply, or is malformed."""


@dataclass(frozen=True)
class FloorChange:
    """One protection raised above what the config asked (`field`: the config field it changed)."""
    field: str
    change: str


@dataclass(frozen=True)
class Bundle:
    """A bundle read and checked: the plan, and what only the OCI runtime uses around it."""
    path: str
    config: RuntimeConfig
    document: dict                    # config.json as run (the floor applied)
    oci: OciConfig = field(compare=False)   # the record it was mapped from (document is its document)
    hooks: dict = field(default_factory=dict)       # kind -> list of {path, args, env, timeout}
    annotations: dict = field(default_factory=dict)
    cgroups_path: str | None = None
    limits: object = None             # cgroups.Limits
    rlimits: tuple = ()               # spec.run.Ulimit
    seccomp_profile: str | None = None  # the config's linux.seccomp as JSON text
    floor: tuple = ()                 # FloorChange
    cgroup_view: bool = False         # the config mounts /sys/fs/cgroup


def load(bundle: str, floor: bool = True, no_pivot: bool = False, decoded: tuple | None = None) -> Bundle:
    """Read `<bundle>/config.json` and return the Bundle to run (BundleError on anything
    hardrun cannot apply). `floor`: raise the hardening floor first (raise_floor).
    `decoded`: the config already read and decoded (decode_text's), which is then mapped
    without reading it again (`floor` is then decode_text's)."""
    path = os.path.abspath(bundle)
    if no_pivot:
        raise BundleError("--no-pivot: not supported (hardrun always uses pivot_root)")
    if decoded is None:
        from ..userfiles import read_json_document
        document, text = read_json_document(os.path.join(path, CONFIG_FILE), error=BundleError,
                                            limit=MAX_CONFIG_BYTES)
        changes = raise_floor(document) if floor else ()
        decoded = (decode_document(document, path, text), changes)
    return from_config(decoded[0], path, decoded[1])


def decode_text(bundle: str, text: str, floor: bool = True) -> tuple[OciConfig, tuple]:
    """`<bundle>/config.json`'s text decoded once (spec/oci_config.decode), the floor raised
    first when `floor` (raise_floor): (the OciConfig, the floor's changes). What both the
    policy gate (frontends/oci.spec_of) and the loader (from_config) read; each refuses
    the values of the wrong type it reads (the loader: all of them)."""
    from ..userfiles import json_object
    document = json_object(text, os.path.join(bundle, CONFIG_FILE), error=BundleError)
    changes = raise_floor(document) if floor else ()
    return decode_document(document, bundle, text), changes


def decode_document(document: dict, bundle: str, text: str | None = None) -> OciConfig:
    """`document` as an OciConfig; `text`: the JSON it was decoded from, where the line of a
    field at fault is found (only then: the locator reads the text on its first call)."""
    return decode(document, TextLocator(document, text))


def from_config(config: OciConfig, bundle: str, floor_changes: tuple = (), seccomp_default: bool = False) -> Bundle:
    """The Bundle to run of a config decoded (decode_text); relative paths resolve from `bundle`."""
    return _Reader(config, bundle).read(floor_changes, seccomp_default=seccomp_default)


def from_document(document: dict, bundle: str, seccomp_default: bool) -> Bundle:
    """A config already read (OCI exec: the container's, as created, with the floor in it);
    relative paths resolve from `bundle`; `seccomp_default`: the floor gave it hardrun's filter."""
    return from_config(decode_document(document, bundle), bundle, seccomp_default=seccomp_default)


def with_linux_changed(loaded: Bundle) -> Bundle:
    """`loaded` mapped again after its document's `linux` object was changed in place (the user
    namespace hardrun-oci adds): only that object is decoded again, the rest of the record is
    the first decode's. No line is located then (the text read no longer holds the object)."""
    config = with_linux_decoded(loaded.oci, TextLocator(loaded.document, None))
    return from_config(config, loaded.path, loaded.floor)


def update_limits(resources: dict, bundle: str):
    """`update --resources`: a `linux.resources` object as the cgroups.Limits to write."""
    config = decode_document({"linux": {"resources": resources}}, bundle)
    reader = _Reader(config, bundle)
    reader.refuse()
    return reader.resources(config.linux.resources)


def raise_floor(document: dict) -> tuple:
    """Add, in place, the protections a correctly built image never needs where the config
    left them out; return what was changed. no_new_privs on; hardrun's own seccomp allowlist
    when there is no filter; Docker's masked and read-only kernel paths. (Binds are always
    nosuid,nodev: MountPlan.) NET_RAW taken out of an engine's default capability set
    (drop_default_net_raw). A config that does not parse is left for the reader to refuse."""
    changes = []
    process = document.get("process")
    if isinstance(process, dict) and process.get("noNewPrivileges") is not True:
        process["noNewPrivileges"] = True
        changes.append(FloorChange("process.noNewPrivileges", "set to true"))
    if isinstance(process, dict) and drop_default_net_raw(process.get("capabilities")):
        changes.append(FloorChange("process.capabilities", "NET_RAW dropped from the engine's default set"))
    linux = document.setdefault("linux", {})
    if not isinstance(linux, dict):
        return tuple(changes)
    if not linux.get("seccomp"):
        changes.append(FloorChange("linux.seccomp", "hardrun's default allowlist (the config had none)"))
    for key, defaults in (("maskedPaths", MASKED_PATHS), ("readonlyPaths", READONLY_PATHS)):
        present = linux.get(key) or []
        if isinstance(present, list):
            missing = [item for item in defaults if item not in present]
            if missing:
                linux[key] = present + missing
                changes.append(FloorChange(f"linux.{key}", "added " + ", ".join(missing)))
    return tuple(changes)


# Docker's and containerd's (and so the CRI's) default capability set, the one a plain
# `docker run`, `ctr run` or pod container gets (Podman 4.3 lists the same set sorted).
ENGINE_DEFAULT_CAPABILITIES = frozenset("CAP_" + name for name in DOCKER_DEFAULT_CAPABILITIES)


def drop_default_net_raw(capabilities) -> bool:
    """Remove CAP_NET_RAW, in place, from every set when the bounding set is an engine's
    default set as an engine writes it (nothing beyond it in any set, nothing twice): NET_RAW
    there is the engine's old default, not the user's request (raw sockets: spoofed packets,
    ARP and router adverts on the container's network). A set that differs (something added
    or dropped) is kept as asked, for the policy to judge; so is Docker 20.10's `--cap-add
    NET_RAW`, which appends CAP_NET_RAW to the default list again (twice), or last after
    `--cap-drop NET_RAW` (no engine's default lists it last). Any other order of the default
    set counts as a default: an unknown engine's order keeps the floor. True when something
    was removed."""
    if not isinstance(capabilities, dict):
        return False
    sets = [capabilities.get(name) for name in CAPABILITY_SETS]
    if not all(value is None or isinstance(value, list) for value in sets):
        return False
    bounding = capabilities.get("bounding") or []
    if set(bounding) != ENGINE_DEFAULT_CAPABILITIES or bounding[-1] == "CAP_NET_RAW" or \
            any(not set(value) <= ENGINE_DEFAULT_CAPABILITIES or len(set(value)) != len(value)
                for value in sets if value):
        return False
    for name, value in zip(CAPABILITY_SETS, sets):
        if value:
            capabilities[name] = [item for item in value if item != "CAP_NET_RAW"]
    return True


class _Reader(OciFields):
    """An OciConfig (decoded once: spec/oci_config.decode) -> Bundle: what hardrun-oci can
    apply, checked; what it cannot (the decoder's unknown and unsupported keys among it)
    refused. Failures are a BundleError (hardrun-oci exits 2) with the field's line."""

    def __init__(self, config: OciConfig, bundle: str):
        self.config = config
        self.bundle = bundle

    def fail(self, where: str, message: str) -> NoReturn:
        raise BundleError(f"{where}: {message}", path=os.path.join(self.bundle, CONFIG_FILE),
                          line=self.config.locate(where))

    def refuse(self) -> None:
        """Fail closed: a value of the wrong type, and a key hardrun does not know or knows
        and cannot apply, are refused (the first the decoder found)."""
        for problem in self.config.problems + self.config.unknown:
            self.fail(problem.where, problem.message)

    # -- the document ---------------------------------------------------------------

    def read(self, floor_changes, seccomp_default: bool = False) -> Bundle:
        config = self.config
        self.refuse()
        version = config.version
        if not version or not version.startswith("1."):
            self.fail("ociVersion", f"expected a 1.x version, got {version!r}")
        linux = config.linux
        process = config.process
        if process is None:
            self.fail("process", "missing (create needs the process to run)")
        from .config import RuntimeConfig
        from .userns import IdMaps, User
        rootfs, read_only = self.root(config.root)
        namespaces, paths = self.namespaces(linux.namespaces or ())
        id_maps = self.id_maps(linux, "user" in namespaces)
        self.lsm(process)
        user = self.user(process.user)
        sets = self.capabilities(process.capabilities or {})
        args = tuple(self.strings(list(process.args or ()), "process.args"))
        if not args:
            self.fail("process.args", "missing or empty")
        cwd = process.cwd or "/"
        if not cwd.startswith("/"):
            self.fail("process.cwd", "must be an absolute path")
        hostname = config.hostname
        if hostname and "uts" not in namespaces:
            self.fail("hostname", "needs a private uts namespace")
        mounts, cgroup_view = self.mounts(config.mounts or ())
        mqueue = any(mount.destination == "/dev/mqueue" for mount in config.mounts or ())
        propagation = linux.rootfs_propagation
        if propagation not in (None, "", "private", "rprivate", "slave", "rslave"):
            self.fail("linux.rootfsPropagation", f"{propagation!r} not supported (private and slave "
                      "are: the container's mounts never propagate to the host)")
        seccomp, profile = self.seccomp(linux, seccomp_default or any(c.field == "linux.seccomp"
                                                                       for c in floor_changes))
        bounding, effective, permitted, inheritable, ambient = sets
        from .config import _last_cap, _memfd_by_seccomp
        runtime_config = RuntimeConfig(
            id=os.urandom(6).hex(), spec=self.run_spec(args), args=args, env=process.env, rootfs=rootfs,
            read_only=read_only, user=User(user[0], user[1], user[2], "/", None),
            caps=tuple(_names(permitted)), cap_mask=bounding, ambient=bool(ambient),
            no_new_privileges=bool(process.no_new_privileges),
            seccomp=seccomp, memfd_by_seccomp=_memfd_by_seccomp(namespaces), namespaces=frozenset(namespaces),
            id_maps=IdMaps(id_maps[0], id_maps[1], "direct") if id_maps else None, user_limits=(),
            hostname=hostname if "uts" in namespaces and "uts" not in paths else None,
            network="none" if "network" in namespaces and "network" not in paths else "joined",
            mounts=mounts, write_plan=None,
            masked_paths=tuple(self.paths(list(linux.masked_paths or ()), "linux.maskedPaths")),
            readonly_paths=tuple(self.paths(list(linux.readonly_paths or ()), "linux.readonlyPaths")),
            workdir=posixpath.normpath(cwd), init=False, tty=bool(process.terminal), interactive=False,
            last_cap=_last_cap(), namespace_paths=tuple(sorted(paths.items())),
            cap_sets=(bounding, effective, permitted, inheritable, ambient), umask=user[3],
            detached=True, mqueue=mqueue, devices=self.devices(linux), sysctls=self.sysctls(linux, namespaces),
            oom_score_adj=self.oom_score_adj(process, "user" in namespaces),
            sys_read_only=self.sys_read_only(config.mounts or ()))
        return Bundle(path=self.bundle, config=runtime_config, document=config.document, oci=config,
                      hooks=self.hooks(config.hooks), annotations=config.annotations,
                      cgroups_path=linux.cgroups_path or None, limits=self.resources(linux.resources),
                      rlimits=self.rlimits(process.rlimits), seccomp_profile=profile, floor=tuple(floor_changes),
                      cgroup_view=cgroup_view)

    def root(self, root: dict | None) -> tuple[str, bool]:
        if root is None:
            self.fail("root", "missing")
        path = root["path"]
        if not path:
            self.fail("root.path", "missing")
        real = os.path.realpath(os.path.join(self.bundle, path))
        if not os.path.isdir(real):
            self.fail("root.path", f"{path}: not a directory")
        if real == "/":
            self.fail("root.path", "the host's / cannot be a container's root")
        return real, bool(root["readonly"])

    def namespaces(self, entries: tuple) -> tuple[list[str], dict]:
        names: list[str] = []
        paths = {}
        new_user = any(entry.type == "user" for entry in entries)
        for entry in entries:
            kind = entry.type
            if kind not in NAMESPACE_TYPES and kind != "time":
                self.fail(f"{entry.where}.type", f"unknown namespace type {kind!r}")
            if kind == "time" or kind in names:
                self.fail(f"{entry.where}.type", "not supported" if kind == "time" else f"{kind} listed twice")
            names.append(kind)
            if entry.path:
                if kind not in JOINABLE_BY_CHILD + ("pid",):
                    self.fail(f"{entry.where}.path", f"joining a {kind} namespace by path is not supported")
                if kind == "cgroup" and new_user:
                    self.fail(f"{entry.where}.path", "joining a cgroup namespace by path from a new user namespace "
                              "is not supported")
                paths[kind] = entry.path
        if "mount" not in names:
            self.fail("linux.namespaces", "a mount namespace is required (hardrun pivots into the root)")
        return names, paths

    def id_maps(self, linux: OciLinux, private_user: bool):
        maps = []
        for mappings in (linux.uid_mappings, linux.gid_mappings):
            ranges = []
            for mapping in mappings:
                values = (mapping.container_id, mapping.host_id, mapping.size)
                if any(value is None or value < 0 for value in values) or values[2] == 0:
                    self.fail(mapping.where, "containerID, hostID and size must be set (size above 0)")
                ranges.append(values)
            maps.append(ranges)
        if any(maps) and not private_user:
            self.fail("linux.uidMappings", "id mappings need a user namespace in linux.namespaces")
        if private_user and not all(maps):
            self.fail("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")
        return maps if private_user else None

    def user(self, user) -> tuple:
        if user is None:
            return 0, 0, (), None
        umask = user.umask
        if umask is not None and not 0 <= umask <= 0o777:
            self.fail("process.user.umask", "must be between 0 and 0777")
        return user.uid or 0, user.gid or 0, user.additional_gids or (), umask

    def capabilities(self, sets: dict) -> tuple[int, ...]:
        masks = []
        for name in CAPABILITY_SETS:
            value = 0
            for item in sets.get(name, ()):
                short = item[4:] if isinstance(item, str) and item.startswith("CAP_") else item
                if short not in NUMBERS:
                    self.fail(f"process.capabilities.{name}", f"unknown capability {item!r}")
                value |= 1 << NUMBERS[short]
            masks.append(value)
        bounding, effective, permitted, inheritable, ambient = masks
        for name, inner, outer, rule in (("effective", effective, permitted, "permitted"),
                                         ("permitted", permitted, bounding, "bounding")):
            if inner & ~outer:
                self.fail(f"process.capabilities.{name}", f"{', '.join(_names(inner & ~outer))} not in {rule} "
                          "(the kernel cannot grant it)")
        # The kernel cannot raise an ambient capability outside permitted and inheritable: runc's
        # PR_CAP_AMBIENT_RAISE fails and it goes on without it (`runc spec` asks for such ones).
        masks[4] = ambient & permitted & inheritable
        return tuple(masks)

    def mounts(self, entries: tuple) -> tuple[tuple, bool]:
        plans, cgroup_view, seen = [], False, set()
        for entry in entries:
            where = entry.where
            target = entry.destination
            if not target or not target.startswith("/"):
                self.fail(f"{where}.destination", "must be an absolute path")
            target = posixpath.normpath(target)
            if target in seen and target in KERNEL_MOUNTS:
                self.fail(f"{where}.destination", f"{target} mounted twice (hardrun mounts it itself)")
            seen.add(target)    # any other target mounted again: the later mount over the earlier, as runc does
            kind = entry.type or ""
            options = self.strings(list(entry.options), f"{where}.options")
            if "bind" in options or "rbind" in options:
                kind = "bind"
            if target in KERNEL_MOUNTS:
                if kind not in KERNEL_MOUNTS[target]:
                    self.fail(f"{where}.type", f"{target} must be {' or '.join(KERNEL_MOUNTS[target])} "
                              "(hardrun mounts it itself)")
                if target == "/sys/fs/cgroup":
                    cgroup_view = True
                continue
            if target == "/dev/shm" and kind == "tmpfs":
                continue    # the child's own /dev/shm
            if target == "/proc" or target.startswith("/proc/"):
                self.fail(f"{where}.destination", "mounting over /proc is refused")
            if kind not in ("bind", "tmpfs"):
                self.fail(f"{where}.type", f"{kind or 'no type'}: not supported at {target} "
                          "(bind and tmpfs are; /proc, /sys, /dev… are hardrun's own)")
            plans.append(self.mount_plan(kind, target, entry.source, options, where))
        plans.sort(key=lambda plan: plan.target.count("/"))    # stable: one target's mounts stay in order
        return tuple(plans), cgroup_view

    def mount_plan(self, kind: str, target: str, source: str | None, options, where: str) -> MountPlan:
        read_only, exec_, recursive, data = False, kind == "bind", "rbind" in options, []
        for option in options:
            key, _, value = option.partition("=")
            if option == "ro":
                read_only = True
            elif option == "rw":
                read_only = False
            elif option in ("exec", "noexec"):
                exec_ = option == "exec"
            elif option in ("suid", "dev"):
                self.fail(f"{where}.options", f"{option!r}: hardrun mounts are always nosuid,nodev")
            elif option in _MOUNT_OPTIONS_IGNORED:
                pass
            elif kind == "tmpfs" and key in TMPFS_DATA_KEYS and value:
                data.append(option)
            else:
                self.fail(f"{where}.options", f"{option!r} not supported")
        if kind == "tmpfs":
            return MountPlan("tmpfs", target, read_only=read_only, exec_=exec_, data=",".join(data))
        if not source:
            self.fail(f"{where}.source", "a bind mount needs a source")
        source = os.path.join(self.bundle, source)
        if not os.path.exists(source):
            self.fail(f"{where}.source", f"{source}: no such file or directory")
        return MountPlan("bind", target, source=source, read_only=read_only, exec_=exec_,
                         source_is_dir=os.path.isdir(source), recursive=recursive)

    def seccomp(self, linux: OciLinux, floor: bool) -> tuple[str | None, str | None]:
        if floor:   # the config had none: hardrun's own allowlist
            return "default", None
        if not linux.seccomp:
            return None, None
        text = jsonlite.dumps(linux.seccomp)
        from .seccomp_profile import parse_profile
        try:
            parse_profile(text, path="linux.seccomp", fmt="json")
        except UsageError as error:
            self.fail("linux.seccomp", str(error))
        return "inline", text

    def hooks(self, hooks: dict) -> dict:
        found: dict[str, list[dict]] = {}     # kind -> its hooks in order
        for kind, entries in hooks.items():
            for hook in entries:
                if not hook.path or not hook.path.startswith("/"):
                    self.fail(f"{hook.where}.path", "must be an absolute path")
                if hook.timeout is not None and hook.timeout <= 0:
                    self.fail(f"{hook.where}.timeout", "must be above 0")
                found.setdefault(kind, []).append({"path": hook.path, "args": list(hook.args),
                                                   "env": list(hook.env), "timeout": hook.timeout})
        return found

    def rlimits(self, entries: tuple) -> tuple:
        from ..spec.run import Ulimit
        from .ulimits import RLIMITS
        found = []
        for entry in entries:
            kind = entry.type or ""
            name = kind.lower()[len("rlimit_"):] if kind.startswith("RLIMIT_") else None
            if name not in RLIMITS:
                self.fail(f"{entry.where}.type", f"unknown rlimit {kind!r}")
            if entry.soft is None or entry.hard is None:
                self.fail(entry.where, "soft and hard are required")
            found.append(Ulimit(name, _rlimit(entry.soft), _rlimit(entry.hard)))
        return tuple(found)

    def resources(self, resources: OciResources):
        from .cgroups import CPU_PERIOD_US, Limits
        block_io = self.block_io(resources.block_io)
        from .device_rules import DeviceRuleError, cgroup_v1_writes
        rules = list(resources.devices)
        try:
            device_writes = cgroup_v1_writes(rules)
        except DeviceRuleError as error:
            self.fail(error.where, str(error))
        limit, swap, quota = resources.memory_limit, resources.memory_swap, resources.cpu_quota
        period = resources.cpu_period or CPU_PERIOD_US
        limits = Limits(memory=limit if limit and limit > 0 else None,
                        memory_swap=swap if swap else None,
                        pids=resources.pids_limit if resources.pids_limit and resources.pids_limit > 0 else None,
                        cpus=quota / period if quota and quota > 0 else None,
                        cpu_shares=resources.cpu_shares or None, devices=device_writes, block_io=block_io,
                        devices_asked=bool(rules))
        return limits

    def block_io(self, block_io):
        """`linux.resources.blockIO` -> cgroups.BlockIO, or None when nothing is asked: a
        weight of 0 means unset (Docker sends `{"weight": 0}` in every bundle, and 0 where the
        kernel has no blkio weight; runc writes nothing for it). Written by the cgroup code,
        where a setting the kernel lacks or rejects is an error naming its field."""
        from .cgroups import THROTTLES, BlockIO
        block_io = block_io or {}
        where = "linux.resources.blockIO"
        for key in block_io:
            if key not in ("weight", "leafWeight", "weightDevice") and key not in THROTTLES:
                self.fail(f"{where}.{key}", "unknown field")
        weight = self.weight(block_io.get("weight"), f"{where}.weight")
        leaf_weight = self.weight(block_io.get("leafWeight"), f"{where}.leafWeight")
        per_device = []
        for index, entry in enumerate(self.typed(block_io.get("weightDevice"), list, f"{where}.weightDevice") or []):
            at = f"{where}.weightDevice[{index}]"
            entry = self.take(entry, at, {"major", "minor", "weight", "leafWeight"})
            major, minor = self.device_number(entry, at)
            per_device.append((major, minor, self.weight(entry.get("weight"), f"{at}.weight"),
                               self.weight(entry.get("leafWeight"), f"{at}.leafWeight")))
        throttles = {}
        for name in THROTTLES:
            entries = []
            for index, entry in enumerate(self.typed(block_io.get(name), list, f"{where}.{name}") or []):
                at = f"{where}.{name}[{index}]"
                entry = self.take(entry, at, {"major", "minor", "rate"})
                rate = self.typed(entry.get("rate"), int, f"{at}.rate")
                if rate is None or rate < 0:
                    self.fail(f"{at}.rate", "expected an integer of 0 or more")
                entries.append((*self.device_number(entry, at), rate))
            throttles[name] = tuple(entries)
        block = BlockIO(weight, leaf_weight, tuple(per_device), throttles)
        return block if block.fields() else None

    def weight(self, value, where: str) -> int | None:
        value = self.typed(value, int, where)
        if value and not 10 <= value <= 1000:
            self.fail(where, f"{value} is not a blkio weight (10 to 1000, or 0 for none)")
        return value or None

    def device_number(self, entry: dict, where: str) -> tuple[int, int]:
        numbers = tuple(self.typed(entry.get(key), int, f"{where}.{key}") for key in ("major", "minor"))
        if any(number is None or number < 0 for number in numbers):
            self.fail(where, "major and minor device numbers are required")
        return numbers

    def devices(self, linux: OciLinux) -> tuple:
        """`linux.devices`: each must be the host's node of that type and number at that path
        (bound in, as `hardrun run --device` does). Which of them can be opened is the device
        cgroup's (`linux.resources.devices`, read by `resources`)."""
        from .devices import plan_device
        plans = []
        for device in linux.devices:
            path = device.path or ""
            try:
                plan = plan_device(path, path)
            except UsageError as error:
                self.fail(device.where, str(error))
            if (plan.type, plan.major, plan.minor) != (device.type, device.major, device.minor):
                asked = f"{device.type} {device.major}:{device.minor}"
                self.fail(device.where, f"{path} on the host is {plan.type} {plan.major}:{plan.minor}, not {asked} "
                          "(hardrun binds the host's node)")
            plans.append(plan)
        return tuple(plans)

    def sysctls(self, linux: OciLinux, namespaces) -> tuple:
        from .tunables import plan_sysctls
        try:
            return plan_sysctls(linux.sysctl, frozenset(namespaces))
        except UsageError as error:
            self.fail("linux.sysctl", str(error).replace("--sysctl ", ""))

    def oom_score_adj(self, process: OciProcess, own_user_namespace: bool):
        value = process.oom_score_adj
        if value is not None:
            from .tunables import check_oom_score_adj
            try:
                check_oom_score_adj(value, own_user_namespace)
            except UsageError as error:
                self.fail("process.oomScoreAdj", str(error).replace("--oom-score-adj ", ""))
        return value

    def lsm(self, process: OciProcess) -> None:
        """An AppArmor profile or SELinux label hardrun would not apply is refused (lsm.py);
        `unconfined` asks for nothing."""
        from . import lsm
        profile, label = process.apparmor_profile, process.selinux_label
        try:
            lsm.check(profile or None, {"label": label} if label else {})
        except UsageError as error:
            self.fail("process.apparmorProfile" if profile not in (None, "", "unconfined") else
                      "process.selinuxLabel", str(error).split(": ", 1)[-1])

    def sys_read_only(self, mounts: tuple) -> bool:
        for mount in mounts:
            if mount.destination == "/sys":
                return "ro" in mount.options
        return True

    def run_spec(self, args):
        from ..spec.run import RunSpec
        return RunSpec(kind="oci", path=os.path.join(self.bundle, CONFIG_FILE), command=args)


def _rlimit(value: int) -> int:
    return -1 if value >= 2**64 - 1 or value < 0 else value


def _names(mask: int) -> list[str]:
    from ..spec.capabilities import NAMES
    return [name for bit, name in enumerate(NAMES) if mask >> bit & 1]
