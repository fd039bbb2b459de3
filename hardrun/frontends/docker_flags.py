"""The flags of `docker run` / `docker create` / `podman run` and of `hardrun run`: one
table row per flag.

A row (Flag) holds the flag's spelling, short alias, arity, whether the hardrun runtime
supports it, its help text and, for a flag that sets something, the handler that applies
its value and the RunSpec field it sets. `flags_for` indexes the table per engine;
`run_help` renders `hardrun run --help` from it. Splitting argv is docker_argv.py's,
building the RunSpec (the handlers) docker_runspec.py's.

On `hardrun run`'s start-up path: standard library only, and only cheap modules at
import time (no `re`, no `dataclasses` module).
"""
from __future__ import annotations

from ..spec.run import check_container_name, check_hostname, check_pids_limit, check_user
from . import docker_runspec as h

BOOL, VALUE, LIST = "bool", "value", "list"     # arity: no value / one value / repeatable value
OPTIONAL = "optional"                           # a value only after `=` (--explain[=WHEN])
DOCKER, PODMAN, HARDRUN = "docker", "podman", "hardrun"   # where a flag exists


class Flag:
    """One flag: canonical long name without dashes ("volume"), arity (BOOL, VALUE or
    LIST), short letter, other long names, whether `hardrun run` supports it, where it
    exists (DOCKER: docker, nerdctl, podman; PODMAN only; HARDRUN only), help text; for a
    flag that sets something, the handler that applies its value (docker_runspec.py) and
    the RunSpec field it sets, which a value the auditor cannot read marks unknown.
    Immutable once the table is built (below)."""
    __slots__ = ("name", "arity", "short", "aliases", "runtime", "scope", "metavar", "help",
                 "handler", "field")

    def __init__(self, name, arity, short=None, aliases=(), runtime=False, scope=DOCKER,
                 metavar="", help="", handler=None, field=None):
        self.name = name
        self.arity = arity
        self.short = short
        self.aliases = tuple(aliases)
        self.runtime = runtime
        self.scope = scope
        self.metavar = metavar
        self.help = help
        self.handler = handler
        self.field = field or name

    @property
    def takes_value(self) -> bool:
        return self.arity in (VALUE, LIST)

    @property
    def repeatable(self) -> bool:
        return self.arity == LIST

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Flag({fields})"


_f = Flag   # short, for the table


RT = True   # readability in the table below: the runtime supports this flag

