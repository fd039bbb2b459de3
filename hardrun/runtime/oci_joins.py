"""The user namespace of a bundle that joins namespaces by path, and the joins themselves
(hardrun-oci `create`, beside hardrun.runtime.oci_userns: loaded only for such a bundle).

A bundle that joins namespaces by path is one of a unit (a CRI pod, `--network container:X`,
a Podman pod), which shares one user namespace (`plan`):

- The namespaces it joins that the host's user namespace owns (the network namespace the
  CRI made and CNI configured) are joined first, while still privileged there (setns needs
  CAP_SYS_ADMIN over a namespace's owner), by a helper process that then creates or joins
  the user namespace and clones the init into it (`clone_joined`). The sysctls of those
  namespaces are written then, by the helper, and their sysfs is mounted by it: root in
  the container has no capability over them.
- A bundle that joins only such namespaces, each pinned by a file outside /proc (a CRI
  sandbox, a Podman pod's infra container), gets a user namespace and a range of its own.
- A bundle whose sandbox (the CRI's `io.kubernetes.cri.sandbox-id`) or whose joined
  namespace's owner is a hardrun-oci container under the same --root with a user namespace
  of hardrun's is a member: it joins that container's user namespace (the one its state
  records, checked on /proc/<init>/ns/user) and shares its lease (released by the last
  holder). A sandbox named but not there (no state, not running, not the recorded user
  namespace) fails the create: never host root instead.
- Any other (a namespace of the host's own processes, of a runc container, of an unknown
  user namespace) keeps the engine's choice, recorded among the floor's notes.
"""
from __future__ import annotations

import os

from ..errors import HardrunError
from ..spec.oci import CRI_SANDBOX_ANNOTATION
from . import syscalls as k
from .oci_userns import JOINED_FIRST, NAMESPACE_FILES, IdmapError, Plan

NS_GET_USERNS = 0xB701      # ioctl on a namespace fd: an fd of the user namespace owning it
CLONE_PARENT = 0x00008000
CONTAINER_TYPE = "io.kubernetes.cri.container-type"


class Owner:
    """The hardrun-oci container whose user namespace a member joins: `userns_fd` is its
    init's /proc/<pid>/ns/user, checked to be the one its state records."""
    __slots__ = ("id", "record", "userns_fd")

    def __init__(self, container_id: str, record: dict, userns_fd: int):
        self.id, self.record, self.userns_fd = container_id, record, userns_fd

    @property
    def namespace(self) -> dict:
        return self.record["user_namespace"]

    def close(self) -> None:
        if self.userns_fd >= 0:
            os.close(self.userns_fd)
            self.userns_fd = -1


def plan(document: dict, joined: list, container_id: str, containers) -> Plan:
    """The user namespace of a bundle that joins the namespaces `joined` ((type, path), from
    hardrun.runtime.oci_userns.plan): keep, own, or member of a unit (see the module's docstring).
    `containers`: those under the same --root (`named(id)`, raising HardrunError when it is
    not there, and `every()`: hardrun.runtime.oci)."""
    if any(kind == "cgroup" for kind, _ in joined):
        return Plan("keep", "no user namespace added: the bundle joins a cgroup namespace by path")
    try:
        owners = {kind: _owning_userns(path) for kind, path in joined}
    except OSError:
        return Plan("keep")         # a path that does not open: the join names it
    host = _inode("/proc/self/ns/user")
    sandbox = _sandbox_of(document, container_id)
    if sandbox is not None:
        pod = _owner_named(containers, sandbox)
        _check_joins_its_sandbox(pod, joined)
        member = _member_plan(pod, joined, owners, host)
        if member.kind == "member":
            member.pod = sandbox
        return member
    names = ", ".join(sorted(kind for kind, _ in joined))
    foreign = {inode for inode in owners.values() if inode != host}
    if not foreign:      # a sandbox's joins (pinned by the engine), or a host process's
        if all(_pinned(path) for _, path in joined):
            return Plan("own", before=joined)
        return Plan("keep", f"no user namespace added: the bundle joins {names} by path of a process "
                            "that is no hardrun-oci container's under this --root (the host's, another runtime's)")
    owner = _owner_by_userns(containers, foreign)     # `--network container:X` of a hardrun-oci X
    if owner is None:
        return Plan("keep", f"no user namespace added: the bundle joins {names} of a user namespace "
                            "that is no hardrun-oci container's under this --root")
    return _member_plan(owner, joined, owners, host)


def _member_plan(owner: Owner, joined, owners: dict, host: int) -> Plan:
    """A member of `owner`'s unit: the namespaces the host's user namespace owns joined
    before its user namespace, those of its user namespace after; any other is refused."""
    if "user_namespace" not in owner.record:
        owner.close()
        return Plan("keep", f"no user namespace added: container {owner.id}, whose namespaces the bundle "
                            "joins, has none of hardrun's")
    own_inode = owner.namespace["inode"]
    strangers = sorted(kind for kind, _ in joined if owners[kind] not in (host, own_inode))
    if strangers:
        owner.close()
        raise IdmapError(f"linux.namespaces: the bundle joins {', '.join(strangers)} of neither the host's "
                         f"user namespace nor that of container {owner.id}, whose user namespace it shares")
    return Plan("member", owner=owner, before=[(kind, path) for kind, path in joined if owners[kind] == host],
                after=[(kind, path) for kind, path in joined if owners[kind] != host])


