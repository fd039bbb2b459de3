"""`hardrun run IMAGE`: the image in the store (pulled per --pull), its layers unpacked
once (hardrun/runtime/unpack.py), its config applied to the RunSpec as Docker applies it,
and its root: an overlay of the read-only layers, mounted in a mount namespace of
hardrun's own process (so nothing is left on the host when it ends), with a throw-away
upper directory on a tmpfs only for --read-write.

With the user namespace on, the container's root must own its image: each layer is
an idmapped mount (the layers' ids shifted by the container's id map), so no copy is
made. Where the kernel cannot idmap (or $HARDRUN_NO_IDMAP=1 says not to), each layer is
copied once with its owners shifted, into the store beside the layer, keyed by the map
(layers/HEX/shifted-UIDS-GIDS/), and that copy is stacked instead.

Rootless (no 0/0 whiteout devices, no idmapped mounts, no overlay in hardrun's own
process), the layers are unpacked by the caller, bottom first, into one directory of the
image's final tree (merged/HEX/, HEX: the config's digest), made once in tmp/ and renamed
into place; the container runs it as a --rootfs, read-only (--read-write: a copy of its
own in tmp/, removed at exit). Every file is the caller's, which is root inside: the
image's other owners collapse to root. Why not the caller's /etc/subuid range: files
chown'ed to subordinate ids could then be removed (`hardrun rmi`, `gc`) only from inside
a user namespace of newuidmap's again.

Each unpacked layer records the highest uid and gid its entries own (layers/HEX/ids);
the image's highest (`ImageRoot.highest_ids`) sizes the container's id range, so that a
file owned by uid 70000 is 70000 inside, not the overflow id.
"""
from __future__ import annotations

import os
import stat

from ..errors import HardrunError
from . import syscalls as k
from .idmap import attach_idmapped, userns_with


def _image_error(message: str):
    from ..images.manifest import ImageError     # imported only on failure: it imports json
    return ImageError(message)


class ImageRoot:
    """The image a container runs: its name, manifest digest, config digest, the unpacked
    layer directories (bottom first) and the store lock held while it runs."""

    def __init__(self, store_root, name, digest, config_digest, layers, lock, stop_signal: str | None = None,
                 highest_ids: tuple[int, int] = (0, 0)):
        self.store_root = store_root
        self.highest_ids = highest_ids    # (uid, gid): the highest owners of the image's files
        self.name, self.digest, self.config_digest = name, digest, config_digest
        self.layers, self.lock = layers, lock
        self.stop_signal = stop_signal
        self.mode = "direct"      # or "idmapped", once mounted
        self.work: str | None = None

    def annotations(self) -> dict:
        """hardrun's facts about the image, and its StopSignal under the OCI image spec's
        annotation: `hardrun run` forwards signals unchanged (see --help), so the signal
        is recorded for whoever stops the container, not applied."""
        found = {"org.hardrun.image": self.name, "org.hardrun.image.digest": self.digest,
                 "org.hardrun.image.id": self.config_digest, "org.hardrun.image.ownership": self.mode}
        if self.stop_signal:
            found["org.opencontainers.image.stopSignal"] = self.stop_signal
        return found


def prepare(spec, pull_policy: str = "missing", platform: str | None = None, store=None):
    """(spec with the image's config applied, ImageRoot) for spec.image: from its plan
    (hardrun/images/plan.py) when one is current, else resolved and the plan written."""
    from ..images import plan as plans
    root = store.root if store is not None else os.path.abspath(plans.default_root())
    if platform is None and pull_policy in ("missing", "never") and os.path.isdir(root):
        lock = plans.StoreLock(os.path.join(root, "lock"), exclusive=False)
        lock.__enter__()    # held until hardrun exits: `hardrun gc` leaves the layers of a running image alone
        try:
            found = plans.read_plan(root, spec.image)
            if found is not None and (pull_policy == "never" or found["docker"]):
                for diff_id, directory in found["layers"]:
                    _check_record(directory, diff_id)
                return _applied(spec, root, found, lock)
        except BaseException:
            lock.__exit__(None, None, None)
            raise
        lock.__exit__(None, None, None)
    return _prepare_slowly(spec, pull_policy, platform, store)


