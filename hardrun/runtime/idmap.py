"""The one idmapped mount of a tree, and the user namespace whose id maps it carries.

`hardrun run` idmaps an image's layers and a --rootfs prepared for another range
(runtime/image_root.py); hardrun-oci idmaps a bundle's root and binds
(runtime/oci_userns.py). Apart from image_root so that `hardrun-oci create` loads only this.
"""
from __future__ import annotations

import os

from ..errors import HardrunError
from . import syscalls as k


def attach_idmapped(source_fd: int, target: str, userns_fd: int, attrs: int, recursive: bool = False,
                    k=k) -> None:
    """A detached copy of the tree at `source_fd`, idmapped with the maps of the user namespace
    `userns_fd` and given the mount attributes `attrs`, attached on `target` (`k`: the system
    calls, hardrun.runtime.syscalls or a test's recording fake)."""
    from .mounts import bind
    target_fd = k.open_fd(target, k.O_PATH | os.O_CLOEXEC)
    try:
        bind(source_fd, target_fd, k.MOUNT_ATTR_IDMAP | attrs, recursive, k, userns_fd)
    finally:
        k.close(target_fd)


def userns_with(id_maps) -> int:
    """An fd of a user namespace with the container's id maps (a child process makes it,
    the maps are written for it, and it exits; the fd keeps the namespace)."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:        # pragma: no cover - the child only unshares and waits
        try:
            os.close(ready_r)
            os.close(hold_w)
            k.unshare(k.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(hold_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise HardrunError("cannot create the user namespace for the image's idmapped layers")
        from .userns import IdMaps, write_id_maps
        write_id_maps(pid, IdMaps(id_maps.uid, id_maps.gid, "direct", setgroups=False))
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(hold_w)
        os.close(ready_r)
        os.waitpid(pid, 0)
