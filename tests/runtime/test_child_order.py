"""The order of the container's set-up steps (hardrun.runtime.child), without root.

child.main is handed recording fakes (tests/runtime/fake_kernel.py) of the system calls
(hardrun.runtime.syscalls) and of the mount steps (hardrun.runtime.mounts), the way youki
tests its init: each call is recorded, nothing reaches the kernel, and the fake execve sends
the record back. The mount steps' own system calls are followed in test_mount_order.py; what
the steps do against the real kernel is the escape battery's (root).
"""
from __future__ import annotations

import json
import os

import pytest

from hardrun.runtime import mounts, syscalls
from hardrun.runtime.config import LaunchState, resolve
from hardrun.spec.record import replace
from hardrun.spec.run import Mount, RunSpec
from tests.runtime import fake_kernel
from tests.runtime.fake_kernel import FAKE_FD, Recorder, every, first


def _kernel(calls: list, report_fd: int) -> Recorder:
    answers = iter([b"1", b"2"])       # the parent's two releases, then nothing yet
    held = {}

    def read(_fd, _size):
        try:
            return next(answers)
        except StopIteration:
            raise BlockingIOError from None

    def execve(*_):
        os.write(report_fd, json.dumps(calls).encode())
        os._exit(0)

    return Recorder(calls, syscalls, read=read, execve=execve, open_fd=FAKE_FD, getcwd="/",
                    capset=lambda *sets: held.update(sets=sets), capget=lambda *_: held.get("sets"))


def _mount_steps(calls: list) -> Recorder:
    return Recorder(calls, mounts, "fs.", open_sources={}, prepare_root="/new-root", mountpoint=FAKE_FD + 1,
                    writable_trees=())


def record_setup(plan, launch) -> tuple[list, int]:
    """child.main against a recording fake of the system calls and one of the mount steps."""
    return fake_kernel.record_setup(plan, launch, kernel=_kernel, fs=_mount_steps)


def _plan(**changes):
    spec = RunSpec(command=("/bin/true",), user="1000:1000", cap_add=("NET_RAW",),
                   mounts=(Mount(type="tmpfs", target="/data"),), **changes)
    # nothing of the host's own settings may be written by a test: the kernel settings step
    # (vm.memfd_noexec, user.max_*) stays out of this run
    return replace(resolve(spec), memfd_by_seccomp=True, user_limits=())


@pytest.fixture(scope="module")
def recorded():
    plan = _plan()
    calls, error_fd = record_setup(plan, LaunchState(plan))
    return plan, calls, error_fd


def test_the_cgroup_is_joined_first_and_the_id_maps_are_awaited_before_any_id_change(recorded):
    plan, calls, _ = recorded
    assert calls[0] == ("cgroup.enter",)
    wait_for_maps = first(calls, "read")
    assert wait_for_maps < min(every(calls, "setres") + every(calls, "fs.") + every(calls, "setsid"))


def test_every_mount_is_made_before_pivot_root_and_the_kernel_paths_hidden_after(recorded):
    plan, calls, _ = recorded
    pivot = first(calls, "fs.pivot")
    assert first(calls, "fs.make_private") < first(calls, "fs.prepare_root") < pivot
    mounted = [i for name in ("fs.mount_proc", "fs.mount_sys", "fs.mount_dev", "fs.mount_user")
               for i in every(calls, name)]
    assert len(mounted) == 3 + len(plan.mounts) and max(mounted) < pivot
    hidden = every(calls, "fs.mask") + every(calls, "fs.make_read_only")
    assert len(hidden) == len(plan.masked_paths) + len(plan.readonly_paths) > 0
    assert min(hidden) > pivot
    assert first(calls, "chdir", plan.workdir) > pivot


def test_the_user_switch_comes_after_the_bounding_set_and_before_the_final_capabilities(recorded):
    plan, calls, _ = recorded
    switch = first(calls, "setresuid", 1000)     # the first change to the user's ids
    dropped = every(calls, "drop_bounding")
    assert [calls[i][1] for i in dropped] == [cap for cap in range(plan.last_cap + 1)
                                               if not plan.cap_mask >> cap & 1]
    assert max(dropped) < first(calls, "set_keep_caps", True) < first(calls, "setgroups")
    assert first(calls, "setgroups") < first(calls, "setresgid", 1000) < switch
    assert switch < first(calls, "capset") < first(calls, "set_keep_caps", False)
    assert first(calls, "read") < every(calls, "read")[1] < min(dropped)   # ulimits and network set


