"""Checks over RunSpecs (hardrun.spec.run.RunSpec), shared by every run front end.

A RunSpec records what its source asked for; `None` means "not said", which for
every front end but `hardrun` means Docker's default (writable root, no
no-new-privileges, default capabilities). A `hardrun` spec leaves hardening to the
runtime, whose defaults are the hardened ones, so its `None`s are not findings.
Fields listed in `spec.unresolved` were set from a value the source left unresolved
(`-m $MEM`): set, but unknown, so no check judges them.

Line keys read from `spec.lines` (front ends write them): field names, `cap_add:NAME`,
`namespace:NAME` (`network`, `pid`, `ipc`, `uts`), `device:N`, `image`.
"""
from __future__ import annotations

import posixpath
import re

from ...spec.defaults import DANGEROUS_CAPABILITIES, SENSITIVE_PORTS
from ..findings import Hit
from . import check

# Confined to the container's own namespaces (with the default seccomp profile), so less
# grave than the rest of the list: reported as warnings.
_NAMESPACED_CAPABILITIES = frozenset({"NET_ADMIN", "SYS_PTRACE", "SYS_BOOT", "LINUX_IMMUTABLE"})

RUNTIME_SOCKETS = ("docker.sock", "containerd.sock", "crio.sock", "podman.sock")
# Directories whose mount hands over a runtime socket inside them.
_SOCKET_DIRS = re.compile(r"^(?:/var)?/run(?:/(?:docker|containerd|crio|podman))?$"
                          r"|^(?:/var)?/run/user/\d+(?:/(?:docker|podman))?$")
SENSITIVE_HOST_PATHS = ("/etc", "/proc", "/sys", "/var/run", "/run", "/root", "/boot", "/dev",
                        "/var/lib/docker", "/var/lib/kubelet", "/var/lib/etcd")
_ALL_INTERFACES = frozenset({"0.0.0.0", "::", "[::]", ""})
_RAW_DEVICES = re.compile(r"^/dev/(?:mem|kmem|port|sd[a-z]|nvme|vd[a-z]|xvd[a-z]|hd[a-z]|dm-|"
                          r"mapper/|loop|mmcblk|md\d|disk/|nbd|sr\d)")
_HOST_NAMESPACES = (("network", "error"), ("pid", "error"), ("ipc", "error"), ("uts", "warning"))


# How to fix a finding, in the words of the file it is in: the first part of a message
# says what is wrong (the same for every kind), this second part names the flag or key.
# `hardrun` specs come from `hardrun run` flags (or a run config they override): flags.
_FIXES = {
    "drop-capabilities": {
        "docker-run": "start from none with --cap-drop ALL",
        "compose": "start from none with cap_drop: [ALL]",
        "kubernetes": 'start from none with securityContext.capabilities.drop: ["ALL"]',
        "oci": "start from none: list no capabilities in process.capabilities",
    },
    "no-new-privileges": {
        "docker-run": "add --security-opt no-new-privileges",
        "compose": "add security_opt: [no-new-privileges:true]",
        "kubernetes": "set securityContext.allowPrivilegeEscalation: false",
        "oci": "set process.noNewPrivileges: true",
    },
    "read-only-root": {
        "docker-run": "add --read-only (and a tmpfs where the program writes)",
        "compose": "set read_only: true (and a tmpfs where the program writes)",
        "kubernetes": "set securityContext.readOnlyRootFilesystem: true "
                      "(and an emptyDir where the program writes)",
        "oci": "set root.readonly: true (and a tmpfs mount where the program writes)",
    },
    "read-only-mount": {
        "docker-run": "add :ro unless the container must write it",
        "compose": "add :ro (long syntax: read_only: true) unless the container must write it",
        "kubernetes": "set readOnly: true on the volumeMount unless the container must write it",
        "oci": 'add "ro" to the mount\'s options unless the container must write it',
    },
    "non-root-user": {
        "docker-run": "add -u with a non-zero uid",
        "compose": 'set user: to a non-zero uid ("10001:10001")',
        "kubernetes": "set securityContext.runAsNonRoot: true and a non-zero runAsUser",
        "oci": "set process.user.uid to a non-zero uid",
    },
    "memory": {
        "docker-run": "--memory", "compose": "mem_limit", "kubernetes": "resources.limits.memory",
        "oci": "linux.resources.memory.limit",
    },
    "pids": {
        "docker-run": "--pids-limit", "compose": "pids_limit", "oci": "linux.resources.pids.limit",
    },
}


