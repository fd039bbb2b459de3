"""The state root is trusted only when the caller alone controls it; clean-up never
follows a symbolic link; a recorded process, cgroup or link is acted upon only when it
is the container's own.

The rootless attack runs for real: an "attacker" uid pre-creates the victim's default
state directory in /tmp and plants a record naming a process of the victim and a link to
the victim's files; the victim (another uid, through setpriv) then runs `hardrun gc`.
Each refusal has a control showing the same planted state honoured once it is trusted.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hardrun.runtime import cgroups, gc, network, state as state_module

from tests.helpers import ROOT, as_user, run_hardrun
from tests.limits_support import Paused, isolate_state, remove_test_cgroup_parent, require_root

pytestmark = pytest.mark.runtime
BUSYBOX = "/bin/busybox"
OLD = (0, 0)                      # an mtime long past: gc treats the entry as abandoned


def user_env(home: Path) -> dict:
    """A login-like environment: no XDG_RUNTIME_DIR and no HARDRUN_STATE_DIR, so the
    rootless default /tmp/hardrun-UID is used."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
            "XDG_CACHE_HOME": str(home / "cache")}


@pytest.fixture
def two_users():
    """(attacker uid, victim uid, the victim's default state root, the victim's home: a
    directory of its own that it can reach, as its files would be)."""
    require_root()
    attacker, victim = random.sample(range(300000, 399999), 2)
    root = Path(f"/tmp/hardrun-{victim}")
    assert not os.path.lexists(root)
    home = Path(tempfile.mkdtemp(prefix=f"hardrun-home-{victim}-"))
    os.chown(home, victim, victim)
    yield attacker, victim, root, home
    state_module.remove_tree(str(root))
    state_module.remove_tree(str(home))


def plant(root: Path, owner: int, mode: int, victim_pid: int, victim_files: Path) -> None:
    """What the attacker leaves: a record of a dead owner naming the victim's process as
    its port proxy, and an abandoned-looking entry that is a link to the victim's files."""
    root.mkdir(mode=0o700)
    record = root / "0123456789abcdef"
    record.mkdir()
    start = state_module.process_start_time(victim_pid)
    (record / "state").write_text(f"pid 999999999\nstart 1\nproxy {victim_pid} {start}\n")
    (root / "fedcba9876543210").symlink_to(victim_files)
    os.utime(root / "fedcba9876543210", OLD, follow_symlinks=False)
    for path in (record / "state", record, root / "fedcba9876543210", root):
        os.chown(path, owner, owner, follow_symlinks=False)
    os.chmod(record, mode)
    os.chmod(root, mode)


def victim_world(victim: int, home: Path):
    files = home / "files"
    files.mkdir()
    (files / "precious").write_text("the victim's work\n")
    os.chown(files, victim, victim)
    os.chown(files / "precious", victim, victim)
    os.utime(files, OLD)                      # not changed in the last minute
    process = subprocess.Popen(as_user(victim, BUSYBOX, "sleep", "60"))
    return files, process


def victim_gc(victim: int, home: Path):
    return subprocess.run(as_user(victim, sys.executable, "-m", "hardrun", "gc", "--no-orphans"),
                          env=user_env(home), capture_output=True, text=True, timeout=60)


def test_rootless_state_root_planted_by_another_user_is_refused(two_users):
    attacker, victim, root, home = two_users
    files, process = victim_world(victim, home)
    try:
        plant(root, attacker, 0o777, process.pid, files)
        result = victim_gc(victim, home)
        assert process.poll() is None                      # the victim's process lives
        assert (files / "precious").exists()
        assert result.returncode == 125, result.stderr
        assert result.stderr.splitlines() == [
            f"hardrun gc: state directory {root} is owned by uid {attacker}, not by uid {victim} "
            "(remove it, or set HARDRUN_STATE_DIR to a directory of your own with mode 0700)"]
        assert (root / "0123456789abcdef" / "state").exists()  # nothing was touched
    finally:
        process.kill()
        process.wait()