# Every flag of `docker run`/`docker create` (docker CLI 27), the podman-only flags that
# matter for parsing, and hardrun's own. Arity decides where a value ends and the image
# begins, so an unlisted value flag would turn its value into the "image".
FLAGS: tuple[Flag, ...] = (
    # hardrun's own (only in `hardrun run`)
    _f("rootfs", VALUE, runtime=RT, scope=HARDRUN, metavar="DIR",
       help="Root directory (default: a read-only view of the host's /)",
       handler=h.string_field("rootfs", h.check_rootfs)),
    _f("read-write", BOOL, runtime=RT, scope=HARDRUN, help="Make the root filesystem writable",
       handler=h.bool_field("read_only_root", invert=True), field="read_only_root"),
    _f("userns-remap", VALUE, runtime=RT, scope=HARDRUN, metavar="START:COUNT",
       help="Map ids 0..COUNT-1 to host ids from START (a fixed range)",
       handler=h.on_userns_remap, field="userns_remap"),
    _f("no-new-privileges", BOOL, runtime=RT, scope=HARDRUN,
       help="Block setuid/file-capability escalation (default)",
       handler=h.bool_field("no_new_privileges"), field="no_new_privileges"),
    _f("dry-run", BOOL, runtime=RT, scope=HARDRUN,
       help="Print the resolved configuration as JSON; run nothing"),
    _f("policy", VALUE, runtime=RT, scope=HARDRUN, metavar="POLICY",
       help="Check against a policy (name or file) before running; without it, a "
            "repository's .hardrun.yaml is used and may only tighten the run"),
    _f("config", VALUE, runtime=RT, scope=HARDRUN, metavar="FILE",
       help="Read the run configuration from YAML (flags override it)"),
    _f("limits", VALUE, runtime=RT, scope=HARDRUN, metavar="MODE",
       help="strict (default: fail if a limit cannot apply) or best-effort (warn)"),
    _f("explain", OPTIONAL, runtime=RT, scope=HARDRUN, metavar="WHEN",
       help="After exit, explain each system call seccomp refused and how to allow it: auto "
            "(default: when stderr is a terminal), always (--explain), never"),
    _f("explain-json", VALUE, runtime=RT, scope=HARDRUN, metavar="FILE",
       help="Write the --explain report to FILE as JSON (implies --explain)"),
    _f("seccomp-learn", VALUE, runtime=RT, scope=HARDRUN, metavar="PROFILE",
       help="Allow every system call but record it, then write (or merge into) PROFILE, a "
            "minimal seccomp profile for this command. Learning is not a sandbox: no call "
            "is refused while learning"),
    # docker run / docker create
    _f("add-host", LIST, metavar="HOST:IP"),
    _f("annotation", LIST, metavar="KEY=VALUE"),
    _f("attach", LIST, "a", metavar="STREAM"),
    _f("blkio-weight", VALUE),
    _f("blkio-weight-device", LIST),
    _f("cap-add", LIST, runtime=RT, metavar="CAP",
       help="Add a capability (NET_BIND_SERVICE or CAP_NET_BIND_SERVICE)",
       handler=h.capabilities_field("cap_add"), field="cap_add"),
    _f("cap-drop", LIST, runtime=RT, metavar="CAP",
       help="Drop a capability, or ALL (default: all are dropped)",
       handler=h.capabilities_field("cap_drop"), field="cap_drop"),
    _f("cgroup-parent", VALUE),
    _f("cgroupns", VALUE, handler=h.namespace_field("cgroup")),
    _f("cidfile", VALUE),
    _f("cpu-count", VALUE),
    _f("cpu-percent", VALUE),
    _f("cpu-period", VALUE),
    _f("cpu-quota", VALUE),
    _f("cpu-rt-period", VALUE),
    _f("cpu-rt-runtime", VALUE),
    _f("cpu-shares", VALUE, "c", runtime=RT, metavar="SHARES", help="CPU shares (relative weight)",
       handler=h.int_field("cpu_shares", minimum=0), field="cpu_shares"),
    _f("cpus", VALUE, runtime=RT, metavar="N", help="Number of CPUs (a decimal, e.g. 1.5)",
       handler=h.on_cpus),
    _f("cpuset-cpus", VALUE),
    _f("cpuset-mems", VALUE),
    _f("detach", BOOL, "d"),
    _f("detach-keys", VALUE),
    _f("device", LIST, runtime=RT, metavar="HOST[:CONTAINER[:PERMS]]",
       help="Bind a host device node into /dev (PERMS: rw or rwm; block devices too, as in Docker)",
       handler=h.on_device, field="devices"),
    _f("device-cgroup-rule", LIST),
    _f("device-read-bps", LIST),
    _f("device-read-iops", LIST),
    _f("device-write-bps", LIST),
    _f("device-write-iops", LIST),
    _f("disable-content-trust", BOOL),
    _f("dns", LIST),
    _f("dns-opt", LIST, aliases=("dns-option",)),
    _f("dns-search", LIST),
    _f("domainname", VALUE),
    _f("entrypoint", VALUE, runtime=RT, metavar="CMD",
       help="Replace the image's Entrypoint (and drop its Cmd); \"\" clears it",
       handler=h.string_field("entrypoint")),
    _f("env", LIST, "e", runtime=RT, metavar="NAME[=VALUE]",
       help="Set a variable (NAME alone passes the caller's value)", handler=h.on_env),
    _f("env-file", LIST, runtime=RT, metavar="FILE", help="Read environment variables from a file",
       handler=h.on_env_file, field="env_files"),
    _f("expose", LIST, runtime=RT, metavar="PORT[/PROTO]",
       help="Declare a port (or range) that -P/--publish-all publishes", handler=h.on_expose),
    _f("gpus", VALUE),
    _f("group-add", LIST, runtime=RT, metavar="GROUP",
       help="Add a supplementary group (a gid, or a name from the container's /etc/group)",
       handler=h.on_group_add, field="group_add"),
    _f("health-cmd", VALUE),
    _f("health-interval", VALUE),
    _f("health-retries", VALUE),
    _f("health-start-interval", VALUE),
    _f("health-start-period", VALUE),
    _f("health-timeout", VALUE),
    _f("help", BOOL, runtime=RT, help="Print this help"),
    _f("hostname", VALUE, "h", runtime=RT, metavar="NAME", help="Container host name",
       handler=h.string_field("hostname", check_hostname)),
    _f("init", BOOL, runtime=RT, help="Run a small init as PID 1 that reaps zombies",
       handler=h.bool_field("init")),
    _f("interactive", BOOL, "i", runtime=RT,
       help="Keep stdin attached (without it the container reads an empty input)"),
    _f("io-maxbandwidth", VALUE),
    _f("io-maxiops", VALUE),
    _f("ip", VALUE),
    _f("ip6", VALUE),
    _f("ipc", VALUE, runtime=RT, metavar="MODE",
       help="host: share the host's IPC namespace (default: private)", handler=h.namespace_field("ipc")),
    _f("isolation", VALUE),
    _f("kernel-memory", VALUE),
    _f("label", LIST, "l"),
    _f("label-file", LIST),
    _f("link", LIST),
    _f("link-local-ip", LIST),
    _f("log-driver", VALUE),
    _f("log-opt", LIST),
    _f("mac-address", VALUE),
    _f("memory", VALUE, "m", runtime=RT, metavar="BYTES", help="Memory limit (512m, 1g…)",
       handler=h.size_field("memory")),
    _f("memory-reservation", VALUE),
    _f("memory-swap", VALUE, runtime=RT, metavar="BYTES",
       help="Memory plus swap limit (-1: unlimited swap)",
       handler=h.size_field("memory_swap", allow_minus_one=True), field="memory_swap"),
    _f("memory-swappiness", VALUE),
    _f("mount", LIST, runtime=RT, metavar="SPEC",
       help="Mount: type=bind|tmpfs,source=…,target=…[,readonly]",
       handler=h.on_mount, field="mounts"),
    _f("name", VALUE, runtime=RT, metavar="NAME",
       help="Container name, at most 64 characters (the default host name; how other "
            "containers on its bridge reach it)",
       handler=h.string_field("name", check_container_name)),
    _f("network", VALUE, aliases=("net",), runtime=RT, metavar="MODE",
       help="Network: none (default: only lo), host, or bridge[:NAME]", handler=h.on_network),
    _f("network-alias", LIST, aliases=("net-alias",)),
    _f("no-healthcheck", BOOL),
    _f("oom-kill-disable", BOOL),
    _f("oom-score-adj", VALUE, runtime=RT, metavar="N",
       help="OOM killer score adjustment, -1000..1000 (lowering it needs CAP_SYS_RESOURCE)",
       handler=h.int_field("oom_score_adj", check=h.check_oom_score_adj), field="oom_score_adj"),
    _f("pid", VALUE, runtime=RT, metavar="MODE",
       help="host: share the host's pid namespace, its /proc shows the host's processes "
            "(default: private)", handler=h.namespace_field("pid")),
    _f("pids-limit", VALUE, runtime=RT, metavar="N",
       help="Maximum number of processes (default 1024; 0 or -1: unlimited)",
       handler=h.int_field("pids_limit", check=check_pids_limit), field="pids_limit"),
    _f("platform", VALUE, runtime=RT, metavar="OS/ARCH", help="The image's platform: linux/amd64 only"),
    _f("privileged", BOOL, runtime=RT,
       help="All capabilities, no seccomp filter, no masked or read-only kernel paths, a "
            "writable /sys, the host's devices. Under the user namespace (kept unless "
            "--userns host) these are powers over the container's own namespaces, not "
            "the host's, and host-owned devices open only as their mode lets others",
       handler=h.bool_field("privileged")),
    _f("publish", LIST, "p", runtime=RT, metavar="[IP:]HOST:CONTAINER[/PROTO]",
       help="Publish a port of a bridge network (on 127.0.0.1 unless IP is given)",
       handler=h.on_publish, field="ports"),
    _f("publish-all", BOOL, "P", runtime=RT,
       help="Publish every --expose port on a free port of 127.0.0.1",
       handler=h.bool_field("publish_all"), field="publish_all"),
    _f("pull", VALUE, runtime=RT, metavar="POLICY",
       help="Fetch the image: always, missing (default) or never"),
    _f("quiet", BOOL, "q"),
    _f("read-only", BOOL, runtime=RT, help="Mount the root filesystem read-only (default)",
       handler=h.bool_field("read_only_root"), field="read_only_root"),
    _f("restart", VALUE),
    _f("rm", BOOL, runtime=RT, help="Accepted: nothing of a container is kept after it exits anyway"),
    _f("runtime", VALUE),
    _f("security-opt", LIST, runtime=RT, metavar="OPT",
       help="no-new-privileges[=true|false], seccomp=FILE|unconfined, systempaths=unconfined, "
            "apparmor=unconfined, label=disable (hardrun applies no AppArmor profile or "
            "SELinux label: those requests are refused)",
       handler=h.on_security_opt, field="security_opt"),
    _f("shm-size", VALUE),
    _f("sig-proxy", BOOL),
    _f("stop-signal", VALUE),
    _f("stop-timeout", VALUE),
    _f("storage-opt", LIST),
    _f("sysctl", LIST, runtime=RT, metavar="NAME=VALUE",
       help="Set a namespaced sysctl: net.* (private network), kernel.msg*, kernel.sem, "
            "kernel.shm*, fs.mqueue.* (private IPC), kernel.domainname, kernel.hostname",
       handler=h.on_sysctl, field="sysctls"),
    _f("tmpfs", LIST, runtime=RT, metavar="DST[:OPTS]",
       help="Mount a tmpfs at DST (options: size=… (default 64m; 0: no limit), mode=…, ro…)",
       handler=h.on_tmpfs, field="mounts"),
    _f("tty", BOOL, "t", runtime=RT,
       help="Give the container a pseudo-terminal of its own (with -i: relay input to it)"),
    _f("ulimit", LIST, runtime=RT, metavar="NAME=SOFT[:HARD]", help="Set a resource limit",
       handler=h.on_ulimit, field="ulimits"),
    _f("use-api-socket", BOOL),
    _f("user", VALUE, "u", runtime=RT, metavar="USER[:GROUP]",
       help="User name or uid, optionally with a group",
       handler=h.string_field("user", check_user)),
    _f("userns", VALUE, runtime=RT, metavar="MODE",
       help="host: do not remap ids (default: an id range of the container's own)",
       handler=h.namespace_field("user")),
    _f("uts", VALUE, runtime=RT, metavar="MODE",
       help="host: share the host's UTS namespace, its host name (default: private)",
       handler=h.namespace_field("uts")),
    _f("volume", LIST, "v", runtime=RT, metavar="SRC:DST[:ro|rw]", help="Bind mount a host path",
       handler=h.on_volume, field="mounts"),
    _f("volume-driver", VALUE),
    _f("volumes-from", LIST),
    _f("workdir", VALUE, "w", runtime=RT, metavar="DIR",
       help="Working directory in the container (absolute)",
       handler=h.string_field("workdir", h.check_workdir)),
    # podman run only (parsing matters; their meaning is not judged)
    _f("arch", VALUE, scope=PODMAN), _f("authfile", VALUE, scope=PODMAN),
    _f("cgroup-conf", LIST, scope=PODMAN), _f("cgroups", VALUE, scope=PODMAN),
    _f("chrootdirs", LIST, scope=PODMAN), _f("conmon-pidfile", VALUE, scope=PODMAN),
    _f("creds", VALUE, scope=PODMAN), _f("decryption-key", LIST, scope=PODMAN),
    _f("env-host", BOOL, scope=PODMAN), _f("env-merge", LIST, scope=PODMAN),
    _f("gidmap", LIST, scope=PODMAN), _f("group-entry", VALUE, scope=PODMAN),
    _f("health-on-failure", VALUE, scope=PODMAN), _f("health-startup-cmd", VALUE, scope=PODMAN),
    _f("health-startup-interval", VALUE, scope=PODMAN),
    _f("health-startup-retries", VALUE, scope=PODMAN),
    _f("health-startup-success", VALUE, scope=PODMAN),
    _f("health-startup-timeout", VALUE, scope=PODMAN),
    _f("hostuser", LIST, scope=PODMAN), _f("hosts-file", VALUE, scope=PODMAN),
    _f("http-proxy", BOOL, scope=PODMAN), _f("image-volume", VALUE, scope=PODMAN),
    _f("init-path", VALUE, scope=PODMAN), _f("log-level", VALUE, scope=PODMAN),
    _f("no-hosts", BOOL, scope=PODMAN), _f("os", VALUE, scope=PODMAN),
    _f("passwd", BOOL, scope=PODMAN), _f("passwd-entry", VALUE, scope=PODMAN),
    _f("personality", VALUE, scope=PODMAN), _f("pidfile", VALUE, scope=PODMAN),
    _f("pod", VALUE, scope=PODMAN), _f("pod-id-file", VALUE, scope=PODMAN),
    _f("preserve-fd", LIST, scope=PODMAN), _f("preserve-fds", VALUE, scope=PODMAN),
    _f("rdt-class", VALUE, scope=PODMAN), _f("read-only-tmpfs", BOOL, scope=PODMAN),
    _f("replace", BOOL, scope=PODMAN), _f("requires", LIST, scope=PODMAN),
    _f("retry", VALUE, scope=PODMAN), _f("retry-delay", VALUE, scope=PODMAN),
    _f("rmi", BOOL, scope=PODMAN), _f("sdnotify", VALUE, scope=PODMAN),
    _f("seccomp-policy", VALUE, scope=PODMAN), _f("secret", LIST, scope=PODMAN),
    _f("shm-size-systemd", VALUE, scope=PODMAN), _f("subgidname", VALUE, scope=PODMAN),
    _f("subuidname", VALUE, scope=PODMAN), _f("systemd", VALUE, scope=PODMAN),
    _f("timeout", VALUE, scope=PODMAN), _f("tls-verify", BOOL, scope=PODMAN),
    _f("tz", VALUE, scope=PODMAN), _f("uidmap", LIST, scope=PODMAN),
    _f("umask", VALUE, scope=PODMAN), _f("unsetenv", LIST, scope=PODMAN),
    _f("unsetenv-all", BOOL, scope=PODMAN), _f("variant", VALUE, scope=PODMAN),
)

