"""hardrun-oci's user namespace for a bundle that has none (`--userns auto`, the default).

An engine that passes no `uidMappings` asks for a container whose root is the host's root.
Under `auto`, `create` gives such a container a user namespace of its own instead: a range
of host ids leased as `hardrun run` leases one (hardrun.runtime.userns.lease_id_range, the
same pool and lease files), with container ids 0..65535 mapped onto it. The engine still
expects the files it prepared to be owned by host root, so the file system the container
sees goes through idmapped mounts (`mount_setattr(MOUNT_ATTR_IDMAP)`) with the container's
map: container root reads and writes files owned by host root on disk, and what it creates
is owned by host root on disk too.

- The root: overlayfs refuses to idmap its own mounts (EINVAL), so an overlay root (Docker's
  `overlay2`, containerd's overlayfs snapshotter) is rebuilt: its layers, read from
  /proc/self/mountinfo, are each idmapped (the upper and work directories through one
  idmapped mount of their common parent: overlayfs wants them on the same mount) and a new
  overlay is mounted over them (overlayfs accepts idmapped layers since Linux 5.19), with a
  work directory of its own and mounted as the container's root seen from the host. Any
  other root (a plain directory) is an idmapped bind of itself.
- A bind mount the engine made for this container is an idmapped copy of its source, so the
  container's root owns what the engine made for it as root: a bind from the bundle's
  directory; the container's own /etc/hosts, /etc/resolv.conf, /etc/hostname,
  /run/.containerenv and /dev/shm wherever the engine keeps them, in a directory named
  after it (spec/oci.is_engine_file, the OCI front end's rule: Podman keeps them in its
  runroot, not its storage); for a member of a CRI pod, the pod's own, directly in the
  directory containerd keeps for the sandbox whose user namespace it joined
  (spec/oci.is_pod_file: another pod's are host binds); and from the engine's storage (for
  an overlay root laid out as Docker's and Podman's are, `STORE/DRIVER/ID/merged` over
  `STORE/DRIVER/ID/diff`, the directory STORE: Docker's data-root, Podman's graphroot)
  named volumes (`STORE/volumes/NAME/_data`). Another container's files, the layers or the storage
  itself bound by a user are host binds. A bind of any other host path is not idmapped:
  there the container's root is an unmapped id (nobody), so it reads what the host lets
  anyone read and cannot write files owned by host root (as under Docker's
  `--userns-remap`).

These mounts are made by `create` in a mount namespace of its own, that the container's
init is cloned from (it gets copies), and that `create` leaves again at once: nothing is
mounted on the host. A mount that cannot be idmapped (a file system without idmap support)
fails the create, naming it: fail closed, unless `--userns keep`.

A bundle that joins namespaces by path is one of a unit (a CRI pod, `--network container:X`,
a Podman pod): hardrun.runtime.oci_joins decides its user namespace and joins them.
"""
from __future__ import annotations

import os

from ..errors import HardrunError
from . import syscalls as k

CARRIED_OPTIONS = ("metacopy", "redirect_dir", "index", "xino", "uuid", "nfs_export")
OWN_WORKDIR = "hardrun"     # in the engine's work directory: the new overlay's own
STAGING = "mounts"      # in the container's state directory: where the idmapped mounts are attached
STAGING_SYSFS = STAGING + "/sys"     # the sysfs of a joined network namespace, beside the idmapped mounts


class IdmapError(HardrunError):
    """A mount of the bundle could not be idmapped: the container is not created."""
    exit_code = 1


# A process's namespaces: their /proc/<pid>/ns file and clone flag, in the order `exec` joins
# them: the user namespace first gives the capabilities to join the rest (but for those the
# caller's own user namespace owns: before it, host_owned_first).
NAMESPACE_FILES = (("user", "user", k.CLONE_NEWUSER), ("ipc", "ipc", k.CLONE_NEWIPC), ("uts", "uts", k.CLONE_NEWUTS),
                   ("network", "net", k.CLONE_NEWNET), ("pid", "pid", k.CLONE_NEWPID),
                   ("cgroup", "cgroup", k.CLONE_NEWCGROUP), ("mount", "mnt", k.CLONE_NEWNS))