def _prepare_slowly(spec, pull_policy, platform, store):
    from ..images import plan as plans
    from ..images.operations import pull
    from ..images.reference import parse_location
    from ..images.store import Store
    store = store or Store()
    stamp = plans.names_stamp(store.root)     # before images.json is read: a later change makes the plan stale
    name, manifest, config = pull(store, spec.image, pull_policy, platform=platform)
    lock = store.lock()
    lock.__enter__()    # held until hardrun exits: `hardrun gc` leaves the layers of a running image alone
    try:
        layers = ensure_unpacked(store, manifest, config) if os.geteuid() == 0 else ensure_merged(store, manifest)
        directories = [os.path.dirname(layer) for _, layer in layers]
        found = {"name": name, "digest": manifest.digest, "config_digest": manifest.config.digest,
                 "layers": [(diff_id, directory) for (diff_id, _), directory in zip(layers, directories)],
                 "ids": highest_ids(directories),
                 "config": config.get("config") or {}, "names": stamp,
                 "docker": parse_location(spec.image).transport == "docker"}
        if stamp is not None:
            plans.write_plan(store.root, spec.image, found)
        return _applied(spec, store.root, found, lock)
    except BaseException:
        lock.__exit__(None, None, None)
        raise


def _applied(spec, store_root: str, found: dict, lock):
    roots = [os.path.join(directory, "root") for _, directory in found["layers"]]
    stop_signal = _string(found["config"].get("StopSignal"), "StopSignal")
    image = ImageRoot(store_root, found["name"], found["digest"], found["config_digest"], roots, lock, stop_signal,
                      found["ids"])
    return apply_config(spec, {"config": found["config"]}), image


def ensure_unpacked(store, manifest, config) -> list[tuple[str, str]]:
    """(diff_id, unpacked root) of each layer, bottom first: unpacked into tmp/ and renamed
    into layers/HEX once whole; an existing one is used only if its digest record names it."""
    from ..images.manifest import diff_ids
    from ..images.store import StoreSource
    source = StoreSource(store, manifest.digest, "")
    roots = []
    for desc, diff_id in zip(manifest.layers, diff_ids(config)):
        directory = store.path("layers", diff_id[7:])
        if not os.path.isdir(directory):
            _unpack_into_store(store, source, desc, diff_id, directory)
        _check_record(directory, diff_id)
        roots.append((diff_id, os.path.join(directory, "root")))
    return roots


def ensure_merged(store, manifest) -> list[tuple[str, str]]:
    """Rootless: [(config digest, the image's final tree)], unpacked by the caller into
    merged/HEX once (in tmp/ first), its record naming the config's digest."""
    from ..images.layers import Layer
    from ..images.manifest import diff_ids
    from ..images.store import StoreSource
    from .unpack import restore_directory_modes, unpack_layer
    key = manifest.config.digest
    directory = store.path("merged", key[7:])
    if not os.path.isdir(directory):
        source = StoreSource(store, manifest.digest, "")
        os.makedirs(store.path("merged"), 0o700, exist_ok=True)

        def build(tmp: str) -> None:
            root = os.path.join(tmp, "root")
            os.mkdir(root, 0o755)
            uid = gid = 0
            modes: dict = {}
            for desc, diff_id in zip(manifest.layers, diff_ids(store.config(manifest))):
                with Layer(source, desc, diff_id) as layer:
                    unpacked = unpack_layer(layer, root, rootless=True, merged=True)
                uid, gid = max(uid, unpacked.highest_ids[0]), max(gid, unpacked.highest_ids[1])
                modes.update(unpacked.directory_modes)
            for name in KERNEL_MOUNT_POINTS:      # where the child mounts them: the image may lack them
                if not os.path.lexists(os.path.join(root, name)):
                    os.mkdir(os.path.join(root, name), 0o755)
            restore_directory_modes(root, modes)
            _write_records(tmp, key, (uid, gid))

        _publish(store, "merged", directory, build)
    _check_record(directory, key)
    return [(key, os.path.join(directory, "root"))]


KERNEL_MOUNT_POINTS = ("proc", "sys", "dev", "tmp", "run")