# podman's --rootfs is a switch (the first positional is then a directory, not an image).
_PODMAN_ROOTFS = _f("rootfs", BOOL, scope=PODMAN, handler=h.string_field("rootfs", h.check_rootfs))


def _immutable(flag, *_):
    raise AttributeError("a Flag is immutable")


# Flags are made with plain attribute stores: a frozen record's setattr call per field,
# for the ~170 flags of the table, cost a third of a millisecond of `hardrun run`'s
# start-up. With the table built, no flag changes any more.
setattr(Flag, "__setattr__", _immutable)     # setattr: mypy forbids assigning to a method
setattr(Flag, "__delattr__", _immutable)


def _index(engine: str) -> tuple[dict[str, Flag], dict[str, Flag]]:
    """(long name -> Flag, short letter -> Flag) for `engine`."""
    longs: dict[str, Flag] = {}
    shorts: dict[str, Flag] = {}
    for flag in FLAGS:
        if engine == HARDRUN:
            if not flag.runtime:
                continue
        elif flag.scope == HARDRUN or (flag.scope == PODMAN and engine != PODMAN):
            continue
        for name in (flag.name, *flag.aliases):
            longs[name] = flag
        if flag.short:
            shorts[flag.short] = flag
    if engine == PODMAN:
        longs["rootfs"] = _PODMAN_ROOTFS
    return longs, shorts