def _inode(path: str) -> int:
    return os.stat(path).st_ino


def _owning_userns(path: str) -> int:
    """The inode of the user namespace owning the namespace at `path`. A path that does not
    open raises OSError (the join names it); an owner that cannot be read is refused, since
    without it hardrun cannot tell whose user namespace the container would share."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return owning_userns_of(fd)
    except OSError as error:
        raise IdmapError(f"linux.namespaces: the user namespace owning {path} cannot be read: "
                         f"{error.strerror}") from None
    finally:
        os.close(fd)


def owning_userns_of(fd: int) -> int:
    """The inode of the user namespace owning the namespace open at `fd`."""
    import fcntl
    owner = fcntl.ioctl(fd, NS_GET_USERNS)
    try:
        return os.fstat(owner).st_ino
    finally:
        os.close(owner)


def host_owned_first(namespaces: dict) -> list:
    """(type, fd) in the order to join them: the namespaces our own user namespace owns (a
    pod's network namespace, the CRI's) while we are still privileged in it, then the user
    namespace, then the rest (joining it gives the capabilities over them)."""
    own = _inode("/proc/self/ns/user")
    first = [(kind, fd) for kind, fd in namespaces.items()
             if kind != "user" and "user" in namespaces and owning_userns_of(fd) == own]
    return first + [(kind, fd) for kind, fd in namespaces.items() if (kind, fd) not in first]


def _pinned(path: str) -> bool:
    """A namespace file outside /proc: a bind mount an engine made to keep a namespace of
    the container's own (the CRI's and Podman's network namespaces), no process's."""
    return not os.path.realpath(path).startswith("/proc/")


def _sandbox_of(document: dict, container_id: str) -> str | None:
    annotations = document.get("annotations")
    if not isinstance(annotations, dict) or annotations.get(CONTAINER_TYPE) != "container":
        return None
    sandbox = annotations.get(CRI_SANDBOX_ANNOTATION)
    return sandbox if isinstance(sandbox, str) and sandbox and sandbox != container_id else None


def _owner_named(containers, sandbox: str) -> Owner:
    """The pod's sandbox: it must be a running hardrun-oci container under the same --root."""
    try:
        container = containers.named(sandbox)
    except HardrunError as error:
        raise IdmapError(f"annotations {CRI_SANDBOX_ANNOTATION}: the pod's sandbox {sandbox} cannot be found "
                         f"({error}); its container would not share the pod's user namespace: refused") from None
    owner = _verified(container)
    if owner is None:
        raise IdmapError(f"annotations {CRI_SANDBOX_ANNOTATION}: the pod's sandbox {sandbox} is not running, or its "
                         "init's user namespace is not the one its state records: refused")
    return owner


def _check_joins_its_sandbox(owner: Owner, joined) -> None:
    """The annotation is only a name: a bundle naming a sandbox must join one of that
    sandbox's own namespaces, or it would borrow another pod's user namespace and range."""
    files = {kind: name for kind, name, _ in NAMESPACE_FILES}
    pid = owner.record.get("pid")
    for kind, path in joined:
        try:
            if os.stat(path).st_ino == os.stat(f"/proc/{pid}/ns/{files[kind]}").st_ino:
                return
        except (OSError, KeyError):
            continue
    owner.close()
    raise IdmapError(f"annotations {CRI_SANDBOX_ANNOTATION}: the bundle joins none of the namespaces of the pod's "
                     f"sandbox {owner.id}: refused")


def _owner_by_userns(containers, inodes) -> Owner | None:
    for container in containers.every():
        recorded = container.record.get("user_namespace")
        if isinstance(recorded, dict) and recorded.get("inode") in inodes:
            owner = _verified(container)
            if owner is not None:
                return owner
    return None


