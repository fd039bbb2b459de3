"""RunSpec -> the resolved runtime configuration, with hardened defaults.

Everything that can be checked or computed before a namespace exists is done here,
in the parent: capability names, users and groups (read from the container's own
/etc/passwd and /etc/group), id maps, mount plans, environment, masked paths. The
child then only applies a finished plan. Any problem is a UsageError (exit 125)
raised before anything is created.

Defaults (each can only be loosened explicitly): no capabilities, no_new_privs on,
read-only root with tmpfs /tmp and /run, Docker's masked and read-only kernel paths,
new mount/pid/ipc/uts/cgroup/net namespaces (network `none`: only `lo`, up), root
remapped to 100000..165535 when hardrun runs as real root, the default seccomp profile.
"""
from __future__ import annotations

import os
import posixpath

from ..errors import UsageError
from ..spec.defaults import DEFAULT_PATH, MASKED_PATHS, NAMESPACES, READONLY_PATHS
from . import caps as capabilities
from . import userns
from ..spec.record import dataclass
from .mounts import MountPlan, plan_mounts

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from ..spec.run import RunSpec
    from .cgroups import CgroupJoin
    from .devices import DevicePlan
    from .seccomp import PreparedFilter
    from .seccomp_notify import ListenedFilter
    from .stdio import Stdio


@dataclass(frozen=True)
class RuntimeConfig:
    """The finished plan for one container: frozen once resolve() returns. What is only
    learned while starting it (filters, cgroup fds, the hosts file, fds 0-2) is LaunchState."""
    id: str
    spec: RunSpec
    args: tuple[str, ...]
    env: tuple[str, ...]                 # NAME=value, Docker's order
    rootfs: str | None                   # None: a read-only view of the host's root
    read_only: bool
    user: userns.User
    caps: tuple[str, ...]                # the kept capability names
    cap_mask: int
    ambient: bool
    no_new_privileges: bool
    seccomp: str | None                  # None (unconfined), "default" or a profile path
    memfd_by_seccomp: bool
    namespaces: frozenset[str]           # the private ones
    id_maps: userns.IdMaps | None
    user_limits: tuple[tuple[str, int], ...]
    hostname: str | None
    network: str
    mounts: tuple[MountPlan, ...]        # the user's mounts (LaunchState adds the hosts file)
    write_plan: tuple | None             # where files may be opened for writing: _write_plan
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    workdir: str
    init: bool
    tty: bool
    interactive: bool
    last_cap: int
    # Loosenings (Docker's --device/--privileged, --sysctl, --oom-score-adj; OCI's
    # linux.devices, linux.sysctl, process.oomScoreAdj). Supplementary groups (--group-add,
    # process.user.additionalGids) are user.groups; a shared namespace is one absent from
    # `namespaces`.
    devices: tuple[DevicePlan, ...] = ()    # host device nodes bound into /dev
    sysctls: tuple[tuple[str, str], ...] = ()   # namespaced sysctls written in the child
    oom_score_adj: int | None = None        # None: the caller's, inherited
    sys_read_only: bool = True              # /sys read-only (--privileged: writable, as in Docker)
    # What only an OCI bundle asks for (hardrun.runtime.bundle); `hardrun run` leaves the defaults.
    namespace_paths: tuple[tuple[str, str], ...] = ()  # (type, path) joined instead of created
    cap_sets: tuple[int, int, int, int, int] | None = None  # bounding, effective, permitted, inheritable,
    #                                                          ambient masks; None: cap_mask and `ambient`
    umask: int | None = None
    detached: bool = False               # outlives its creator (OCI create): no parent-death signal
    mqueue: bool = False                 # /dev/mqueue mounted (an OCI config asks for it)


