"""Compiling a resolved seccomp profile to one classic-BPF program with libseccomp.

libseccomp keeps only the unconditional rule when a syscall has both an unconditional rule
and argument rules with another action (`ioctl` allowed, but `ioctl(fd, TIOCSTI)` refused),
so such argument rules are compiled into a second libseccomp filter, the *overlay*, whose
default action is a sentinel. The overlay runs first: each of its sentinel returns becomes a
jump to the main filter, so an argument rule that matches decides and anything else falls
through to the main filter. For profiles whose default is not ENOSYS (Docker's answers
EPERM), a short prefix answers ENOSYS for syscall numbers above the highest one the profile
names, as runc does, so libcs fall back from syscalls newer than the profile.

The program is: [ENOSYS prefix] + [overlay] + [main filter], all jumps forward.
"""
from __future__ import annotations

import ctypes
import os
import struct
import sys

from ..errors import UsageError
from .seccomp_profile import ACTIONS, ResolvedFilter, ResolvedRule

BPF_MAXINSNS = 4096
_INSN = struct.Struct("=HBBI")            # struct sock_filter: code, jt, jf, k
_LD_W_ABS, _JMP_JA, _JEQ_K, _JGT_K, _JGE_K, _RET_K, _RET_A = 0x20, 0x05, 0x15, 0x25, 0x35, 0x06, 0x16
_OFFSET_NR, _OFFSET_ARCH = 0, 4           # struct seccomp_data
_ERRNO, _ENOSYS = ACTIONS["SCMP_ACT_ERRNO"], 38
_KILL_PROCESS = ACTIONS["SCMP_ACT_KILL_PROCESS"]
_ACTION_MASK = 0xFFFF0000
_X32_SYSCALL_BIT = 0x40000000
_NR_SCMP_ERROR = -1

# libseccomp's architecture tokens are the kernel's AUDIT_ARCH_* values (x32 excepted).
_AUDIT_64, _AUDIT_LE = 0x80000000, 0x40000000
ARCH_TOKENS = {
    "SCMP_ARCH_X86": 3 | _AUDIT_LE, "SCMP_ARCH_X86_64": 62 | _AUDIT_64 | _AUDIT_LE,
    "SCMP_ARCH_X32": 62 | _AUDIT_LE, "SCMP_ARCH_ARM": 40 | _AUDIT_LE,
    "SCMP_ARCH_AARCH64": 183 | _AUDIT_64 | _AUDIT_LE, "SCMP_ARCH_MIPS": 8,
    "SCMP_ARCH_MIPS64": 8 | _AUDIT_64, "SCMP_ARCH_MIPS64N32": 8 | _AUDIT_64 | 0x20000000,
    "SCMP_ARCH_MIPSEL": 8 | _AUDIT_LE, "SCMP_ARCH_MIPSEL64": 8 | _AUDIT_64 | _AUDIT_LE,
    "SCMP_ARCH_MIPSEL64N32": 8 | _AUDIT_64 | _AUDIT_LE | 0x20000000, "SCMP_ARCH_PPC": 20,
    "SCMP_ARCH_PPC64": 21 | _AUDIT_64, "SCMP_ARCH_PPC64LE": 21 | _AUDIT_64 | _AUDIT_LE,
    "SCMP_ARCH_S390": 22, "SCMP_ARCH_S390X": 22 | _AUDIT_64, "SCMP_ARCH_PARISC": 15,
    "SCMP_ARCH_PARISC64": 15 | _AUDIT_64, "SCMP_ARCH_RISCV64": 243 | _AUDIT_64 | _AUDIT_LE,
    "SCMP_ARCH_LOONGARCH64": 258 | _AUDIT_64 | _AUDIT_LE,
}
_OPERATOR_CODES = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
                   "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_ATTR_ACT_BADARCH, _ATTR_CTL_NNP, _ATTR_CTL_OPTIMIZE = 2, 3, 8


_library = None


def libseccomp() -> ctypes.CDLL:
    """The system libseccomp, loaded directly (pyseccomp's find_library costs ~20 ms)."""
    global _library
    if _library is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2")
        except OSError:
            raise UsageError("seccomp: libseccomp is not installed",
                             hint="install the libseccomp2 package") from None
        lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
        lib.seccomp_syscall_resolve_name_arch.argtypes = (ctypes.c_uint32, ctypes.c_char_p)
        _library = lib
    return _library