def test_control_the_same_planted_state_is_read_once_the_victim_owns_it(two_users):
    """Control: with the owner check satisfied the planted record is read and reaped,
    so the refusal above is the owner check's doing. Even then the second layer holds:
    the recorded "proxy" is not the dead owner's child (not killed) and the link is
    removed without following it (the files it points at stay)."""
    _, victim, root, home = two_users
    files, process = victim_world(victim, home)
    try:
        plant(root, victim, 0o700, process.pid, files)
        assert os.listdir(root / "fedcba9876543210") == ["precious"]   # a following rm -r reaches them
        result = victim_gc(victim, home)
        assert "removed container 0123456789abcdef" in result.stdout, result.stderr
        assert f"removed unreadable state {root}/fedcba9876543210" in result.stdout
        assert result.returncode == 0, result.stderr
        assert process.poll() is None
        assert (files / "precious").read_text() == "the victim's work\n"
        assert os.listdir(root) == []
    finally:
        process.kill()
        process.wait()


def test_rootless_default_is_created_private(two_users):
    _, victim, root, home = two_users
    result = subprocess.run(as_user(victim, sys.executable, "-c",
                                    "from hardrun.runtime import state; print(state.trusted_root(create=True))"),
                            env=user_env(home), capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == str(root), result.stderr
    info = os.lstat(root)
    assert (info.st_uid, info.st_mode & 0o7777) == (victim, 0o700)


@pytest.mark.parametrize("case", ["open-mode", "symlink", "other-owner", "writable-parent"])
def test_configured_state_root_must_be_private(tmp_path, case):
    require_root()
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    root = {"open-mode": real, "symlink": tmp_path / "link", "other-owner": real,
            "writable-parent": tmp_path / "shared" / "state"}[case]
    expected = {"open-mode": "is open to group or others (mode 0755, expected 0700)",
                "symlink": "is a symbolic link", "other-owner": "is owned by uid 12345, not by uid 0",
                "writable-parent": f"is inside {tmp_path}/shared, which others may write "
                                   "(mode 0777, not sticky)"}[case]
    if case == "open-mode":
        os.chmod(real, 0o755)
    elif case == "symlink":
        root.symlink_to(real)
    elif case == "other-owner":
        os.chown(real, 12345, 12345)
    else:
        root.parent.mkdir()
        os.chmod(root.parent, 0o777)
        root.mkdir(mode=0o700)
    result = run_hardrun("gc", "--no-orphans", env={"HARDRUN_STATE_DIR": str(root)})
    assert result.returncode == 125
    assert f"state directory {root} {expected}" in result.stderr
    # control: the same root with that one problem fixed is accepted
    if case == "open-mode":
        os.chmod(real, 0o700)
    elif case == "symlink":
        root = real
    elif case == "other-owner":
        os.chown(real, 0, 0)
    else:
        os.chmod(root.parent, 0o755)
    accepted = run_hardrun("gc", "--no-orphans", env={"HARDRUN_STATE_DIR": str(root)})
    assert accepted.returncode == 0, accepted.stderr


def state_root_with_old_entry(parent: Path) -> Path:
    """A private directory of the caller's holding files that gc would sweep as an
    abandoned, unreadable entry if it took the directory for its state root."""
    root = parent / "state"
    root.mkdir(mode=0o700, parents=True)
    (root / "keys").mkdir()
    (root / "keys" / "precious").write_text("keep")
    os.utime(root / "keys", OLD)
    return root


@pytest.mark.parametrize("case", ["other-users-link", "link-in-writable-directory"])
def test_links_on_the_way_to_the_state_root_must_be_trusted(tmp_path, case):
    """A link on the way to the root is followed only when nobody else can repoint it: the
    pre-fix code checked the resolved directories alone, so another user's link in /tmp
    (here a sticky directory like it) could lead gc to sweep a private directory."""
    require_root()
    private = tmp_path / "private"
    real = state_root_with_old_entry(private)
    holder = tmp_path / "holder"
    holder.mkdir()
    os.chmod(holder, 0o1777 if case == "other-users-link" else 0o777)
    link = holder / "link"
    link.symlink_to(private)
    if case == "other-users-link":
        os.chown(link, 12345, 12345, follow_symlinks=False)
    root = link / "state"
    expected = {"other-users-link": f"is reached through {link}, a symbolic link that uid 12345 owns",
                "link-in-writable-directory": f"is inside {holder}, which others may write "
                                              "(mode 0777, not sticky)"}[case]
    result = run_hardrun("gc", "--no-orphans", env={"HARDRUN_STATE_DIR": str(root)})
    assert result.returncode == 125, result.stderr
    assert result.stderr.splitlines() == [
        f"hardrun gc: state directory {root} {expected} ({state_module._UNTRUSTED_HINT})"]
    assert (real / "keys" / "precious").read_text() == "keep"
    # control: the same link made trustworthy leads gc into the directory it points at
    if case == "other-users-link":
        os.chown(link, 0, 0, follow_symlinks=False)
    else:
        os.chmod(holder, 0o755)
    followed = run_hardrun("gc", "--no-orphans", env={"HARDRUN_STATE_DIR": str(root)})
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == [f"removed unreadable state {real}/keys"]


def test_the_state_root_is_resolved_once_and_used_resolved(tmp_path, monkeypatch):
    """Repointing a link after the check changes nothing: every later operation uses the
    resolved path that was checked, never the link again."""
    require_root()
    checked, elsewhere = tmp_path / "checked", tmp_path / "elsewhere"
    for directory in (checked, elsewhere):
        (directory / "state").mkdir(mode=0o700, parents=True)
    link = tmp_path / "link"
    link.symlink_to(checked)
    monkeypatch.setenv("HARDRUN_STATE_DIR", str(link / "state"))
    root = state_module.trusted_root()
    assert root == str(checked / "state")
    link.unlink()
    link.symlink_to(elsewhere)
    state = state_module.ContainerState.create("0123456789abcdef", root)
    assert state.path == str(checked / "state" / "0123456789abcdef")
    assert [s.id for s in state_module.container_states(root)] == ["0123456789abcdef"]
    # control: the unresolved path now names the other directory, which stays empty
    assert os.path.samefile(link / "state", elsewhere / "state")
    assert os.listdir(elsewhere / "state") == []


def as_victim_with_state_root(victim: int, home: Path, root: Path, *argv: str):
    env = dict(user_env(home), HARDRUN_STATE_DIR=str(root))
    return subprocess.run(as_user(victim, sys.executable, "-m", "hardrun", *argv),
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def reachable(tmp_path):
    """A directory every user may search (pytest's tmp_path is root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="hardrun-state-test-"))
    os.chmod(base, 0o755)
    yield base
    state_module.remove_tree(str(base))


@pytest.mark.parametrize("command", ["gc", "run"])
@pytest.mark.parametrize("case", ["not-a-directory", "link-loop", "unreachable"])
def test_an_unusable_state_root_is_one_line_and_exit_125(reachable, command, case):
    """An OSError on the way to the root (a file as a directory, a link loop, a directory
    the caller may not search) was a traceback from `hardrun gc`; `hardrun run` refuses the
    same root with the same line (the root is judged before anything is made)."""
    require_root()
    victim = random.randrange(300000, 399999)
    home = reachable / "home"
    home.mkdir()
    os.chown(home, victim, victim)
    way = {"not-a-directory": reachable / "file", "link-loop": reachable / "loop",
           "unreachable": reachable / "closed"}[case]
    if case == "not-a-directory":
        way.write_text("")
    elif case == "link-loop":
        way.symlink_to(way.name)
    else:
        way.mkdir(mode=0o700)              # root's: the victim may not search it
    root = way / "state"
    expected = {"not-a-directory": f"is inside {way}, which is not a directory",
                "link-loop": f"cannot be used: Too many levels of symbolic links ({way})",
                "unreachable": f"cannot be used: Permission denied ({root})"}[case]
    # control: the OS refuses the path itself (the unconverted error was the traceback)
    probe = subprocess.run(as_user(victim, sys.executable, "-c",
                                   f"import os; os.lstat({str(root)!r})"),
                           capture_output=True, text=True, timeout=60)
    assert {"not-a-directory": "NotADirectoryError", "link-loop": "Too many levels",
            "unreachable": "PermissionError"}[case] in probe.stderr
    argv = ("gc", "--no-orphans") if command == "gc" else ("run", "--rootfs", "/", "--", "/bin/true")
    result = as_victim_with_state_root(victim, home, root, *argv)
    assert result.returncode == 125, result.stderr
    assert result.stderr.splitlines() == [
        f"hardrun{' gc' if command == 'gc' else ''}: state directory {root} {expected} "
        f"({state_module._UNTRUSTED_HINT})"]


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    require_root()
    root = isolate_state(monkeypatch, tmp_path)
    yield root
    assert remove_test_cgroup_parent() == []


def test_run_refuses_an_untrusted_state_root_before_running_anything(rootfs, isolated, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    isolated.mkdir()
    os.chmod(isolated, 0o755)
    argv = ("run", "--rootfs", rootfs, "-v", f"{out}:/out:rw", "--", "touch", "/out/marker")
    refused = run_hardrun(*argv)
    assert refused.returncode == 125
    assert f"hardrun: state directory {isolated} is open to group or others" in refused.stderr
    assert not (out / "marker").exists()
    os.chmod(isolated, 0o700)                   # control: the same root made private
    ran = run_hardrun(*argv)
    assert ran.returncode == 0, ran.stderr
    assert (out / "marker").exists()
    assert os.listdir(isolated) == [".userns"]       # only the id-range leases' directory, empty
    assert os.listdir(isolated / ".userns") == ["lock"]


def test_remove_tree_never_follows_a_symbolic_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / "inner-link").symlink_to(outside)
    (entry / "file").write_text("x")
    top_link = tmp_path / "top-link"
    top_link.symlink_to(outside)
    # control: both links lead to the files, so a removal that follows them deletes them
    assert os.listdir(entry / "inner-link") == os.listdir(top_link) == ["precious"]
    state_module.remove_tree(str(top_link))
    state_module.remove_tree(str(entry))
    assert not os.path.lexists(top_link) and not os.path.lexists(entry)
    assert (outside / "precious").read_text() == "keep"


# -------------------------------------------------------------- records are verified

def dead_owner_state(container_id: str, lines: list[str]) -> state_module.ContainerState:
    """A record as a killed hardrun (a pid that no longer runs) would have left it."""
    state = state_module.ContainerState.create(container_id)
    record = Path(state.path, "state")
    record.write_text("pid 999999999\nstart 1\n" + "".join(f"{line}\n" for line in lines))
    return state_module.ContainerState.load(state.path)


def test_a_recorded_process_is_killed_only_as_the_live_owners_child(isolated):
    stranger = subprocess.Popen([BUSYBOX, "sleep", "60"])
    try:
        item = f"{stranger.pid} {state_module.process_start_time(stranger.pid)}"
        planted = dead_owner_state("0123456789abcdef", [f"proxy {item}"])
        assert planted.recorded_child(item) is None
        assert network.undo(planted) == []
        assert stranger.poll() is None                 # not the dead owner's: never signalled
        wrong_start = f"{stranger.pid} {state_module.process_start_time(stranger.pid) + 1}"
        own = state_module.ContainerState.create("fedcba9876543210")   # this process owns it
        assert own.recorded_child(wrong_start) is None  # a reused pid is not the recorded one
        # control: the same process recorded by its live parent is vouched for and killed
        assert own.recorded_child(item) == stranger.pid
        own.record("proxy", item)
        assert network.undo(own) == []
        assert state_module.process_start_time(stranger.pid) is None    # killed and reaped
    finally:
        stranger.kill()
        stranger.wait()


def test_a_recorded_link_or_table_must_be_the_containers_own(isolated, monkeypatch):
    deleted = []
    monkeypatch.setattr(network, "_delete_link", deleted.append)
    monkeypatch.setattr(network, "_delete_table", deleted.append)
    container_id = "0123456789abcdef"
    planted = dead_owner_state(container_id, ["veth eth0", "nft filter", "address ../.. 10.0.0.2"])
    problems = network.undo(planted)
    assert deleted == []
    assert problems == [f"nft filter is not container {container_id}'s: left alone",
                        f"veth eth0 is not container {container_id}'s: left alone",
                        f"address ../.. 10.0.0.2 is not container {container_id}'s: left alone"]
    # control: the container's own link and table are removed
    own = dead_owner_state("fedcba9876543210", [f"veth {network.veth_name('fedcba9876543210')}",
                                                f"nft {network.container_table('fedcba9876543210')}"])
    assert network.undo(own) == []
    assert deleted == [network.container_table("fedcba9876543210"),
                       network.veth_name("fedcba9876543210")]


def test_a_recorded_cgroup_must_be_the_containers_own(isolated):
    parent = os.environ["HARDRUN_CGROUP_PARENT"]
    foreign = Path("/sys/fs/cgroup/pids", f"{parent}-foreign")
    own = Path("/sys/fs/cgroup/pids", parent, "fedcba9876543210")
    foreign.mkdir()
    own.mkdir(parents=True)
    workloads = []
    try:
        for cgroup in (foreign, own):
            workload = Paused([BUSYBOX, "sleep", "60"])
            (cgroup / "cgroup.procs").write_text(str(workload.pid))
            workload.release()
            workloads.append(workload)
        planted = dead_owner_state("0123456789abcdef", [f"cgroup {foreign}"])
        controlled = dead_owner_state("fedcba9876543210", [f"cgroup {own}"])
        undone, problems = gc.reap_stale()
        assert problems == [f"0123456789abcdef: cgroup {foreign} is not container "
                            "0123456789abcdef's: left alone"]
        assert foreign.is_dir() and workloads[0].status is None
        os.kill(workloads[0].pid, 0)                  # still running
        # control: the container's own cgroup is emptied (its process killed) and removed
        assert undone == ["fedcba9876543210"] and not own.exists()
        assert workloads[1].wait() == 137
        assert os.path.isdir(planted.path) and not os.path.exists(controlled.path)
    finally:
        for workload in workloads:
            workload.kill()
        cgroups.remove_cgroups([str(foreign)])


def test_a_recorded_cgroup_must_be_in_a_mounted_hierarchy_not_merely_end_alike(isolated, tmp_path,
                                                                              monkeypatch):
    """Records whose path ends in /<parent>/<id> like the container's own, but elsewhere:
    a real cgroup one level deeper in the pids hierarchy (with a process in it), and a
    plain directory outside any cgroup mount. Neither is touched."""
    parent, container_id = os.environ["HARDRUN_CGROUP_PARENT"], "0123456789abcdef"
    elsewhere = Path("/sys/fs/cgroup/pids", f"{parent}-elsewhere")
    nested = elsewhere / parent / container_id
    plain = tmp_path / "home" / parent / container_id
    nested.mkdir(parents=True)
    workload = Paused([BUSYBOX, "sleep", "60"])
    try:
        (nested / "cgroup.procs").write_text(str(workload.pid))
        workload.release()
        plain.mkdir(parents=True)
        lines = [f"cgroup {nested}", f"cgroup {plain}"]
        planted = dead_owner_state(container_id, lines)
        assert cgroups.undo(planted) == [f"cgroup {nested} is not container {container_id}'s: "
                                         "left alone",
                                         f"cgroup {plain} is not container {container_id}'s: "
                                         "left alone"]
        os.kill(workload.pid, 0)                              # still running
        assert nested.is_dir() and plain.is_dir()
        # control: with the check off, the same record kills the process and removes both
        monkeypatch.setattr(cgroups, "_container_cgroups", lambda _: {str(nested), str(plain)})
        assert cgroups.undo(planted) == []
        assert workload.wait() == 137
        assert not nested.exists() and not plain.exists() and not plain.parent.exists()
    finally:
        workload.kill()
        cgroups.remove_cgroups([str(nested), str(nested.parent), str(elsewhere)])


def test_gc_checks_the_state_root_once(isolated, monkeypatch):
    """One `hardrun gc` walks the root's ancestors once, however many passes use the root."""
    dead_owner_state("0123456789abcdef", [])
    unreadable = isolated / "fedcba9876543210"
    unreadable.mkdir()
    os.utime(unreadable, OLD)
    walks = []
    resolve = state_module._resolve_checked
    monkeypatch.setattr(state_module, "_resolve_checked",
                        lambda *args: walks.append(args) or resolve(*args))
    report = gc.collect(orphans=True)
    assert report.removed == ["container 0123456789abcdef",
                              f"unreadable state {unreadable}"]
    assert len(walks) == 1
