"""A small on-disk cache of parsed data, for start-up time.

Entries are JSON files in `$XDG_CACHE_HOME/hardrun` (else `~/.cache/hardrun`), named by
a SHA-256 fingerprint of everything the value was derived from: the source files'
bytes and the code that parses them. A changed source gives another name, so nothing
is ever served stale; a cache that cannot be read or written is simply not used.
"""
from __future__ import annotations

import os

FORMAT = b"1"
MAX_AGE = 30 * 24 * 3600      # older entries go when a new one of their kind is written
# kinds whose old entries this process has already removed: once is enough, and a kind
# with an entry per ShellCheck script may have thousands of them
_PRUNED: set[str] = set()


def directory() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hardrun")


def fingerprint(parts) -> str:
    """SHA-256 over byte strings, each length-prefixed so that no two splits collide."""
    digest = _sha256()(FORMAT)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def identities(paths) -> bytes:
    """What a key needs to know of files without reading them: for each, its path, inode,
    size, and modification and change times in nanoseconds (any write moves the change
    time, which no one can set back)."""
    parts = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            parts.append(f"{path}\0missing")
            continue
        parts.append(f"{path}\0{status.st_dev}\0{status.st_ino}\0{status.st_size}\0"
                     f"{status.st_mtime_ns}\0{status.st_ctime_ns}")
    return "\n".join(parts).encode()


def _sha256():
    # CPython's own SHA-256 module: hashlib would load OpenSSL (~2 ms and ~4 MiB at start).
    try:
        from _sha256 import sha256            # Python 3.9-3.11
    except ImportError:
        try:
            from _sha2 import sha256          # Python 3.12+
        except ImportError:
            from hashlib import sha256
    return sha256


def load(kind: str, key: str):
    """The value stored under `kind`/`key`, or None."""
    folder = directory()
    if not _private(folder):
        return None
    # jsonlite: `json` costs milliseconds to import, and reading is every run's path
    from .jsonlite import loads
    try:
        with open(_path(folder, kind, key), "rb") as stream:
            entry = loads(stream.read())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    return entry.get("value")


def store(kind: str, key: str, value) -> None:
    """Store `value` if JSON gives it back unchanged (same types, no non-string keys)."""
    import json
    try:
        text = json.dumps({"key": key, "value": value}, allow_nan=False)
    except (TypeError, ValueError):
        return
    if json.loads(text)["value"] != value:
        return
    from .userfiles import write_private
    folder = directory()
    path = _path(folder, kind, key)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        return
    if not _private(folder) or not write_private(folder, os.path.basename(path), text.encode()):
        return
    if kind not in _PRUNED:
        _PRUNED.add(kind)
        _prune(folder, kind, keep=path)


def _private(folder: str) -> bool:
    """Whether `folder` is ours alone: entries decide rule severities, so a directory
    others may write to (a cache home under /tmp, say) is never used."""
    try:
        status = os.stat(folder)
    except OSError:
        return False
    return status.st_uid == os.getuid() and not status.st_mode & 0o022


def _path(folder: str, kind: str, key: str) -> str:
    return os.path.join(folder, f"{kind}-{key[:40]}.json")


def _prune(folder: str, kind: str, keep: str) -> None:
    import time
    cutoff = time.time() - MAX_AGE
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        if name.startswith(kind + "-") and path != keep:
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.remove(path)
            except OSError:
                pass