def resolve_syscall(arch: str, name: str) -> int:
    """The syscall number of `name` on `arch`: negative for libseccomp's pseudo-syscalls
    (names that do not exist on that architecture), -1 for names libseccomp does not know."""
    return libseccomp().seccomp_syscall_resolve_name_arch(ARCH_TOKENS[arch], name.encode())


# Linux system calls newer than some libseccomp releases (Linux 6.4 to 6.15): a profile may
# name them (Docker's does) although such a libseccomp cannot filter them.
NEWER_SYSCALLS = frozenset({
    "cachestat", "fchmodat2", "map_shadow_stack", "futex_wake", "futex_wait", "futex_requeue",
    "riscv_hwprobe", "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules", "statmount",
    "listmount", "mseal", "uretprobe", "getxattrat", "setxattrat", "listxattrat",
    "removexattrat", "open_tree_attr",
})


def check_syscall_names(profile) -> tuple[str, ...]:
    """Refuse a profile that names a system call libseccomp does not know at all (a typo):
    a UsageError naming the file, the rule and the name. Linux system calls newer than
    this libseccomp cannot be filtered: one warning naming them (returned). A name
    libseccomp knows but this architecture lacks is compiled as libseccomp maps it."""
    from .seccomp_platform import libseccomp_version, native_arch
    native = native_arch()
    newer = []
    for rule in profile.syscalls:
        for name in rule.names:
            if resolve_syscall(native, name) != _NR_SCMP_ERROR:
                continue
            if name not in NEWER_SYSCALLS:
                raise UsageError(f"{rule.where}: unknown system call {name!r}", path=profile.source,
                                 hint=f"libseccomp {libseccomp_version()} does not know it; "
                                      "check the spelling")
            if name not in newer:
                newer.append(name)
    if not newer:
        return ()
    return (f"{profile.source}: libseccomp {libseccomp_version()} does not know the system "
            f"call(s) {', '.join(newer)} (newer than it): their rules cannot apply",)


def compile_resolved(resolved: ResolvedFilter) -> bytes:
    """The BPF program (an array of struct sock_filter, host byte order) for a resolved profile."""
    seccomp = _import_pyseccomp()
    main_rules, overlay_rules = _split_rules(resolved)
    main = _export(seccomp, _build(seccomp, resolved, main_rules, resolved.default_action))
    program = main
    if overlay_rules:
        sentinel = _sentinel(overlay_rules)
        overlay = _export(seccomp, _build(seccomp, resolved, overlay_rules, sentinel, badarch=sentinel))
        program = _fall_through(overlay, sentinel) + program
    if _wants_enosys_prefix(resolved.default_action):
        program = _enosys_prefix(resolved) + program
    count = len(program) // _INSN.size
    if count > BPF_MAXINSNS:
        raise UsageError(f"seccomp: the compiled filter has {count} instructions, more than the "
                         f"kernel's limit of {BPF_MAXINSNS}")
    return program


def _import_pyseccomp():
    try:
        import pyseccomp
    except ImportError:
        raise UsageError("seccomp: the pyseccomp package is not installed",
                         hint="pip install 'hardrun[runtime]'") from None
    except RuntimeError as error:  # pyseccomp raises this when libseccomp is missing
        raise UsageError(f"seccomp: {error}", hint="install the libseccomp2 package") from None
    return pyseccomp


def _split_rules(resolved: ResolvedFilter) -> tuple[list[ResolvedRule], list[ResolvedRule]]:
    """Rules for the main filter and argument rules that an unconditional rule would hide.

    Rules whose action is the filter's default are dropped (libseccomp refuses them and they
    change nothing), except argument rules that must override an unconditional rule.
    """
    unconditional: dict[str, ResolvedRule] = {}
    for rule in resolved.rules:
        if rule.args:
            continue
        # libseccomp keeps the first rule without conditions for a call and ignores later
        # ones (what runc applies of Podman's profile, which lists setns as ALLOW then ERRNO)
        unconditional.setdefault(rule.name, rule)
    main: list[ResolvedRule] = []
    overlay: list[ResolvedRule] = []
    for rule in resolved.rules:
        general = unconditional.get(rule.name)
        if not rule.args:
            first = rule is general     # the one of its call libseccomp keeps (see above)
            if first and rule.action != resolved.default_action:
                main.append(rule)
        elif general is None or general.action == resolved.default_action:
            if rule.action != resolved.default_action:
                main.append(rule)
        elif rule.action != general.action:
            overlay.append(rule)
    return main, overlay