class LaunchState:
    """What the parent learns while starting the container from its plan, in order: the
    seccomp and memfd filters, fds 0-2 (hardrun.runtime.stdio), then from the hooks the
    cgroup to join, the read-only cgroup view and a bridge network's hosts file. The child
    reads it as it reads the plan; nothing changes it after clone."""
    __slots__ = ("seccomp_filter", "memfd_filter", "stdio", "cgroup_join", "cgroup_view", "mounts",
                 "seccomp_watch", "hold", "preserve_fds", "sysfs")

    def __init__(self, plan: RuntimeConfig):
        # the profile's filter, loaded last (with --explain or --seccomp-learn: the one with a listener)
        self.seccomp_filter: PreparedFilter | ListenedFilter | None = None
        # hardrun's memfd filter where vm.memfd_noexec=2 cannot hold
        self.memfd_filter: PreparedFilter | None = None
        self.stdio: Stdio | None = None                # opened before the hooks run
        self.cgroup_join: CgroupJoin | None = None     # how the child enters its cgroup
        self.cgroup_view: tuple | None = None          # (mount function, layout) when it has its own cgroup
        self.mounts = plan.mounts    # the plan's mounts, plus the hosts file of a bridge
        self.seccomp_watch = None    # --explain/--seccomp-learn (seccomp_explain): its listener
        self.hold: int | None = None  # OCI create: the exec.fifo's O_PATH fd, opened when start runs
        self.preserve_fds = 0        # OCI --preserve-fds: fds 3..3+N-1 stay open
        self.sysfs: str | None = None  # OCI: the sysfs of a joined network namespace, mounted by the parent


# RunSpec fields that resolve() and the parent apply (the others: hardrun.spec.PROVENANCE_FIELDS
# and NOT_APPLIED_FIELDS).
APPLIED_FIELDS = frozenset({
    "command", "user", "privileged", "cap_add", "cap_drop", "no_new_privileges", "seccomp",
    "system_paths_unconfined", "read_only_root", "rootfs", "mounts", "workdir", "namespaces",
    "userns_remap", "hostname", "env", "init", "memory", "memory_swap",
    "pids_limit", "cpus", "cpu_shares", "ulimits", "network", "ports", "exposed_ports",
    "publish_all", "name", "devices", "sysctls", "group_add", "oom_score_adj",
    # accepted only as the no-ops they are here, confinement requests refused (runtime/lsm.py)
    "apparmor", "selinux_disabled", "selinux_options",
})
# RunSpec fields that other front ends (compose, Kubernetes, OCI, docker run lines) fill and
# `hardrun run` cannot apply: the setting as a run config / the flags spell it, and why.
NOT_APPLIED_FIELDS = {
    "entrypoint": ("entrypoint (--entrypoint)", "an entrypoint applies to an image; with --rootfs or the "
                   "host's view hardrun runs the command as given"),
    "run_as_non_root": ("runAsNonRoot (run_as_non_root)", "give a non-root user instead"),
    "masked_paths": ("maskedPaths (masked_paths)",
                     "hardrun masks Docker's list; systempaths=unconfined unmasks it"),
    "readonly_paths": ("readonlyPaths (readonly_paths)",
                       "hardrun protects Docker's list; systempaths=unconfined lifts it"),
    "volume_types": ("volumes (volume_types)", "only bind and tmpfs mounts exist in hardrun run"),
    "host_process": ("windowsOptions.hostProcess (host_process)", "hardrun runs Linux containers"),
    "pod_level": ("a pod's securityContext and volumes (pod_level)",
                  "hardrun run starts one container, not a pod"),
    "unresolved": ("a $VARIABLE (unresolved)", "the value is not known until a shell expands it"),
}
_UNSET = None   # RunSpec(), made on first use (spec.run is imported lazily here)


def check_applicable(spec) -> None:
    """Refuse (UsageError, exit 125) any setting `hardrun run` would not apply, and any value
    the command line refuses, whichever input set it: flags, a run config, a RunSpec from a
    program. Every input path reaches the runtime through resolve(), which calls this first."""
    global _UNSET
    if _UNSET is None:
        from ..spec.run import RunSpec
        _UNSET = RunSpec()
    for name, (setting, reason) in NOT_APPLIED_FIELDS.items():
        if getattr(spec, name) != getattr(_UNSET, name):
            raise UsageError(f"{setting}: hardrun run cannot apply this setting",
                             path=spec.path, line=spec.line_of(name), hint=reason)
    from ..spec.run import check_container_name, check_hostname, check_pids_limit, check_user
    for name, value, check in (("hostname", spec.hostname, check_hostname),
                               ("name", spec.name, check_container_name),
                               ("user", spec.user, check_user),
                               ("pids_limit", spec.pids_limit, check_pids_limit)):
        problem = value is not None and check(value)
        if problem:
            raise UsageError(f"{name}: {problem}", path=spec.path, line=spec.line_of(name))


