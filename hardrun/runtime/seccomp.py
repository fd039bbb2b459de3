"""seccomp for `hardrun run`: profiles, compilation to BPF, the BPF cache, and loading.

The parent resolves and compiles (or finds in the cache) the filter before any namespace
exists; the child only loads it, last before exec:

    profile = default_profile()                  # or load_profile("docker.json")
    bpf = cached_filter(profile, {"CHOWN"})      # compiled once per profile + caps
    handle = prepare_filter(bpf, profile.load_flags)
    ... fork, pivot_root, user switch, no_new_privs ...
    handle.load()                                # one syscall; raises OSError on failure

Finding a cached filter imports neither pyseccomp nor yaml (start-up time is measured).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from ..errors import HardrunError, UsageError
from ..resources import data_dir
from .seccomp_profile import (SeccompProfile, load_profile, native_arch, parse_profile,
                              ARCHITECTURES)

__all__ = [
    "SeccompProfile", "PreparedFilter", "SeccompStatus", "default_profile", "load_profile",
    "parse_profile", "compile_profile", "cache_key", "cached_filter", "prepare_filter",
    "load_filter", "set_no_new_privs", "seccomp_mode_of",
]

# Bump when the compiler's output for the same input changes (overlay, ENOSYS prefix…).
COMPILER_VERSION = 1

_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, _PR_SET_NO_NEW_PRIVS = 22, 2, 38
_SECCOMP_SET_MODE_FILTER = 1
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "i686": 354, "i386": 354, "armv7l": 383,
                "riscv64": 277, "ppc64le": 358, "s390x": 348, "loongarch64": 277}
_INSN_SIZE, _MAX_INSNS = 8, 4096


@lru_cache(maxsize=1)
def default_profile() -> SeccompProfile:
    """hardrun's built-in profile (hardrun/data/seccomp/default.json)."""
    return load_profile(data_dir("data") / "seccomp" / "default.json")


def _native(arch: str) -> str:
    native = native_arch()
    if arch in ("native", native) or ARCHITECTURES.get(native) == arch or os.uname().machine == arch:
        return native
    raise UsageError(f"seccomp: can only compile for the native architecture ({native}), not {arch!r}")


def compile_profile(profile: SeccompProfile, capabilities: Iterable[str] = (),
                    arch: str = "native") -> bytes:
    """The raw BPF program (struct sock_filter array) for a container with these
    effective capabilities (`SYS_ADMIN` or `CAP_SYS_ADMIN`). Imports pyseccomp."""
    from .seccomp_bpf import compile_resolved

    return compile_resolved(profile.resolve(capabilities, _native(arch)))


def cache_key(profile: SeccompProfile, capabilities: Iterable[str] = (), arch: str = "native") -> str:
    """sha256 over the resolved rules, the libseccomp version and the compiler version."""
    from .seccomp_bpf import libseccomp_version

    resolved = profile.resolve(capabilities, _native(arch))
    text = f"hardrun seccomp {COMPILER_VERSION}\nlibseccomp {libseccomp_version()}\n{resolved.canonical()}"
    return hashlib.sha256(text.encode()).hexdigest()


def cached_filter(profile: SeccompProfile, capabilities: Iterable[str] = (), arch: str = "native",
                  cache_dir: str | None = None) -> bytes:
    """`compile_profile`, through the on-disk cache when its directory is safe to use."""
    from . import seccomp_cache

    capabilities = tuple(capabilities)
    directory = cache_dir or seccomp_cache.default_cache_dir()
    key = cache_key(profile, capabilities, arch)
    usable = seccomp_cache.usable_cache_dir(directory)
    if usable:
        program = seccomp_cache.read_cached(directory, key)
        if program is not None:
            return program
    program = compile_profile(profile, capabilities, arch)
    if usable:
        seccomp_cache.write_cached(directory, key, program)
    return program


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class PreparedFilter:
    """A BPF program made ready to load: everything is allocated and resolved up front so
    that `load()` (in the child, after pivot_root and the user switch) is one syscall."""

    def __init__(self, bpf: bytes, flags: int = 0):
        if not bpf or len(bpf) % _INSN_SIZE or len(bpf) > _MAX_INSNS * _INSN_SIZE:
            raise UsageError(f"seccomp: {len(bpf)} bytes is not a BPF program")
        self.flags = flags
        self._buffer = ctypes.create_string_buffer(bytes(bpf), len(bpf))
        self._program = _SockFprog(len(bpf) // _INSN_SIZE, ctypes.addressof(self._buffer))
        self._address = ctypes.addressof(self._program)
        libc = ctypes.CDLL(None, use_errno=True)
        self._prctl = libc.prctl
        self._prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong)
        self._prctl.restype = ctypes.c_int
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._get_errno = ctypes.get_errno
        self._strerror = os.strerror
        self._seccomp_nr = _SYS_SECCOMP.get(os.uname().machine)
        if flags and self._seccomp_nr is None:
            raise UsageError("seccomp: filter flags need the seccomp() syscall, unknown on this machine")

    def load(self) -> None:
        """Install the filter on the calling thread. It needs no_new_privs (or CAP_SYS_ADMIN).
        Raises OSError (with errno) when the kernel refuses: fail closed."""
        if self.flags:
            result = self._syscall(ctypes.c_long(self._seccomp_nr), ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
                                   ctypes.c_long(self.flags), ctypes.c_void_p(self._address))
        else:
            result = self._prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, self._address, 0, 0)
        if result != 0:
            error = self._get_errno()
            raise OSError(error, "seccomp: the kernel refused the filter: " + self._strerror(error)
                          + (" (set no_new_privs first)" if error == 13 else ""))


def prepare_filter(bpf: bytes, flags: int = 0) -> PreparedFilter:
    """Everything `load()` needs, allocated now (call in the parent or before pivot_root)."""
    return PreparedFilter(bpf, flags)


def load_filter(bpf: bytes, flags: int = 0) -> None:
    """Prepare and load in one step (for callers that have nothing to switch in between)."""
    prepare_filter(bpf, flags).load()


def set_no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1): required before an unprivileged filter load."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                  ctypes.c_ulong(0)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, "prctl(PR_SET_NO_NEW_PRIVS): " + os.strerror(error))


@dataclass(frozen=True)
class SeccompStatus:
    mode: str                 # "disabled", "strict" or "filter"
    filters: int | None       # number of filters installed (None on kernels that do not say)


def seccomp_mode_of(pid: int | str = "self") -> SeccompStatus:
    """The seccomp state of a process, from /proc/PID/status (for `hardrun inspect`)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise HardrunError(f"no process {pid}") from None
    except OSError as error:
        raise HardrunError(f"cannot read /proc/{pid}/status: {error.strerror}") from None
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    mode = {"0": "disabled", "1": "strict", "2": "filter"}.get(fields.get("Seccomp", "").strip())
    if mode is None:
        raise HardrunError(f"/proc/{pid}/status has no Seccomp field (kernel without seccomp)")
    filters = fields.get("Seccomp_filters", "").strip()
    return SeccompStatus(mode, int(filters) if filters.isdigit() else None)
