"""Users and user namespaces: who the process is inside, and how ids map outside.

- `resolve_user` reads the container's own /etc/passwd and /etc/group (opened with
  RESOLVE_IN_ROOT, so a symlink in the image cannot make the parent read a host file).
- `plan_id_maps`: as real root, container ids 0..N-1 map to a host range of the
  container's own (`lease_id_range`: the lowest free N ids of root's /etc/subuid and
  /etc/subgid entries, else of hardrun's pool from host id 100000; N is `range_size`,
  65536 unless the image owns files above 65535 or -u asks for a higher id), or to
  `--userns-remap START:COUNT` (a fixed range, shared by every container given it); as a
  non-root user, the user's own uid (and its /etc/subuid range through newuidmap when
  there is one).
- `lease_id_range` / `IdLease.release` / `reclaim_id_ranges`: one lease file per range in
  use under `<state root>/.userns/`, naming its holders (pid and start time, one a line:
  the containers of a pod share their sandbox's range, `share_lease`), taken under a lock;
  a lease none of whose holders runs is free again (reclaimed by the next allocation and by
  `hardrun gc`).
- `write_id_maps` runs in the parent once the child exists.
- `namespace_limits`, `memfd_noexec_can_hold`, `memfd_noexec_is_set` (parent) and
  `apply_kernel_settings` (child): the container's own vm.memfd_noexec and user.max_*
  sysctls, set before the command runs.
"""
from __future__ import annotations

import os
import pwd
import stat

from ..errors import UsageError
from ..spec.defaults import DEFAULT_ID_POOL, DEFAULT_RANGE_SIZE, DEFAULT_REMAP
from .process import StepFailure


class User:
    __slots__ = ("uid", "gid", "groups", "home", "name")

    def __init__(self, uid: int, gid: int, groups: tuple[int, ...], home: str, name: str | None):
        self.uid, self.gid, self.groups, self.home, self.name = uid, gid, groups, home, name

    def as_dict(self) -> dict:
        return {"uid": self.uid, "gid": self.gid, "additionalGids": list(self.groups)}


class IdMaps:
    """`uid`/`gid`: lists of (inside, outside, count); `method`: how they get written."""
    __slots__ = ("uid", "gid", "method", "setgroups")

    def __init__(self, uid, gid, method: str, setgroups: bool = True):
        self.uid, self.gid, self.method, self.setgroups = uid, gid, method, setgroups


# -- users and groups -----------------------------------------------------------------

