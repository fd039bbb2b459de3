"""Container cgroups: limits enforced on real processes, OOM reported, nothing left behind.

The payloads are forked processes paused like the runtime's child (limits apply before
they run). End-to-end versions through `hardrun run` live in test_limits_run.py.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hardrun.runtime import cgroups, gc, state as state_module
from hardrun.runtime.cgroups import ContainerCgroup, Layout, Limits, LimitError
from hardrun.spec.run import RunSpec, Ulimit

from tests.helpers import ROOT, run_hardrun
from tests.helpers import wait_until
from tests.limits_support import (Paused, isolate_state, remove_test_cgroup_parent, require_root,
                                  unique)

pytestmark = pytest.mark.runtime
BUSYBOX = "/bin/busybox"
MiB = 1 << 20


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    require_root()
    root = isolate_state(monkeypatch, tmp_path)
    yield root
    leftovers = remove_test_cgroup_parent()
    assert not leftovers, f"container cgroups left behind: {leftovers}"


def make(limits: Limits, **options) -> ContainerCgroup:
    container_id = state_module.new_container_id()
    state = state_module.ContainerState.create(container_id)
    return ContainerCgroup.create(container_id, limits, state, **options)


def run_confined(cgroup: ContainerCgroup, argv: list[str]) -> Paused:
    payload = Paused(argv)
    cgroup.attach(payload.pid)
    payload.release()
    return payload


# ------------------------------------------------------------------ layout detection

def test_this_hybrid_host_uses_its_v1_controllers():
    layout = cgroups.detect_layout()
    assert layout.kind == "hybrid"
    for controller in ("memory", "pids", "cpu"):
        hierarchy = layout.hierarchy_for(controller)
        assert hierarchy.version == 1 and hierarchy.mountpoint == f"/sys/fs/cgroup/{controller}"


def _mountinfo(tmp_path, lines):
    path = tmp_path / "mountinfo"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_unified_layout_resolves_every_controller_to_v2(tmp_path):
    unified = tmp_path / "cg2"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    layout = cgroups.detect_layout(_mountinfo(tmp_path, [
        f"30 24 0:26 / {unified} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate"]))
    assert layout.kind == "unified"
    assert layout.hierarchy_for("memory").version == 2
    assert layout.hierarchy_for("freezer") is None


def test_v1_comounted_cpu_cpuacct_and_hybrid_without_controllers(tmp_path):
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("\n")
    layout = cgroups.detect_layout(_mountinfo(tmp_path, [
        "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
        "32 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
        "33 25 0:29 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd",
        f"34 25 0:30 / {unified} rw - cgroup2 cgroup2 rw"]))
    assert layout.kind == "hybrid"
    assert layout.hierarchy_for("cpu") is layout.hierarchy_for("cpuacct")
    assert layout.hierarchy_for("cpu").options == "cpu,cpuacct"
    assert layout.hierarchy_for("pids") is None


def test_v2_files_and_values(tmp_path):
    unified = tmp_path / "cg2"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("cpu memory pids\n")
    layout = cgroups.detect_layout(_mountinfo(tmp_path, [
        f"30 24 0:26 / {unified} rw - cgroup2 cgroup2 rw"]))
    cgroup = ContainerCgroup("x", Limits(memory=64 * MiB, memory_swap=96 * MiB, pids=50,
                                         cpus=1.5, cpu_shares=512), layout)
    writes = {flag: files for flag, _, files in cgroup._planned_writes()}
    assert writes["--memory"] == [("memory.max", 64 * MiB)]
    assert writes["--memory-swap"] == [("memory.swap.max", 32 * MiB)]   # swap alone on v2
    assert writes["--pids-limit"] == [("pids.max", 50)]
    assert writes["--cpus"] == [("cpu.max", "150000 100000")]
    assert writes["--cpu-shares"] == [("cpu.weight", 20)]
    unlimited_swap = ContainerCgroup("x", Limits(memory=64 * MiB, memory_swap=-1), layout)
    assert dict((f, w) for f, _, w in unlimited_swap._planned_writes())["--memory-swap"] == \
        [("memory.swap.max", "max")]


def test_v2_weight_conversion_matches_runc():
    assert cgroups.shares_to_weight(2) == 1
    assert cgroups.shares_to_weight(1024) == 39
    assert cgroups.shares_to_weight(262144) == 10000


# ------------------------------------------------------------------ limits in files

def test_limits_are_written_to_the_container_cgroup(isolated):
    cgroup = make(Limits(memory=64 * MiB, memory_swap=96 * MiB, pids=50, cpus=0.5,
                         cpu_shares=512))
    try:
        assert int(cgroup.read("memory", "memory.limit_in_bytes")) == 64 * MiB
        assert int(cgroup.read("memory", "memory.memsw.limit_in_bytes")) == 96 * MiB
        assert cgroup.read("pids", "pids.max").strip() == "50"
        assert int(cgroup.read("cpu", "cpu.cfs_quota_us")) == 50_000
        assert int(cgroup.read("cpu", "cpu.cfs_period_us")) == 100_000
        assert int(cgroup.read("cpu", "cpu.shares")) == 512
        payload = run_confined(cgroup, [BUSYBOX, "sleep", "30"])
        membership = Path(f"/proc/{payload.pid}/cgroup").read_text()
        parent = os.environ["HARDRUN_CGROUP_PARENT"]
        for controller in ("memory", "pids", "cpu", "freezer"):
            assert f":{controller}:/{parent}/{cgroup.container_id}\n" in membership
    finally:
        cgroup.destroy()
        payload.wait()
    assert not any(path.exists() for path in cgroup_paths_of(cgroup.container_id))


def cgroup_paths_of(container_id):
    parent = os.environ["HARDRUN_CGROUP_PARENT"]
    return [Path(h.mountpoint, parent, container_id) for h in cgroups.detect_layout().hierarchies]


def test_default_policy_sets_a_pids_limit():
    assert Limits.from_spec(RunSpec()).pids == cgroups.DEFAULT_PIDS_LIMIT == 1024
    assert Limits.from_spec(RunSpec(pids_limit=-1)).pids == -1


@pytest.mark.parametrize("spec, message", [
    (RunSpec(memory=1024), "--memory: the minimum memory limit is 6 MiB"),
    (RunSpec(memory_swap=64 * MiB), "--memory-swap: needs --memory"),
    (RunSpec(memory=64 * MiB, memory_swap=32 * MiB), "--memory-swap: must be at least"),
    (RunSpec(cpus=0.001), "--cpus: must be between 0.01"),
    (RunSpec(cpus=512.0), "--cpus: must be between 0.01"),
])
def test_impossible_limits_are_refused_before_anything_is_created(spec, message):
    with pytest.raises(LimitError, match=message):
        Limits.from_spec(spec)


# ------------------------------------------------------------------ enforcement

def test_memory_hog_is_oom_killed_and_reported(isolated):
    cgroup = make(Limits(memory=64 * MiB, memory_swap=64 * MiB))
    try:
        hog = run_confined(cgroup, [sys.executable, "-S", "-c",
                                    "b = bytearray(256 << 20); print('survived')"])
        status = hog.wait()
        assert status == 137
        assert cgroup.oom_kills() >= 1
        assert cgroup.oom_report(status) == \
            "container killed by the OOM killer (memory limit 64 MiB)"
    finally:
        cgroup.destroy()


def test_control_the_same_hog_survives_without_a_memory_limit(isolated):
    cgroup = make(Limits())
    try:
        hog = run_confined(cgroup, [sys.executable, "-S", "-c", "b = bytearray(256 << 20)"])
        assert hog.wait() == 0
        assert cgroup.oom_kills() == 0 and cgroup.oom_report(0) is None
    finally:
        cgroup.destroy()


# a bounded bomb: 60 forks, whatever the limit; the test kills it after checking
BOMB = [BUSYBOX, "sh", "-c",
        "i=0; while [ $i -lt 60 ]; do busybox sleep 60 & i=$((i+1)); done 2>/dev/null; wait"]


def test_fork_bomb_is_capped_by_pids_max(isolated):
    cgroup = make(Limits(pids=20))
    try:
        bomb = run_confined(cgroup, BOMB)
        # the kernel refused forks at the limit: pids.events counts them
        wait_until(lambda: int(cgroup.read("pids", "pids.events").split()[1]) > 0)
        assert int(cgroup.read("pids", "pids.current")) <= 20
    finally:
        cgroup.destroy()
        bomb.wait()


def test_control_the_bomb_exceeds_20_processes_without_a_limit(isolated):
    cgroup = make(Limits(pids=None))
    try:
        bomb = run_confined(cgroup, BOMB)
        wait_until(lambda: int(cgroup.read("pids", "pids.current")) == 61)
        assert int(cgroup.read("pids", "pids.events").split()[1]) == 0
    finally:
        cgroup.destroy()
        bomb.wait()


def test_cpu_spinner_is_throttled(isolated):
    cgroup = make(Limits(cpus=0.1))
    try:
        spinner = run_confined(cgroup, [BUSYBOX, "sh", "-c", "while :; do :; done"])
        throttled = wait_until(lambda: _cpu_stat(cgroup)["nr_throttled"] >= 3)
        stat = _cpu_stat(cgroup)
        assert throttled and stat["throttled_time"] > 0
    finally:
        cgroup.destroy()
        spinner.wait()


def test_control_an_unlimited_spinner_is_not_throttled(isolated):
    cgroup = make(Limits())
    try:
        spinner = run_confined(cgroup, [BUSYBOX, "sh", "-c", "while :; do :; done"])
        wait_until(lambda: int(cgroup.read("cpuacct", "cpuacct.usage")) > 200_000_000)
        assert _cpu_stat(cgroup)["nr_throttled"] == 0
    finally:
        cgroup.destroy()
        spinner.wait()


def _cpu_stat(cgroup):
    return {key: int(value) for key, value in
            (line.split() for line in cgroup.read("cpu", "cpu.stat").splitlines())}


def test_ulimits_reach_the_payload(isolated, tmp_path):
    from hardrun.runtime import ulimits
    out = tmp_path / "out"
    payload = Paused([BUSYBOX, "sh", "-c", f"ulimit -n > {out}; ulimit -c >> {out}"])
    ulimits.apply(payload.pid, [Ulimit("nofile", 321, 654), Ulimit("core", 0, 0)])
    payload.release()
    assert payload.wait() == 0
    assert out.read_text().split() == ["321", "0"]
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] != 321   # the parent is untouched


def test_unknown_or_inverted_ulimits_are_usage_errors():
    from hardrun.errors import UsageError
    from hardrun.runtime import ulimits
    with pytest.raises(UsageError, match="unknown limit 'nofiles'"):
        ulimits.validate([Ulimit("nofiles", 1, 1)])
    with pytest.raises(UsageError, match="soft limit 10 is above the hard limit 5"):
        ulimits.validate([Ulimit("nproc", 10, 5)])


# ------------------------------------------------------------------ strict / best effort

def test_missing_controller_is_an_error_when_strict(isolated):
    layout = _without(cgroups.detect_layout(), "pids")
    with pytest.raises(LimitError, match="--pids-limit cannot be applied: the pids cgroup "
                                         "controller is not available"):
        make(Limits(pids=10), layout=layout)


def test_missing_controller_is_one_warning_when_best_effort(isolated):
    warnings = []
    cgroup = make(Limits(pids=10, memory=64 * MiB), layout=_without(cgroups.detect_layout(), "pids"),
                  strict=False, warn=warnings.append)
    try:
        assert len(warnings) == 1 and warnings[0].startswith("--pids-limit not applied")
        assert int(cgroup.read("memory", "memory.limit_in_bytes")) == 64 * MiB
    finally:
        cgroup.destroy()


def _without(layout: Layout, controller: str) -> Layout:
    return Layout(tuple(h for h in layout.hierarchies if controller not in h.controllers))


UNPRIVILEGED = textwrap.dedent("""
    import os, sys
    from hardrun.runtime.cgroups import ContainerCgroup, Limits
    os.setgid(65534); os.setuid(65534)
    strict = sys.argv[1] != "best-effort"
    limits = Limits(pids_is_default=True) if sys.argv[1] == "default" else Limits(pids=10)
    try:
        cgroup = ContainerCgroup.create("c" + os.urandom(4).hex(), limits, strict=strict)
    except Exception as error:
        print("ERROR", error); sys.exit(3)
    print("CREATED", sorted(cgroup.paths))
