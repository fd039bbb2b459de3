"""Unpacking image layers: untrusted archives, each into a directory of its own in the
format overlayfs reads (a whiteout is a 0/0 character device, an opaque directory has the
`trusted.overlay.opaque` attribute), so the layers are stacked, not merged.

No entry can write, link or point outside the layer's root, whatever it says:
- paths are cleaned lexically first (hardrun/images/layers.py: `..` and `/` stay inside);
- every parent directory is opened with openat2(RESOLVE_IN_ROOT): a symbolic link on the
  way (one the layer made earlier, `link -> /etc` then `link/passwd`) resolves inside the
  root, never outside it; the last component is acted on relative to that directory fd,
  never followed (O_NOFOLLOW, *at calls without AT_SYMLINK_FOLLOW);
- a hard link must name a regular file this layer already holds, resolved the same way
  (one to a file outside, or in an earlier layer, is refused);
- device nodes are never made (the container gets its own /dev); FIFOs are;
- owners are the archive's as root, the caller's rootless; the mode, setuid and setgid
  bits included, is the archive's (applied after the chown, which clears them); the
  highest uid and gid of its entries are kept (`Unpacker.highest_ids`): a container's id
  range must cover them (hardrun/runtime/image_root.py records them beside the layer);
- regular files are written sparsely (runs of zeros become holes), so a "huge" file
  that is mostly holes costs no disk; names that are not UTF-8 are kept as bytes;
- a later duplicate entry replaces the earlier one (a directory stays and takes the new mode).
Whiteouts: `.wh.NAME` becomes a whiteout for NAME in the layers below (unless this layer
holds NAME itself), `.wh..wh..opq` marks its directory opaque; a later layer that adds the
name back simply holds it, above the whiteout.

With `merged=True` (rootless: no 0/0 devices, no trusted.* attributes, no overlay of the
caller's own) every layer of an image is unpacked into the same directory, bottom first:
`.wh.NAME` removes NAME and `.wh..wh..opq` empties its directory of what the layers below
put there, so the directory is the image's final tree.
"""
from __future__ import annotations

import errno
import os
import posixpath
import stat

from ..images.layers import ENTRY, OPAQUE_ENTRY, WHITEOUT_ENTRY, Layer
from ..images.manifest import ImageError
from . import syscalls

_RESOLVE = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY
_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)
OPAQUE_XATTR = "trusted.overlay.opaque"


