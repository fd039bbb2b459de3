"""RunSpec: how one container is (or would be) started, whatever described it.

Front ends (docker run lines, compose services, Kubernetes containers, OCI
config.json, hardrun run-config YAML and `hardrun run` flags) all produce RunSpecs;
rules and policies read only this model, and the runtime executes it.

Conventions:
- A field left `None` means "not specified by the source" (the runtime or a policy
  fills its default). Rules judge what the *source* asked for, so the distinction
  matters: `read_only_root=None` in a compose file means writable (Docker's default).
- Capability names are upper case without the `CAP_` prefix; `ALL` is kept as is.
- The models are frozen records (hardrun/spec/record.py), not dataclasses: use
  `spec.evolve(...)` and `hardrun.spec.record.fields(RunSpec)`, not `dataclasses.*`.
- `lines` maps a field name (and `env:NAME`, `mount:N`, `port:N`, `device:N`,
  `cap_add:NAME`, `cap_drop:NAME`, `namespace:NAME`) to the 1-based line that set it,
  so findings point at the key at fault. Mount, Port and EnvVar carry their own line.
"""
from __future__ import annotations

from .record import dataclass, field, replace  # not dataclasses: see record.py

NAMESPACES = ("network", "pid", "ipc", "uts", "user", "cgroup", "mount")


@dataclass(frozen=True)
class Mount:
    type: str                     # "bind" (host path), "volume" (named), "tmpfs"; an OCI
                                  # config may name other filesystems ("proc", "sysfs"…)
    target: str
    source: str | None = None     # host path for bind, volume name for volume
    read_only: bool = False
    options: tuple[str, ...] = () # e.g. ("nosuid", "size=64m", "mode=1777"); Kubernetes
                                  # volumes start with their source ("configMap", "emptyDir")
    line: int | None = None