_INDEXES: dict[str, tuple[dict[str, Flag], dict[str, Flag]]] = {}


def flags_for(engine: str) -> tuple[dict[str, Flag], dict[str, Flag]]:
    """Cached (long, short) lookup tables of `engine` (docker, podman or hardrun)."""
    if engine not in _INDEXES:
        _INDEXES[engine] = _index(engine)
    return _INDEXES[engine]


# ---------------------------------------------------------------------------- help

USAGE = ("Usage: hardrun run [OPTIONS] IMAGE [COMMAND [ARG...]]\n"
         "       hardrun run [OPTIONS] --rootfs DIR [--] COMMAND [ARG...]\n"
         "       hardrun run [OPTIONS] -- COMMAND [ARG...]   (a read-only view of the host)")


def run_help() -> str:
    """`hardrun run --help`, generated from FLAGS: only the flags the runtime supports."""
    rows = []
    for flag in sorted((f for f in FLAGS if f.runtime), key=lambda f: f.name):
        names = (f"-{flag.short}, " if flag.short else "    ") + f"--{flag.name}"
        for alias in flag.aliases:
            names += f", --{alias}"
        if flag.metavar:
            names += f"[={flag.metavar}]" if flag.arity == OPTIONAL else f" {flag.metavar}"
        rows.append((names, flag.help))
    width = min(max(len(names) for names, _ in rows) + 2, 38)
    lines = [USAGE, "",
             "Run COMMAND in a container that is hardened by default: no capabilities,",
             "no_new_privs, a read-only root, a seccomp allowlist, remapped user ids and new",
             "namespaces. Every loosening must be asked for with a flag.", "",
             "IMAGE: [REGISTRY[:PORT]/]NAME[:TAG|@sha256:DIGEST] from the image store (see",
             "`hardrun images`), or oci:DIR[:TAG], oci-archive:FILE[:TAG],",
             "docker-archive:FILE[:NAME:TAG]. Its layers form a read-only overlay root",
             "(rootless: one tree the user unpacks in $XDG_DATA_HOME/hardrun, read-only, its",
             "files all the container root's).",
             "Signals sent to hardrun reach the container unchanged: the image's StopSignal",
             "is not applied (hardrun run has no stop command); --dry-run shows it under the",
             "annotation org.opencontainers.image.stopSignal.", "", "Options:"]
    for names, text in rows:
        if len(names) + 2 > width:
            lines.append(f"  {names}")
            lines.append(" " * (width + 2) + text)
        else:
            lines.append(f"  {names.ljust(width)}{text}")
    return "\n".join(lines) + "\n"
