"""The OCI runtime-spec `config.json` model: the one writer, and the names its reader shares.

`config()` writes the document both `hardrun run --dry-run` (runtime/config.to_oci, from
the resolved plan) and `hardrun export --to oci` (policy/export.to_oci, from a hardened
RunSpec) print, so the two cannot disagree about what hardrun's defaults look like in
OCI terms: the version, the kernel file systems as runtime/mounts.py mounts them, the
capability sets, the namespaces and their order. The reader (frontends/oci.py) spells
capability sets, namespace types and rlimits with the names below.

Standard library only: imported by the exporter and by the runtime's --dry-run.
"""
from __future__ import annotations

import os

from .defaults import (DEFAULT_TMPFS, DEFAULT_TMPFS_SIZE, DEV_TMPFS_DATA, DEVPTS_DATA, NAMESPACES,
                       SHM_TMPFS_DATA)

# 1.0.2, what Docker writes: Debian 12's crun (1.8) refuses "unknown version" for 1.2.0
OCI_VERSION = "1.0.2"
CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
# OCI namespace types are spelled as hardrun's namespace names (RunSpec.namespaces keys).
NAMESPACE_TYPES = NAMESPACES
RLIM_INFINITY = 2**64 - 1
# Files every engine writes for each container in its own state and binds in (Docker from
# <data-root>/containers/<id>/, Podman from .../<id>/userdata/, the CRI from .../sandboxes/<pod id>/),
# Podman's /run/.containerenv, and the directory of the container's own /dev/shm (Podman:
# <bundle>/shm; Docker with --ipc shareable: <data-root>/containers/<id>/mounts/shm).
ENGINE_FILES = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run/.containerenv", "/dev/shm")
ENGINE_DIRECTORIES = ("/dev/shm",)
# The annotations naming a container's pod sandbox (CRI: containerd, CRI-O). Only containerd's
# vouches for a file, and only in the CRI's own layout (is_pod_file); hardrun-oci finds a pod's
# user namespace by it (runtime/oci_userns.py). The verdict cache keeps neither: the decision
# they feed is in its key.
SANDBOX_ANNOTATIONS = ("io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID")
CRI_SANDBOX_ANNOTATION = SANDBOX_ANNOTATIONS[0]
# containerd's CRI plugin: a container's bundle is <state>/io.containerd.runtime.v2.task/k8s.io/<id>,
# its pod's files are in <root or state>/io.containerd.grpc.v1.cri/sandboxes/<sandbox id>/.
CRI_TASK_DIRECTORY = ("io.containerd.runtime.v2.task", "k8s.io")
CRI_SANDBOX_DIRECTORY = ("io.containerd.grpc.v1.cri", "sandboxes")
MIN_ENGINE_ID = 12        # engines name containers by 64 hex digits (12 in short form)


def is_bind(kind: str, options) -> bool:
    """A config.json mount that binds a host path: type bind, or a bind/rbind option."""
    return kind == "bind" or "bind" in options or "rbind" in options


def is_engine_source(destination: str, source: str) -> bool:
    """The source of an engine file is a regular file, of /dev/shm a directory."""
    return os.path.isdir(source) if destination in ENGINE_DIRECTORIES else os.path.isfile(source)


def is_engine_file(destination, source, config_path: str, annotations) -> bool:
    """A bind of exactly one of ENGINE_FILES from a regular file (for /dev/shm: a directory)
    of the same name in a directory named after this container or its pod (the bundle's
    directory, or its parent for Podman's `userdata`; the CRI's sandbox annotation in the CRI's
    own layout: is_pod_file): the engine's own copy. A user's `-v /etc:/etc`,
    `-v /etc/hosts:/etc/hosts` or `-v /dev/shm:/dev/shm` is not one, nor another container's
    /dev/shm (`--ipc container:`). Read by the OCI front end and by the verdict cache's key alike."""
    if not _is_engine_bind(destination, source):
        return False
    bundle = os.path.dirname(os.path.abspath(config_path))
    owners = {os.path.basename(bundle), os.path.basename(os.path.dirname(bundle))}
    owners = {owner for owner in owners if len(owner) >= MIN_ENGINE_ID}
    sandbox = annotations.get(CRI_SANDBOX_ANNOTATION) if isinstance(annotations, dict) else None
    if _in_pod_directory(destination, source, bundle, sandbox):
        return True
    return bool(owners & set(os.path.dirname(source).split("/")))


