"""seccomp for `hardrun run`: profiles, compilation to BPF, the BPF cache, and loading.

The parent resolves and compiles (or finds in the cache) the filter before any namespace
exists; the child only loads it, last before exec:

    bpf = default_filter({"CHOWN"})              # built-in profile, compiled once per caps
    # or: bpf = cached_filter(load_profile("docker.json"), {"CHOWN"})
    handle = prepare_filter(bpf)
    ... fork, pivot_root, user switch, no_new_privs ...
    handle.load()                                # one syscall; raises OSError on failure

Finding a cached filter imports neither pyseccomp nor yaml (start-up time is measured).
"""
from __future__ import annotations

import os

from ..errors import HardrunError, UsageError
from ..spec.record import dataclass
from . import seccomp_cache
from .seccomp_cache import sha256
# The profile model (seccomp_profile) and the compiler (seccomp_bpf) are imported only when
# a filter must be built: a cache hit needs just the cache and the facts in its key.
from .seccomp_platform import (ARCHITECTURES, kernel_version, libseccomp_version, native_arch,
                               normalized_capabilities)
from .syscalls import _kernel

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Iterable

    from .seccomp_profile import SeccompProfile, load_profile, parse_profile

__all__ = [
    "SeccompProfile", "CompiledFilter", "PreparedFilter", "SeccompStatus", "default_profile",
    "load_profile", "parse_profile", "check_syscall_names", "compile_profile", "cache_key",
    "default_cache_key", "cached_filter", "default_filter", "prepare_filter", "load_filter",
    "set_no_new_privs", "seccomp_mode_of", "memfd_filter",
]

# Bump when the compiler's output for the same input changes (overlay, ENOSYS prefix…).
COMPILER_VERSION = 1


_PROFILE_NAMES = ("SeccompProfile", "load_profile", "parse_profile")


def __getattr__(name: str):
    """The profile model's names, imported on first use (PEP 562)."""
    if name in _PROFILE_NAMES:
        from . import seccomp_profile

        value = globals()[name] = getattr(seccomp_profile, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEFAULT_PROFILE_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "data", "seccomp", "default.json")
_default_profile: list = []


def default_profile() -> SeccompProfile:
    """hardrun's built-in profile (hardrun/data/seccomp/default.json), loaded once."""
    if not _default_profile:
        from .seccomp_profile import load_profile

        _default_profile.append(load_profile(DEFAULT_PROFILE_PATH))
    return _default_profile[0]


def _native(arch: str) -> str:
    native = native_arch()
    if arch in ("native", native) or ARCHITECTURES.get(native) == arch or os.uname().machine == arch:
        return native
    raise UsageError(f"seccomp: can only compile for the native architecture ({native}), not {arch!r}")


def check_syscall_names(profile: SeccompProfile) -> tuple[str, ...]:
    """A UsageError for a syscall name libseccomp does not know; warnings for names newer
    than it (hardrun.runtime.seccomp_bpf.check_syscall_names)."""
    from .seccomp_bpf import check_syscall_names as check

    return check(profile)


def memfd_filter(cache_dir: str | None = None) -> CompiledFilter:
    """hardrun's own memfd filter (memfd_create only with MFD_NOEXEC_SEAL) for every ABI the
    built-in profile covers on this machine: loaded with any profile, or none, where
    vm.memfd_noexec=2 cannot hold in the container (hardrun.runtime.userns). Cached like
    the profiles' filters: a cache hit neither parses the profile nor imports pyseccomp."""
    return _through_cache(_filter_key("memfd " + _default_profile_digest(), (), "native"),
                          _compile_memfd_filter, cache_dir)


def _compile_memfd_filter() -> CompiledFilter:
    from .seccomp_bpf import memfd_noexec_filter

    return CompiledFilter(memfd_noexec_filter(default_profile().filter_arches(native_arch())))


def compile_profile(profile: SeccompProfile, capabilities: Iterable[str] = (),
                    arch: str = "native") -> CompiledFilter:
    """The raw BPF program (struct sock_filter array) for a container with these
    effective capabilities (`SYS_ADMIN` or `CAP_SYS_ADMIN`). Imports pyseccomp."""
    from .seccomp_bpf import compile_resolved

    return CompiledFilter(compile_resolved(profile.resolve(capabilities, _native(arch))), profile.load_flags)


class CompiledFilter(bytes):
    """A raw BPF program (struct sock_filter array, host byte order) and the
    seccomp(SECCOMP_SET_MODE_FILTER) flags its profile asks for."""

    flags: int = 0

    def __new__(cls, program: bytes, flags: int = 0):
        self = super().__new__(cls, program)
        self.flags = flags
        return self