@dataclass(frozen=True)
class Port:
    container_port: str           # "80" or a range "8000-8010"
    host_port: str | None = None  # None: chosen by the runtime
    host_ip: str | None = None    # None: every interface (Docker's default)
    protocol: str = "tcp"
    line: int | None = None


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None             # None: passed through from the caller's environment
    line: int | None = None


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class RunSpec:
    kind: str = "hardrun"         # the front-end kind it was read from (frontends/registry.py)
    path: str | None = None
    line: int | None = None       # where the container is declared (service key, `docker run`…)
    subject: str | None = None    # compose service, `Deployment/web container app`, `docker run nginx`
    image: str | None = None
    command: tuple[str, ...] = ()
    # identity
    user: str | None = None       # "uid[:gid]" or "name[:group]"; None = image default (root)
    run_as_non_root: bool | None = None   # Kubernetes runAsNonRoot
    group_add: tuple[str, ...] = ()   # supplementary groups: gids or names of the container's /etc/group
    # privileges
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool | None = None
    seccomp: str | None = None    # None: runtime default; "unconfined"; a profile path or name
    system_paths_unconfined: bool = False  # --security-opt systempaths=unconfined: no masked/read-only kernel paths
    apparmor: str | None = None   # None: default; "unconfined"; a profile name
    selinux_disabled: bool = False
    host_process: bool = False    # Kubernetes windowsOptions.hostProcess: a Windows host process
    # SELinux label options (Kubernetes seLinuxOptions, docker/compose `label=type:…`):
    # user, role, type, level -> value
    selinux_options: dict[str, str] = field(default_factory=dict)
    # kernel paths hidden / made read-only inside the container; None: the runtime's
    # defaults (Docker masks /proc/kcore…), (): nothing (`systempaths=unconfined`, OCI)
    masked_paths: tuple[str, ...] | None = None
    readonly_paths: tuple[str, ...] | None = None
    # filesystem
    read_only_root: bool | None = None
    rootfs: str | None = None
    mounts: tuple[Mount, ...] = ()
    devices: tuple[str, ...] = ()
    # Kubernetes volumes the container mounts: volume name -> type (hostPath, emptyDir,
    # configMap…); lines under `volume:NAME`
    volume_types: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    # namespaces: name -> "private" | "host" | "container:<id>" | "none" (network only)
    namespaces: dict[str, str] = field(default_factory=dict)
    userns_remap: tuple[int, int] | None = None   # (host start, count)
    hostname: str | None = None
    # process
    env: tuple[EnvVar, ...] = ()
    env_files: tuple[str, ...] = ()   # --env-file / compose `env_file` paths as given, never read by the auditor
    entrypoint: str | None = None     # --entrypoint (None: the image's)
    init: bool = False
    # resources
    memory: int | None = None         # bytes
    memory_swap: int | None = None    # bytes, -1 unlimited
    pids_limit: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    ulimits: tuple[Ulimit, ...] = ()
    oom_score_adj: int | None = None  # -1000..1000; None: the caller's
    sysctls: dict[str, str] = field(default_factory=dict)   # lines under `sysctl:NAME`
    # network
    network: str | None = None        # "none", "host", "bridge", "bridge:NAME", "container:x"…
    ports: tuple[Port, ...] = ()
    exposed_ports: tuple[str, ...] = ()   # "80/tcp", "8000-8010/udp" (--expose); -P publishes them
    publish_all: bool = False
    name: str | None = None
    # Kubernetes pod-level securityContext values and volumes that no container's own
    # settings show (every container overrides the value; a hostPath volume none mounts),
    # judged on their own as Pod Security admission does. Set on the first container of
    # the pod only, so that each is reported once. Keys: `user`, `run_as_non_root`,
    # `seccomp`, `apparmor`, `selinux:type|user|role`, `host_process`, `hostPath:NAME`
    # (its host path); lines under `pod:KEY`.
    pod_level: dict[str, str] = field(default_factory=dict)
    # fields set from a value the source left unresolved (`-m $MEM`, `user: ${UID}`):
    # set, but unknown, so rules neither trust nor condemn their value
    unresolved: frozenset[str] = frozenset()
    # provenance of individual settings: field name -> line (None: set where the source
    # records no line, e.g. a key of a mapping the front end made up)
    lines: dict[str, int | None] = field(default_factory=dict, compare=False)

    def line_of(self, key: str) -> int | None:
        """The line that set `key`, else the declaration line."""
        return self.lines.get(key, self.line)

    def evolve(self, **changes) -> "RunSpec":
        return replace(self, **changes)

    def shares_host(self, namespace: str) -> bool:
        return self.namespaces.get(namespace) == "host" or (
            namespace == "network" and self.network == "host")


# -- the values the runtime accepts: checked by `hardrun run`'s flags and again by the
# runtime for a spec from any front end. Each returns the problem, or None.

_HOST_NAME_MAX = 64


def _is_word(text: str, others: str) -> bool:
    """An ASCII letter or digit, then letters, digits and characters of `others`. (No
    regular expression: `re` costs milliseconds of `hardrun run`'s start-up.)"""
    rest = text[1:]
    for char in others:
        rest = rest.replace(char, "")
    return text.isascii() and text[:1].isalnum() and (not rest or rest.isalnum())


def check_user(text: str) -> str | None:
    if not text or text.startswith(":") or text.endswith(":") or text.count(":") > 1:
        return f"invalid user {text!r} (expected UID[:GID] or NAME[:GROUP])"
    return None


def check_hostname(text: str) -> str | None:
    if len(text) > _HOST_NAME_MAX or not _is_word(text, ".-"):
        return f"invalid host name {text!r} (letters, digits, '.' and '-', at most 64)"
    return None


def check_container_name(text: str) -> str | None:
    # Docker's rule; it also keeps the name a single word in the generated /etc/hosts.
    # The name is the container's default host name, hence the kernel's length limit.
    if len(text) > _HOST_NAME_MAX or not _is_word(text, "_.-"):
        return (f"invalid container name {text!r} (a letter or digit, then letters, digits, '_', "
                f"'.' or '-', at most {_HOST_NAME_MAX}: it is the default host name)")
    return None


def check_pids_limit(number: int) -> str | None:
    # Docker's meaning: 0 and -1 are unlimited
    if number < -1:
        return f"invalid pids limit {number} (a positive number, or 0 or -1 for unlimited)"
    return None
