"""Device rules on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's
cgroup directory.

cgroup v2 has no devices.allow/deny files; the kernel runs the eBPF programs attached to a
cgroup (and to its ancestors: every one must allow) on each open and mknod of a device node,
with the node's type, numbers and the access asked for in a struct bpf_cgroup_dev_ctx:

    u32 access_type   (access << 16) | type; type 1 block, 2 char; access m 1, r 2, w 4
    u32 major, minor

The program is built from the very writes the v1 controller gets (device_rules), through
`device_rules.v1_state`, and decides as the v1 controller's check does: in deny-all mode a
request is allowed when one exception of its type and numbers holds every access it asks
for; in allow-all mode it is refused when one such exception shares any access with it. So a
rule list means the same on v1 and v2 hosts (tests/runtime/test_device_bpf.py compares them).

`attach` loads the program (the verifier's log goes into the error when it is refused),
attaches it with BPF_F_ALLOW_MULTI and only then detaches the programs it replaces, so an
update never leaves the container without one. The attached program lives as long as the
cgroup; no fd or pin keeps it after the cgroup is removed.
"""
from __future__ import annotations

import errno
import os
import struct

from . import syscalls
from .device_rules import WILDCARD, v1_state

LICENSE = "Apache-2.0"      # hardrun's licence; the program calls no GPL-only helper
TYPE_CODE = {"b": 1, "c": 2}
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}
ALL_ACCESS = 7
LOG_SIZE = 64 * 1024

# eBPF opcodes (linux/bpf.h, linux/bpf_common.h): class | operation | source
LDX_W = 0x61             # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
MOV64_X, MOV64_K = 0xBF, 0xB7
AND64_K, RSH64_K = 0x57, 0x77
JEQ32_K, JNE32_K = 0x16, 0x56    # BPF_JMP32: compares the low 32 bits, imm unsigned there
EXIT = 0x95
R0, R1, R2, R3, R4, R5, R6 = range(7)

_INSN = struct.Struct("<BBhi")   # code, dst_reg | src_reg << 4, off, imm


class DeviceProgramError(OSError):
    """The program could not be loaded or attached; `strerror` is the one line to show (what
    failed, on which cgroup, the errno's text and name)."""

    def __init__(self, number: int, what: str, detail: str = ""):
        name = errno.errorcode.get(number, str(number))
        super().__init__(number, f"cannot {what}: {os.strerror(number)} ({name}){detail}")


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    if imm >= 1 << 31:          # a u32 immediate as the s32 field holds it
        imm -= 1 << 32
    return _INSN.pack(code, dst | src << 4, off, imm)


def _access_mask(access: str) -> int:
    return sum(ACCESS_BITS[letter] for letter in access)


def program(writes) -> bytes:
    """The eBPF instructions enforcing the v1 devices writes `writes` (device_rules)."""
    default_allow, exceptions = v1_state(writes)
    code = [_insn(LDX_W, R2, R1, 0), _insn(MOV64_X, R3, R2), _insn(AND64_K, R3, imm=0xFFFF),
            _insn(RSH64_K, R2, imm=16), _insn(LDX_W, R4, R1, 4), _insn(LDX_W, R5, R1, 8)]
    for kind, major, minor, access in exceptions:
        code += _exception_block(kind, major, minor, _access_mask(access), default_allow)
    return b"".join(code + [_insn(MOV64_K, R0, imm=int(default_allow)), _insn(EXIT)])


def _exception_block(kind: str, major, minor, access: int, default_allow: bool) -> list[bytes]:
    """Return the exception's verdict when it matches; jump past this block otherwise."""
    tests = [(R3, TYPE_CODE[kind])] + [(register, number) for register, number in ((R4, major), (R5, minor))
                                          if number is not WILDCARD]
    # deny-all mode: the request must ask nothing this exception lacks (r6 = asked & ~held == 0);
    # allow-all mode: the exception refuses a request sharing any access with it (r6 != 0)
    mask, skip_if = ((ALL_ACCESS & ~access), JNE32_K) if not default_allow else (access, JEQ32_K)
    length = len(tests) + 5
    block = [_insn(JNE32_K, register, off=length - index - 1, imm=number)
             for index, (register, number) in enumerate(tests)]
    block += [_insn(MOV64_X, R6, R2), _insn(AND64_K, R6, imm=mask), _insn(skip_if, R6, off=2, imm=0),
              _insn(MOV64_K, R0, imm=int(not default_allow)), _insn(EXIT)]
    return block


def load(writes) -> int:
    """Load the program for `writes`; its fd. DeviceProgramError (with the verifier's log) if refused."""
    instructions = program(writes)
    try:        # without a log first: the verifier's logging costs more than the load itself
        return syscalls.bpf_prog_load(syscalls.BPF_PROG_TYPE_CGROUP_DEVICE, instructions, LICENSE,
                                      name="hardrun_devices")
    except OSError as error:
        log = bytearray(LOG_SIZE)
        try:    # again with a log, for the verifier's words in the error
            os.close(syscalls.bpf_prog_load(syscalls.BPF_PROG_TYPE_CGROUP_DEVICE, instructions, LICENSE, log))
        except OSError:
            pass
        verifier = log.split(b"\0", 1)[0].decode(errors="replace").strip().replace("\n", "; ")
        raise DeviceProgramError(error.errno or errno.EINVAL, "load the BPF device program",
                                 f"; the verifier said: {verifier[-300:]}" if verifier else "") from None


def attached(cgroup_fd: int) -> list[int]:
    """The ids of the device programs attached to the cgroup directory `cgroup_fd`."""
    return syscalls.bpf_prog_query(cgroup_fd, syscalls.BPF_CGROUP_DEVICE)


def attach(cgroup_path: str, writes) -> None:
    """Enforce `writes` on the cgroup v2 directory `cgroup_path`, replacing the device programs
    attached to it (the new one is attached before the old ones go: no moment without one)."""
    where = f"on {cgroup_path}"
    cgroup_fd = _call(os.open, f"open {cgroup_path}", cgroup_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        previous = _call(attached, f"query the device programs {where}", cgroup_fd)
        program_fd = load(writes)
        try:
            _call(syscalls.bpf_prog_attach, f"attach the BPF device program {where}", cgroup_fd, program_fd,
                  syscalls.BPF_CGROUP_DEVICE, syscalls.BPF_F_ALLOW_MULTI)
        finally:
            os.close(program_fd)    # the attachment holds the program from here on
        for program_id in previous:
            _detach(cgroup_fd, program_id, where)
    finally:
        os.close(cgroup_fd)


def _detach(cgroup_fd: int, program_id: int, where: str) -> None:
    try:
        old_fd = syscalls.bpf_prog_get_fd_by_id(program_id)
    except FileNotFoundError:       # detached meanwhile
        return
    try:
        _call(syscalls.bpf_prog_detach, f"detach the previous device program {where}", cgroup_fd, old_fd,
              syscalls.BPF_CGROUP_DEVICE)
    finally:
        os.close(old_fd)


def _call(function, what: str, *args):
    try:
        return function(*args)
    except OSError as error:
        raise DeviceProgramError(error.errno or errno.EIO, what) from None
