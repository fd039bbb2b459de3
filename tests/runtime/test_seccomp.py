"""seccomp: every blocked syscall is tried for real in a child with the filter loaded, and
each has a control showing what the same attempt does without the filter.

These tests need root and a kernel with seccomp, user namespaces, io_uring, userfaultfd,
perf events, vsock and the i386 ABI; where the kernel cannot do something they fail.
"""
from __future__ import annotations

import ctypes
import errno
import json
import tempfile
import os
import subprocess
import sys
import tty
from pathlib import Path

import pytest
import yaml

from hardrun.errors import HardrunError, ParseError, UsageError
from hardrun.runtime import seccomp, seccomp_bpf, seccomp_cache
from hardrun.runtime.seccomp import (cache_key, cached_filter, compile_profile, default_filter,
                                     default_profile, load_profile, parse_profile, prepare_filter,
                                     seccomp_mode_of, set_no_new_privs)
from hardrun.spec.record import fields
from tests.helpers import (KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_SESSION_KEYRING, KEYCTL, KEYCTL_GET_KEYRING_ID,
                           KEYRING_ID_CALL, record_calls)

pytestmark = pytest.mark.runtime

DATA = Path(__file__).resolve().parent.parent / "data" / "seccomp"
DOCKER_PROFILE = DATA / "docker-default.json"
DOCKER_CAPS = {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
               "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

# x86_64 syscall numbers
NR = dict(getpid=39, ioctl=16, socket=41, clone=56, ptrace=101, personality=135, sysfs=139,
          mount=165, add_key=248, keyctl=KEYCTL, unshare=272, perf_event_open=298, bpf=321,
          userfaultfd=323, memfd_create=319, io_uring_setup=425, clone3=435)
# i386 syscall numbers (through int 0x80)
NR32 = dict(getuid=24, keyctl=288, unshare=310, mount=21)

CLONE_NEWNS, CLONE_NEWUSER, SIGCHLD = 0x20000, 0x10000000, 17
AF_UNIX, AF_ALG, AF_VSOCK, SOCK_STREAM, SOCK_SEQPACKET = 1, 38, 40, 1, 5
TIOCSTI = 0x5412
PTRACE_TRACEME = 0
MS_REC, MS_PRIVATE = 0x4000, 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _arg(value):
    if isinstance(value, int):
        return ctypes.c_long(value)
    if isinstance(value, bytes):
        return ctypes.c_char_p(value)
    return value  # a ctypes object (buffer) passed by reference


def raw_syscall(nr, *args):
    """(result, errno) of syscall(nr, args...)."""
    result = _libc.syscall(ctypes.c_long(nr), *[_arg(a) for a in args])
    return result, (ctypes.get_errno() if result == -1 else 0)


def _child_mount_namespace():
    """Give the child a private mount namespace so a control mount never reaches the host."""
    assert raw_syscall(NR["unshare"], CLONE_NEWNS) == (0, 0)
    assert raw_syscall(NR["mount"], b"none", b"/", 0, MS_REC | MS_PRIVATE, 0)[0] == 0


def in_child(bpf, action, prelude=None, nnp=True):
    """Run `action()` in a forked child after loading `bpf` (None: no filter) and return
    what it returned (a JSON value), or "signal N" when the child was killed."""
    handle = prepare_filter(bpf) if bpf is not None else None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        me = os.getpid()
        try:
            os.close(read_end)
            if prelude:
                prelude()
            if nnp:
                set_no_new_privs()
            if handle is not None:
                handle.load()
            result = action()
            if os.getpid() == me:  # not a clone()d grandchild
                os.write(write_end, json.dumps(result).encode())
        except BaseException as error:  # report, never fall back into pytest
            if os.getpid() == me:
                os.write(write_end, json.dumps(f"error {type(error).__name__}: {error}").encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return json.loads(b"".join(chunks).decode())


def attempt(bpf, nr, *args, prelude=None):
    """[result, errno] of one syscall in a child under `bpf`; a clone()d grandchild exits."""
    def action():
        result, err = raw_syscall(nr, *args)
        return [result, err]
    return in_child(bpf, action, prelude)


def errno_of(bpf, nr, *args, prelude=None) -> int:
    result = attempt(bpf, nr, *args, prelude=prelude)
    assert isinstance(result, list), result
    return result[1]


@pytest.fixture(scope="module")
def default_bpf():
    return compile_profile(default_profile(), set())


@pytest.fixture(scope="module")
def admin_bpf():
    return compile_profile(default_profile(), {"SYS_ADMIN"})


@pytest.fixture(scope="module")
def docker_bpf():
    return compile_profile(load_profile(DOCKER_PROFILE), DOCKER_CAPS)


def test_runs_on_x86_64_as_root_with_seccomp():
    assert os.uname().machine == "x86_64", "the seccomp tests use x86_64 syscall numbers"
    assert os.geteuid() == 0, "the seccomp tests need root"
    assert seccomp_mode_of("self").mode in ("disabled", "filter")


# ------------------------------------------------------------------ the default profile


def test_ordinary_syscalls_work_under_the_default_profile(default_bpf, tmp_path):
    target = tmp_path / "file"

    def ordinary_work():
        with open(target, "w") as handle:
            handle.write("hello")
        child = os.fork()  # clone without namespace flags
        if child == 0:
            os._exit(7)
        _, status = os.waitpid(child, 0)
        read_end, write_end = os.pipe()
        os.write(write_end, b"x")
        return [target.read_text(), os.WEXITSTATUS(status), os.read(read_end, 1).decode(), os.getpid() > 0]

    assert in_child(default_bpf, ordinary_work) == ["hello", 7, "x", True]


def test_a_program_runs_under_the_default_profile(default_bpf):
    def run_shell():
        out = subprocess.run(["/bin/sh", "-c", "echo ok; ls / >/dev/null && echo listed"],
                             capture_output=True, text=True)
        return [out.returncode, out.stdout]

    assert in_child(default_bpf, run_shell) == [0, "ok\nlisted\n"]


def test_keyctl_is_refused(default_bpf):
    assert attempt(None, *KEYRING_ID_CALL)[0] > 0            # control: the keyring answers
    assert errno_of(default_bpf, *KEYRING_ID_CALL) == errno.EPERM


def test_add_key_is_refused(default_bpf):
    call = (NR["add_key"], b"user", b"hardrun-test", b"secret", 6, KEY_SPEC_PROCESS_KEYRING)
    assert attempt(None, *call)[0] > 0            # control: a key is created
    assert errno_of(default_bpf, *call) == errno.EPERM


def test_unshare_of_a_user_namespace_is_refused(default_bpf):
    assert attempt(None, NR["unshare"], CLONE_NEWUSER) == [0, 0]
    assert errno_of(default_bpf, NR["unshare"], CLONE_NEWUSER) == errno.EPERM


def test_io_uring_is_refused(default_bpf):
    params = ctypes.create_string_buffer(120)     # struct io_uring_params, zeroed
    assert attempt(None, NR["io_uring_setup"], 4, params)[0] >= 0
    assert errno_of(default_bpf, NR["io_uring_setup"], 4, params) == errno.EPERM
    assert errno_of(compile_profile(default_profile(), {"SYS_ADMIN", "SYS_PTRACE"}),
                    NR["io_uring_setup"], 4, params) == errno.EPERM  # never, whatever the caps


def test_userfaultfd_is_refused(default_bpf):
    assert attempt(None, NR["userfaultfd"], 0)[0] >= 0
    assert errno_of(default_bpf, NR["userfaultfd"], 0) == errno.EPERM


def _perf_attr():
    attr = ctypes.create_string_buffer(64)        # struct perf_event_attr, PERF_ATTR_SIZE_VER0
    ctypes.c_uint32.from_buffer(attr, 0).value = 1            # PERF_TYPE_SOFTWARE
    ctypes.c_uint32.from_buffer(attr, 4).value = 64           # size
    ctypes.c_uint64.from_buffer(attr, 8).value = 1            # PERF_COUNT_SW_TASK_CLOCK
    return attr


def test_perf_event_open_is_refused_without_perfmon(default_bpf):
    attr = _perf_attr()
    call = (NR["perf_event_open"], attr, 0, -1, -1, 0)
    assert attempt(None, *call)[0] >= 0
    assert errno_of(default_bpf, *call) == errno.EPERM
    assert attempt(compile_profile(default_profile(), {"PERFMON"}), *call)[0] >= 0


def _bpf_map_attr():
    attr = ctypes.create_string_buffer(128)       # union bpf_attr for BPF_MAP_CREATE
    for offset, value in ((0, 2), (4, 4), (8, 4), (12, 1)):   # ARRAY, key 4, value 4, 1 entry
        ctypes.c_uint32.from_buffer(attr, offset).value = value
    return attr


def test_bpf_is_refused_without_bpf_or_sys_admin(default_bpf, admin_bpf):
    call = (NR["bpf"], 0, _bpf_map_attr(), 128)  # BPF_MAP_CREATE
    assert attempt(None, *call)[0] >= 0
    assert errno_of(default_bpf, *call) == errno.EPERM
    assert attempt(admin_bpf, *call)[0] >= 0
    assert attempt(compile_profile(default_profile(), {"CAP_BPF"}), *call)[0] >= 0


# Every namespace flag of Docker's clone mask 0x7E020000 (linux/sched.h)
CLONE_NAMESPACE_FLAGS = {"NEWNS": 0x20000, "NEWCGROUP": 0x02000000, "NEWUTS": 0x04000000,
                         "NEWIPC": 0x08000000, "NEWUSER": 0x10000000, "NEWPID": 0x20000000,
                         "NEWNET": 0x40000000}


@pytest.mark.parametrize("flag", CLONE_NAMESPACE_FLAGS)
def test_clone_with_a_namespace_flag_is_refused(default_bpf, admin_bpf, flag):
    """The test runs as real root: only the filter can refuse the flag."""
    call = (NR["clone"], CLONE_NAMESPACE_FLAGS[flag] | SIGCHLD, 0, 0, 0, 0)
    assert attempt(None, *call)[0] > 0            # control: a child in a new namespace
    assert errno_of(default_bpf, *call) == errno.EPERM
    assert attempt(default_bpf, NR["clone"], SIGCHLD, 0, 0, 0, 0)[0] > 0  # a plain fork works
    assert attempt(admin_bpf, *call)[0] > 0


def test_clone3_answers_enosys_so_libc_falls_back(default_bpf, admin_bpf):
    assert errno_of(None, NR["clone3"], 0, 0) == errno.EINVAL
    assert errno_of(default_bpf, NR["clone3"], 0, 0) == errno.ENOSYS
    assert errno_of(admin_bpf, NR["clone3"], 0, 0) == errno.EINVAL


def test_personality_only_allows_the_usual_personas(default_bpf):
    addr_no_randomize = 0x0040000
    assert attempt(None, NR["personality"], addr_no_randomize)[1] == 0
    assert errno_of(default_bpf, NR["personality"], addr_no_randomize) == errno.EPERM
    assert errno_of(default_bpf, NR["personality"], 1 << 32) == errno.EPERM
    for allowed in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert attempt(default_bpf, NR["personality"], allowed)[1] == 0, hex(allowed)


def test_socket_af_alg_is_refused_even_with_high_bits_set(default_bpf):
    control = errno_of(None, NR["socket"], AF_ALG, SOCK_SEQPACKET, 0)
    assert control != errno.EPERM                 # no module here: EAFNOSUPPORT, else a socket
    assert errno_of(default_bpf, NR["socket"], AF_ALG, SOCK_SEQPACKET, 0) == errno.EPERM
    # the kernel reads the domain as an int: the filter must not be fooled by bit 32
    assert errno_of(None, NR["socket"], (1 << 32) | AF_ALG, SOCK_SEQPACKET, 0) == control
    assert errno_of(default_bpf, NR["socket"], (1 << 32) | AF_ALG, SOCK_SEQPACKET, 0) == errno.EPERM


def test_socket_af_vsock_is_refused(default_bpf):
    assert attempt(None, NR["socket"], AF_VSOCK, SOCK_STREAM, 0)[0] >= 0
    assert errno_of(default_bpf, NR["socket"], AF_VSOCK, SOCK_STREAM, 0) == errno.EPERM
    assert attempt(default_bpf, NR["socket"], AF_UNIX, SOCK_STREAM, 0)[0] >= 0


def _inject_into_pty(command):
    def action():
        master, slave = os.openpty()
        tty.setraw(slave)                         # typed input is readable at once
        os.set_blocking(slave, False)
        char = ctypes.c_char(b"Z")
        result, err = raw_syscall(NR["ioctl"], slave, command, ctypes.byref(char))
        try:
            typed = os.read(slave, 16).decode()
        except BlockingIOError:
            typed = ""
        return [result, err, typed]
    return action


def test_tiocsti_injection_is_refused(default_bpf):
    assert in_child(None, _inject_into_pty(TIOCSTI)) == [0, 0, "Z"]     # control: it types
    assert in_child(default_bpf, _inject_into_pty(TIOCSTI)) == [-1, errno.EPERM, ""]
    # the command is an unsigned int to the kernel: bit 32 must not get it through
    assert in_child(None, _inject_into_pty((1 << 32) | TIOCSTI)) == [0, 0, "Z"]
    assert in_child(default_bpf, _inject_into_pty((1 << 32) | TIOCSTI)) == [-1, errno.EPERM, ""]


def test_other_ioctls_work(default_bpf):
    def window_size():
        import fcntl
        import termios
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, b"\x18\x00\x50\x00\x00\x00\x00\x00")
        return list(fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\x00" * 8)[:4])
    assert in_child(default_bpf, window_size) == [24, 0, 80, 0]


def test_mount_is_refused(default_bpf, tmp_path):
    call = (NR["mount"], b"none", str(tmp_path).encode(), b"tmpfs", 0, 0)
    assert attempt(None, *call, prelude=_child_mount_namespace) == [0, 0]
    assert errno_of(default_bpf, *call, prelude=_child_mount_namespace) == errno.EPERM


def test_syscalls_the_profile_does_not_name_answer_enosys(default_bpf):
    assert attempt(None, NR["sysfs"], 3)[0] > 0   # sysfs(3): how many filesystem types
    assert errno_of(default_bpf, NR["sysfs"], 3) == errno.ENOSYS
    assert errno_of(default_bpf, 1000) == errno.ENOSYS


def test_ptrace_needs_sys_ptrace(default_bpf):
    assert attempt(None, NR["ptrace"], PTRACE_TRACEME, 0, 0, 0) == [0, 0]
    assert errno_of(default_bpf, NR["ptrace"], PTRACE_TRACEME, 0, 0, 0) == errno.EPERM
    for spelling in ({"SYS_PTRACE"}, {"cap_sys_ptrace"}):
        assert attempt(compile_profile(default_profile(), spelling), NR["ptrace"], PTRACE_TRACEME,
                       0, 0, 0) == [0, 0]


def test_unknown_capability_is_an_error():
    with pytest.raises(UsageError, match="SYS_NOTHING"):
        compile_profile(default_profile(), {"SYS_NOTHING"})


def test_every_name_in_the_default_profile_is_a_syscall():
    headers = ""
    for abi in ("64", "32", "x32"):
        headers += Path(f"/usr/include/x86_64-linux-gnu/asm/unistd_{abi}.h").read_text()
    # syscalls newer than Debian 12's kernel headers (Linux 6.1)
    newer = {"cachestat", "fchmodat2", "map_shadow_stack", "futex_wake", "futex_wait",
             "futex_requeue", "statmount", "listmount", "mseal", "getxattrat", "setxattrat",
             "listxattrat", "removexattrat", "uretprobe", "open_tree_attr"}
    names = {name for rule in default_profile().syscalls for name in rule.names}
    unknown = {name for name in names - newer if f"#define __NR_{name} " not in headers
               and f"#define __NR_x32_{name} " not in headers
               and seccomp_bpf.resolve_syscall("SCMP_ARCH_ARM", name) < 0}  # send, recv
    assert not unknown
    assert len(names) > 330


# ------------------------------------------------------------------ the i386 ABI


@pytest.fixture(scope="module")
def int80(tmp_path_factory):
    binary = tmp_path_factory.mktemp("probe") / "int80"
    subprocess.run(["gcc", "-O1", "-static", "-no-pie", "-o", str(binary), str(DATA / "int80.c")],
                   check=True)
    return str(binary)


def run_int80(bpf, binary, *argv):
    def action():
        out = subprocess.run([binary, *argv], capture_output=True, text=True)
        if out.returncode < 0:
            return f"signal {-out.returncode}"
        return int(out.stdout)
    return in_child(bpf, action)


def test_i386_syscalls_are_filtered_not_a_way_around(default_bpf, int80):
    assert run_int80(None, int80, str(NR32["getuid"])) == 0
    assert run_int80(default_bpf, int80, str(NR32["getuid"])) == 0   # allowed on i386 too
    keyctl = (str(NR32["keyctl"]), str(KEYCTL_GET_KEYRING_ID), str(KEY_SPEC_SESSION_KEYRING), "1")
    assert run_int80(None, int80, *keyctl) > 0
    assert run_int80(default_bpf, int80, *keyctl) == -errno.EPERM
    unshare = (str(NR32["unshare"]), str(CLONE_NEWUSER))
    assert run_int80(None, int80, *unshare) == 0
    assert run_int80(default_bpf, int80, *unshare) == -errno.EPERM


def test_i386_socketcall_cannot_open_a_vsock(default_bpf, int80):
    assert run_int80(None, int80, "socketcall-socket", str(AF_VSOCK)) >= 0
    assert run_int80(default_bpf, int80, "socketcall-socket", str(AF_VSOCK)) == -errno.EPERM


@pytest.mark.parametrize("kernel, expected", [((6, 1), errno.ENOSYS), ((6, 3), 0)])
def test_builtin_profile_refuses_memfds_where_they_cannot_be_made_noexec(kernel, expected):
    """Before Linux 6.3 (no vm.memfd_noexec) a memfd is always executable: the built-in
    profile compiled for such a kernel answers memfd_create with ENOSYS. Control: compiled
    for 6.3 it allows it (vm.memfd_noexec then makes memfds non-executable)."""
    from hardrun.runtime.seccomp_bpf import compile_resolved
    bpf = compile_resolved(seccomp.default_profile().resolve(set(), "native", kernel=kernel))
    assert errno_of(bpf, NR["memfd_create"], b"probe", 0) == expected


MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_NOEXEC_SEAL = 0x1, 0x2, 0x8


def test_the_memfd_filter_allows_only_sealed_memfds_on_every_abi(int80):
    """hardrun's memfd filter (where vm.memfd_noexec=2 cannot hold): memfd_create without
    MFD_NOEXEC_SEAL is ENOSYS, on x86_64 and through int 0x80 alike; other calls pass.
    Controls: without it the same calls make memfds (i386: EFAULT for the NULL name,
    which the filter lets through to the kernel when the flag is there)."""
    bpf = seccomp.memfd_filter()
    for flags in (0, MFD_CLOEXEC | MFD_ALLOW_SEALING):
        assert attempt(None, NR["memfd_create"], b"probe", flags)[0] >= 0
        assert errno_of(bpf, NR["memfd_create"], b"probe", flags) == errno.ENOSYS
    assert attempt(bpf, NR["memfd_create"], b"probe", MFD_NOEXEC_SEAL | MFD_CLOEXEC)[0] >= 0
    assert attempt(bpf, NR["getpid"])[0] > 0
    memfd_create_i386 = "356"
    assert run_int80(None, int80, memfd_create_i386, "0", "0") == -errno.EFAULT
    assert run_int80(bpf, int80, memfd_create_i386, "0", "0") == -errno.ENOSYS
    assert run_int80(bpf, int80, memfd_create_i386, "0", str(MFD_NOEXEC_SEAL)) == -errno.EFAULT
    assert run_int80(bpf, int80, str(NR32["getuid"])) == 0


def test_docker_profile_on_the_i386_abi(docker_bpf, int80):
    assert run_int80(None, int80, "135", "3") > 0                  # sysfs: not named by Docker
    assert run_int80(docker_bpf, int80, "135", "3") == -errno.EPERM
    assert run_int80(docker_bpf, int80, "1000") == -errno.ENOSYS
    assert run_int80(docker_bpf, int80, str(NR32["getuid"])) == 0


def test_a_filter_without_the_i386_abi_kills_int80_callers(int80):
    data = json.loads(Path(seccomp.DEFAULT_PROFILE_PATH).read_text())
    del data["archMap"]
    x86_64_only = compile_profile(parse_profile(json.dumps(data)), set())
    assert run_int80(x86_64_only, int80, str(NR32["getuid"])) == "signal 31"   # SIGSYS
    assert attempt(x86_64_only, NR["getpid"])[0] > 0


# ------------------------------------------------------------------ Docker's profile


def test_docker_profile_behaves_as_in_docker(docker_bpf, tmp_path):
    mount = (NR["mount"], b"none", str(tmp_path).encode(), b"tmpfs", 0, 0)
    assert errno_of(docker_bpf, *mount, prelude=_child_mount_namespace) == errno.EPERM
    assert errno_of(docker_bpf, *KEYRING_ID_CALL) == errno.EPERM
    assert errno_of(docker_bpf, NR["unshare"], CLONE_NEWUSER) == errno.EPERM
    assert errno_of(docker_bpf, NR["clone3"], 0, 0) == errno.ENOSYS
    assert errno_of(docker_bpf, NR["socket"], AF_VSOCK, SOCK_STREAM, 0) == errno.EPERM
    assert attempt(docker_bpf, NR["ptrace"], PTRACE_TRACEME, 0, 0, 0) == [0, 0]  # kernel >= 4.8
    assert attempt(docker_bpf, NR["getpid"])[0] > 0
    # a syscall the profile does not name answers Docker's default (EPERM); a number above
    # every syscall it names answers ENOSYS, as runc does
    assert errno_of(docker_bpf, NR["sysfs"], 3) == errno.EPERM
    assert errno_of(docker_bpf, 1000) == errno.ENOSYS


def test_a_program_runs_under_docker_profile(docker_bpf):
    def run_shell():
        out = subprocess.run(["/bin/sh", "-c", "echo ok"], capture_output=True, text=True)
        return [out.returncode, out.stdout]
    assert in_child(docker_bpf, run_shell) == [0, "ok\n"]


def test_docker_profile_as_yaml_is_the_same_filter(tmp_path, docker_bpf):
    as_yaml = tmp_path / "docker.yaml"
    as_yaml.write_text(yaml.safe_dump(json.loads(DOCKER_PROFILE.read_text()), sort_keys=False))
    profile = load_profile(as_yaml)
    assert profile.canonical() == load_profile(DOCKER_PROFILE).canonical()
    assert compile_profile(profile, DOCKER_CAPS) == docker_bpf
    assert errno_of(compile_profile(profile, DOCKER_CAPS), *KEYRING_ID_CALL) == errno.EPERM


def test_docker_profile_with_sys_admin_allows_namespaces():
    admin = compile_profile(load_profile(DOCKER_PROFILE), DOCKER_CAPS | {"SYS_ADMIN"})
    assert attempt(admin, NR["unshare"], CLONE_NEWUSER) == [0, 0]


# ------------------------------------------------------------------ loading


def test_loading_fails_closed_without_no_new_privs_after_dropping_root(default_bpf):
    def drop_root_then_load():
        os.setgroups([])
        os.setresuid(65534, 65534, 65534)
        try:
            prepare_filter(default_bpf).load()
        except OSError as error:
            return ["refused", error.errno]
        return ["loaded", 0]
    assert in_child(None, drop_root_then_load, nnp=False) == ["refused", errno.EACCES]


def test_an_invalid_program_is_refused_by_the_kernel():
    jump_out_of_range = bytes([0x05, 0, 0, 0, 9, 0, 0, 0])   # ja +9 in a 1-instruction program

    def load_it():
        try:
            prepare_filter(jump_out_of_range).load()
        except OSError as error:
            return error.errno
        return 0
    assert in_child(None, load_it) == errno.EINVAL


def test_prepare_filter_rejects_bytes_that_are_no_program():
    with pytest.raises(UsageError):
        prepare_filter(b"\x00" * 7)
    with pytest.raises(UsageError):
        prepare_filter(b"")


def test_seccomp_mode_of_a_filtered_child(default_bpf):
    parent = seccomp_mode_of(os.getpid())

    def report_own_status():
        status = seccomp_mode_of("self")
        return [status.mode, status.filters]
    assert in_child(default_bpf, report_own_status) == ["filter", (parent.filters or 0) + 1]


def test_seccomp_mode_of_a_missing_process():
    with pytest.raises(HardrunError, match="no process"):
        seccomp_mode_of(2**22 + 12345)


# ------------------------------------------------------------------ the cache


@pytest.fixture
def cache_dir(tmp_path):
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def compile_count(monkeypatch):
    return record_calls(monkeypatch, seccomp_bpf, "compile_resolved")


def _cache_file(cache_dir, key):
    return cache_dir / f"{key}.bpf"


def test_the_cache_is_used_on_the_second_call(cache_dir, compile_count):
    profile = default_profile()
    first = cached_filter(profile, {"CHOWN"}, cache_dir=str(cache_dir))
    second = cached_filter(profile, {"CHOWN"}, cache_dir=str(cache_dir))
    assert len(compile_count) == 1
    cached_filter(profile, {"CHOWN", "SYS_PTRACE"}, cache_dir=str(cache_dir))
    assert len(compile_count) == 2                                # other caps, other filter
    assert first == second == compile_profile(profile, {"CHOWN"})
    path = _cache_file(cache_dir, cache_key(profile, {"CHOWN"}))
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(list(cache_dir.iterdir())) == 2                    # no temporary left behind


def test_a_cached_default_filter_loads_without_pyseccomp(cache_dir):
    expected = default_filter(cache_dir=str(cache_dir))
    code = ("import sys; from hardrun.runtime.seccomp import default_filter; "
            f"bpf = default_filter(cache_dir={str(cache_dir)!r}); "
            "print(bpf.hex(), 'pyseccomp' in sys.modules, 'yaml' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == [expected.hex(), "False", "False"]


def test_a_cached_memfd_filter_loads_without_pyseccomp(cache_dir):
    """The memfd filter of every rootless start comes from the cache like the profile's
    (control: the first call compiles it, and what the cache gives back is that program)."""
    expected = seccomp._compile_memfd_filter()
    assert not list(cache_dir.iterdir())
    assert seccomp.memfd_filter(cache_dir=str(cache_dir)) == expected
    assert len(list(cache_dir.iterdir())) == 1
    code = ("import sys; from hardrun.runtime.seccomp import memfd_filter; "
            f"bpf = memfd_filter(cache_dir={str(cache_dir)!r}); "
            "print(bpf.hex(), 'pyseccomp' in sys.modules, 'yaml' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == [expected.hex(), "False", "False"]


_MODEL_AND_COMPILER = ("hardrun.runtime.seccomp_profile", "hardrun.runtime.seccomp_bpf")


def _default_filter_in_a_fresh_interpreter(cache_dir):
    """(hex of the default filter, the profile-model and compiler modules imported) when a
    new `python` prepares the default filter with `cache_dir` as its cache."""
    code = ("import sys; from hardrun.runtime.seccomp import default_filter, prepare_filter; "
            f"bpf = default_filter(cache_dir={str(cache_dir)!r}); prepare_filter(bpf); "
            f"print(bpf.hex(), *[name for name in {_MODEL_AND_COMPILER!r} if name in sys.modules])")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    program, *modules = out.stdout.split()
    return program, modules


def test_a_cache_hit_needs_neither_the_profile_model_nor_the_compiler(cache_dir):
    expected = default_filter(cache_dir=str(cache_dir))
    assert _default_filter_in_a_fresh_interpreter(cache_dir) == (expected.hex(), [])


def test_a_cache_miss_imports_the_profile_model_and_the_compiler(tmp_path):
    # control for the test above: with an empty cache the same code parses and compiles
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    program, modules = _default_filter_in_a_fresh_interpreter(empty)
    assert modules == list(_MODEL_AND_COMPILER)
    assert program == compile_profile(default_profile(), ()).hex()
    assert len(list(empty.iterdir())) == 1                        # and it filled the cache


def test_the_profile_model_is_still_reachable_through_seccomp():
    from hardrun.runtime import seccomp_profile

    assert seccomp.SeccompProfile is seccomp_profile.SeccompProfile
    assert seccomp.load_profile is seccomp_profile.load_profile is load_profile
    assert fields(default_profile()) and fields(seccomp_mode_of())   # hardrun's one record type
    assert not hasattr(seccomp, "no_such_name")


@pytest.mark.parametrize("damage", ["flip a program byte", "truncate", "wrong key", "garbage"])
def test_a_damaged_cache_file_is_recompiled_and_rewritten(cache_dir, compile_count, damage):
    profile = default_profile()
    good = cached_filter(profile, (), cache_dir=str(cache_dir))
    path = _cache_file(cache_dir, cache_key(profile, ()))
    data = bytearray(path.read_bytes())
    if damage == "flip a program byte":
        data[-3] ^= 0xFF
    elif damage == "truncate":
        data = data[:len(data) - 5]
    elif damage == "wrong key":
        data = data.replace(cache_key(profile, ()).encode(), b"0" * 64, 1)
    else:
        data = bytearray(b"\x00" * 64)
    path.write_bytes(bytes(data))
    assert cached_filter(profile, (), cache_dir=str(cache_dir)) == good
    assert len(compile_count) == 2
    assert path.read_bytes() != bytes(data)                       # rewritten
    assert cached_filter(profile, (), cache_dir=str(cache_dir)) == good
    assert len(compile_count) == 2


ALLOW_ALL = bytes([0x06, 0, 0, 0, 0x00, 0x00, 0xFF, 0x7F])      # return SECCOMP_RET_ALLOW


def _plant(directory, key, program=ALLOW_ALL, mode=0o600):
    seccomp_cache.write_cached(str(directory), key, program)
    path = _cache_file(directory, key)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("unsafe", ["world-writable directory", "group-writable directory",
                                    "directory of another user", "parent writable by all",
                                    "file readable by others", "file of another user",
                                    "file is a symlink"])
def test_an_unsafe_cache_is_not_used(tmp_path, compile_count, unsafe):
    parent = tmp_path / "parent"
    parent.mkdir(mode=0o755)
    directory = parent / "cache"
    directory.mkdir(mode=0o700)
    profile = default_profile()
    key = cache_key(profile, ())
    planted = _plant(directory, key)
    if unsafe == "world-writable directory":
        directory.chmod(0o777)
    elif unsafe == "group-writable directory":
        directory.chmod(0o770)
    elif unsafe == "directory of another user":
        os.chown(directory, 4242, 4242)
    elif unsafe == "parent writable by all":
        parent.chmod(0o777)
    elif unsafe == "file readable by others":
        planted.chmod(0o644)
    elif unsafe == "file of another user":
        os.chown(planted, 4242, 4242)
    else:
        real = directory / "elsewhere.bpf"
        planted.rename(real)
        planted.symlink_to(real)
    result = cached_filter(profile, (), cache_dir=str(directory))
    assert len(compile_count) == 1
    assert result != ALLOW_ALL
    assert result == compile_profile(profile, ())


def test_a_well_formed_file_in_a_safe_cache_is_used(cache_dir):
    # control for the test above: the same planted file in a safe directory is loaded,
    # which is why the directory and file checks are what keeps a planted filter out
    profile = default_profile()
    key = cache_key(profile, ())
    _plant(cache_dir, key)
    assert cached_filter(profile, (), cache_dir=str(cache_dir)) == ALLOW_ALL


def test_a_missing_cache_directory_is_created_private(tmp_path):
    directory = tmp_path / "new" / "seccomp"
    default_filter(cache_dir=str(directory))
    assert directory.stat().st_mode & 0o777 == 0o700
    assert len(list(directory.iterdir())) == 1


def test_cache_keys_follow_the_profile_not_its_spelling(tmp_path):
    json_profile = load_profile(DOCKER_PROFILE)
    as_yaml = tmp_path / "docker.yml"
    as_yaml.write_text(yaml.safe_dump(json.loads(DOCKER_PROFILE.read_text())))
    assert cache_key(json_profile, {"CHOWN"}) == cache_key(load_profile(as_yaml), {"cap_chown"})
    assert cache_key(json_profile, {"CHOWN"}) != cache_key(json_profile, {"KILL"})
    assert cache_key(json_profile, ()) != cache_key(default_profile(), ())


def test_default_cache_dir_for_root_and_users(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert seccomp_cache.default_cache_dir() == "/var/cache/hardrun/seccomp"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_CACHE_HOME", "/home/u/.xdg")
    assert seccomp_cache.default_cache_dir() == "/home/u/.xdg/hardrun/seccomp"


# ------------------------------------------------------------------ bad profiles


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_action_names_the_file_line_and_entry(tmp_path):
    text = json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_PERMIT"}]}, indent=2)
    path = _write(tmp_path, "bad.json", text)
    with pytest.raises(UsageError) as caught:
        load_profile(path)
    line = next(number for number, content in enumerate(text.splitlines(), 1) if "SCMP_ACT_PERMIT" in content)
    assert caught.value.path == str(path) and caught.value.line == line
    assert "syscalls[1].action" in str(caught.value) and "SCMP_ACT_PERMIT" in str(caught.value)


def test_unknown_operator_in_yaml_names_the_line(tmp_path):
    text = ("defaultAction: SCMP_ACT_ERRNO\n"
            "syscalls:\n"
            "  - names: [socket]\n"
            "    action: SCMP_ACT_ALLOW\n"
            "    args:\n"
            "      - index: 0\n"
            "        value: 38\n"
            "        op: SCMP_CMP_ABOUT\n")
    path = _write(tmp_path, "bad.yaml", text)
    with pytest.raises(UsageError) as caught:
        load_profile(path)
    assert caught.value.line == 8
    assert "syscalls[0].args[0].op" in str(caught.value)


@pytest.mark.parametrize("rule, where, what", [
    ({"names": "read", "action": "SCMP_ACT_ALLOW"}, "syscalls[0].names", "expected a list"),
    ({"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": "EPERM"}, "syscalls[0].errnoRet",
     "expected an integer"),
    ({"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}, "syscalls[0].errnoRet", "only applies"),
    ({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 7, "value": 0, "op": "SCMP_CMP_EQ"}]},
     "syscalls[0].args[0].index", "out of range"),
    ({"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_FLY"]}},
     "syscalls[0].includes.caps[0]", "unknown capability"),
    ({"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}},
     "syscalls[0].includes.minKernel", "kernel version"),
    ({"names": ["read"], "action": "SCMP_ACT_ALLOW", "exclude": {}}, "syscalls[0].exclude", "unknown key"),
    ({"names": ["Read!"], "action": "SCMP_ACT_ALLOW"}, "syscalls[0].names[0]", "not a syscall name"),
    ({"action": "SCMP_ACT_ALLOW"}, "syscalls[0]", "needs `names`"),
    ({"names": ["read"], "action": "SCMP_ACT_NOTIFY"}, "syscalls[0].action", "not supported"),
])
def test_bad_rules_are_clear_errors(rule, where, what):
    text = json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [rule]})
    with pytest.raises(UsageError) as caught:
        parse_profile(text, path="p.json")
    message = str(caught.value)
    assert message.startswith("p.json: line 1: ") and where in message and what in message


def test_invalid_json_is_a_parse_error_with_its_line():
    with pytest.raises(ParseError) as caught:
        parse_profile('{\n  "defaultAction": "SCMP_ACT_ERRNO",\n  "syscalls": [,]\n}', path="p.json")
    assert caught.value.line == 3


def test_duplicate_keys_are_refused():
    with pytest.raises(UsageError, match="duplicate key 'action'") as caught:
        parse_profile('{"defaultAction": "SCMP_ACT_ERRNO",\n "syscalls": [{"names": ["read"],\n'
                      ' "action": "SCMP_ACT_ALLOW", "action": "SCMP_ACT_KILL"}]}', path="p.json")
    assert caught.value.line == 3
    # YAML is read by parsing/yamlsafe, which says it as a ParseError (like every YAML file's)
    with pytest.raises(ParseError, match="duplicate key 'defaultAction'") as caught:
        parse_profile("defaultAction: SCMP_ACT_ERRNO\ndefaultAction: SCMP_ACT_ALLOW\n", path="p.yaml")
    assert caught.value.line == 2


def test_unreadable_profile_names_the_file(tmp_path):
    with pytest.raises(UsageError, match="cannot read seccomp profile") as caught:
        load_profile(tmp_path / "missing.json")
    assert caught.value.path.endswith("missing.json")


def _profile_denying(name: str) -> dict:
    """hardrun's default profile with `name` refused (EPERM) by one more rule."""
    data = json.loads(Path(seccomp.DEFAULT_PROFILE_PATH).read_text())
    data["syscalls"].append({"names": [name], "action": "SCMP_ACT_ERRNO"})
    return data


def test_a_syscall_name_libseccomp_does_not_know_is_an_error_naming_file_and_name():
    typo = parse_profile(json.dumps(_profile_denying("keyctll")), path="deny.json")
    # control: compiled as it is, the typo's rule vanishes without a word (the filter is the
    # default profile's), which is what the check refuses
    assert compile_profile(typo) == compile_profile(default_profile())
    with pytest.raises(UsageError) as caught:
        seccomp.check_syscall_names(typo)
    assert caught.value.path == "deny.json" and "unknown system call 'keyctll'" in str(caught.value)
    assert caught.value.message.startswith(f"syscalls[{len(typo.syscalls) - 1}]:")
    spelled = parse_profile(json.dumps(_profile_denying("keyctl")), path="deny.json")
    assert "keyctl" not in "".join(seccomp.check_syscall_names(spelled))   # control: the right name


def test_a_syscall_newer_than_libseccomp_is_a_warning_naming_it(monkeypatch):
    """Whatever libseccomp is installed, the lookup answers as one older than every call of
    NEWER_SYSCALLS (no pytest.fail when the system's libseccomp is upgraded). Control: a
    name the lookup lacks that is not one of them is an error (the test above)."""
    real = seccomp_bpf.resolve_syscall
    monkeypatch.setattr(seccomp_bpf, "resolve_syscall",
                        lambda arch, name: -1 if name in seccomp_bpf.NEWER_SYSCALLS else real(arch, name))
    profile = parse_profile(json.dumps(_profile_denying("lsm_set_self_attr")), path="deny.json")
    (warning,) = seccomp.check_syscall_names(profile)
    assert warning.startswith("deny.json: libseccomp ") and "lsm_set_self_attr (newer than it)" in warning
    # hardrun's own profile names such newer calls (mseal): one warning, not an error
    (own,) = seccomp.check_syscall_names(default_profile())
    assert "mseal" in own and own.endswith("(newer than it): their rules cannot apply"), own


def test_hardrun_run_refuses_a_profile_with_a_typo(tmp_path):
    from tests.helpers import run_hardrun
    typo, spelled = tmp_path / "typo.json", tmp_path / "spelled.json"
    typo.write_text(json.dumps(_profile_denying("keyctll")))
    spelled.write_text(json.dumps(_profile_denying("keyctl")))
    control = run_hardrun("run", "--security-opt", f"seccomp={spelled}", "--", "true")
    assert control.returncode == 0 and "error" not in control.stderr, control.stderr
    refused = run_hardrun("run", "--security-opt", f"seccomp={typo}", "--", "true")
    assert refused.returncode == 125 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"{typo}: syscalls[" in refused.stderr and "'keyctll'" in refused.stderr


def test_the_first_of_conflicting_unconditional_actions_wins_as_in_libseccomp():
    """Podman's profile lists setns as ALLOW, then as ERRNO(EPERM); libseccomp (and so runc) keeps
    the first rule without conditions for a call and ignores the later ones (sysfs stands for setns)."""
    def profile(*actions):
        return parse_profile(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            dict({"names": ["sysfs"], "action": action},
                 **({"errnoRet": errno.EPERM} if action == "SCMP_ACT_ERRNO" else {})) for action in actions]}))
    assert errno_of(compile_profile(profile("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"), ()), NR["sysfs"]) == errno.EPERM
    first_allows = compile_profile(profile("SCMP_ACT_LOG", "SCMP_ACT_ERRNO"), ())
    assert errno_of(first_allows, NR["sysfs"]) not in (0, errno.EPERM)   # sysfs(0) fails on its own
    # the reference: libseccomp itself, given the same two rules in the same order
    import pyseccomp
    for first, second, expected in ((pyseccomp.ALLOW, pyseccomp.ERRNO(1), "ALLOW"),
                                    (pyseccomp.ERRNO(1), pyseccomp.ALLOW, "ERRNO(1)")):
        filt = pyseccomp.SyscallFilter(pyseccomp.ERRNO(38))
        filt.add_rule(first, "sysfs")
        filt.add_rule(second, "sysfs")
        with tempfile.TemporaryFile("w+") as pfc:
            filt.export_pfc(pfc)
            pfc.seek(0)
            assert f"if ($syscall == {NR['sysfs']})\n    action {expected};" in pfc.read()


