"""A cache of compiled seccomp filters, keyed by a hash of what decides the BPF.

Compiling the default profile costs about as much as a whole container start, so the BPF
is kept on disk. A cache file is trusted only as far as it can be checked: the directory
must belong to us and not be writable by anyone else (nor may any directory above it,
unless sticky), the file must be ours with mode 0600, and its header must carry the key
and the sha256 of the program that follows. Anything else is recompiled, never loaded.
"""
from __future__ import annotations

import os
import stat
import sys

# CPython's own sha256 loads faster than hashlib's OpenSSL binding; asking for the module
# this version has first saves a failed import (~0.1 ms) on every `hardrun run`.
try:
    if sys.version_info >= (3, 12):
        from _sha2 import sha256
    else:
        from _sha256 import sha256
except ImportError:
    from hashlib import sha256

_MAGIC = b"hardrun-seccomp-bpf 1"
# Layout: b"hardrun-seccomp-bpf 1 <key> <load flags> <sha256 of program>\n" + program
_INSN_SIZE = 8          # struct sock_filter
_MAX_INSNS = 4096       # the kernel's BPF_MAXINSNS


def is_bpf_program(program: bytes) -> bool:
    """Whole instructions, at least one and no more than the kernel accepts."""
    return bool(program) and not len(program) % _INSN_SIZE and len(program) <= _MAX_INSNS * _INSN_SIZE


def default_cache_dir() -> str:
    """`/var/cache/hardrun/seccomp` for root, else under `$XDG_CACHE_HOME` (or `~/.cache`)."""
    if os.geteuid() == 0:
        return "/var/cache/hardrun/seccomp"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hardrun", "seccomp")


def usable_cache_dir(path: str) -> bool:
    """Create `path` (mode 0700) if needed and tell whether it is safe to read and write."""
    try:
        if not os.path.lexists(path):
            os.makedirs(path, mode=0o700, exist_ok=True)
        return _safe_directory_chain(os.path.realpath(path))
    except OSError:
        return False


def _safe_directory_chain(path: str) -> bool:
    uid = os.geteuid()
    info = os.lstat(path)
    # The cache directory itself: a real directory of ours that nobody else can write.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o022:
        return False
    parent = os.path.dirname(path)
    while True:
        info = os.stat(parent)
        writable_by_others = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX
        if info.st_uid not in (0, uid) or writable_by_others:
            return False
        if parent == os.path.dirname(parent):
            return True
        parent = os.path.dirname(parent)


def read_cached(directory: str, key: str) -> tuple[bytes, int] | None:
    """(program, load flags) stored under `key`, or None when missing or failing any check."""
    data = read_entry(os.path.join(directory, key + ".bpf"), 256 + _MAX_INSNS * _INSN_SIZE)
    return None if data is None else _verified(data, key)


def read_entry(path: str, limit: int) -> bytes | None:
    """The bytes of a cache entry (this one, the plan and verdict caches) when it is a regular
    file of ours alone of at most `limit` bytes, else None: one not written by this user alone
    is ignored, and rewritten. Never through a link; O_NONBLOCK so that a FIFO never blocks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077
                or info.st_size > limit):
            return None
        return os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _verified(data: bytes, key: str) -> tuple[bytes, int] | None:
    header, newline, program = data.partition(b"\n")
    if not newline:
        return None
    parts = header.split(b" ")
    if len(parts) != 5 or b" ".join(parts[:2]) != _MAGIC or parts[2] != key.encode():
        return None
    if sha256(program).hexdigest().encode() != parts[4] or not parts[3].isdigit():
        return None
    if not is_bpf_program(program):
        return None
    return program, int(parts[3])


def write_cached(directory: str, key: str, program: bytes, flags: int = 0) -> bool:
    """Store `program` atomically (a 0600 temporary file renamed into place)."""
    digest = sha256(program).hexdigest().encode()
    content = b" ".join((_MAGIC, key.encode(), str(flags).encode(), digest)) + b"\n" + bytes(program)
    return write_entry(directory, key + ".bpf", content)


def write_entry(directory: str, name: str, content: bytes) -> bool:
    """Write a cache entry atomically (userfiles.write_private: 0600, never through a link,
    renamed into place). False when it cannot."""
    from ..userfiles import write_private   # only on a miss: not on `hardrun run`'s start
    return write_private(directory, name, content)