def _sentinel(rules: list[ResolvedRule]) -> int:
    """A return value no overlay rule uses: it means "not decided here"."""
    used = {rule.action for rule in rules}
    for candidate in (ACTIONS["SCMP_ACT_TRACE"] | 0xFFFE, _ERRNO | 0xFFFE, ACTIONS["SCMP_ACT_TRACE"] | 0xFFFD):
        if candidate not in used:
            return candidate
    raise UsageError("seccomp: the profile uses every sentinel action")  # pragma: no cover


def _build(seccomp, resolved: ResolvedFilter, rules: list[ResolvedRule], default: int,
           badarch: int = _KILL_PROCESS):
    filt = seccomp.SyscallFilter(default)
    # A call from an ABI the filter does not list (i386 `int 0x80` into an x86_64-only
    # filter) must not slip through: kill the process.
    filt.set_attr(_ATTR_ACT_BADARCH, badarch)
    filt.set_attr(_ATTR_CTL_NNP, 0)          # the child sets no_new_privs itself
    try:
        filt.set_attr(_ATTR_CTL_OPTIMIZE, 2)  # binary tree of syscall numbers
    except OSError:
        pass
    for arch in resolved.arches[1:]:
        try:
            filt.add_arch(ARCH_TOKENS[arch])
        except OSError as error:
            raise UsageError(f"seccomp: libseccomp cannot add architecture {arch}: "
                             f"{error.strerror}") from None
    for rule in rules:
        number = resolve_syscall(resolved.arches[0], rule.name)
        if number == _NR_SCMP_ERROR:
            continue  # newer than this libseccomp (check_syscall_names refused the others)
        args = [seccomp.Arg(a.index, _OPERATOR_CODES[a.op], a.value, a.value_two) for a in rule.args]
        try:
            filt.add_rule(rule.action, number, *args)
        except OSError as error:
            raise UsageError(f"seccomp: {rule.where}: libseccomp refused the rule for {rule.name}: "
                             f"{error.strerror}") from None
    return filt


def _export(seccomp, filt) -> bytes:
    fd = os.memfd_create("hardrun-seccomp", os.MFD_CLOEXEC)
    with open(fd, "w+b", closefd=True) as handle:
        filt.export_bpf(handle)
        handle.seek(0)
        return handle.read()


def _instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    return [_INSN.unpack_from(program, offset) for offset in range(0, len(program), _INSN.size)]


def _pack(instructions) -> bytes:
    return b"".join(_INSN.pack(*insn) for insn in instructions)


def _fall_through(overlay: bytes, sentinel: int) -> bytes:
    """The overlay with each `return sentinel` turned into a jump past its end."""
    instructions = _instructions(overlay)
    count = len(instructions)
    patched = []
    for position, (code, jt, jf, k) in enumerate(instructions):
        if code == _RET_A:
            raise UsageError("seccomp: unexpected BPF from libseccomp (return A)")  # pragma: no cover
        if code == _RET_K and k == sentinel:
            patched.append((_JMP_JA, 0, 0, count - position - 1))
        else:
            patched.append((code, jt, jf, k))
    return _pack(patched)


def _wants_enosys_prefix(default_action: int) -> bool:
    action = default_action & _ACTION_MASK
    if action == _ERRNO:
        return default_action & 0xFFFF != _ENOSYS
    return default_action in (ACTIONS["SCMP_ACT_KILL_THREAD"], _KILL_PROCESS, ACTIONS["SCMP_ACT_TRAP"])


def _enosys_prefix(resolved: ResolvedFilter) -> bytes:
    """ENOSYS for syscall numbers above the highest one the profile names, per ABI."""
    abis = []  # (audit arch, first nr, last nr of the ABI's range, highest nr named)
    names = {rule.name for rule in resolved.rules}
    for arch in resolved.arches:
        numbers = [n for n in (resolve_syscall(arch, name) for name in names) if n >= 0]
        if not numbers:
            continue
        highest = max(numbers)
        token = ARCH_TOKENS[arch]
        if arch == "SCMP_ARCH_X32":
            abis.append((ARCH_TOKENS["SCMP_ARCH_X86_64"], _X32_SYSCALL_BIT, 0xFFFFFFFF,
                         highest | _X32_SYSCALL_BIT))
        elif arch == "SCMP_ARCH_X86_64":
            abis.append((token, 0, _X32_SYSCALL_BIT - 1, highest))
        else:
            abis.append((token, 0, 0xFFFFFFFF, highest))
    return _assemble_enosys(abis)