class Unpacker:
    """Unpack one layer into the empty directory `root` (an open fd is kept for its life)."""

    def __init__(self, root: str, rootless: bool | None = None, merged: bool = False):
        self.root_fd = os.open(root, _DIR_FLAGS | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.rootless = os.geteuid() != 0 if rootless is None else rootless
        self.merged = merged
        self._written: set[str] = set()     # merged: this layer's paths (its whiteouts keep them)
        self.skipped: list[str] = []
        self.highest_ids = (0, 0)     # (uid, gid): the highest owners of the layer's entries
        # rootless: the directories' modes, applied once everything is written (until then
        # the owner may write in them, as a user cannot otherwise fill a 0555 /usr/bin)
        self.directory_modes: dict[str, int] = {}

    def close(self) -> None:
        os.close(self.root_fd)

    def unpack(self, layer: Layer) -> None:
        import tarfile
        self._written = set()
        for kind, path, member in layer.entries():
            if member.uid > self.highest_ids[0] or member.gid > self.highest_ids[1]:
                self.highest_ids = (max(member.uid, self.highest_ids[0]), max(member.gid, self.highest_ids[1]))
            try:
                self._entry(kind, path, member, layer)
            except (tarfile.TarError, EOFError) as error:   # the member's content ended early
                layer.broken(error)
            except OSError as error:
                raise ImageError(f"layer {layer.desc.digest}: entry {_shown(member.name)}: "
                                 f"{error.strerror or error}") from None
        layer.finish()

    def _entry(self, kind: str, path: str, member, layer: Layer) -> None:
        if self.merged and kind == WHITEOUT_ENTRY and path in self._written:
            return        # the whiteout hides the layers below, not this layer's own NAME
        if self.merged and kind == ENTRY:
            self._written.add(path)
        if kind == OPAQUE_ENTRY:
            directory_fd = self._directory(path)
            try:
                if self.merged:
                    _empty(directory_fd, keep=self._kept_in(path))
                else:
                    os.setxattr(directory_fd, OPAQUE_XATTR, b"y")
            finally:
                if directory_fd != self.root_fd:
                    os.close(directory_fd)
            return
        if not path:          # the root itself: only its metadata
            if member.isdir():
                self._note_directory_mode(path, member)
                self._metadata(self.root_fd, None, member)
            return
        parent, name = posixpath.split(path)
        parent_fd = self._directory(parent)
        try:
            if kind == WHITEOUT_ENTRY:
                self._whiteout(parent_fd, name)
            else:
                self._member(parent_fd, name, path, member, layer)
        finally:
            if parent_fd != self.root_fd:
                os.close(parent_fd)

    # -- the directories on the way
    def _directory(self, path: str) -> int:
        """An fd of the directory `path` (inside the root whatever links are on the way),
        created with its missing parents (0755, root's) when absent."""
        if not path:
            return self.root_fd
        try:
            return syscalls.openat2(self.root_fd, path, _DIR_FLAGS, _RESOLVE)
        except FileNotFoundError:
            pass
        parent, name = posixpath.split(path)
        parent_fd = self._directory(parent)
        try:
            try:
                os.mkdir(name, 0o755, dir_fd=parent_fd)
            except FileExistsError:
                pass             # a dangling link in the way: openat2 below refuses it
            return syscalls.openat2(parent_fd, name, _DIR_FLAGS | os.O_NOFOLLOW, 0)
        finally:
            if parent_fd != self.root_fd:
                os.close(parent_fd)

    def _kept_in(self, directory: str) -> set:
        """The names in `directory` this layer wrote (or wrote below)."""
        prefix = directory + "/" if directory else ""
        return {path[len(prefix):].split("/", 1)[0] for path in self._written
                if path.startswith(prefix) and len(path) > len(prefix)}

    # -- whiteouts
    def _whiteout(self, parent_fd: int, name: str) -> None:
        if self.merged:
            self._remove(parent_fd, name, _lstat(name, parent_fd))
            return
        if _lstat(name, parent_fd) is not None:
            return    # this layer holds NAME itself: the whiteout only hides the layers below
        if self.rootless:
            self.skipped.append(name)
            raise OSError(errno.EPERM, "whiteouts need root (a 0/0 character device)")
        os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent_fd)

    # -- entries
    def _member(self, parent_fd: int, name: str, path: str, member, layer: Layer) -> None:
        existing = _lstat(name, parent_fd)
        if member.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                self._remove(parent_fd, name, existing)
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            fd = syscalls.openat2(parent_fd, name, _DIR_FLAGS | os.O_NOFOLLOW, 0)
            try:
                self._note_directory_mode(path, member)
                self._metadata(fd, None, member)
            finally:
                os.close(fd)
            return
        if member.ischr() or member.isblk():
            self.skipped.append(path)     # never device nodes: the container has its own /dev
            return
        self._remove(parent_fd, name, existing)
        if member.isreg():
            self._file(parent_fd, name, member, layer)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=parent_fd)
            self._owner(parent_fd, name, member)
            _times(parent_fd, name, member)
        elif member.islnk():
            self._hardlink(parent_fd, name, member)
        elif member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=parent_fd)
            self._metadata(None, (parent_fd, name), member)
        else:
            self.skipped.append(path)

    def _file(self, parent_fd: int, name: str, member, layer: Layer) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=parent_fd)
        try:
            stream = layer.read_member(member)
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                if chunk == _ZEROS[:len(chunk)]:
                    os.lseek(fd, len(chunk), os.SEEK_CUR)     # a hole, not zeros on disk
                else:
                    os.write(fd, chunk)
            os.ftruncate(fd, member.size)
            self._metadata(fd, None, member)
        finally:
            os.close(fd)

    def _hardlink(self, parent_fd: int, name: str, member) -> None:
        from ..images.layers import clean_path
        target = clean_path(member.linkname)
        target_parent, target_name = posixpath.split(target)
        if not target_name:
            raise OSError(errno.EPERM, "a hard link to the root")
        try:
            source_fd = syscalls.openat2(self.root_fd, target_parent or ".", _DIR_FLAGS, _RESOLVE)
        except FileNotFoundError:
            raise OSError(errno.ENOENT, f"hard link to {_shown(member.linkname)}, which this layer does not "
                                        "hold") from None
        try:
            found = _lstat(target_name, source_fd)
            if found is None or not stat.S_ISREG(found.st_mode):
                raise OSError(errno.EPERM, f"hard link to {_shown(member.linkname)}, which is not a regular file "
                                           "of this layer")
            os.link(target_name, name, src_dir_fd=source_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
        finally:
            if source_fd != self.root_fd:
                os.close(source_fd)

    def _remove(self, parent_fd: int, name: str, existing) -> None:
        if existing is not None:
            _remove_entry(parent_fd, name, existing)

    # -- owners, modes, times
    def _note_directory_mode(self, path: str, member) -> None:
        if self.rootless:
            self.directory_modes[path] = member.mode & 0o1777

    def _owner(self, parent_fd: int, name: str, member) -> None:
        if not self.rootless:
            os.chown(name, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)

    def _metadata(self, fd, at, member) -> None:
        """Owner, then mode (the chown clears setuid and setgid), then times."""
        mode = member.mode & 0o7777
        if self.rootless and member.isdir():
            mode |= 0o700       # until restore_directory_modes
        if fd is not None:
            if not self.rootless:
                os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, mode if not self.rootless else mode & 0o1777)
            os.utime(fd, (member.mtime, member.mtime))
            return
        parent_fd, name = at
        self._owner(parent_fd, name, member)
        os.chmod(name, mode if not self.rootless else mode & 0o1777, dir_fd=parent_fd, follow_symlinks=True)
        _times(parent_fd, name, member)