def _fix(spec, fix: str) -> str:
    """The fix hint `fix` for the kind of file `spec` came from (flags by default)."""
    by_kind = _FIXES[fix]
    return by_kind.get(spec.kind) or by_kind["docker-run"]


def _hardened_by_default(spec) -> bool:
    return spec.kind == "hardrun"


def _line(spec, *keys):
    """The line of the first key that is recorded, else the declaration line."""
    for key in keys:
        if key in spec.lines:
            return spec.lines[key]
    return spec.line


def _host_path(path: str | None) -> str | None:
    """A normalised absolute host path, or None for relative or unresolved ones."""
    if not path or not path.startswith("/") or "$" in path:
        return None
    return posixpath.normpath(path).replace("//", "/")


def is_socket_mount(mount) -> bool:
    """A host bind of a runtime socket or of the directory holding it."""
    if mount.type != "bind" or not mount.source:
        return False
    source = mount.source.rstrip("/")
    if posixpath.basename(source) in RUNTIME_SOCKETS:
        return True
    path = _host_path(mount.source)
    return path is not None and bool(_SOCKET_DIRS.match(path))


def sensitive_prefix(path: str) -> str | None:
    """The sensitive host directory `path` is at or below (`/` only itself), if any."""
    if path == "/":
        return "/"
    for prefix in SENSITIVE_HOST_PATHS:
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return None


# --------------------------------------------------------------------------- privileges

@check("HR2001")
def privileged(spec, context):
    if spec.privileged:
        yield Hit(_line(spec, "privileged"))


@check("HR2002")
def socket_mount(spec, context):
    for mount in spec.mounts:
        if is_socket_mount(mount):
            yield Hit(mount.line or spec.line,
                      f"the container runtime socket {mount.source} is mounted: whoever controls "
                      "the container controls the host")


@check("HR2003")
def cap_add_dangerous(spec, context):
    for capability in spec.cap_add:
        if capability in DANGEROUS_CAPABILITIES:
            yield Hit(_line(spec, f"cap_add:{capability}", "cap_add"),
                      f"dangerous capability {capability} is added",
                      severity="warning" if capability in _NAMESPACED_CAPABILITIES else None)


@check("HR2004")
def no_cap_drop(spec, context):
    if "ALL" in spec.cap_drop or "cap_drop" in spec.unresolved or _hardened_by_default(spec):
        return
    yield Hit(_line(spec, "cap_drop"),
              f"capabilities are not dropped: {_fix(spec, 'drop-capabilities')}")


@check("HR2005")
def no_new_privileges(spec, context):
    if spec.no_new_privileges is True or "no_new_privileges" in spec.unresolved:
        return
    if spec.no_new_privileges is None and _hardened_by_default(spec):
        return
    if spec.no_new_privileges is False:
        yield Hit(_line(spec, "no_new_privileges"),
                  f"privilege escalation is explicitly allowed: {_fix(spec, 'no-new-privileges')}")
    else:
        yield Hit(spec.line,
                  f"privilege escalation is not blocked: {_fix(spec, 'no-new-privileges')}")


@check("HR2006")
def writable_root(spec, context):
    if spec.read_only_root is True or "read_only_root" in spec.unresolved:
        return
    if spec.read_only_root is None and _hardened_by_default(spec):
        return
    yield Hit(_line(spec, "read_only_root"),
              f"the root filesystem is writable: {_fix(spec, 'read-only-root')}")


@check("HR2007")
def host_namespace(spec, context):
    for namespace, severity in _HOST_NAMESPACES:
        if spec.shares_host(namespace):
            yield Hit(_line(spec, f"namespace:{namespace}", namespace),
                      f"the host's {namespace} namespace is shared with the container",
                      severity=severity)