def _filter_key(profile_digest: str, capabilities: Iterable[str], arch: str) -> str:
    caps = ",".join(sorted(normalized_capabilities(capabilities)))
    text = (f"hardrun seccomp {COMPILER_VERSION}\nlibseccomp {libseccomp_version()}\n"
            f"arch {_native(arch)}\nkernel {kernel_version()}\ncaps {caps}\nprofile {profile_digest}")
    return sha256(text.encode()).hexdigest()


def cache_key(profile: SeccompProfile, capabilities: Iterable[str] = (), arch: str = "native") -> str:
    """sha256 over the canonical profile, the capabilities, the architecture, the kernel
    version (for minKernel), the libseccomp version and the compiler version."""
    return _filter_key(sha256(profile.canonical().encode()).hexdigest(), capabilities, arch)


def default_cache_key(capabilities: Iterable[str] = (), arch: str = "native") -> str:
    """The cache key of the built-in profile, from its file's bytes (no parsing)."""
    return _filter_key("default " + _default_profile_digest(), capabilities, arch)


def _default_profile_digest() -> str:
    with open(DEFAULT_PROFILE_PATH, "rb") as handle:
        return sha256(handle.read()).hexdigest()


def cached_filter(profile: SeccompProfile, capabilities: Iterable[str] = (), arch: str = "native",
                  cache_dir: str | None = None) -> CompiledFilter:
    """`compile_profile`, through the on-disk cache when its directory is safe to use."""
    capabilities = tuple(capabilities)
    return _through_cache(cache_key(profile, capabilities, arch),
                          lambda: compile_profile(profile, capabilities, arch), cache_dir)


def default_filter(capabilities: Iterable[str] = (), arch: str = "native",
                   cache_dir: str | None = None) -> CompiledFilter:
    """The built-in profile's filter for these capabilities. A cache hit neither parses the
    profile nor imports pyseccomp (this is the start-up path of a plain `hardrun run`)."""
    capabilities = tuple(capabilities)
    return _through_cache(default_cache_key(capabilities, arch),
                          lambda: compile_profile(default_profile(), capabilities, arch), cache_dir)


def _through_cache(key: str, compile_now, cache_dir: str | None) -> CompiledFilter:
    directory = cache_dir or seccomp_cache.default_cache_dir()
    usable = seccomp_cache.usable_cache_dir(directory)
    if usable:
        cached = seccomp_cache.read_cached(directory, key)
        if cached is not None:
            program, flags = cached
            return CompiledFilter(program, flags)
    compiled = compile_now()
    if usable:
        seccomp_cache.write_cached(directory, key, compiled, compiled.flags)
    return compiled


class PreparedFilter:
    """A BPF program checked and ready to load, so that `load()` (in the child, after
    pivot_root and the user switch) is one call into hardrun.runtime._kernel."""

    def __init__(self, bpf: bytes, flags: int | None = None):
        flags = getattr(bpf, "flags", 0) if flags is None else flags
        if not seccomp_cache.is_bpf_program(bpf):
            raise UsageError(f"seccomp: {len(bpf)} bytes is not a BPF program")
        self.flags = flags
        self._program = bytes(bpf)

    def load(self) -> None:
        """Install the filter on the calling thread. It needs no_new_privs (or CAP_SYS_ADMIN).
        Raises OSError (with errno) when the kernel refuses: fail closed."""
        try:
            _kernel.seccomp_set_filter(self._program, self.flags)
        except OSError as error:
            raise OSError(error.errno, f"seccomp: the kernel refused the filter: {error.strerror}"
                          + (" (set no_new_privs first)" if error.errno == 13 else "")) from None


def prepare_filter(bpf: bytes, flags: int | None = None) -> PreparedFilter:
    """Everything `load()` needs, allocated now (call in the parent or before pivot_root).
    `flags` defaults to the CompiledFilter's own."""
    return PreparedFilter(bpf, flags)


def load_filter(bpf: bytes, flags: int | None = None) -> None:
    """Prepare and load in one step (for callers that have nothing to switch in between)."""
    prepare_filter(bpf, flags).load()


def set_no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1): required before an unprivileged filter load."""
    from .syscalls import set_no_new_privs as set_flag
    set_flag()


@dataclass(frozen=True)
class SeccompStatus:
    """mode: "disabled", "strict" or "filter"; filters: how many are installed (None when
    the kernel does not say)."""
    mode: str
    filters: int | None


def seccomp_mode_of(pid: int | str = "self") -> SeccompStatus:
    """The seccomp state of a process, from /proc/PID/status (for `hardrun inspect`)."""
    from .introspect import SECCOMP_MODES, read_status
    fields = read_status(pid)
    mode = SECCOMP_MODES.get(fields.get("Seccomp", ""))
    if mode is None:
        raise HardrunError(f"/proc/{pid}/status has no Seccomp field (kernel without seccomp)")
    filters = fields.get("Seccomp_filters", "")
    return SeccompStatus(mode, int(filters) if filters.isdigit() else None)
