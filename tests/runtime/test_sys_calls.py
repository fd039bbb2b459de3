"""hardrun.runtime.syscalls over its C module: arguments reach the kernel as meant, failures
are one OSError naming the call, and an install without the module says what to do."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import pytest

from hardrun.runtime import syscalls as k

from tests.helpers import ROOT, output_of_child

pytestmark = pytest.mark.runtime


def _status_masks(pid="self") -> tuple[int, int, int]:
    fields = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines()
                  if line.startswith("Cap"))
    return tuple(int(fields[name], 16) for name in ("CapEff", "CapPrm", "CapInh"))


def test_capget_reads_the_masks_the_kernel_reports():
    assert k.capget() == _status_masks()
    assert k.capget(1) == _status_masks(1)


def test_capset_sets_exactly_the_asked_masks_in_a_child():
    """Above bit 31 too: the second 32-bit word of each set is packed and read back."""
    effective, permitted, inheritable = k.capget()
    wanted = (1 << 40 | 1 << 21, 1 << 40 | 1 << 21 | 1 << 0, 0)   # CHECKPOINT_RESTORE, SYS_ADMIN, CHOWN
    assert all(mask & permitted == mask for mask in wanted), "the test needs root's capabilities"

    def set_them() -> str:
        k.capset(*wanted)
        return "ok"

    assert output_of_child(set_them) == "ok"
    assert k.capget() == (effective, permitted, inheritable)      # control: the parent kept its own


def test_a_failed_call_is_one_oserror_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        k.mount(str(tmp_path / "missing"), str(tmp_path / "also-missing"), None, k.MS_BIND)
    assert raised.value.errno == errno.ENOENT
    assert raised.value.filename == f"mount {tmp_path / 'also-missing'}"


def test_a_path_with_a_nul_byte_is_refused_not_cut_short(tmp_path):
    """The kernel would read "a\\0b" as "a": a path must never be silently shortened."""
    with pytest.raises(ValueError, match="null byte"):
        k.mount(str(tmp_path) + "\0/etc", str(tmp_path), None, k.MS_BIND)
    with pytest.raises(ValueError, match="null byte"):
        k.openat2(k.AT_FDCWD, "etc\0passwd", os.O_RDONLY, 0)


def test_openat2_resolves_in_root_and_refuses_escapes(tmp_path):
    (tmp_path / "inside").write_text("in")
    (tmp_path / "link").symlink_to("/etc/passwd")
    root = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = k.openat2(root, "inside", os.O_RDONLY, k.RESOLVE_IN_ROOT)
        assert os.read(fd, 10) == b"in"
        os.close(fd)
        with pytest.raises(OSError) as raised:
            k.openat2(root, "../../etc/passwd", os.O_RDONLY, k.RESOLVE_BENEATH)
        assert raised.value.errno == errno.EXDEV
        with pytest.raises(FileNotFoundError):          # /etc/passwd resolved inside tmp_path
            k.openat2(root, "link", os.O_RDONLY, k.RESOLVE_IN_ROOT)
    finally:
        os.close(root)


def _lo_is_up() -> bool:
    """IFF_UP of lo in the caller's network namespace, read with Python's own ioctl."""
    import fcntl
    import socket
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = fcntl.ioctl(sock, 0x8913, struct.pack("16s24x", b"lo"))   # SIOCGIFFLAGS
    return bool(struct.unpack_from("h", request, 16)[0] & 1)


def test_interface_up_in_a_new_network_namespace():

    def raise_lo() -> str:
        k.unshare(k.CLONE_NEWNET)
        before = _lo_is_up()            # control: a new namespace starts with lo down
        k.interface_up("lo")
        return f"{before} {_lo_is_up()}"

    assert output_of_child(raise_lo) == "False True"


WITHOUT_MODULE = textwrap.dedent("""
    import sys
    class Missing:
        def find_spec(self, name, path=None, target=None):
            if name == "hardrun.runtime._kernel":
                raise ImportError("no such module")
    sys.meta_path.insert(0, Missing())
    from hardrun.__main__ import main
    sys.argv = ["hardrun", "run", "/bin/true"]
    main()
""")


def test_without_the_c_module_run_says_what_to_install():
    done = subprocess.run([sys.executable, "-c", WITHOUT_MODULE], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 125
    assert done.stderr.count("\n") <= 2 and "Traceback" not in done.stderr, done.stderr
    assert "hardrun.runtime._kernel is not built" in done.stderr and "python3-dev" in done.stderr


def test_syscall_struct_fills_in_the_pointers_and_checks_their_offsets():
    """bpf(BPF_PROG_QUERY) writes the ids through the pointer filled in at offset 16; an offset
    outside the structure is refused before any call."""
    fd = os.open("/sys/fs/cgroup/unified", os.O_RDONLY | os.O_DIRECTORY)
    plain = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert isinstance(k.bpf_prog_query(fd, k.BPF_CGROUP_DEVICE), list)
        with pytest.raises(ValueError, match="outside the structure"):
            k._kernel.syscall_struct("bpf", k.NR["bpf"], k.BPF_PROG_QUERY, bytearray(16), ((12, bytearray(4)),))
        with pytest.raises(OSError) as raised:     # the control: a plain directory is no cgroup
            k.bpf_prog_query(plain, k.BPF_CGROUP_DEVICE)
        assert raised.value.errno == errno.EBADF and raised.value.filename == "bpf(BPF_PROG_QUERY)"
    finally:
        os.close(fd)
        os.close(plain)


@pytest.mark.parametrize("kept, first", [
    ((), 3), ((3,), 3), ((9, 5), 3), ((5, 5, 6), 3), ((1, 2, 7), 3), ((4,), 6), ((-1, 0, 8), 3),
])
def test_close_all_but_closes_exactly_the_fds_not_kept(kept, first):
    """Every fd from `first` to the last there can be is closed but the kept ones, whatever
    their order, repeats, or kept fds below `first` (stdio, the preserved ones)."""
    ranges: list[tuple[int, int]] = []
    k.close_all_but(kept, first, lambda low, high=0xFFFFFFFF: ranges.append((low, high)))
    assert all(low <= high for low, high in ranges) and ranges[-1][1] == 0xFFFFFFFF
    closed = {fd for low, high in ranges for fd in range(low, min(high, 64) + 1)}
    assert closed == set(range(first, 65)) - set(kept)


def test_close_all_but_leaves_the_kept_fds_open_in_a_child():
    """The real close_range(2) in a child: the kept fd (the report pipe, named twice) still
    writes, the fd opened after it is closed. Control: that fd was open just before."""

    def close_all_but_the_report(report: int) -> str:
        drop = os.open(os.devnull, os.O_RDONLY)
        os.fstat(drop)          # the control: open until close_all_but
        k.close_all_but([report, report], 3)
        try:
            os.fstat(drop)
        except OSError:
            return "closed"
        return "still open"

    assert output_of_child(close_all_but_the_report, pass_report_fd=True) == "closed"