def is_pod_file(destination, source, bundle: str, sandbox) -> bool:
    """The CRI pod `sandbox`'s own copy of an engine file (and its /dev/shm: a CRI container
    joins its pod's ipc namespace too), only where containerd's CRI plugin wrote both: the
    bundle in its task directory (namespace k8s.io), the sandbox a task of that same directory,
    and the file directly in that sandbox's directory of that containerd (cri_pod_directories).
    The sandbox annotation is the config's word elsewhere (`podman run --annotation` names any
    container), and CRI-O's bundles lie where Podman's do (containers/storage), so nothing tells
    its pod's files from another container's: its annotation vouches for none."""
    return _is_engine_bind(destination, source) and _in_pod_directory(destination, source, bundle, sandbox)


def _in_pod_directory(destination: str, source: str, bundle: str, sandbox) -> bool:
    directories = cri_pod_directories(bundle, sandbox)
    if not directories:
        return False
    real = os.path.realpath(source)     # a link there pointing elsewhere is not the pod's file
    return os.path.basename(real) == os.path.basename(destination) and os.path.dirname(real) in directories


def cri_pod_directories(bundle: str, sandbox) -> tuple[str, ...]:
    """Where containerd's CRI plugin keeps the files of pod `sandbox` for a container whose
    bundle is `bundle` (resolved): `<state>/io.containerd.grpc.v1.cri/sandboxes/<sandbox>` (its
    /dev/shm) and the same under containerd's root (/etc/hosts, /etc/hostname,
    /etc/resolv.conf). The bundle is `<state>/io.containerd.runtime.v2.task/k8s.io/<id>`, the
    sandbox's own bundle beside it, and the root is the one the bundle's `work` link (made by
    containerd: `<root>/io.containerd.runtime.v2.task/k8s.io/<id>`) names. Nothing otherwise:
    another sandbox's directory, another containerd's, or the CRI root itself are not this pod's."""
    if not isinstance(sandbox, str) or len(sandbox) < MIN_ENGINE_ID or os.path.basename(sandbox) != sandbox \
            or sandbox.startswith("."):
        return ()
    bundle = os.path.abspath(bundle)
    tasks = os.path.dirname(bundle)
    if _last_two(tasks) != CRI_TASK_DIRECTORY or not os.path.isdir(os.path.join(tasks, sandbox)):
        return ()
    homes = [os.path.dirname(os.path.dirname(tasks))]
    try:
        work = os.readlink(os.path.join(bundle, "work"))
    except OSError:
        work = ""
    if os.path.isabs(work) and os.path.basename(work) == os.path.basename(bundle) \
            and _last_two(os.path.dirname(work)) == CRI_TASK_DIRECTORY:
        homes.append(os.path.dirname(os.path.dirname(os.path.dirname(work))))
    return tuple(os.path.realpath(os.path.join(home, *CRI_SANDBOX_DIRECTORY, sandbox)) for home in homes)


def _is_engine_bind(destination, source) -> bool:
    """A bind onto one of ENGINE_FILES from an absolute path of the same name, a regular
    file (for /dev/shm: a directory)."""
    if destination not in ENGINE_FILES or not isinstance(source, str) or not os.path.isabs(source):
        return False
    return os.path.basename(source) == os.path.basename(destination) and is_engine_source(destination, source)


def _last_two(path: str) -> tuple[str, str]:
    return os.path.basename(os.path.dirname(path)), os.path.basename(path)


def joined_namespace(path: str) -> str:
    """A namespace joined by path, as the OCI front end judges it: pid 1's namespaces are the
    host's, any other is another container's (no rule reads which)."""
    if os.path.normpath(path).startswith("/proc/1/ns/"):
        return "host"
    return f"container:{path}"


# /proc, /sys and /dev as `hardrun run` mounts them (runtime/mounts.py: mount_proc,
# mount_sys, mount_dev); their flags are nosuid, nodev, noexec unless said otherwise.
KERNEL_MOUNTS = (
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "noexec", *DEV_TMPFS_DATA.split(",")]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", *DEVPTS_DATA.split(",")]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", *SHM_TMPFS_DATA.split(",")]},
)