@check("HR2008")
def seccomp_unconfined(spec, context):
    if (spec.seccomp or "").lower() == "unconfined":
        yield Hit(_line(spec, "seccomp"))


@check("HR2009")
def apparmor_unconfined(spec, context):
    if (spec.apparmor or "").lower() == "unconfined":
        yield Hit(_line(spec, "apparmor"), "AppArmor confinement is switched off (unconfined)")
    if spec.selinux_disabled:
        yield Hit(_line(spec, "selinux_disabled"), "SELinux labelling is switched off")


# --------------------------------------------------------------------------- mounts, devices

@check("HR2010")
def sensitive_host_mount(spec, context):
    for mount in spec.mounts:
        if mount.type != "bind" or is_socket_mount(mount):
            continue   # runtime sockets are HR2002's
        path = _host_path(mount.source)
        prefix = sensitive_prefix(path) if path else None
        if prefix is not None:
            yield Hit(mount.line or spec.line,
                      f"sensitive host path {path} is mounted"
                      + (" (read-only)" if mount.read_only else ""),
                      severity="warning" if mount.read_only else None)


@check("HR2011")
def rw_volume(spec, context):
    for mount in spec.mounts:
        if mount.type == "bind" and not mount.read_only:
            yield Hit(mount.line or spec.line,
                      f"host path {mount.source} is mounted writable at {mount.target}: "
                      + _fix(spec, "read-only-mount"))


@check("HR2015")
def device_access(spec, context):
    for index, device in enumerate(spec.devices):
        host = device.split(":", 1)[0]
        raw = bool(_RAW_DEVICES.match(host))
        yield Hit(_line(spec, f"device:{index}", "devices"),
                  f"host device {host} is passed into the container"
                  + (": raw disk or memory access reaches outside it" if raw else ""),
                  severity="error" if raw else None)


# Groups whose members read or write the host's disks, memory, logs or secrets, or drive
# its container engine: names as Debian and Fedora spell them, and gid 0.
_PRIVILEGED_GROUPS = frozenset({"0", "root", "disk", "kmem", "shadow", "sudo", "wheel", "adm",
                                "docker", "lxd", "systemd-journal"})


@check("HR2020")
def oom_score_lowered(spec, context):
    if spec.oom_score_adj is not None and spec.oom_score_adj < 0 and "oom_score_adj" not in spec.unresolved:
        yield Hit(_line(spec, "oom_score_adj"),
                  f"oom_score_adj {spec.oom_score_adj}: the OOM killer picks the host's other "
                  "processes before this container's")


@check("HR2021")
def privileged_group_added(spec, context):
    for group in spec.group_add:
        if group.strip() in _PRIVILEGED_GROUPS:
            yield Hit(_line(spec, f"group_add:{group}", "group_add"),
                      f"supplementary group {group} is added: its files (disks, memory, logs, "
                      "secrets or an engine's socket) become the container's")


# --------------------------------------------------------------------------- identity

def _is_root_user(user: str) -> bool:
    name = user.split(":", 1)[0].strip()
    return name in ("0", "root")


_PRIVATE_USERNS = frozenset({"private", "auto", "keep-id", "nomap"})


def _in_user_namespace(spec) -> bool:
    """Container ids are remapped: uid 0 inside is an unprivileged uid on the host
    (hardrun's default, podman --userns=auto, Kubernetes hostUsers: false)."""
    mode = spec.namespaces.get("user")
    if spec.kind == "hardrun":
        return mode != "host"
    return mode in _PRIVATE_USERNS or spec.userns_remap is not None


@check("HR2012")
def run_as_root(spec, context):
    if "user" in spec.unresolved or (spec.user is not None and "$" in spec.user):
        return
    if spec.user is None:
        if spec.run_as_non_root is True:
            return
        line, what = spec.line, "the container runs as root"
    elif _is_root_user(spec.user):
        line, what = _line(spec, "user"), f"the container runs as root (user {spec.user})"
    else:
        return
    if _in_user_namespace(spec):
        # Still root inside (files, setuid, the kernel's namespaced checks), but an
        # escape lands as an unprivileged host uid: worth knowing, not a warning.
        yield Hit(line, f"{what} inside a user namespace (an unprivileged uid on the host)",
                  severity="info")
        return
    if spec.user is None:
        what = "no user is set, so the container runs as root (unless its image sets one)"
    yield Hit(line, f"{what}: {_fix(spec, 'non-root-user')}")