def _assemble_enosys(abis: list[tuple[int, int, int, int]]) -> bytes:
    # Layout: one block per ABI, `jump to the filter`, `return ENOSYS`. A block that does
    # not match goes on to the next one; after the last comes the jump to the filter proper.
    blocks = []
    for audit_arch, first, last, highest in abis:
        block = [("ld", _OFFSET_ARCH), ("jne", audit_arch), ("ld", _OFFSET_NR)]
        if first:
            block.append(("jlt", first))
        if last != 0xFFFFFFFF:
            block.append(("jgt-next", last))
        block.append(("jgt-enosys", highest))
        block.append(("ja-filter", 0))     # no operand: the jump's length is known below
        blocks.append(block)
    total = sum(len(b) for b in blocks) + 2
    out: list[tuple[int, int, int, int]] = []      # (code, jt, jf, k)
    for block in blocks:
        end_of_block = len(out) + len(block)
        for op, k in block:
            here = len(out)
            to_next = end_of_block - here - 1
            to_enosys = total - 1 - here - 1
            to_filter = total - here - 1
            if op == "ld":
                out.append((_LD_W_ABS, 0, 0, k))
            elif op == "jne":
                out.append((_JEQ_K, 0, to_next, k))
            elif op == "jlt":
                out.append((_JGE_K, 0, to_next, k))
            elif op == "jgt-next":
                out.append((_JGT_K, to_next, 0, k))
            elif op == "jgt-enosys":
                out.append((_JGT_K, to_enosys, 0, k))
            else:
                out.append((_JMP_JA, 0, 0, to_filter))
    out.append((_JMP_JA, 0, 0, 1))
    out.append((_RET_K, 0, 0, _ERRNO | _ENOSYS))
    if any(max(jt, jf) > 255 for _, jt, jf, _ in out):
        raise UsageError("seccomp: too many architectures for the ENOSYS prefix")  # pragma: no cover
    return _pack(out)


# -- hardrun's memfd filter: where vm.memfd_noexec=2 cannot hold --------------------------

MFD_NOEXEC_SEAL = 0x0008
_JSET_K = 0x45
_ALLOW = ACTIONS["SCMP_ACT_ALLOW"]
# struct seccomp_data: nr, arch, instruction_pointer, then args[6] of 64 bits each
_OFFSET_ARG1_LOW = 24 + (4 if sys.byteorder == "big" else 0)


def memfd_noexec_filter(arches: tuple[str, ...]) -> bytes:
    """A filter of its own, stacked on any profile (or none): memfd_create only with
    MFD_NOEXEC_SEAL (no exec permission, sealed against chmod), ENOSYS otherwise (programs
    then fall back to a file in the noexec /tmp); every other call is left to the profile.
    `arches`: the libseccomp names of every ABI this machine runs (a profile's
    filter_arches); a call from any other ABI kills the process, as a profile's badarch."""
    numbers: dict[int, list[int]] = {}
    for arch in arches:
        number = resolve_syscall(arch, "memfd_create")
        # x32 calls arrive as x86_64 ones with the x32 bit set in the number
        token = ARCH_TOKENS["SCMP_ARCH_X86_64" if arch == "SCMP_ARCH_X32" else arch]
        if number >= 0:
            numbers.setdefault(token, []).append(number)
    if not numbers:
        raise UsageError("seccomp: libseccomp knows no memfd_create for " + ", ".join(arches))
    blocks = [[("jne", token), ("ld", _OFFSET_NR)] + [("jeq-check", n) for n in nrs] + [("allow", 0)]   # 0: no operand
              for token, nrs in numbers.items()]
    # Layout: ld arch; a block per ABI (arch test, nr tests, allow); kill; the flags check.
    total = 1 + sum(len(b) for b in blocks)
    check = total + 1
    out = [(_LD_W_ABS, 0, 0, _OFFSET_ARCH)]
    for block in blocks:
        next_block = len(out) + len(block)
        for op, k in block:
            here = len(out)
            if op == "jne":
                out.append((_JEQ_K, 0, next_block - here - 1, k))
            elif op == "ld":
                out.append((_LD_W_ABS, 0, 0, k))
            elif op == "jeq-check":
                out.append((_JEQ_K, check - here - 1, 0, k))
            else:
                out.append((_RET_K, 0, 0, _ALLOW))
    out.append((_RET_K, 0, 0, _KILL_PROCESS))
    out += [(_LD_W_ABS, 0, 0, _OFFSET_ARG1_LOW), (_JSET_K, 0, 1, MFD_NOEXEC_SEAL),
            (_RET_K, 0, 0, _ALLOW), (_RET_K, 0, 0, _ERRNO | _ENOSYS)]
    return _pack(out)