def _unpack_into_store(store, source, desc, diff_id: str, directory: str) -> None:
    from ..images.layers import Layer
    from .unpack import unpack_layer

    def build(tmp: str) -> None:
        os.mkdir(os.path.join(tmp, "root"), 0o755)
        with Layer(source, desc, diff_id) as layer:
            unpacked = unpack_layer(layer, os.path.join(tmp, "root"))
        _write_records(tmp, diff_id, unpacked.highest_ids)

    _publish(store, "layer", directory, build)


def _publish(store, label: str, directory: str, build) -> None:
    """Make a store directory whole in tmp/ (`build(tmp)`), then rename it to `directory`:
    readers never see half of one, and another hardrun finishing first is no failure."""
    from ..images.store import remove_tree
    tmp = store.tmp_path(label)
    os.mkdir(tmp, 0o700)
    try:
        build(tmp)
        try:
            os.rename(tmp, directory)
        except OSError:
            if not os.path.isdir(directory):    # not another hardrun finishing first: a real failure
                raise
    finally:
        if os.path.lexists(tmp):
            remove_tree(tmp)


def _write_records(directory: str, key: str, ids: tuple[int, int]) -> None:
    """The digest record a reader checks (`_check_record`) and the highest ids owned."""
    _write_ids(directory, ids)
    with open(os.path.join(directory, "diff_id"), "x") as record:
        record.write(key + "\n")


IDS_RECORD = "ids"


def highest_ids(directories) -> tuple[int, int]:
    """The highest (uid, gid) the files of these unpacked layers own, from each layer's
    record; a layer unpacked before hardrun kept one is walked once and recorded."""
    uid = gid = 0
    for directory in directories:
        layer_uid, layer_gid = _read_ids(directory)
        if layer_uid < 0:
            layer_uid, layer_gid = _walked_ids(os.path.join(directory, "root"))
            _write_ids(directory, (layer_uid, layer_gid))
        uid, gid = max(uid, layer_uid), max(gid, layer_gid)
    return uid, gid


def _read_ids(directory: str) -> tuple[int, int]:
    """A layer's recorded (uid, gid); (-1, -1) when it has no record."""
    try:
        with open(os.path.join(directory, IDS_RECORD)) as record:
            uid, gid = record.read().split()
        return int(uid), int(gid)
    except FileNotFoundError:
        return -1, -1
    except (OSError, ValueError) as error:
        raise _image_error(f"unpacked layer {directory}: its owners record cannot be read ({error}); "
                           "`hardrun gc` after `hardrun rmi` removes it") from None


def _write_ids(directory: str, ids: tuple[int, int]) -> None:
    """A layer's ids record, one writer for a layer being unpacked and one walked later."""
    from ..userfiles import replace_private
    replace_private(directory, IDS_RECORD, f"{ids[0]} {ids[1]}\n".encode())


def _walked_ids(root: str) -> tuple[int, int]:
    uid = gid = 0
    for directory, subdirs, files in os.walk(root):
        for name in (".", *subdirs, *files):
            info = os.lstat(os.path.join(directory, name))
            uid, gid = max(uid, info.st_uid), max(gid, info.st_gid)
    return uid, gid


def _check_record(directory: str, diff_id: str) -> None:
    try:
        with open(os.path.join(directory, "diff_id")) as record:
            found = record.read().strip()
    except OSError as error:
        raise _image_error(f"unpacked layer {diff_id}: its digest record cannot be read ({error.strerror}); "
                         "`hardrun gc` after `hardrun rmi` removes it") from None
    if found != diff_id:
        raise _image_error(f"unpacked layer {diff_id}: its digest record names {found!r}")