def _verified(container) -> Owner | None:
    """`container`'s init's user namespace, opened, if the init runs and it is the one its
    state records; None otherwise. Checked after the open: a pid reused meanwhile is not it."""
    record = container.record
    recorded = record.get("user_namespace")
    if not container.alive():
        return None
    if not isinstance(recorded, dict):
        return Owner(container.id, record, -1)      # no user namespace of hardrun's
    try:
        fd = os.open(f"/proc/{record['pid']}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    info = os.fstat(fd)
    if (info.st_ino, info.st_dev) != (recorded.get("inode"), recorded.get("device")) or not container.alive():
        os.close(fd)
        return None
    return Owner(container.id, record, fd)


def shared_lease(owner: Owner):
    """The owner's range, held by this process too until the member's init holds it."""
    from .userns import share_lease
    recorded = owner.namespace
    try:
        return share_lease(recorded["lease"], recorded["uid"], recorded["gid"], recorded["count"])
    except (HardrunError, KeyError, TypeError) as error:
        raise IdmapError(f"container {owner.id}: its user namespace's id range cannot be shared "
                         f"({error})") from None


# -- the joins ------------------------------------------------------------------------------

def clone_joined(flags: int, joins: Plan, cgroup_fd: int | None, sysctls=(), sysfs: str | None = None,
                 sysfs_read_only: bool = True) -> int:
    """Clone the init into the namespaces `joins` names, in the order the kernel allows.

    A helper process (forked: this one must stay in the host's namespaces) joins
    `joins.before` while privileged in the host's user namespace, writes the `sysctls` of
    those namespaces and mounts their sysfs on `sysfs` (root in the container has no
    capability over them), joins the owner's user namespace and `joins.after`, then
    clones the init with CLONE_PARENT: it is this process's child, and the namespaces of
    `flags` it gets (mount, pid…) are owned by its user namespace. 0 in the init, else
    its pid; IdmapError naming the join that failed."""
    from .parent import _read_all
    opened = []
    try:
        for kind, path in joins.before + joins.after:
            opened.append((kind, path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
    except OSError as error:
        for _, _, fd in opened:
            os.close(fd)
        raise IdmapError(f"linux.namespaces: {error.filename}: {error.strerror}") from None
    first = len(joins.before)
    report_read, report_write = os.pipe()
    helper = os.fork()
    if helper == 0:
        os.close(report_read)
        if _join_and_clone(flags, joins, opened, first, cgroup_fd, sysctls, sysfs, sysfs_read_only,
                           report_write) == 0:
            for _, _, fd in opened:
                os.close(fd)
            return 0        # the init: its caller goes on with the container's steps
        os._exit(0)
    os.close(report_write)
    try:
        answer = _read_all(report_read).decode(errors="replace")
        os.waitpid(helper, 0)
    finally:
        os.close(report_read)
        for _, _, fd in opened:
            os.close(fd)
    if not answer.isdigit():
        raise IdmapError(answer or "the process joining the container's namespaces died")
    return int(answer)


def _join_and_clone(flags, joins: Plan, opened, first: int, cgroup_fd, sysctls, sysfs, sysfs_read_only,
                    report_fd: int) -> int:
    """In the helper: the joins, then clone; the init's pid is written to `report_fd` (or
    what failed). 0 in the init."""
    step = "join"
    try:
        # setns needs CAP_SYS_ADMIN over a namespace's owner: those the host's user namespace
        # owns are joined while privileged there, before the owner's user namespace
        for kind, path, fd in opened[:first]:
            step = f"join {kind} namespace {path}"
            k.setns(fd, JOINED_FIRST[kind])
        if first:
            _while_privileged(sysctls, sysfs, sysfs_read_only)
        if joins.owner is not None:
            step = f"join the user namespace of container {joins.owner.id}"
            k.setns(joins.owner.userns_fd, k.CLONE_NEWUSER)
        for kind, path, fd in opened[first:]:
            step = f"join {kind} namespace {path}"
            k.setns(fd, JOINED_FIRST[kind])
        step = "clone the container's init"
        pid = k.clone(flags | CLONE_PARENT, cgroup_fd)
    except BaseException as error:
        reason = getattr(error, "strerror", None) or str(error)
        os.write(report_fd, f"linux.namespaces: {step}: {reason}".encode())
        os._exit(1)
    if pid == 0:
        os.close(report_fd)
        return 0
    os.write(report_fd, str(pid).encode())
    return pid


def _while_privileged(sysctls, sysfs: str | None, read_only: bool) -> None:
    """In the namespaces the host's user namespace owns: what root in the container could
    not do there."""
    if sysctls:
        from types import SimpleNamespace
        from .process import StepFailure
        from .tunables import write_sysctls
        try:
            write_sysctls(sysctls, SimpleNamespace(name="sysctl"), k)     # it names each step it takes
        except StepFailure as failure:
            raise OSError(failure.errno, f"{failure.step}: {os.strerror(failure.errno or 0)}") from None
    if sysfs is not None:
        k.mount("sysfs", sysfs, "sysfs", k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC | (k.MS_RDONLY if read_only else 0))


def joined_first(cfg, joins: Plan):
    """The plan the init runs: the joins and the sysctls the helper made are not made again."""
    from ..spec.record import replace
    from .tunables import sysctl_namespace
    done = {kind for kind, _ in joins.before + joins.after}
    before = {kind for kind, _ in joins.before}
    return replace(cfg, namespace_paths=tuple((kind, path) for kind, path in cfg.namespace_paths
                                              if kind not in done),
                   sysctls=tuple(pair for pair in cfg.sysctls if sysctl_namespace(pair[0]) not in before))


def sysctls_of(cfg, joins: Plan) -> tuple:
    from .tunables import sysctl_namespace
    before = {kind for kind, _ in joins.before}
    return tuple(pair for pair in cfg.sysctls if sysctl_namespace(pair[0]) in before)