# --------------------------------------------------------------------------- network

def _binds_everywhere(port) -> bool:
    return port.host_ip is None or port.host_ip.strip() in _ALL_INTERFACES


@check("HR2013")
def publish_all_interfaces(spec, context):
    if spec.publish_all:
        yield Hit(_line(spec, "publish_all"),
                  "every exposed port is published on all host interfaces (-P)")
    for port in spec.ports:
        if _binds_everywhere(port):
            yield Hit(port.line or spec.line,
                      f"port {port.container_port} is published on every host interface: "
                      "bind it to an address such as 127.0.0.1")


def _ports_of(text: str | None) -> set[str]:
    """Every port of `80`, `8000-8010` (capped: a huge range is not expanded)."""
    if not text or "$" in text:
        return set()
    low, dash, high = text.partition("-")
    if not dash:
        return {low}
    if not (low.isdigit() and high.isdigit()) or int(high) - int(low) > 70000:
        return set()
    return {str(n) for n in range(int(low), int(high) + 1)}


@check("HR2019")
def expose_sensitive(spec, context):
    for port in spec.ports:
        # The service listens on the container port; a host port is what scanners see.
        exposed = _ports_of(port.container_port) | _ports_of(port.host_port)
        numbers = sorted(exposed & {str(port) for port in SENSITIVE_PORTS}, key=int)
        if numbers:
            names = ", ".join(f"{n} ({SENSITIVE_PORTS[int(n)][1]})" for n in numbers)
            yield Hit(port.line or spec.line,
                      f"remote-administration port{'s' if len(numbers) > 1 else ''} {names} "
                      "published", severity="error" if "2375" in numbers else None)


# --------------------------------------------------------------------------- resources

def _limited(spec, field: str) -> bool:
    value = getattr(spec, field)
    if field == "pids_limit" and value is None and _hardened_by_default(spec):
        return True   # `hardrun run` applies its default pids limit (1024)
    return field in spec.unresolved or (value is not None and value > 0)


# Kubernetes has no per-container pids limit (it is a kubelet setting): memory only there.
_LIMITS_BY_KIND = {"kubernetes": (("memory", "memory"),)}
_LIMITS = (("memory", "memory"), ("pids_limit", "pids"))


@check("HR2014")
def no_resource_limits(spec, context):
    missing = [label for field, label in _LIMITS_BY_KIND.get(spec.kind, _LIMITS)
               if not _limited(spec, field)]
    if missing:
        settings = " and ".join(_fix(spec, label) for label in missing)
        yield Hit(spec.line, f"no {' or '.join(missing)} limit is set: one container can "
                             f"exhaust the host; set {settings}")


# --------------------------------------------------------------------------- secrets, images

@check("HR2016")
def secret_in_environment(spec, context):
    from .. import secrets
    for variable in spec.env:
        value = variable.value
        line = variable.line or _line(spec, f"env:{variable.name}")
        if value is not None and secrets.is_secret_name(variable.name) \
                and secrets.is_secret_value(value):
            yield Hit(line, f"secret {variable.name} is passed as a literal value: use a secret "
                            "store or pass it from the environment")
            continue
        for credential in secrets.find_credential_literals(value or ""):
            yield Hit(line, f"{credential.description} in environment variable {variable.name}")


def _image_problems(spec, context, practice: str):
    if not spec.image or "image" in spec.unresolved:
        return
    from .. import images
    trusted = getattr(context.options, "trusted_registries", None)
    for problem in images.judge_image(spec.image, trusted):
        if problem.practice == practice:
            yield Hit(_line(spec, "image"), problem.message)


@check("HR2017")
def untrusted_image(spec, context):
    yield from _image_problems(spec, context, "untrusted-base")


@check("HR2018")
def unpinned_image(spec, context):
    yield from _image_problems(spec, context, "unpinned-digest")