# The namespaces clone_joined joins by path, around the user namespace
JOINED_FIRST = {kind: flag for kind, _, flag in NAMESPACE_FILES if kind in ("network", "ipc", "uts", "pid")}


class Plan:
    """What `--userns auto` does with a bundle: `kind` keep (`note` says why, or None),
    own (a new user namespace and range) or member (`owner`'s); `before`: the (type, path)
    joined while privileged in the host's user namespace, `after`: those joined once in
    the member's user namespace; `pod`: the CRI sandbox a member of a pod belongs to (its
    owner, named by the annotation and verified), whose files are idmapped with it."""
    __slots__ = ("kind", "note", "owner", "before", "after", "pod")

    def __init__(self, kind: str, note: str | None = None, owner=None,
                 before=(), after=()):
        self.kind, self.note, self.owner = kind, note, owner
        self.before, self.after = tuple(before), tuple(after)
        self.pod: str | None = None

    @property
    def joins(self) -> bool:
        return bool(self.before or self.after or self.owner)

    def close(self) -> None:
        if self.owner is not None:
            self.owner.close()


def plan(document: dict, mode: str) -> Plan:
    """The user namespace of a bundle under `mode` (see the module's docstring): keep, own, or
    `joins` for one that joins namespaces by path (`before`: their (type, path)), which
    hardrun.runtime.oci_joins.plan decides."""
    entries = _entries(document) if mode != "keep" else None
    if entries is None or any(entry.get("type") == "user" for entry in entries):
        return Plan("keep")
    joined = [(str(entry.get("type")), str(entry["path"])) for entry in entries if entry.get("path")]
    return Plan("joins", before=joined) if joined else Plan("own")


def _entries(document: dict) -> list | None:
    linux = document.get("linux")
    entries = linux.get("namespaces") if isinstance(linux, dict) else None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        return None
    return entries


def recorded_namespace(pid: int, lease) -> dict:
    """What the state records of a container's user namespace: members find it by it."""
    info = os.stat(f"/proc/{pid}/ns/user")
    return {"inode": info.st_ino, "device": info.st_dev, "lease": lease.path or None,
            "uid": lease.uid_start, "gid": lease.gid_start, "count": lease.count}


