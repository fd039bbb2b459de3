"""Host devices in the container: the plans (the child's binds that place them are
mounts.bind_devices, part of the container's /dev).

`--device HOST[:CONTAINER[:PERMS]]` and `--privileged` (every device node of the host's
/dev, as Docker gives) become DevicePlans; an OCI `linux.devices` entry is one too. A
device node is never created with mknod: in a user namespace the kernel refuses it, and
the container's root is mounted nodev. The host's node is bound instead, onto an empty
file in the container's own /dev tmpfs, before that /dev turns read-only.

With `--device`, the container gets a device cgroup as an engine's container does (the v1
devices controller, or on cgroup v2 a BPF device program: cgroups.py): every device denied
but runc's defaults and each `--device` node with its PERMS (`cgroup_rules`), so `r` or `w`
alone is enforced. Without `--device` there is none (the container's /dev holds only the
default nodes and every other mount is nodev), nor under `--privileged`, which allows every
device as Docker does. Under the user namespace (the default), a node owned by the host's
root is an unmapped owner's: the container's root may open it only as its mode allows others.
"""
from __future__ import annotations

import os
import posixpath
import stat

from ..errors import UsageError

# Paths of the container's /dev that hardrun makes itself (runtime/mounts.py: mount_dev).
RESERVED = ("/dev/pts", "/dev/shm", "/dev/fd", "/dev/stdin", "/dev/stdout", "/dev/stderr",
            "/dev/ptmx", "/dev/console")
# Directories of the host's /dev that --privileged does not take devices from (as Docker).
_PRIVILEGED_SKIPPED = ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev")
PERMISSIONS = "rwm"


class DevicePlan:
    """One device node to give the container: `path` inside it, `source` the host's node,
    `type` c or b, its numbers, `permissions` (Docker's rwm letters), and the mode and
    owner OCI writes (the bound node keeps the host's own)."""
    __slots__ = ("path", "source", "type", "major", "minor", "permissions", "file_mode", "uid", "gid")

    def __init__(self, path, source, type, major, minor, permissions=PERMISSIONS,
                 file_mode=0o666, uid=0, gid=0):
        self.path, self.source, self.type = path, source, type
        self.major, self.minor, self.permissions = major, minor, permissions
        self.file_mode, self.uid, self.gid = file_mode, uid, gid

    def as_oci(self) -> dict:
        """The `linux.devices` entry."""
        return {"path": self.path, "type": self.type, "major": self.major, "minor": self.minor,
                "fileMode": self.file_mode, "uid": self.uid, "gid": self.gid}

    def __repr__(self):
        return f"DevicePlan({self.source} -> {self.path}, {self.type} {self.major}:{self.minor})"


def parse_device(text: str) -> tuple[str, str, str]:
    """`HOST[:CONTAINER[:PERMS]]` (or `HOST:PERMS`, as Docker reads it) -> (host, container, perms)."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise UsageError(f"--device {text}: expected HOST[:CONTAINER[:PERMS]]")
    host = parts[0]
    container, permissions = host, PERMISSIONS
    if len(parts) == 2 and _is_permissions(parts[1]):
        permissions = parts[1]
    elif len(parts) >= 2:
        container = parts[1] or host
        if len(parts) == 3:
            permissions = parts[2]
    if not _is_permissions(permissions):
        raise UsageError(f"--device {text}: invalid permissions {permissions!r} (letters of rwm)")
    return host, container, permissions


def _is_permissions(text: str) -> bool:
    return bool(text) and all(char in PERMISSIONS for char in text) and len(set(text)) == len(text)


def plan_device(host: str, container: str, permissions: str = PERMISSIONS) -> DevicePlan:
    """A device the user named: its host node must exist and be a device; it goes under /dev."""
    what = f"device {host}"
    if not host.startswith("/") or not container.startswith("/"):
        raise UsageError(f"{what}: paths must be absolute")
    try:
        info = os.stat(host)     # a symlink such as /dev/disk/by-id/… leads to the node, as in Docker
    except OSError as error:
        raise UsageError(f"{what}: {error.strerror}") from None
    if not (stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)):
        raise UsageError(f"{what}: not a character or block device")
    return DevicePlan(_container_path(container, what), os.path.realpath(host),
                      "c" if stat.S_ISCHR(info.st_mode) else "b",
                      os.major(info.st_rdev), os.minor(info.st_rdev), permissions,
                      stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)


def _container_path(path: str, what: str) -> str:
    target = posixpath.normpath(path)
    if not target.startswith("/dev/") or "\0" in target:
        raise UsageError(f"{what}: the container path {path} must be under /dev/")
    if any(target == name or target.startswith(name + "/") for name in RESERVED):
        raise UsageError(f"{what}: {target} is the container's own (hardrun makes it)")
    return target


def plan_devices(texts, privileged: bool, line_of=lambda key: None) -> tuple[DevicePlan, ...]:
    """The devices of --device values (and every host device under --privileged), one per
    container path: a --device given explicitly wins over the same path from the host."""
    plans = {}
    if privileged:
        for plan in host_devices():
            plans[plan.path] = plan
    for index, text in enumerate(texts):
        try:
            plan = plan_device(*parse_device(text))
            if privileged and set(PERMISSIONS) - set(plan.permissions):
                raise UsageError(f"device {text}: permissions {plan.permissions!r} cannot be enforced under "
                                 "--privileged", hint="--privileged allows every device; drop one of the two")
        except UsageError as error:
            error.line = line_of(f"device:{index}")
            raise
        plans[plan.path] = plan
    return tuple(plans[path] for path in sorted(plans))


def host_devices(root: str = "/dev") -> tuple[DevicePlan, ...]:
    """Every character and block device node under the host's /dev (what --privileged gives)."""
    found = []
    for directory, subdirectories, names in os.walk(root):
        if directory == root:
            subdirectories[:] = [name for name in subdirectories if name not in _PRIVILEGED_SKIPPED]
        for name in names:
            path = f"{directory}/{name}"
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not (stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)):
                continue
            if any(path == reserved for reserved in RESERVED):
                continue
            found.append(DevicePlan(path, path, "c" if stat.S_ISCHR(info.st_mode) else "b",
                                    os.major(info.st_rdev), os.minor(info.st_rdev), PERMISSIONS,
                                    stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid))
    return tuple(found)


def cgroup_rules(plans, privileged: bool) -> list[dict]:
    """`linux.resources.devices` for these devices: every device allowed under --privileged (as
    Docker writes it), else every one denied but each node with its permissions (runc's defaults
    follow, device_rules)."""
    if privileged:
        return [{"allow": True, "access": PERMISSIONS}]
    return [{"allow": False, "access": PERMISSIONS}] + [
        {"allow": True, "type": plan.type, "major": plan.major, "minor": plan.minor, "access": plan.permissions}
        for plan in plans]


def restrict(limits, plans) -> None:
    """Give `limits` (cgroups.Limits) the device cgroup of `hardrun run --device` (not called
    under --privileged, nor without --device: then there is none)."""
    from .device_rules import cgroup_v1_writes
    limits.devices = cgroup_v1_writes(cgroup_rules(plans, False))
    limits.devices_asked, limits.devices_flag = True, "--device"
    # a PERMS without r or w holds only through the cgroup; otherwise the nodes' own access is the
    # same with or without it (mknod is impossible anyway), so --limits best-effort may go without
    limits.devices_required = any(set("rw") - set(plan.permissions) for plan in plans)