def test_an_argument_rule_overrides_an_unconditional_rule():
    # sysfs answers EOPNOTSUPP, but sysfs(3) EPERM: libseccomp alone would keep only the
    # unconditional rule
    profile = parse_profile(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["sysfs"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95},
        {"names": ["sysfs"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]}]}))
    bpf = compile_profile(profile, ())
    assert errno_of(bpf, NR["sysfs"], 3) == errno.EPERM
    assert errno_of(bpf, NR["sysfs"], 2, 0) == errno.EOPNOTSUPP


# ------------------------------------------------------------------ fuzzing the loaders

from hypothesis import given, settings, strategies as st  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                     st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_CMP_EQ", "read",
                                      "CAP_SYS_ADMIN", "SCMP_ARCH_X86", "4.8", "amd64", ""]))
_keys = st.sampled_from(["defaultAction", "defaultErrnoRet", "syscalls", "names", "name", "action",
                         "errnoRet", "args", "index", "value", "valueTwo", "op", "includes",
                         "excludes", "caps", "arches", "minKernel", "archMap", "architecture",
                         "subArchitectures", "architectures", "flags", "other"])
_documents = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)), max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(_documents)
def test_fuzz_structured_profiles_raise_only_our_errors(document):
    for text in (json.dumps(document), json.dumps(document, indent=1)):
        try:
            parse_profile(text, path="fuzz.json", fmt="json")
        except HardrunError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_text_raises_only_our_errors(text):
    for fmt in ("json", "yaml"):
        try:
            parse_profile(text, path="fuzz", fmt=fmt)
        except HardrunError:
            pass