def add_to_document(document: dict, lease, owner: str | None = None) -> str:
    """Put the user namespace and the lease's maps into the document (in place); return the
    note recorded with the floor's changes. `owner`: the container whose user namespace a
    member joins (its maps are the lease's)."""
    linux = document["linux"]
    namespaces = list(linux.get("namespaces") or [])
    added = ["user"]
    if not any(entry.get("type") == "cgroup" for entry in namespaces):
        # a user namespace can mount the cgroup (v1) hierarchies only in a cgroup namespace
        # it owns: the container then sees its own cgroup as the root, as on cgroup v2
        added.append("cgroup")
    linux["namespaces"] = namespaces + [{"type": name} for name in added]
    linux["uidMappings"] = [{"containerID": 0, "hostID": lease.uid_start, "size": lease.count}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": lease.gid_start, "size": lease.count}]
    # a sysctl of a joined network namespace is written from the host's user namespace
    joined_network = any(entry.get("type") == "network" and entry.get("path") for entry in namespaces)
    clamped = None if joined_network else _clamp_ping_group_range(linux, lease.count)
    whose = f"the user namespace of container {owner}" if owner else "a user namespace of its own"
    return (f"{whose} (container ids 0-{lease.count - 1} are host "
            f"uids {lease.uid_start}-{lease.uid_start + lease.count - 1}, gids {lease.gid_start}-"
            f"{lease.gid_start + lease.count - 1}); its root file system and the engine's binds are idmapped"
            + ("; a cgroup namespace added with it" if "cgroup" in added else "")
            + (f"; sysctl net.ipv4.ping_group_range {clamped}" if clamped else ""))


def _clamp_ping_group_range(linux: dict, count: int) -> str | None:
    """Docker asks every container for ping_group_range `0 2147483647` (all groups); in a user
    namespace the kernel takes only groups mapped there (EINVAL otherwise), so "all" becomes
    all of the container's. What was changed, or None."""
    sysctl = linux.get("sysctl")
    if not isinstance(sysctl, dict):
        return None
    value = sysctl.get("net.ipv4.ping_group_range")
    parts = value.split() if isinstance(value, str) else []
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    low, high = int(parts[0]), int(parts[1])
    if low >= count or high < count:
        return None
    sysctl["net.ipv4.ping_group_range"] = f"{low} {count - 1}"
    return f"{value!r} -> '{low} {count - 1}' (the groups mapped in it)"


# -- the mounts -----------------------------------------------------------------------------

class MappedMounts:
    """The idmapped root and binds of one container, in a mount namespace `create` enters
    for the clone of the init only (`enter` -> the config to run, `leave`)."""

    def __init__(self, state_dir: str, cfg, bundle: str, k=k, pod: str | None = None):
        self.state_dir, self.cfg, self.bundle = state_dir, cfg, bundle
        self.pod = pod      # the CRI sandbox whose user namespace a pod's member shares (Plan.pod)
        self.own_ns = self.own_cwd = -1
        self.k = k      # the system calls: hardrun.runtime.syscalls, or a test's recording fake

    def enter(self):
        from ..spec.record import replace
        from .idmap import userns_with
        k = self.k
        self.own_ns = k.open_fd("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        self.own_cwd = k.open_fd(".", k.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        mountinfo = read_mountinfo()
        _create_mount_points(self.cfg, k)
        k.unshare(k.CLONE_NEWNS)
        # slave: the host's mounts still reach this namespace, nothing made here reaches the host
        k.mount(None, "/", None, k.MS_REC | k.MS_SLAVE)
        staging = os.path.join(self.state_dir, STAGING)
        k.mkdir(staging, 0o700)
        k.mount("tmpfs", staging, "tmpfs", k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC, "mode=0700")
        userns_fd = userns_with(self.cfg.id_maps)
        try:
            owner = (self.cfg.id_maps.uid[0][1], self.cfg.id_maps.gid[0][1])     # the container's root
            root, stores = _map_root(self.cfg.rootfs, mountinfo, staging, userns_fd, owner, k)
            mounts = tuple(self._mapped(plan, index, stores, mountinfo, staging, userns_fd)
                           for index, plan in enumerate(self.cfg.mounts))
        finally:
            k.close(userns_fd)
        return replace(self.cfg, rootfs=root, mounts=mounts)

    def _mapped(self, plan, index: int, stores, mountinfo, staging: str, userns_fd: int):
        """The plan, its source an idmapped copy if it is the engine's (`_engine_owned`). The
        source is resolved once: the file judged is the file idmapped, whatever link is swapped
        into its path meanwhile (a volume's subdirectory is the container's to change)."""
        if plan.kind != "bind":
            return plan
        k = self.k
        try:
            fd = k.open_fd(plan.source, k.O_PATH | os.O_CLOEXEC)
        except OSError:
            return plan     # a host bind whose source is missing: the init reports it, naming it
        try:
            if not self._engine_owned(plan, k.readlink(f"/proc/self/fd/{fd}"), stores, mountinfo):
                return plan
            return _map_bind(plan, fd, index, staging, userns_fd, k)
        finally:
            k.close(fd)

    def _engine_owned(self, plan, source: str, stores, mountinfo) -> bool:
        """A bind the engine made for this container, to be idmapped onto its range: one from
        the bundle's directory, the container's own /etc/hosts, /etc/hostname,
        /etc/resolv.conf, /run/.containerenv or /dev/shm wherever the engine keeps them (the
        OCI front end's engine files: in a directory named after this container; Podman's
        are in its runroot, outside the storage), those of the CRI pod whose user namespace
        it shares, in that sandbox's directory (spec/oci.is_pod_file) and, from the engine's
        storage, named volumes (STORE/volumes/NAME/_data) on the storage's own file system (a volume made
        with `--opt o=bind,device=DIR` is a mount of a host directory there). Anything else
        (another container's files, the layers, the storage itself) is a host bind:
        idmapped, the container's root would own what host root owns there. `source`: the
        resolved path of the bind's source."""
        from ..spec.oci import is_engine_file, is_pod_file
        bundle = self.k.realpath(self.bundle)
        if _under(source, bundle):
            return True
        for store in stores:
            if _under(source, store):
                parts = os.path.relpath(source, store).split("/")
                if len(parts) >= 3 and parts[0] == "volumes" and parts[2] == "_data":
                    return _mount_of(mountinfo, source) is _mount_of(mountinfo, store)
                break
        # wherever the engine keeps them (Podman: its runroot, outside the storage): only those
        # in a directory named after this container, or in the sandbox directory of the pod whose
        # user namespace it joined (verified by its inode, not the annotation's word alone)
        if self.pod is not None and is_pod_file(plan.target, source, bundle, self.pod):
            return True
        return is_engine_file(plan.target, source, os.path.join(bundle, "config.json"), None)

    def leave(self) -> None:
        """Back in the mount namespace `create` started in (the private one goes with the
        last process in it; the init has its own copy)."""
        k = self.k
        if self.own_ns >= 0:
            k.setns(self.own_ns, k.CLONE_NEWNS)
            k.close(self.own_ns)
            self.own_ns = -1
        if self.own_cwd >= 0:
            k.fchdir(self.own_cwd)      # setns moved the working directory to the namespace's root
            k.close(self.own_cwd)
            self.own_cwd = -1


def _create_mount_points(cfg, k=k) -> None:
    """The mount points the engine's root lacks, made as the engine sees its root (owned by
    host root), as runc makes them: through the idmapped root the init could not (its host
    uid has no id on disk there). Inside the root whatever its links say (RESOLVE_IN_ROOT).
    One that cannot be made is left for the init to report, naming it."""
    from .mounts import mountpoint
    root_fd = k.open_fd(cfg.rootfs, k.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        points = [("/proc", True), ("/sys", True), ("/dev", True)]
        points += [(plan.target, plan.kind != "bind" or plan.source_is_dir) for plan in cfg.mounts]
        for target, is_dir in points:
            try:
                k.close(mountpoint(root_fd, target, is_dir, True, 0, k))
            except OSError:
                continue
    finally:
        k.close(root_fd)


def _under(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


def _map_root(rootfs: str, mountinfo, staging: str, userns_fd: int, owner, k=k) -> tuple[str, list[str]]:
    """(the idmapped root, the engine's storage directories it shows)."""
    path = k.realpath(rootfs)
    target = os.path.join(staging, "root")
    k.mkdir(target, 0o755)
    mount = _mount_at(mountinfo, path)
    if mount is not None and mount.fstype == "overlay":
        return target, _rebuild_overlay(mount, path, staging, target, userns_fd, owner, k)
    _idmapped_bind(path, target, userns_fd, recursive=False, what=f"root.path {rootfs}", k=k)
    return target, []


def _rebuild_overlay(mount, path: str, staging: str, target: str, userns_fd: int, owner, k=k) -> list[str]:
    lowers, upper, work = overlay_layers(mount.options, os.path.dirname(os.path.dirname(path)))
    if not lowers:
        raise IdmapError(f"root.path {path}: an overlay without lowerdir in /proc/self/mountinfo")
    mapped = []
    for index, lower in enumerate(lowers):
        where = os.path.join(staging, f"lower-{index}")
        k.mkdir(where, 0o755)
        _idmapped_bind(lower, where, userns_fd, recursive=False, what=f"root.path {path}: layer {lower}", k=k)
        mapped.append(where)
    options = "lowerdir=" + ":".join(mapped)
    if upper is not None:
        parent = os.path.dirname(upper)
        if work is None or os.path.dirname(work) != parent:
            raise IdmapError(f"root.path {path}: the overlay's upperdir and workdir do not share a parent "
                             "directory, so they cannot be idmapped through one mount")
        where = os.path.join(staging, "upper")
        k.mkdir(where, 0o755)
        _idmapped_bind(parent, where, userns_fd, recursive=False, what=f"root.path {path}: upperdir {upper}", k=k)
        own_work = _own_workdir(work, k)
        options += (f",upperdir={where}/{os.path.basename(upper)}"
                    f",workdir={where}/{os.path.basename(work)}/{os.path.basename(own_work)}")
    elif len(mapped) == 1:
        options += f":{os.path.join(staging, 'empty')}"    # overlayfs wants two layers without an upper one
        k.mkdir(os.path.join(staging, "empty"), 0o755)
    # carried over as the engine mounted it: these change how the layers are written and read
    options += "".join(f",{option}" for option in mount.options.split(",")
                       if option.partition("=")[0] in CARRIED_OPTIONS)
    try:
        _mount_as(owner, target, options, 0 if upper else k.MS_RDONLY, k)
    except OSError as error:
        raise IdmapError(f"root.path {path}: cannot mount an overlay of its idmapped layers: "
                         f"{error.strerror}") from None
    return _store_of(path, upper, k)


def _mount_as(ids: tuple[int, int], target: str, options: str, flags: int, k=k) -> None:
    """Mount the overlay as the container's root seen from the host (euid and egid; the
    capabilities raised again): overlayfs does its own work in the upper layer (its work
    directory, whiteouts, copy-up) with its mounter's credentials, and through the idmapped
    upper layer host root has no id on disk (EOVERFLOW: the kernel then mounts it read-only)."""
    uid, gid = ids
    effective, permitted, inheritable = k.capget()
    k.setegid(gid)
    k.seteuid(uid)
    try:
        k.capset(permitted, permitted, inheritable)    # a euid other than 0 cleared the effective set
        k.mount("overlay", target, "overlay", flags, options)
    finally:
        k.seteuid(0)
        k.setegid(0)
        k.capset(effective, permitted, inheritable)


def _own_workdir(work: str, k=k) -> str:
    """A work directory of the new overlay's own, made afresh inside the engine's (so on the
    upper layer's file system, and removed with it): two overlays sharing one work directory
    is undefined behaviour, and one that a `volatile` overlay used (Podman's --rm) refuses
    every other mount ("incompat feature 'volatile'")."""
    own = os.path.join(work, OWN_WORKDIR)
    if k.lexists(own):
        from .state import remove_tree
        remove_tree(own)        # a previous create's, of the same container
    k.mkdir(own, 0o700)
    return own


def _store_of(path: str, upper: str | None, k=k) -> list[str]:
    """STORE of a root at STORE/DRIVER/ID/merged over STORE/DRIVER/ID/diff (Docker's
    overlay2, Podman's overlay), else nothing."""
    container_dir = os.path.dirname(path)
    if upper is None or os.path.dirname(k.realpath(upper)) != container_dir:
        return []
    store = os.path.dirname(os.path.dirname(container_dir))
    return [store] if store not in ("/", "") else []


def _map_bind(plan, source_fd: int, index: int, staging: str, userns_fd: int, k=k):
    """The bind plan with its source (open at `source_fd`) replaced by an idmapped copy."""
    from .mounts import MountPlan
    where = os.path.join(staging, f"bind-{index}")
    if plan.source_is_dir:
        k.mkdir(where, 0o755)
    else:
        k.close(k.open_fd(where, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    _idmapped_attach(source_fd, plan.source, where, userns_fd, recursive=plan.recursive,
                     what=f"the mount of {plan.source} on {plan.target}", k=k)
    return MountPlan(plan.kind, plan.target, where, plan.read_only, plan.exec_, plan.data,
                     plan.source_is_dir, plan.recursive)


def _idmapped_bind(source: str, target: str, userns_fd: int, recursive: bool, what: str, k=k) -> None:
    """A detached copy of the tree at `source`, idmapped with the user namespace's maps,
    attached on `target` (nosuid, nodev: every mount hardrun makes is)."""
    try:
        fd = k.open_fd(source, k.O_PATH | os.O_CLOEXEC)
    except OSError as error:
        raise IdmapError(f"{what}: {error.strerror}") from None
    try:
        _idmapped_attach(fd, source, target, userns_fd, recursive, what, k)
    finally:
        k.close(fd)


def _idmapped_attach(fd: int, source: str, target: str, userns_fd: int, recursive: bool, what: str,
                     k=k) -> None:
    """_idmapped_bind of the tree open at `fd` (found at `source`)."""
    from .idmap import attach_idmapped
    try:
        attach_idmapped(fd, target, userns_fd, k.MOUNT_ATTR_NOSUID | k.MOUNT_ATTR_NODEV, recursive, k)
    except OSError as error:
        raise IdmapError(f"{what}: cannot be idmapped ({_why(error, source)}); the container's "
                         "own user namespace needs it", hint="hardrun-oci --userns keep keeps the "
                         "engine's choice: no user namespace") from None


def _why(error: OSError, source: str) -> str:
    import errno
    if error.errno == errno.EINVAL:
        fstype = _fstype(source)
        return (f"EINVAL: its file system{f' ({fstype})' if fstype else ''} does not support idmapped "
                "mounts, or a mount below it does not")
    return f"{errno.errorcode.get(error.errno or 0, error.errno)}: {error.strerror}"


def _fstype(path: str) -> str | None:
    mount = _mount_of(read_mountinfo(), os.path.realpath(path))
    return mount.fstype if mount else None


# -- /proc/self/mountinfo ---------------------------------------------------------------------

class MountEntry:
    __slots__ = ("point", "fstype", "options")

    def __init__(self, point: str, fstype: str, options: str):
        self.point, self.fstype, self.options = point, fstype, options


def read_mountinfo(path: str = "/proc/self/mountinfo") -> list[MountEntry]:
    entries = []
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.split()
            try:
                after = fields.index("-")
            except ValueError:
                continue
            if after < 5 or len(fields) < after + 2:
                continue
            options = fields[after + 3] if len(fields) > after + 3 else ""
            entries.append(MountEntry(unescape(fields[4]), fields[after + 1], options))
    return entries


def unescape(text: str) -> str:
    r"""The kernel's octal escapes of mountinfo (`\040` a space, `\072` a colon…)."""
    if "\\" not in text:
        return text
    out, index = [], 0
    while index < len(text):
        digits = text[index + 1:index + 4]
        if text[index] == "\\" and len(digits) == 3 and all(c in "01234567" for c in digits):
            out.append(chr(int(digits, 8)))
            index += 4
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def _mount_at(entries, path: str) -> MountEntry | None:
    """The topmost mount whose mount point is `path`."""
    found = None
    for entry in entries:
        if entry.point == path:
            found = entry
    return found


def _mount_of(entries, path: str) -> MountEntry | None:
    """The topmost mount that `path` is on (the longest mount point above it)."""
    found, length = None, -1
    for entry in entries:
        point = entry.point.rstrip("/") or "/"
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= length:
            found, length = entry, len(point)
    return found


def overlay_layers(options: str, home: str) -> tuple[list[str], str | None, str | None]:
    """(lower directories top first, upperdir, workdir) from an overlay's super options.
    Paths are escaped (`:`, `,`, spaces: octal); a relative path (Docker's overlay2 with many
    layers mounts from its home directory) is taken relative to `home`."""
    lowers: list[str] = []
    upper = work = None
    for option in options.split(","):
        name, _, value = option.partition("=")
        if name == "lowerdir":
            lowers += [unescape(part) for part in value.split(":") if part]
        elif name == "lowerdir+":
            lowers.append(unescape(value))
        elif name == "datadir+":
            raise IdmapError("root.path: an overlay with data-only layers (datadir+) cannot be rebuilt idmapped")
        elif name == "upperdir":
            upper = unescape(value)
        elif name == "workdir":
            work = unescape(value)
    absolute = [path if path.startswith("/") else os.path.join(home, path) for path in lowers]
    if upper is not None and not upper.startswith("/"):
        upper = os.path.join(home, upper)
    if work is not None and not work.startswith("/"):
        work = os.path.join(home, work)
    return absolute, upper, work