def apply_config(spec, config: dict):
    """The image config under the flags, as Docker applies it: Entrypoint and Cmd (the
    command replaces Cmd; --entrypoint replaces Entrypoint and drops Cmd), Env (the flags'
    values win), User (-u wins), WorkingDir (-w wins), ExposedPorts (for -P)."""
    from ..spec.record import replace
    from ..spec.run import EnvVar
    body = config.get("config") or {}
    entrypoint = _strings(body.get("Entrypoint"), "Entrypoint")
    cmd = _strings(body.get("Cmd"), "Cmd")
    if spec.entrypoint is not None:
        entrypoint, cmd = ([spec.entrypoint] if spec.entrypoint else []), list(spec.command)
    elif spec.command:
        cmd = list(spec.command)
    image_env = []
    for item in _strings(body.get("Env"), "Env"):
        name, _, value = item.partition("=")
        image_env.append(EnvVar(name, value))
    exposed = tuple(str(port) for port in (body.get("ExposedPorts") or {}))
    return replace(spec, command=tuple(entrypoint + cmd), entrypoint=None, env=tuple(image_env) + spec.env,
                   user=spec.user or _string(body.get("User"), "User"),
                   workdir=spec.workdir or _string(body.get("WorkingDir"), "WorkingDir"),
                   exposed_ports=tuple(dict.fromkeys(spec.exposed_ports + exposed)))