def resolve(spec, command=None, *, tty: bool = False, interactive: bool = False,
            id_lease=None) -> RuntimeConfig:
    """Validate `spec` completely and return the plan the parent and child execute
    (`tty`, `interactive`: Docker's -t and -i, see hardrun.runtime.stdio; `id_lease`:
    the container's own id range, userns.lease_id_range)."""
    return complete(spec, resolve_fixed(spec, command, tty=tty, interactive=interactive),
                    tty=tty, interactive=interactive, id_lease=id_lease)


# RuntimeConfig fields that complete() computes afresh on every start (new, or read from the
# host as it is at that moment); resolve_fixed() gives the others, which depend only on the
# spec, the root file system and the caller (hardrun.runtime.plan_cache stores those).
PER_START_FIELDS = ("id", "env", "id_maps", "user_limits", "hostname", "masked_paths",
                    "memfd_by_seccomp", "last_cap", "tty", "interactive")


def resolve_fixed(spec, command=None, *, tty: bool = False, interactive: bool = False) -> dict:
    """The fields of the plan that only the spec, the root file system and the caller
    decide, validated (a dict of RuntimeConfig fields, PER_START_FIELDS left out)."""
    check_applicable(spec)
    args = tuple(command) if command else tuple(spec.command)
    if not args:
        raise UsageError("no command given", hint="hardrun run [OPTIONS] [--rootfs DIR] COMMAND [ARG...]")
    _check_terminal(tty, interactive)
    rootless = os.geteuid() != 0
    namespaces = _namespaces(spec, rootless)
    rootfs = _rootfs(spec.rootfs)
    root_fd = os.open(rootfs or "/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        user = userns.resolve_user(root_fd, spec.user, spec.group_add)
    finally:
        os.close(root_fd)
    # in a user namespace of its own the container's root may hold every capability there
    bounding = None if "user" in namespaces else capabilities.caller_bounding()
    kept = capabilities.resolve(spec.cap_add, spec.cap_drop, spec.privileged, bounding)
    network = _network(spec)
    sysctls = _sysctls(spec, namespaces)
    if "uts" not in namespaces and spec.hostname:
        raise UsageError("--hostname needs a private UTS namespace", hint="drop --uts host")
    try:
        if spec.apparmor is not None or spec.selinux_options:
            from . import lsm
            lsm.check(spec.apparmor, spec.selinux_options, spec.line_of)
        if spec.oom_score_adj is not None:
            from .tunables import check_oom_score_adj
            check_oom_score_adj(spec.oom_score_adj, "user" in namespaces, line=spec.line_of("oom_score_adj"))
        devices = _devices(spec)
    except UsageError as error:      # a run config's: name the file
        error.path = error.path or spec.path
        raise
    read_only = spec.read_only_root is not False     # --privileged too, as in Docker
    mounts = plan_mounts(spec.mounts, host_root=rootfs is None)
    nnp = spec.no_new_privileges is not False
    return dict(
        spec=spec,
        args=args,
        rootfs=rootfs,
        read_only=read_only,
        user=user,
        caps=kept,
        cap_mask=capabilities.mask(kept),
        # Ambient (and so inheritable) only carries added capabilities to a non-root
        # user; a uid-0 process with a non-empty inheritable set regains it at exec.
        ambient=user.uid != 0 and bool(kept),
        no_new_privileges=nnp,
        seccomp=_seccomp(spec),
        namespaces=namespaces,
        network=network,
        mounts=mounts,
        write_plan=_write_plan(mounts, rootfs, read_only),
        readonly_paths=READONLY_PATHS if _system_paths(spec) else (),
        workdir=_workdir(spec.workdir),
        init=bool(spec.init),
        devices=devices,
        sysctls=sysctls,
        oom_score_adj=spec.oom_score_adj,
        sys_read_only=not spec.privileged,
    )


def complete(spec, fixed: dict, *, tty: bool = False, interactive: bool = False,
             id_lease=None) -> RuntimeConfig:
    """The whole plan: `fixed` (resolve_fixed's, made now or kept from an earlier start
    of the same command) plus what each start gets afresh or reads from the host now."""
    _check_terminal(tty, interactive)
    namespaces = fixed["namespaces"]
    user = fixed["user"]
    id_maps = userns.plan_id_maps(spec, "user" in namespaces, os.geteuid() != 0, id_lease)
    userns.check_user_mapped(user, id_maps)
    hostname = spec.hostname or spec.sysctls.get("kernel.hostname") or spec.name or os.urandom(6).hex()
    if "uts" not in namespaces:
        hostname = os.uname().nodename    # $HOSTNAME says the host's, which the container has
    return RuntimeConfig(
        id=os.urandom(6).hex(),
        env=_environment(spec, user, hostname),
        # vm.memfd_noexec=2 cannot hold in the container's pid namespace (or the host's, when
        # shared): hardrun's memfd filter (prepared by the parent, LaunchState.memfd_filter)
        # refuses executable memfds
        memfd_by_seccomp=_memfd_by_seccomp(namespaces),
        id_maps=id_maps,
        # the container's share of the user.max_* limits (inotify, fanotify, namespaces)
        user_limits=userns.namespace_limits() if "user" in namespaces else (),
        hostname=hostname if "uts" in namespaces else None,
        masked_paths=(MASKED_PATHS + _thermal_throttle_paths()) if _system_paths(spec) else (),
        tty=tty,
        interactive=interactive,
        last_cap=_last_cap(),
        **fixed,
    )


def _check_terminal(tty: bool, interactive: bool) -> None:
    if tty and interactive and not os.isatty(0):   # Docker's refusal: raw mode needs a terminal
        raise UsageError("the input device is not a TTY", hint="drop -t, or run from a terminal")


def _system_paths(spec) -> bool:
    """Docker's masked and read-only kernel paths apply (not lifted by systempaths=unconfined
    or --privileged)."""
    return not (getattr(spec, "system_paths_unconfined", False) or spec.privileged)


def planned_id_maps(spec, id_lease=None):
    """The id maps resolve() will give the container (None without a user namespace)."""
    rootless = os.geteuid() != 0
    return userns.plan_id_maps(spec, "user" in _namespaces(spec, rootless), rootless, id_lease)


def lease_id_range(spec, image_ids: tuple[int, int] = (0, 0)):
    """The container's own id range when it gets one (real root, a user namespace of its
    own, no --userns-remap), else None; the caller releases it when the container ends.
    It covers the image's highest owners (`image_ids`) and the ids -u/--group-add give
    as numbers (names are resolved later, from the container's /etc/passwd)."""
    if os.geteuid() != 0 or spec.userns_remap or "user" not in _namespaces(spec, False):
        return None
    try:
        return userns.lease_id_range(userns.range_size(max(*image_ids, *userns.requested_ids(spec))))
    except ImportError as error:     # a broken install: never fall back to a shared range
        raise UsageError(f"{error}: this install of hardrun is incomplete; reinstall it "
                         "(the container was not started)") from None
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        raise UsageError(f"cannot lease a user-namespace id range: {where}{error.strerror or error}") from None


def _namespaces(spec, rootless: bool) -> frozenset:
    """Every namespace private unless the spec shares it with the host."""
    private = set()
    for name in NAMESPACES:
        value = (spec.namespaces or {}).get(name)
        if name == "network":
            value = "host" if spec.network == "host" else value
        if value in (None, "private", "", "none") or (name == "network" and value == "bridge"):
            private.add(name)
        elif value == "host":
            if name in ("mount",):
                raise UsageError("the mount namespace cannot be shared with the host")
        else:
            raise UsageError(f"unsupported {name} namespace mode {value!r}",
                             hint="use the default (private) or host")
    if "pid" not in private and spec.init:
        # hardrun's reaper is only the container's reaper as PID 1 of its own namespace
        raise UsageError("--init needs a private pid namespace", hint="drop --pid host or --init")
    if rootless and "user" not in private:
        raise UsageError("--userns host needs real root", hint="run hardrun as root or keep the user namespace")
    return frozenset(private)


def _devices(spec) -> tuple:
    """--device nodes, and under --privileged every host device (runtime/devices.py)."""
    if not spec.devices and not spec.privileged:
        return ()
    from .devices import plan_devices
    return plan_devices(spec.devices, spec.privileged, spec.line_of)


def _sysctls(spec, namespaces) -> tuple[tuple[str, str], ...]:
    """The namespaced sysctls to write in the child. kernel.hostname is the host name the
    child sets (sethostname would overwrite a written one): it conflicts with --hostname."""
    if not spec.sysctls:
        return ()
    from .tunables import plan_sysctls
    try:
        planned = plan_sysctls(spec.sysctls, namespaces, spec.line_of)
    except UsageError as error:
        error.path = spec.path
        raise
    if "kernel.hostname" in spec.sysctls:
        if spec.hostname:
            raise UsageError("--sysctl kernel.hostname and --hostname both set the host name",
                             line=spec.line_of("sysctl:kernel.hostname"), hint="give one of them")
        from ..spec.run import check_hostname
        problem = check_hostname(spec.sysctls["kernel.hostname"])
        if problem:
            raise UsageError(f"--sysctl kernel.hostname: {problem}", line=spec.line_of("sysctl:kernel.hostname"))
    return tuple((name, value) for name, value in planned if name not in ("kernel.hostname", "kernel/hostname"))


def _rootfs(path: str | None) -> str | None:
    if path is None:
        return None
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        raise UsageError(f"--rootfs {path}: not a directory")
    if real == "/":
        return None
    return real


def _network(spec) -> str:
    network = spec.network or "none"
    if network in ("none", "host", "default"):
        return "none" if network == "default" else network
    if network == "bridge" or network.startswith("bridge:"):
        from .network import network_choice    # the bridge name, before any state exists
        network_choice(network)
        return network
    raise UsageError(f"unsupported network {network!r}", hint="use none (the default), host or bridge[:NAME]")


def _seccomp(spec) -> str | None:
    """None when unconfined; otherwise `default` or a profile path."""
    value = spec.seccomp
    if spec.privileged and value is None:
        return None
    if value in (None, "", "default", "builtin"):
        return "default"
    if value == "unconfined":
        return None
    if not os.path.isfile(value):
        raise UsageError(f"seccomp profile {value}: no such file", hint="give a JSON or YAML profile, or unconfined")
    return os.path.abspath(value)


def _memfd_by_seccomp(namespaces) -> bool:
    """Does the container need hardrun's memfd filter? Yes when its own pid namespace cannot
    get vm.memfd_noexec=2, or when it shares the host's and the host's value is below 2."""
    if "pid" in namespaces:
        return not userns.memfd_noexec_can_hold()
    return not userns.memfd_noexec_is_set()


def _memfd_protection(cfg) -> str:
    """How memfds are kept from being executed (hardrun.runtime.userns.memfd_noexec_can_hold)."""
    if cfg.memfd_by_seccomp:
        return "seccomp: MFD_NOEXEC_SEAL only"
    return "vm.memfd_noexec=2" if "pid" in cfg.namespaces else "the host's vm.memfd_noexec=2"


def _write_plan(mounts, rootfs: str | None, read_only: bool):
    """Where files may be opened for writing (a read-only mount does not stop a host FIFO),
    for the child's Landlock domain (hardrun.runtime.mounts.writable_trees, plus its stdio:
    stdio.reopenable): (whether the root's tree is, (target, writable) for each mount).
    In the read-only view of the host only the container's own /dev, /proc, /sys and
    writable mounts; in an image everything but beneath read-only binds of host paths.
    None: no domain (an image without read-only binds, or --read-write on the host)."""
    marks = tuple((plan.target, not (plan.kind == "bind" and plan.read_only)) for plan in mounts)
    if rootfs is None and read_only:
        return False, (("/dev", True), ("/proc", True), ("/sys", True)) + marks
    if rootfs is not None and not all(writable for _, writable in marks):
        return True, marks
    return None


def _workdir(workdir: str | None) -> str:
    if not workdir:
        return "/"
    if not workdir.startswith("/"):
        raise UsageError(f"--workdir {workdir}: not an absolute path")
    return posixpath.normpath(workdir)


def _environment(spec, user, hostname: str) -> tuple[str, ...]:
    """Docker's order: PATH, HOSTNAME, the -e/--env-file values, HOME when not given."""
    values = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    for var in spec.env:
        if not var.name or "=" in var.name or "\0" in var.name:
            raise UsageError(f"invalid environment variable name {var.name!r}")
        if var.value is None:
            if var.name in os.environ:
                values[var.name] = os.environ[var.name]
            continue
        if "\0" in var.value:
            raise UsageError(f"environment variable {var.name} contains a NUL byte")
        values[var.name] = var.value
    values.setdefault("HOME", user.home)
    return tuple(f"{name}={value}" for name, value in values.items())


def _thermal_throttle_paths() -> tuple[str, ...]:
    base = "/sys/devices/system/cpu"
    try:
        names = os.listdir(base)
    except OSError:
        return ()
    found = []
    for name in sorted(names):
        if name.startswith("cpu") and name[3:].isdigit() and os.path.isdir(f"{base}/{name}/thermal_throttle"):
            found.append(f"{base}/{name}/thermal_throttle")
    return tuple(found)


def _last_cap() -> int:
    from .syscalls import last_cap
    return last_cap()


__all__ = ["RuntimeConfig", "LaunchState", "resolve", "MountPlan"]


def _oci_resources(spec) -> dict:
    """The cgroup limits the container will get (the same Limits the parent applies,
    default pids limit included), as OCI `linux.resources`."""
    from .cgroups import CPU_PERIOD_US, Limits
    limits = Limits.from_spec(spec)
    resources: dict = {}
    memory = {key: value for key, value in (("limit", limits.memory),
                                            ("swap", limits.effective_memory_swap))
              if value is not None}
    if memory:
        resources["memory"] = memory
    if limits.pids is not None and limits.pids > 0:
        resources["pids"] = {"limit": limits.pids}
    cpu = {}
    if limits.cpu_shares is not None:
        cpu["shares"] = limits.cpu_shares
    if limits.cpus is not None:
        cpu.update(quota=max(1000, round(limits.cpus * CPU_PERIOD_US)), period=CPU_PERIOD_US)
    if cpu:
        resources["cpu"] = cpu
    return resources


def _oci_device_rules(cfg: RuntimeConfig) -> dict:
    """The device cgroup `hardrun run` gives its --device nodes (devices.py), as OCI rules."""
    if not cfg.devices:
        return {}
    from .devices import cgroup_rules
    return {"devices": cgroup_rules(cfg.devices, cfg.spec.privileged)}


def _oci_loosenings(cfg: RuntimeConfig) -> dict:
    """`linux.devices` and `linux.sysctl` (kernel.hostname is the document's `hostname`)."""
    linux: dict = {}
    if cfg.devices:
        linux["devices"] = [plan.as_oci() for plan in cfg.devices]
    if cfg.sysctls:
        linux["sysctl"] = dict(cfg.sysctls)
    return linux


def _oci_process_loosenings(cfg: RuntimeConfig) -> dict:
    process: dict = {}
    if cfg.oom_score_adj is not None:
        process["oomScoreAdj"] = cfg.oom_score_adj
    if cfg.spec.apparmor == "unconfined":
        process["apparmorProfile"] = "unconfined"
    return process


def _oci_lsm_annotation(spec) -> dict:
    """The LSM loosenings accepted as no-ops (runtime/lsm.py), recorded for the reader."""
    accepted = [f"apparmor={spec.apparmor}"] if spec.apparmor else []
    accepted += ["label=disable"] if spec.selinux_disabled else []
    return {"org.hardrun.lsm": ",".join(accepted)} if accepted else {}


def to_oci(cfg: RuntimeConfig) -> dict:
    """The resolved configuration as an OCI runtime `config.json` document (for
    `hardrun run --dry-run`); hardrun-specific facts go into `annotations`."""
    from ..spec import oci      # --dry-run only: off the start-up path
    id_maps = cfg.id_maps
    return oci.config(
        args=cfg.args, env=cfg.env, cwd=cfg.workdir, user=cfg.user.as_dict(), terminal=cfg.tty,
        capability_sets=oci.capabilities(cfg.caps, cfg.ambient),
        no_new_privileges=cfg.no_new_privileges, process_rlimits=oci.rlimits(cfg.spec.ulimits),
        root=cfg.rootfs or "/", read_only=cfg.read_only, hostname=cfg.hostname or "",
        mounts=[plan.as_oci() for plan in cfg.mounts], namespaces=cfg.namespaces,
        uid_map=id_maps.uid if id_maps is not None else None,
        gid_map=id_maps.gid if id_maps is not None else None,
        masked_paths=cfg.masked_paths, readonly_paths=cfg.readonly_paths,
        resources=_oci_resources(cfg.spec) | _oci_device_rules(cfg), sys_read_only=cfg.sys_read_only,
        linux_extra=_oci_loosenings(cfg), process_extra=_oci_process_loosenings(cfg),
        annotations={
            "org.hardrun.seccomp": cfg.seccomp or "unconfined",
            "org.hardrun.memfd": _memfd_protection(cfg),
            "org.hardrun.network": cfg.network,
            "org.hardrun.init": str(cfg.init).lower(),
            "org.hardrun.root": "image" if cfg.rootfs else "host-readonly-view" if cfg.read_only else "host",
            **_oci_lsm_annotation(cfg.spec),
        },
    )
