"""The facts about this machine that decide a compiled seccomp filter.

The architecture, the kernel version, the capability names and the libseccomp version all
go into the filter cache's key, so this module is on the cache-hit path of every
`hardrun run`: it stays small and imports neither the profile model nor the compiler.
"""
from __future__ import annotations

import os

from ..errors import UsageError
from ..spec.capabilities import known_capability

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Iterable

# libseccomp architecture names and the Go-style names used by includes/excludes.arches.
ARCHITECTURES = {
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "amd64", "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "arm64", "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32", "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le", "SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc", "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64", "SCMP_ARCH_LOONGARCH64": "loong64",
}
_MACHINE_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
                 "i686": "SCMP_ARCH_X86", "i386": "SCMP_ARCH_X86", "armv7l": "SCMP_ARCH_ARM",
                 "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
                 "riscv64": "SCMP_ARCH_RISCV64", "loongarch64": "SCMP_ARCH_LOONGARCH64"}


def native_arch() -> str:
    """The libseccomp name of this machine's architecture (`SCMP_ARCH_X86_64`)."""
    machine = os.uname().machine
    try:
        return _MACHINE_ARCH[machine]
    except KeyError:
        raise UsageError(f"seccomp: unsupported machine architecture {machine!r}") from None


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel, for the profile's minKernel conditions."""
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1][:4] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def normalized_capabilities(capabilities: Iterable[str]) -> set[str]:
    """Capability names as the profile spells them (`CAP_SYS_ADMIN` -> `SYS_ADMIN`)."""
    names = set()
    for cap in capabilities:
        name = known_capability(cap)
        if name is None:
            raise UsageError(f"seccomp: unknown capability {cap!r}")
        names.add(name)
    return names


_libseccomp_version: list = []


def libseccomp_version() -> str:
    """The system libseccomp's version ("2.5.4"), read once per process (without ctypes:
    this is on the start-up path of every container)."""
    if not _libseccomp_version:
        from .syscalls import _kernel
        version = _kernel.libseccomp_version()
        if version is None:
            raise UsageError("seccomp: libseccomp is not installed", hint="install the libseccomp2 package")
        _libseccomp_version.append(version)
    return _libseccomp_version[0]