def _times(parent_fd: int, name: str, member) -> None:
    os.utime(name, (member.mtime, member.mtime), dir_fd=parent_fd, follow_symlinks=False)


def _lstat(name: str, parent_fd: int):
    try:
        return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _empty(directory_fd: int, keep=frozenset()) -> None:
    """Remove everything in the directory `directory_fd` but the names in `keep`, never
    following a link."""
    for entry in os.listdir(directory_fd):
        if entry in keep:
            continue
        _remove_entry(directory_fd, entry, _lstat(entry, directory_fd))


def _remove_entry(parent_fd: int, name: str, found) -> None:
    """Remove `name` in `parent_fd` (`found`: its lstat), a directory with its contents,
    never following a link."""
    if found is not None and stat.S_ISDIR(found.st_mode):
        fd = syscalls.openat2(parent_fd, name, _DIR_FLAGS | os.O_NOFOLLOW, 0)
        try:
            _empty(fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent_fd)
    else:
        os.unlink(name, dir_fd=parent_fd)


def _shown(name: str) -> str:
    from ..display import printable
    return printable(repr(name))


def unpack_layer(layer: Layer, root: str, rootless: bool | None = None, merged: bool = False) -> Unpacker:
    """Unpack `layer` into the empty directory `root` (merged: onto the layers below it
    there); the Unpacker tells the entries it skipped (device nodes) and the highest
    owners it saw."""
    unpacker = Unpacker(root, rootless, merged)
    try:
        unpacker.unpack(layer)
    finally:
        unpacker.close()
    if not merged:        # merged: the caller restores them once the last layer is in
        restore_directory_modes(root, unpacker.directory_modes)
    return unpacker


def restore_directory_modes(root: str, modes: dict) -> None:
    """Give the directories of a rootless unpack their archive's modes (deepest first: a
    parent without search permission would hide its children). A path that is no longer
    a directory (a later layer replaced or removed it) is left alone."""
    root_fd = os.open(root, _DIR_FLAGS | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for path in sorted(modes, key=lambda text: text.count("/"), reverse=True):
            try:
                fd = syscalls.openat2(root_fd, path, _DIR_FLAGS | os.O_NOFOLLOW, _RESOLVE) if path else root_fd
            except OSError:
                continue
            try:
                os.fchmod(fd, modes[path])
            finally:
                if fd != root_fd:
                    os.close(fd)
    finally:
        os.close(root_fd)


def make_missing(root: str, path: str, is_dir: bool) -> None:
    """Create `path` (empty, with its missing parents) in the tree at `root` when it is
    absent, every component resolved inside the tree: a link in it cannot send it out."""
    parent, name = posixpath.split(path.strip("/"))
    if not name:
        return
    unpacker = Unpacker(root, rootless=True)
    try:
        parent_fd = unpacker._directory(parent)
        try:
            if _lstat(name, parent_fd) is None:
                if is_dir:
                    os.mkdir(name, 0o755, dir_fd=parent_fd)
                else:
                    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     0o644, dir_fd=parent_fd))
        finally:
            if parent_fd != unpacker.root_fd:
                os.close(parent_fd)
    finally:
        unpacker.close()