def _read_in_root(root_fd: int, path: str) -> list[list[str]]:
    from .syscalls import O_PATH, RESOLVE_IN_ROOT, openat2
    try:
        # O_PATH first: opening a FIFO or device node planted by the image would block
        # or act on the host (this runs as the caller, in the host's namespaces).
        where = openat2(root_fd, path, O_PATH | os.O_CLOEXEC, RESOLVE_IN_ROOT)
    except FileNotFoundError:
        return []
    except OSError as error:
        raise UsageError(f"cannot read the container's {path}: {error.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(where).st_mode):
            raise UsageError(f"the container's {path} is not a regular file")
        fd = os.open(f"/proc/self/fd/{where}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise UsageError(f"cannot read the container's {path}: {error.strerror}") from None
    finally:
        os.close(where)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(1 << 22).decode("utf-8", "replace")
    return [line.split(":") for line in data.splitlines() if line and not line.startswith("#")]


def resolve_user(root_fd: int, spec_user: str | None, group_add=()) -> User:
    """-u UID[:GID] | NAME[:GROUP] against the container's /etc/passwd and /etc/group;
    `group_add` (--group-add: gids or group names) joins the supplementary groups."""
    text = (spec_user or "0").strip()
    user_part, _, group_part = text.partition(":")
    passwd = [entry for entry in _read_in_root(root_fd, "/etc/passwd") if len(entry) >= 7]
    groups = [entry for entry in _read_in_root(root_fd, "/etc/group") if len(entry) >= 3]
    entry = _find_user(passwd, user_part)
    if entry is not None:
        name, uid, gid, home = entry[0], _number(entry[2]), _number(entry[3]), entry[5] or "/"
    elif _is_number(user_part):
        name, uid, gid, home = None, int(user_part), 0, "/"
    else:
        raise UsageError(f"unable to find user {user_part}: no matching entries in the container's /etc/passwd",
                         hint="use a numeric UID or add the user to the image")
    if uid is None or gid is None:
        raise UsageError(f"the container's /etc/passwd has a malformed entry for {user_part}")
    if group_part:
        gid = _resolve_group(groups, group_part)
    supplementary = tuple(sorted({int(group[2]) for group in groups
                                  if name and name in group[3].split(",") and _is_number(group[2])}
                                 .union(_resolve_group(groups, added, "--group-add") for added in group_add)
                                 - {gid}))
    if uid > 0xFFFFFFFE or gid > 0xFFFFFFFE:
        raise UsageError(f"user {text}: id out of range")
    return User(uid, gid, supplementary, home, name)


def _find_user(passwd, user_part: str):
    for entry in passwd:
        if entry[0] == user_part:
            return entry
    if _is_number(user_part):
        for entry in passwd:
            if entry[2] == user_part:
                return entry
    return None


def _resolve_group(groups, group_part: str, what: str = "group") -> int:
    for group in groups:
        if group[0] == group_part and _is_number(group[2]):
            return int(group[2])
    if _is_number(group_part) and int(group_part) <= 0xFFFFFFFE:
        return int(group_part)
    raise UsageError(f"unable to find {what} {group_part}: no matching entries in the container's /etc/group")


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts digits int() refuses (`²`)."""
    return text.isascii() and text.isdigit()


def _number(text: str) -> int | None:
    return int(text) if _is_number(text) else None


# -- id maps --------------------------------------------------------------------------

def plan_id_maps(spec, private_userns: bool, rootless: bool, lease: "IdLease | None" = None) -> IdMaps | None:
    """`lease`: the container's own range (real root, no --userns-remap); without one,
    real root gets the fixed DEFAULT_REMAP range."""
    if not private_userns:
        if spec.userns_remap:
            raise UsageError("--userns-remap needs a user namespace", hint="drop --userns host")
        return None
    if not rootless:
        if lease is not None and not spec.userns_remap:
            return IdMaps([(0, lease.uid_start, lease.count)], [(0, lease.gid_start, lease.count)], "direct")
        start, count = spec.userns_remap or DEFAULT_REMAP
        if start < 1 or count < 1 or start + count > 0xFFFFFFFF:
            raise UsageError(f"--userns-remap {start}:{count}: invalid range",
                             hint="START must be above 0 (root stays unmapped) and START+COUNT below 2^32")
        return IdMaps([(0, start, count)], [(0, start, count)], "direct")
    if spec.userns_remap:
        raise UsageError("--userns-remap needs real root", hint="configure /etc/subuid and /etc/subgid instead")
    return _rootless_maps()


def _rootless_maps() -> IdMaps:
    """The caller's own ids as root inside, plus its subordinate ranges when newuidmap can
    write them; otherwise a single mapping (and setgroups denied, as the kernel requires)."""
    uid, gid = os.geteuid(), os.getegid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    sub_uid = _subordinate("/etc/subuid", name, uid)
    sub_gid = _subordinate("/etc/subgid", name, uid)
    if sub_uid and sub_gid and _which("newuidmap") and _which("newgidmap"):
        return IdMaps([(0, uid, 1), (1, sub_uid[0], sub_uid[1])],
                      [(0, gid, 1), (1, sub_gid[0], sub_gid[1])], "newuidmap")
    return IdMaps([(0, uid, 1)], [(0, gid, 1)], "single", setgroups=False)


def _subordinate(path: str, name: str, uid: int):
    try:
        with open(path) as handle:
            for line in handle:
                fields = line.strip().split(":")
                if len(fields) == 3 and fields[0] in (name, str(uid)) \
                        and _is_number(fields[1]) and _is_number(fields[2]):
                    return int(fields[1]), int(fields[2])
    except OSError:
        pass
    return None


def _which(program: str) -> str | None:
    for directory in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        candidate = f"{directory}/{program}"
        if os.access(candidate, os.X_OK):
            return candidate
    return None


# -- per-container ranges (real root) --------------------------------------------------

RANGES_DIR = ".userns"    # a dot-name: the state root's container scans skip it


class IdLease:
    """Host ids uid_start.. and gid_start.. (`count` each) held by this hardrun process
    through the lease file at `path` (named by the offset in the pool)."""
    __slots__ = ("uid_start", "gid_start", "count", "path")

    def __init__(self, uid_start: int, gid_start: int, count: int, path: str):
        self.uid_start, self.gid_start, self.count, self.path = uid_start, gid_start, count, path

    def release(self) -> None:
        """This process lets go of the range; the lease goes with its last holder."""
        from .state import process_start_time
        release_held(self.path, os.getpid(), process_start_time(os.getpid()))


def range_size(highest_id: int) -> int:
    """The ids a range needs to map 0..highest_id: DEFAULT_RANGE_SIZE at least, else whole
    multiples of it (ranges of a few sizes leave the pool less fragmented)."""
    return max(1, -(-(highest_id + 1) // DEFAULT_RANGE_SIZE)) * DEFAULT_RANGE_SIZE


def requested_ids(spec) -> tuple[int, ...]:
    """The ids -u UID[:GID] and --group-add name as numbers (names count as 0 here)."""
    user_part, _, group_part = (spec.user or "").strip().partition(":")
    return tuple(int(part) for part in (user_part, group_part, *spec.group_add)
                 if _is_number(part) and int(part) <= 0xFFFFFFFE)


def root_id_pool(subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> tuple[int, int, int]:
    """(first host uid, first host gid, size): root's subordinate ranges when both files
    give root one (the shorter size), else DEFAULT_ID_POOL for both."""
    uids, gids = _subordinate(subuid, "root", 0), _subordinate(subgid, "root", 0)
    if uids and gids:
        return uids[0], gids[0], min(uids[1], gids[1])
    return DEFAULT_ID_POOL[0], DEFAULT_ID_POOL[0], DEFAULT_ID_POOL[1]


def first_free_offset(pool_size: int, count: int, taken) -> int | None:
    """The lowest offset in 0..pool_size where `count` ids overlap no (offset, count) of
    `taken`; None when no gap is wide enough."""
    offset = 0
    for start, size in sorted(taken):
        if start - offset >= count:
            break
        offset = max(offset, start + size)
    return offset if offset + count <= pool_size else None


def lease_id_range(count: int = DEFAULT_RANGE_SIZE, root: str | None = None, pool=None) -> IdLease:
    """Take the lowest free range of the pool for this process (fail closed: no shared
    range as a fallback)."""
    from . import state
    uid_base, gid_base, pool_size = pool or root_id_pool()
    directory = _ranges_dir(root)
    assert directory is not None, "with create=True _ranges_dir makes the directory or raises"
    with _PoolLock(directory):      # the listing and the new lease file as one step
        offset = first_free_offset(pool_size, count, _live_leases(directory))
        if offset is None:
            raise UsageError(f"no free user-namespace id range of {count} ids: all of the pool "
                             f"({uid_base}..{uid_base + pool_size - 1}) is held by running containers",
                             hint="stop a container, widen root's /etc/subuid and /etc/subgid entries, "
                                  "or give --userns-remap START:COUNT")
        path = os.path.join(directory, f"{offset}-{count}")
        _create_lease(path, os.getpid(), state.process_start_time(os.getpid()))
    return IdLease(uid_base + offset, gid_base + offset, count, path)


def share_lease(path: str, uid_start: int, gid_start: int, count: int) -> IdLease:
    """Hold, as this process, the lease at `path` that a running container holds already (a
    pod's sandbox, for a container joining its user namespace): the range stays leased until
    its last holder is gone. Refused when no holder of it runs any more (the range may be
    reclaimed and leased again at any time: never reused by a joiner)."""
    from . import state
    directory = os.path.dirname(path)
    try:
        with _PoolLock(directory, create=False):
            holders = _holders_of(path)
            if not any(state.process_alive(*holder) for holder in holders):
                raise UsageError(f"the user-namespace id range {os.path.basename(path)} is no longer leased")
            own = (os.getpid(), state.process_start_time(os.getpid()))
            _write_holders(path, holders + [own])
    except FileNotFoundError:
        raise UsageError(f"the user-namespace id range {os.path.basename(path)} is no longer leased") from None
    return IdLease(uid_start, gid_start, count, path)


def hand_over(lease: IdLease, pid: int, start_time: int | None) -> None:
    """Name process `pid` (started at `start_time`) as a holder of the lease in place of this
    process: hardrun-oci's `create` exits while the container's init lives on. Rewritten
    whole under the lock, so that no allocation reads a half-written lease (and takes it
    for a dead one)."""
    from .state import process_start_time
    own = (os.getpid(), process_start_time(os.getpid()))
    with _PoolLock(os.path.dirname(lease.path)):
        holders = [holder for holder in _holders_of(lease.path) if holder != own]
        _write_holders(lease.path, holders + [(pid, start_time)])


def release_held(path: str, pid: int, start_time: int | None) -> bool:
    """Strike `pid` (started at `start_time`) from the holders of the lease at `path`, and
    remove the lease when no running holder is left: once a holder is dead the range may have been
    reclaimed and leased again under the same name, and then it is another container's.
    Whether `pid` held it."""
    try:
        with _PoolLock(os.path.dirname(path), create=False):
            holders = _holders_of(path)
            if (pid, start_time) not in holders:
                return False
            from .state import process_alive
            left = [holder for holder in holders if holder != (pid, start_time) and process_alive(*holder)]
            if left:
                _write_holders(path, left)
            else:
                os.unlink(path)
            return True
    except FileNotFoundError:     # no lock: no lease was ever taken there
        return False


def reclaim_id_ranges(root: str | None = None) -> list[str]:
    """Remove the leases of dead hardrun processes (`hardrun gc`); what was removed."""
    directory = _ranges_dir(root, create=False)
    if directory is None:
        return []
    with _PoolLock(directory):
        before = set(_lease_names(directory))
        kept = {f"{offset}-{count}" for offset, count in _live_leases(directory)}
    return [f"user-namespace id range at pool offset {name}" for name in sorted(before - kept)]


class _PoolLock:
    """The lock of the lease directory, held while leases are listed, written or removed."""

    def __init__(self, directory: str, create: bool = True):
        self.path, self.create, self.fd = os.path.join(directory, "lock"), create, -1

    def __enter__(self) -> "_PoolLock":
        import fcntl
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if self.create else 0)
        self.fd = os.open(self.path, flags, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info) -> None:
        os.close(self.fd)
        self.fd = -1


def _create_lease(path: str, pid: int, start_time: int | None) -> None:
    """A new lease naming its first holder (O_EXCL: never over another; _write_holders
    rewrites one)."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, f"{pid} {start_time}\n".encode())
    finally:
        os.close(fd)


def _write_holders(path: str, holders) -> None:
    """The lease's holders, one a line, written through a new file renamed over it."""
    from ..userfiles import replace_private
    text = "".join(f"{pid} {start}\n" for pid, start in holders)
    replace_private(os.path.dirname(path), os.path.basename(path), text.encode())


def _holders_of(path: str) -> list[tuple[int, int | None]]:
    """(pid, start time) of each holder a lease file names (one a line); [] when it is gone
    or does not parse. FileNotFoundError is left to the caller (a lease gone)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(64 * 1024).decode()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError):
        return []
    holders = []
    for line in text.splitlines():
        try:
            pid, start = line.split()
            holders.append((int(pid), None if start == "None" else int(start)))
        except ValueError:
            return []
    return holders


def _ranges_dir(root: str | None, create: bool = True) -> str | None:
    from . import state
    base = state.trusted_root(root, create=create)
    if base is None:
        return None
    directory = os.path.join(base, RANGES_DIR)
    try:
        if not create and not os.path.lexists(directory):
            return None     # no range was ever leased here
        os.mkdir(directory, 0o700)
    except FileExistsError:
        info = os.lstat(directory)
        # inside a trusted root only we could have made it, but a stray link is refused all the same
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise state.StateDirError(f"{directory} is not a directory of uid {os.geteuid()}") from None
    return directory


def _lease_names(directory: str) -> list[str]:
    return [name for name in os.listdir(directory) if name != "lock"]


def _live_leases(directory: str) -> list[tuple[int, int]]:
    """(offset, count) of each lease whose process still runs; the others are removed."""
    from .state import process_alive
    live = []
    for name in _lease_names(directory):
        path = os.path.join(directory, name)
        offset, _, count = name.partition("-")
        try:
            holders = _holders_of(path)
        except FileNotFoundError:
            continue
        if any(process_alive(*holder) for holder in holders) and offset.isdigit() and count.isdigit():
            live.append((int(offset), int(count)))
        else:
            _remove_lease(path)
    return live


def _remove_lease(path: str) -> None:
    # every removal now holds the lock, but a container started by an earlier hardrun releases
    # its lease without it: one listed a moment ago may be gone already
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def prepared_range_owner(rootfs: str, maps: IdMaps | None) -> tuple[int, int] | None:
    """(uid, gid) owning `rootfs` when it was prepared for another range of the id pool than
    the container's own (`maps`, a single direct range): hardrun.runtime.image_root.
    adopt_shifted_rootfs then idmaps it onto the container's range. None otherwise, and for
    a root that cannot be read (the configuration's checks name that)."""
    if maps is None or maps.method != "direct" or len(maps.uid) != 1 or len(maps.gid) != 1:
        return None
    try:
        info = os.stat(rootfs)
    except OSError:
        return None
    uid_base, gid_base, _ = root_id_pool()
    (_, uid_start, count), (_, gid_start, _) = maps.uid[0], maps.gid[0]
    if info.st_uid < uid_base or info.st_gid < gid_base or (info.st_uid, info.st_gid) == (uid_start, gid_start):
        return None
    if max(info.st_uid, info.st_gid) + count > 0xFFFFFFFF:
        return None
    return info.st_uid, info.st_gid


def check_user_mapped(user: User, maps: IdMaps | None) -> None:
    if maps is None:
        return
    def mapped(value, ranges):
        return any(inside <= value < inside + count for inside, _, count in ranges)
    if not mapped(user.uid, maps.uid):
        raise UsageError(f"uid {user.uid} is outside the user namespace's mapped range",
                         hint="choose a smaller uid or widen --userns-remap")
    for gid in (user.gid, *user.groups):
        if not mapped(gid, maps.gid):
            raise UsageError(f"gid {gid} is outside the user namespace's mapped range",
                             hint="choose a smaller gid or widen --userns-remap")
    if user.groups and not maps.setgroups:
        raise UsageError("supplementary groups need /etc/subgid and newgidmap when running rootless")


def write_id_maps(pid: int, maps: IdMaps) -> None:
    """Write the child's uid_map/gid_map (the child waits for this before any setuid)."""
    if maps.method == "newuidmap":
        _run_helper("newuidmap", pid, maps.uid)
        _run_helper("newgidmap", pid, maps.gid)
        return
    if not maps.setgroups:
        # An unprivileged writer may only map its gid once setgroups is denied.
        _write(f"/proc/{pid}/setgroups", "deny")
    _write(f"/proc/{pid}/uid_map", _format(maps.uid))
    _write(f"/proc/{pid}/gid_map", _format(maps.gid))


def _format(ranges) -> str:
    return "".join(f"{inside} {outside} {count}\n" for inside, outside, count in ranges)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _run_helper(program: str, pid: int, ranges) -> None:
    import subprocess
    argv = [_which(program) or program, str(pid)]
    for inside, outside, count in ranges:
        argv += [str(inside), str(outside), str(count)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(1, f"{program} failed: {done.stderr.strip()}")


# -- kernel settings of the container's own namespaces ----------------------------------

USER_LIMITS_DIR = "/proc/sys/user"
MEMFD_NOEXEC = "/proc/sys/vm/memfd_noexec"
# A container's share of each user.max_* limit of the user namespace hardrun runs in.
# Everything a user namespace uses is also charged to its creator (root, for all
# containers): without its own lower limit, one container takes root's whole quota.
USER_LIMIT_SHARE = 8


def namespace_limits(directory: str = USER_LIMITS_DIR) -> tuple[tuple[str, int], ...]:
    """(name, value) for each user.max_* sysctl: 1/USER_LIMIT_SHARE of the caller's own."""
    try:
        names = sorted(name for name in os.listdir(directory) if name.startswith("max_"))
    except OSError as error:
        raise UsageError(f"cannot read {directory}: {error.strerror}",
                         hint="hardrun needs /proc to limit the container's user namespace") from None
    limits = []
    for name in names:
        try:
            with open(f"{directory}/{name}") as handle:
                value = int(handle.read())
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot read {directory}/{name}: {getattr(error, 'strerror', None) or error}",
                             hint="hardrun needs it to limit the container's user namespace") from None
        limits.append((name, min(value, max(1, value // USER_LIMIT_SHARE))))
    return tuple(limits)


def memfd_noexec_can_hold(path: str = MEMFD_NOEXEC) -> bool:
    """In the parent, before the filters are chosen: can the container's new pid namespace
    have vm.memfd_noexec=2? Yes when it is 2 here already (a new pid namespace inherits
    it), or when we may write it: only the host's root uid may (the kernel checks the
    global uid, not capabilities), and only where /proc/sys is writable. No on a kernel
    without the sysctl (before Linux 6.3). Where it cannot, hardrun's memfd filter
    (hardrun.runtime.seccomp.memfd_filter) refuses executable memfds instead."""
    return memfd_noexec_is_set(path) or os.access(path, os.W_OK, effective_ids=True)


def memfd_noexec_is_set(path: str = MEMFD_NOEXEC) -> bool:
    """Is vm.memfd_noexec 2 in the caller's pid namespace (what a container sharing it
    gets)? No on a kernel without the sysctl."""
    try:
        with open(path) as handle:
            return int(handle.read()) >= 2
    except (OSError, ValueError):
        return False


def apply_kernel_settings(cfg, steps) -> None:
    """In the child, still as the host uid it was cloned with and with the host's /proc
    visible: memfds without exec (pid namespace) and the user.max_* limits (user namespace)."""
    if "pid" in cfg.namespaces and not cfg.memfd_by_seccomp:
        steps.name = "vm.memfd_noexec"
        _ensure_memfd_noexec(MEMFD_NOEXEC)
    for name, value in cfg.user_limits:
        steps.name = f"user.{name}"
        try:
            _write(f"{USER_LIMITS_DIR}/{name}", str(value))
        except OSError as error:
            raise StepFailure(steps.name, error.errno or 0,
                              "the container's user namespace cannot be limited, so it could use up "
                              "its creator's quota") from None


def _ensure_memfd_noexec(path: str) -> None:
    """vm.memfd_noexec=2 in the container's pid namespace: every memfd is created without
    exec permission and sealed against chmod, and MFD_EXEC is refused (Linux 6.3+). A
    value of 2 inherited from the host is kept as it is. The parent chose this way
    (memfd_noexec_can_hold): if it fails all the same, the start fails."""
    if memfd_noexec_is_set(path):
        return
    try:
        _write(path, "2")
    except OSError as error:
        raise StepFailure("vm.memfd_noexec", error.errno or 0,
                          "it looked writable but could not be set, and the container's memfds "
                          "could be executed: set vm.memfd_noexec=2 on the host") from None