def mount(kind: str, target: str, source: str | None = None, read_only: bool = False,
          exec_: bool = False, data: str = "", recursive: bool = True) -> dict:
    """One bind or tmpfs mount as an OCI `mounts` entry: always nosuid and nodev."""
    options = ["nosuid", "nodev", "ro" if read_only else "rw"]
    if not exec_:
        options.append("noexec")
    if kind == "bind":
        options = ["rbind" if recursive else "bind"] + options
    elif data:
        options += data.split(",")
    return {"destination": target, "type": "bind" if kind == "bind" else "tmpfs",
            "source": source if kind == "bind" else "tmpfs", "options": options}


def default_tmpfs_mounts(taken) -> list[dict]:
    """The tmpfs /tmp and /run every container gets, unless a mount in `taken` is there."""
    return [mount("tmpfs", target, data=f"mode={mode},size={DEFAULT_TMPFS_SIZE}")
            for target, mode in DEFAULT_TMPFS if target not in taken]


def capabilities(names, ambient: bool) -> dict:
    """The five sets for capabilities `names` (`NET_RAW` or `CAP_NET_RAW`): ambient, and so
    inheritable (the kernel keeps ambient within it), only when `ambient`: a uid-0 process
    with a non-empty inheritable set would regain it at exec."""
    granted = [name if name.startswith("CAP_") else f"CAP_{name}" for name in names]
    carried = granted if ambient else []
    return {"bounding": granted, "effective": granted, "permitted": granted,
            "inheritable": carried, "ambient": carried}


def id_mappings(pairs) -> list[dict]:
    """(inside, outside, count) triples as `uidMappings`/`gidMappings` entries."""
    return [{"containerID": inside, "hostID": outside, "size": count}
            for inside, outside, count in pairs]


def rlimits(ulimits) -> list[dict]:
    """RunSpec ulimits as `process.rlimits` (-1, unlimited, is RLIM_INFINITY)."""
    return [{"type": f"RLIMIT_{u.name.upper()}", "soft": _rlimit(u.soft), "hard": _rlimit(u.hard)}
            for u in ulimits]


def ulimit_name(rlimit_type: str) -> str:
    """`RLIMIT_NOFILE` -> `nofile` (the RunSpec's, and Docker's, name)."""
    lowered = rlimit_type.lower()
    return lowered[len("rlimit_"):] if lowered.startswith("rlimit_") else lowered


def _rlimit(value: int) -> int:
    return RLIM_INFINITY if value < 0 else value


def _kernel_mount_options(entry: dict, sys_read_only: bool) -> list:
    if entry["destination"] == "/sys" and not sys_read_only:
        return [option for option in entry["options"] if option != "ro"] + ["rw"]
    return list(entry["options"])


def config(*, args, env, cwd: str, user: dict, capability_sets: dict, no_new_privileges: bool,
           root: str, read_only: bool, hostname: str, namespaces, mounts, masked_paths,
           readonly_paths, uid_map=None, gid_map=None, terminal: bool = False, process_rlimits=(),
           resources: dict | None = None, sys_read_only: bool = True, linux_extra: dict | None = None,
           process_extra: dict | None = None, annotations: dict | None = None) -> dict:
    """A Linux OCI config.json. `mounts`: those after the kernel file systems, in order;
    `namespaces`: the private ones (written in NAMESPACE_TYPES order); `uid_map`/`gid_map`:
    (inside, outside, count) triples when there is a user namespace; `sys_read_only`: False
    for --privileged's writable /sys."""
    linux: dict = {"namespaces": [{"type": name} for name in NAMESPACE_TYPES if name in namespaces],
                   "maskedPaths": list(masked_paths), "readonlyPaths": list(readonly_paths)}
    if uid_map is not None:
        linux["uidMappings"] = id_mappings(uid_map)
        linux["gidMappings"] = id_mappings(gid_map)
    if resources:
        linux["resources"] = resources
    linux.update(linux_extra or {})
    process: dict = {"terminal": terminal, "user": user, "args": list(args), "env": list(env),
                     "cwd": cwd, "capabilities": capability_sets,
                     "noNewPrivileges": bool(no_new_privileges)}
    if process_rlimits:
        process["rlimits"] = list(process_rlimits)
    process.update(process_extra or {})
    document = {"ociVersion": OCI_VERSION, "process": process,
                "root": {"path": root, "readonly": bool(read_only)}, "hostname": hostname,
                "mounts": [dict(entry, options=_kernel_mount_options(entry, sys_read_only))
                           for entry in KERNEL_MOUNTS] + list(mounts),
                "linux": linux}
    if annotations:
        document["annotations"] = annotations
    return document