""")


@pytest.mark.parametrize("mode", ["strict", "best-effort", "default"])
def test_unprivileged_user_fails_closed_unless_best_effort(isolated, mode):
    result = subprocess.run([sys.executable, "-c", UNPRIVILEGED, mode], capture_output=True,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if mode == "strict":
        assert result.returncode == 3
        assert "--pids-limit cannot be applied: cannot create cgroup" in result.stdout
        assert "Permission denied" in result.stdout and "--limits best-effort" in result.stdout
    elif mode == "best-effort":
        assert result.returncode == 0, result.stderr
        assert "CREATED []" in result.stdout
        assert result.stderr.count("warning: --pids-limit not applied") == 1
    else:   # only the default policy's limit: strict, yet a warning (rootless use works)
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("warning: the default pids limit: cannot create cgroup") == 1


# ------------------------------------------------------------------ joining

def _cgroup_lines(pid) -> set[str]:
    return set(Path(f"/proc/{pid}/cgroup").read_text().splitlines())


def test_the_first_process_joins_every_container_cgroup_by_itself(isolated):
    """The runtime's child writes "0" to the `tasks` fds the parent opened: it moves in,
    the parent stays where it was."""
    cgroup = make(Limits(pids=10))
    join = cgroup.open_join()
    assert len(join.tasks_fds) == len(set(cgroup.paths.values())) == 5 and join.directory_fd is None
    parent_before = _cgroup_lines("self")
    joined_r, joined_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            join.enter()
            os.write(joined_w, b"j")
            os.read(release_r, 1)
        finally:
            os._exit(0)
    join.close()
    try:
        assert os.read(joined_r, 1) == b"j"
        for path in set(cgroup.paths.values()):
            assert cgroups.cgroup_pids(path) == [pid], path
        assert _cgroup_lines("self") == parent_before
    finally:
        os.write(release_w, b"r")
        os.waitpid(pid, 0)
        for fd in (joined_r, joined_w, release_r, release_w):
            os.close(fd)
    assert cgroup.destroy() == []


def test_clone_into_a_cgroup_v2_starts_the_child_inside(isolated):
    """clone3(CLONE_INTO_CGROUP), as the runtime starts a container on cgroup v2 (this
    host's v2 mount holds no controllers, but membership works the same)."""
    from hardrun.runtime import syscalls as k
    unified = cgroups.detect_layout().unified
    assert unified is not None, "this host has a cgroup v2 mount"
    name = unique("hardrun-test-clone-")
    path = os.path.join(unified.mountpoint, name)
    os.mkdir(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        pid = k.clone(0, fd)
        if pid == 0:
            os._exit(0 if f"0::/{name}" in _cgroup_lines("self") else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert f"0::/{name}" not in _cgroup_lines("self")          # control: the parent is not
    finally:
        os.close(fd)
        os.rmdir(path)


def test_on_cgroup_v2_the_join_is_the_directory_clone_starts_in(isolated):
    """open_join gives a v2 cgroup's directory (for CLONE_INTO_CGROUP), no tasks file; the
    runtime's clone with it starts the child there. This host's v2 mount holds no
    controllers, so the layout here claims `pids` for it."""
    from hardrun.runtime import syscalls as k
    unified = cgroups.detect_layout().unified
    layout = Layout((cgroups.Hierarchy(unified.mountpoint, 2, {"pids"}),))
    name = unique("hardrun-test-v2-")
    path = os.path.join(unified.mountpoint, name)
    os.mkdir(path)
    cgroup = ContainerCgroup(name, Limits(), layout)
    cgroup.paths = {"pids": path}
    join = cgroup.open_join()
    try:
        assert join.tasks_fds == [] and join.directory_fd is not None
        pid = k.clone(0, join.directory_fd)
        if pid == 0:
            os._exit(0 if f"0::/{name}" in _cgroup_lines("self") else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    finally:
        join.close()
        os.rmdir(path)


JOIN_FAILS = textwrap.dedent("""
    import os, sys
    from hardrun.runtime import config, parent
    from hardrun.runtime.cgroups import CgroupJoin
    from hardrun.spec.run import RunSpec

    class NoHooks:               # no state, no cgroup of its own: only the join under test
        def prepare(self, launch):
            launch.cgroup_join = join
        def attach(self, pid):
            if sys.argv[4] == "late-hook-failure":   # as a prlimit on a child already gone
                import errno, time
                time.sleep(0.2)
                raise ProcessLookupError(errno.ESRCH, "no such process")
        def freeze(self, frozen=True): return False
        def finish(self, status): return None

    cfg = config.resolve(RunSpec(rootfs=sys.argv[1], command=("sh", "-c", "echo PAYLOAD RAN")))
    gone = sys.argv[2]
    join = CgroupJoin()
    join.tasks_fds.append(os.open(os.path.join(gone, "tasks"), os.O_WRONLY | os.O_CLOEXEC))
    if sys.argv[3] == "remove":
        os.rmdir(gone)           # the cgroup disappears: writing to its tasks file fails
    sys.exit(parent.run(cfg, NoHooks()))
""")


def _run_with_join(busybox_rootfs, remove: bool, hook: str = "ok") -> subprocess.CompletedProcess:
    path = os.path.join("/sys/fs/cgroup/pids", unique("hardrun-test-join-"))
    os.mkdir(path)
    try:
        return subprocess.run([sys.executable, "-c", JOIN_FAILS, str(busybox_rootfs), path,
                               "remove" if remove else "keep", hook], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        if os.path.exists(path):
            os.rmdir(path)


def test_a_child_that_cannot_join_its_cgroup_never_runs_the_payload(isolated, busybox_rootfs):
    done = _run_with_join(busybox_rootfs, remove=True)
    assert done.returncode == 125, done.stderr
    assert "PAYLOAD RAN" not in done.stdout
    assert "join cgroup" in done.stderr and "its limits would not hold" in done.stderr


def test_the_child_s_own_failure_is_reported_when_a_later_parent_step_fails(isolated, busybox_rootfs):
    """The parent's hook fails after the child already failed: the child's report (the
    first cause) is what the user sees, not the parent's consequence."""
    done = _run_with_join(busybox_rootfs, remove=True, hook="late-hook-failure")
    assert done.returncode == 125, done.stderr
    assert "join cgroup" in done.stderr and "no such process" not in done.stderr


def test_control_the_same_child_runs_the_payload_once_it_joined(isolated, busybox_rootfs):
    done = _run_with_join(busybox_rootfs, remove=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "PAYLOAD RAN\n"


# ------------------------------------------------------------------ cleanup

def test_destroy_kills_what_is_left_and_removes_every_cgroup(isolated):
    cgroup = make(Limits(memory=64 * MiB))
    payload = run_confined(cgroup, [BUSYBOX, "sh", "-c", "busybox sleep 60 & busybox sleep 60"])
    wait_until(lambda: len(cgroups.cgroup_pids(cgroup.paths["pids"])) == 2)
    paths = set(cgroup.paths.values())
    assert cgroup.destroy() == []
    assert payload.wait() == 137
    assert not any(os.path.exists(path) for path in paths)


KILLED_OWNER = textwrap.dedent("""
    import os, sys, time
    from hardrun.runtime import state
    from hardrun.runtime.cgroups import ContainerCgroup, Limits
    container = state.ContainerState.create(state.new_container_id())
    cgroup = ContainerCgroup.create(container.id, Limits(pids=10), container)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.execv("/bin/busybox", ["busybox", "sleep", "300"])
    cgroup.attach(pid)
    print(container.id, pid, flush=True)
    time.sleep(300)
""")


def _killed_owner():
    owner = subprocess.Popen([sys.executable, "-c", KILLED_OWNER], stdout=subprocess.PIPE,
                             text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    container_id, payload = owner.stdout.readline().split()
    owner.kill()                 # SIGKILL: no chance to clean up
    owner.wait()
    paths = [Path(p) for p in state_module.ContainerState.load(
        os.path.join(state_module.state_root(), container_id)).resources("cgroup")]
    assert paths and all(path.is_dir() for path in paths)
    return container_id, int(payload), paths


def test_a_later_run_cleans_up_after_a_killed_hardrun(isolated):
    container_id, payload, paths = _killed_owner()
    assert gc.reap_stale() == ([container_id], [])
    assert not any(path.exists() for path in paths)
    assert not (isolated / container_id).exists()
    wait_until(lambda: not Path(f"/proc/{payload}").exists() or
               "Z" in Path(f"/proc/{payload}/stat").read_text().split(")")[1][:3])


def test_hardrun_gc_cleans_up_after_a_killed_hardrun(isolated):
    container_id, _, paths = _killed_owner()
    result = run_hardrun("gc")
    assert result.returncode == 0, result.stderr
    assert f"removed container {container_id}" in result.stdout
    assert not any(path.exists() for path in paths)
    assert run_hardrun("gc").stdout == ""


def test_gc_leaves_live_containers_alone(isolated):
    cgroup = make(Limits(pids=10))
    try:
        assert run_hardrun("gc").returncode == 0
        assert all(os.path.isdir(path) for path in cgroup.paths.values())
    finally:
        cgroup.destroy()


# ------------------------------------------------------------------ the view inside

VIEW = textwrap.dedent("""
    import ctypes, os, sys
    from hardrun.runtime.cgroups import mount_cgroup_view
    libc = ctypes.CDLL(None, use_errno=True)
    os.read(0, 1)                                    # attached by the parent meanwhile
    assert libc.unshare(0x00020000 | 0x02000000) == 0   # CLONE_NEWNS | CLONE_NEWCGROUP
    assert libc.mount(b"none", b"/", None, 0x40000 | 0x4000, None) == 0  # MS_PRIVATE|MS_REC
    target = sys.argv[1]
    mount_cgroup_view(target)
    print(open(f"{target}/memory/memory.limit_in_bytes").read().strip())
    print(open("/proc/self/cgroup").read().splitlines()[0].split(":")[2] if False else
          [line for line in open("/proc/self/cgroup") if ":memory:" in line][0].strip())
    for path in (f"{target}/memory/memory.limit_in_bytes", f"{target}/extra"):
        try:
            open(path, "w").write("1")
            print("WRITABLE", path)
        except OSError as error:
            print("denied", error.errno)
""")


def test_container_sees_its_own_cgroup_read_only(isolated, tmp_path):
    cgroup = make(Limits(memory=64 * MiB))
    target = tmp_path / "cgroupfs"
    target.mkdir()
    try:
        child = subprocess.Popen([sys.executable, "-c", VIEW, str(target)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        cgroup.attach(child.pid)
        out, err = child.communicate("x", timeout=30)
        assert child.returncode == 0, err
        limit, membership, *writes = out.splitlines()
        assert int(limit) == 64 * MiB                    # the container's cgroup is the root
        assert membership == "4:memory:/" or membership.endswith(":memory:/")
        assert writes == ["denied 30", "denied 30"]      # EROFS
    finally:
        cgroup.destroy()


def test_gc_removes_unreadable_entries_and_empty_orphans_but_not_busy_ones(isolated):
    parent = os.environ["HARDRUN_CGROUP_PARENT"]
    unreadable = isolated / "0123456789abcdef"
    isolated.mkdir(mode=0o700)                        # a state root is the caller's alone
    unreadable.mkdir()
    os.utime(unreadable, (0, 0))                       # long abandoned
    empty_orphan = Path("/sys/fs/cgroup/pids", parent, "feedfacecafebeef")
    busy_orphan = Path("/sys/fs/cgroup/pids", parent, "deadbeefdeadbeef")
    empty_orphan.mkdir(parents=True)
    busy_orphan.mkdir()
    stranger = Paused([BUSYBOX, "sleep", "30"])
    (busy_orphan / "cgroup.procs").write_text(str(stranger.pid))
    try:
        result = run_hardrun("gc")
        assert f"removed unreadable state {unreadable}" in result.stdout
        assert f"removed cgroup {empty_orphan}" in result.stdout
        assert result.returncode == 1
        assert f"cgroup {busy_orphan} has no state but running processes: left alone" in result.stderr
        assert not unreadable.exists() and not empty_orphan.exists() and busy_orphan.exists()
    finally:
        stranger.kill()
        cgroups.remove_cgroups([str(busy_orphan)])


def test_gc_no_orphans_leaves_orphaned_cgroups_and_orphans_removes_them(isolated):
    orphan = Path("/sys/fs/cgroup/pids", os.environ["HARDRUN_CGROUP_PARENT"], "0ddba11feedc0de5")
    orphan.mkdir(parents=True)
    try:
        kept = run_hardrun("gc", "--no-orphans")
        assert kept.returncode == 0, kept.stderr
        assert orphan.is_dir() and str(orphan) not in kept.stdout
        removed = run_hardrun("gc", "--orphans")
        assert removed.returncode == 0, removed.stderr
        assert f"removed cgroup {orphan}" in removed.stdout and not orphan.exists()
    finally:
        if orphan.exists():
            cgroups.remove_cgroups([str(orphan)])