def test_fds_are_closed_then_no_new_privs_then_the_filters_last_before_execve(recorded):
    plan, calls, error_fd = recorded
    closed = [calls[i][1:] for i in every(calls, "close_range")]
    assert closed == [(3, error_fd - 1), (error_fd + 1,)]
    assert max(every(calls, "close_range")) < first(calls, "set_no_new_privs")
    assert first(calls, "set_no_new_privs") < first(calls, "memfd.load") < first(calls, "seccomp.load")
    assert first(calls, "landlock_allow_only_beneath") < first(calls, "memfd.load")
    assert first(calls, "mount cgroup view") < first(calls, "landlock_allow_only_beneath")
    assert calls[-2:] == [("seccomp.load",), ("execve", "/bin/true")]


def test_without_no_new_privs_the_filters_load_while_capabilities_are_held():
    plan = _plan(no_new_privileges=False)
    calls, _ = record_setup(plan, LaunchState(plan))
    assert not every(calls, "set_no_new_privs")
    assert first(calls, "seccomp.load") < first(calls, "drop_bounding") < first(calls, "setresuid", 1000)
    assert calls[-1] == ("execve", "/bin/true")


def test_pivot_enters_the_new_root_then_detaches_the_old_one():
    calls: list = []
    mounts.pivot(7, Recorder(calls, syscalls))
    assert [tuple(call) for call in calls] == [("fchdir", 7), ("pivot_root", ".", "."),
                                               ("umount2", ".", syscalls.MNT_DETACH), ("chdir", "/")]


def test_masking_puts_dev_null_over_a_file_and_an_empty_read_only_tmpfs_over_a_directory(tmp_path):
    calls: list = []
    kernel = Recorder(calls, syscalls, lstat=os.lstat)
    (tmp_path / "file").write_text("")
    for name in ("file", "dir", "missing"):
        if name == "dir":
            (tmp_path / name).mkdir()
        mounts.mask(str(tmp_path / name), kernel)
    assert [tuple(call) for call in calls] == [
        ("lstat", str(tmp_path / "file")),
        ("mount", "/dev/null", str(tmp_path / "file"), None, syscalls.MS_BIND),
        ("lstat", str(tmp_path / "dir")),
        ("mount", "tmpfs", str(tmp_path / "dir"), "tmpfs", mounts.KERNEL_FS_FLAGS | syscalls.MS_RDONLY,
         "size=0,mode=0"),
        ("lstat", str(tmp_path / "missing"))]


def test_a_read_only_path_gets_its_attributes_before_it_is_attached(tmp_path):
    """The copy of the tree is made read-only while detached, then moved over the path: it
    is never attached writable."""
    calls: list = []
    tree = FAKE_FD + 1
    mounts.make_read_only(str(tmp_path), Recorder(calls, syscalls, open_fd=FAKE_FD, open_tree=tree))
    attrs = mounts.BIND_ATTRS | syscalls.MOUNT_ATTR_NOEXEC | syscalls.MOUNT_ATTR_RDONLY
    assert [tuple(call) for call in calls] == [
        ("open_fd", str(tmp_path), syscalls.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC),
        ("open_tree", FAKE_FD, True), ("mount_setattr", tree, attrs), ("move_mount", tree, FAKE_FD),
        ("close", tree), ("close", FAKE_FD)]


def test_sysctls_are_written_after_pivot_root_and_before_proc_sys_turns_read_only():
    plan = replace(_plan(sysctls={"kernel.shmmax": "1", "kernel.domainname": "example.org"}),
                   memfd_by_seccomp=True, user_limits=())
    calls, _ = record_setup(plan, LaunchState(plan))
    written = first(calls, "open_fd", "/proc/sys/kernel/shmmax")
    assert calls[written + 1][0] == "write"
    assert first(calls, "fs.pivot") < written < first(calls, "setdomainname", "example.org")
    assert first(calls, "setdomainname") < min(every(calls, "fs.make_read_only"))
