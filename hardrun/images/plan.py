"""The resolved plan of a stored image, kept so that a start from the store neither
imports json and hashlib nor re-hashes the manifest, config and images.json.

`hardrun run IMAGE` resolves an image the slow way once (images.json, the manifest and
config read through their digests, each unpacked layer's digest record), then writes
what it resolved (name, digests, layer directories, their highest owners, the config's body) with marshal into
`plans/` of the store: a regular file of the caller's own, mode 0600, never reached
through a symbolic link. A later start under the same words uses it only if it passes
those checks and names the images.json it was resolved against (inode, size, times: any
pull, tag or rmi renames a new one into place); anything else falls back to the slow
path, which writes it anew. Each layer's digest record is still read on every start.

Also here, so that the fast path imports nothing heavier: the store's root and its lock.
"""
from __future__ import annotations

import marshal
import os
import stat

from ..errors import HardrunError

STORE_ENV = "HARDRUN_STORE"
PLAN_VERSION = 2     # 2: the image's highest owners (`ids`)
_MAX_KEY = 100     # longer image words (a hex file name twice as long) take the slow path


def default_root() -> str:
    if os.environ.get(STORE_ENV):
        return os.environ[STORE_ENV]
    if os.geteuid() == 0:
        return "/var/lib/hardrun"
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "hardrun")


class StoreBusy(HardrunError):
    """The store's exclusive lock was asked for without waiting, and is held."""


class StoreLock:
    def __init__(self, path: str, exclusive: bool, wait: bool = True):
        self.path, self.exclusive, self.wait = path, exclusive, wait

    def __enter__(self):
        import fcntl
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
                        | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(self._fd)
            raise StoreBusy("the image store is in use (a container runs from it)") from None
        return self

    def __exit__(self, *_):
        os.close(self._fd)     # closing releases the flock


def tmp_path(root: str, label: str) -> str:
    """A fresh name in the store's tmp/ (`hardrun gc` removes those of dead processes)."""
    return os.path.join(root, "tmp", f"{os.getpid()}-{os.urandom(6).hex()}-{label}")


def plan_path(root: str, text: str) -> str | None:
    """The plan file of the image words `text`, None when they are too long for a name."""
    key = text.encode("utf-8", "surrogateescape")
    return None if len(key) > _MAX_KEY else os.path.join(root, "plans", key.hex())


def names_stamp(root: str) -> tuple | None:
    """What identifies the current images.json (None when there is none)."""
    try:
        info = os.stat(os.path.join(root, "images.json"))
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def read_plan(root: str, text: str) -> dict | None:
    """The plan recorded for `text`, if it is trustworthy and current; else None."""
    path = plan_path(root, text)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            return None      # not written by this user alone: ignored, and rewritten
        data = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    try:
        plan = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None
    if not _well_formed(plan) or plan["version"] != PLAN_VERSION or plan["text"] != text \
            or plan["names"] != names_stamp(root):
        return None
    return plan


def _well_formed(plan) -> bool:
    return (isinstance(plan, dict) and isinstance(plan.get("text"), str) and isinstance(plan.get("name"), str)
            and isinstance(plan.get("digest"), str) and isinstance(plan.get("config_digest"), str)
            and isinstance(plan.get("docker"), bool) and isinstance(plan.get("config"), dict)
            and isinstance(plan.get("names"), tuple) and isinstance(plan.get("layers"), list)
            and isinstance(plan.get("ids"), tuple) and len(plan["ids"]) == 2
            and all(isinstance(part, int) and part >= 0 for part in plan["ids"])
            and all(isinstance(layer, tuple) and len(layer) == 2 and all(isinstance(part, str) for part in layer)
                    for layer in plan["layers"]))


def write_plan(root: str, text: str, plan: dict) -> None:
    """Record `plan` for `text` (a temporary file renamed into place). Best effort: a
    plan that cannot be written only means the next start takes the slow path too."""
    path = plan_path(root, text)
    if path is None:
        return
    plan = dict(plan, version=PLAN_VERSION, text=text)
    from ..userfiles import write_private    # the slow path only: not on a start from a plan
    try:
        os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        content = marshal.dumps(plan)
    except (OSError, ValueError):
        return
    write_private(os.path.dirname(path), os.path.basename(path), content)