def _strings(value, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _image_error(f"image config: {field} must be a list of strings")
    return list(value)


def _string(value, field: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise _image_error(f"image config: {field} must be a string")
    return value


def mount(image: ImageRoot, spec, id_maps, read_write: bool, store=None) -> str:
    """Mount the image's root and return its path. hardrun's own process moves to a mount
    namespace of its own first (slave of the host's: the host's mounts still reach it, its
    own never leave it), so the root disappears with the process."""
    from ..images.plan import tmp_path
    if os.geteuid() != 0:
        return _rootless_root(image, spec, read_write)
    k.unshare(k.CLONE_NEWNS)
    k.mount(None, "/", None, k.MS_REC | k.MS_SLAVE)
    image.work = work = tmp_path(image.store_root, "root")
    os.mkdir(work, 0o700)
    k.mount("tmpfs", work, "tmpfs", k.MS_NOSUID | k.MS_NODEV, "mode=0700")
    lowers = list(image.layers)
    if id_maps is not None:
        try:
            if os.environ.get("HARDRUN_NO_IDMAP") == "1":
                raise OSError(0, "idmapped mounts turned off by HARDRUN_NO_IDMAP=1")
            userns_fd = userns_with(id_maps)
            try:
                lowers = _idmapped(lowers, userns_fd, work)
            finally:
                os.close(userns_fd)
            image.mode = "idmapped"
        except OSError:
            from ..images.store import Store
            lowers = [_shifted_copy(store or Store(image.store_root), layer, id_maps) for layer in image.layers]
            image.mode = "chowned-copy"
    # the mount points the image lacks (/proc, /tmp, -v targets…) come from a small layer
    # of hardrun's on top: the root is read-only, so the child cannot create them
    scaffold = os.path.join(work, "scaffold")
    os.mkdir(scaffold, 0o755)
    _scaffold(image.layers, scaffold, _mount_points(spec))
    lowers.append(scaffold)      # also makes two layers at least, as overlayfs wants without an upper one
    root = os.path.join(work, "root")
    os.mkdir(root, 0o755)
    _overlay(root, lowers, work, read_write)
    if read_write and id_maps is not None:   # the container's root owns the top of its writable layer
        os.chown(os.path.join(work, "upper"), id_maps.uid[0][1], id_maps.gid[0][1])
    return root


def _rootless_root(image: ImageRoot, spec, read_write: bool) -> str:
    """The image's merged tree (read-only to the container, as any --rootfs), or with
    --read-write a copy of it in tmp/ that release() removes; the mount points -v and
    --tmpfs name that the image lacks are made in it (empty, as Docker makes them)."""
    import subprocess
    from ..images.plan import tmp_path
    root = image.layers[0]
    image.mode = "caller's own (rootless: the image's owners collapse to root)"
    if read_write:
        image.work = tmp_path(image.store_root, "root")
        os.mkdir(image.work, 0o700)
        copied = subprocess.run(["cp", "-a", "--reflink=auto", root, os.path.join(image.work, "root")],
                                capture_output=True, text=True)
        if copied.returncode != 0:
            raise HardrunError(f"cannot copy the image's tree for --read-write: {copied.stderr.strip()}")
        root = os.path.join(image.work, "root")
    from .unpack import make_missing
    for path, is_dir in _mount_points(spec):
        try:
            make_missing(root, path, is_dir)
        except OSError:
            pass      # (a read-only directory of the image's) the child refuses the mount, naming it
    return root


def _overlay(root: str, lowers: list, work: str, read_write: bool) -> None:
    options = "lowerdir=" + ":".join(reversed(lowers))
    if read_write:
        for name in ("upper", "overlay-work"):
            os.makedirs(os.path.join(work, name), 0o755, exist_ok=True)
        options += f",upperdir={work}/upper,workdir={work}/overlay-work"
    try:
        k.mount("overlay", root, "overlay", (0 if read_write else k.MS_RDONLY) | k.MS_NODEV, options)
    except OSError as error:
        raise HardrunError(f"cannot mount the image's layers as an overlay: {error.strerror}") from None


def _mount_points(spec) -> list[tuple[str, bool]]:
    """(path, is a directory) of every mount the container gets: its kernel file systems
    and the plan's mounts (the default tmpfs /tmp and /run, the user's -v, --tmpfs)."""
    from .mounts import plan_mounts
    points = [("/proc", True), ("/sys", True), ("/dev", True)]
    for plan in plan_mounts(spec.mounts, host_root=False):
        points.append((plan.target, plan.kind != "bind" or plan.source_is_dir))
    return points


def _scaffold(layers, scaffold: str, points) -> None:
    """Create in `scaffold` the mount points the image lacks. A path whose parent in the
    image is not a plain directory is left alone (the child then refuses it, naming it)."""
    for path, is_dir in points:
        relative = path.strip("/")
        if not relative or _in_image(layers, relative) is not None:
            continue
        parent = os.path.dirname(relative)
        found = _in_image(layers, parent) if parent else None
        if parent and found is not None and not stat.S_ISDIR(found.st_mode):
            continue
        os.makedirs(os.path.join(scaffold, parent), 0o755, exist_ok=True)
        if is_dir:
            os.makedirs(os.path.join(scaffold, relative), 0o755, exist_ok=True)
        else:
            open(os.path.join(scaffold, relative), "a").close()


def _in_image(layers, relative: str):
    """The lstat of `relative` in the topmost layer that has it (None when absent or whited
    out there). Only a check: whatever it finds, nothing is written but hardrun's own
    scaffold on its tmpfs."""
    for layer in reversed(layers):
        try:
            found = os.lstat(os.path.join(layer, relative))
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISCHR(found.st_mode) and found.st_rdev == 0:
            return None       # a whiteout
        return found
    return None


def _idmapped(layers, userns_fd: int, work: str, k=k) -> list[str]:
    """Each layer as an idmapped, read-only mount under `work`, with the id maps of the user
    namespace `userns_fd` (the container's)."""
    mounted = []
    for n, layer in enumerate(layers):
        target = os.path.join(work, f"idmapped-{n}")
        k.mkdir(target, 0o755)
        source = k.open_fd(layer, k.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            attach_idmapped(source, target, userns_fd, k.MOUNT_ATTR_RDONLY | k.MOUNT_ATTR_NODEV, k=k)
        finally:
            k.close(source)
        mounted.append(target)
    return mounted


def _shifted_copy(store, layer: str, id_maps) -> str:
    """The layer copied once with every owner shifted by the id maps (made in tmp/, renamed
    into place whole), for kernels that cannot idmap."""
    key = "shifted-" + "_".join(f"{a}-{b}-{c}" for a, b, c in id_maps.uid) + "--" + \
        "_".join(f"{a}-{b}-{c}" for a, b, c in id_maps.gid)
    target = os.path.join(os.path.dirname(layer), key)
    if os.path.isdir(target):
        return target
    _publish(store, "shifted", target, lambda tmp: _copy_shifted(layer, tmp, id_maps))
    return target


def _shift(value: int, ranges) -> int:
    for inside, outside, count in ranges:
        if inside <= value < inside + count:
            return outside + value - inside
    return 65534      # unmapped in the container: the overflow id


def _copy_shifted(source: str, target: str, id_maps) -> None:
    """Copy the tree at `source` (hardrun's own unpacked layer) to `target`: contents,
    modes (setuid kept), times, whiteouts and opaque marks, hard links as hard links,
    owners shifted. Nothing is followed: symbolic links are copied as links."""
    import shutil
    from .unpack import OPAQUE_XATTR
    copied: dict = {}
    for directory, subdirs, files in os.walk(source):
        relative = os.path.relpath(directory, source)
        out_dir = os.path.normpath(os.path.join(target, relative))
        info = os.lstat(directory)
        if relative != ".":      # `target` itself is made by _publish
            os.mkdir(out_dir, 0o700)
        try:
            os.setxattr(out_dir, OPAQUE_XATTR, os.getxattr(directory, OPAQUE_XATTR))
        except OSError:
            pass    # not opaque
        for name in subdirs + files:
            path = os.path.join(directory, name)
            entry = os.lstat(path)
            if stat.S_ISDIR(entry.st_mode):
                continue
            out = os.path.join(out_dir, name)
            if entry.st_nlink > 1 and (entry.st_dev, entry.st_ino) in copied:
                os.link(copied[(entry.st_dev, entry.st_ino)], out, follow_symlinks=False)
                continue
            if stat.S_ISLNK(entry.st_mode):
                os.symlink(os.readlink(path), out)
            elif stat.S_ISREG(entry.st_mode):
                shutil.copyfile(path, out, follow_symlinks=False)
            elif stat.S_ISCHR(entry.st_mode):
                os.mknod(out, entry.st_mode, entry.st_rdev)     # the whiteouts hardrun made
            elif stat.S_ISFIFO(entry.st_mode):
                os.mkfifo(out)
            _owner_mode_times(out, entry, id_maps)
            copied[(entry.st_dev, entry.st_ino)] = out
        _owner_mode_times(out_dir, info, id_maps)


def _owner_mode_times(path: str, info, id_maps) -> None:
    os.chown(path, _shift(info.st_uid, id_maps.uid), _shift(info.st_gid, id_maps.gid), follow_symlinks=False)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(path, stat.S_IMODE(info.st_mode))       # after the chown, which clears setuid
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def release(image: ImageRoot) -> None:
    """After the container: unmount the root (lazily) and remove its directory."""
    if image.work is not None and os.geteuid() != 0:
        from ..images.store import remove_tree
        remove_tree(image.work)     # rootless --read-write: the container's copy
    elif image.work is not None:
        try:
            k.umount2(image.work, k.MNT_DETACH)
            os.rmdir(image.work)
        except OSError:
            pass      # the mount namespace goes with the process; gc removes the directory
    image.lock.__exit__(None, None, None)


def adopt_shifted_rootfs(rootfs: str, id_maps, owner: tuple[int, int], k=k) -> None:
    """`hardrun run --rootfs DIR` (real root, a range of the container's own) where DIR's top
    directory is owned by `owner`, a uid and gid of hardrun's id pool (a root prepared for
    `--userns-remap START:65536`, or chowned as another container's range: found by
    userns.prepared_range_owner): DIR is shown to the container through an idmapped bind
    that maps that range onto the container's own, so the container's root owns its root,
    and what it writes (with --read-write) is owned on disk by the range DIR was prepared
    for. Mounted over DIR in a mount namespace of hardrun's own process, as image roots
    are. An idmap the kernel refuses is an error (fail closed)."""
    from .mounts import bind
    from .userns import IdMaps
    (_, uid_start, count), (_, gid_start, _) = id_maps.uid[0], id_maps.gid[0]
    uid, gid = owner
    shift = IdMaps([(uid, uid_start, count)], [(gid, gid_start, count)], "direct")
    k.unshare(k.CLONE_NEWNS)
    k.mount(None, "/", None, k.MS_REC | k.MS_SLAVE)
    userns_fd = userns_with(shift)
    source = k.open_fd(rootfs, k.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        bind(source, source, k.MOUNT_ATTR_IDMAP, recursive=False, k=k, userns_fd=userns_fd)
    except OSError as error:
        raise HardrunError(f"--rootfs {rootfs}: owned by uid {uid}, gid {gid} (a range of hardrun's id "
                           f"pool), but it cannot be idmapped onto the container's range: {error.strerror}",
                           hint=f"give --userns-remap {uid}:{count}") from None
    finally:
        k.close(source)
        k.close(userns_fd)
