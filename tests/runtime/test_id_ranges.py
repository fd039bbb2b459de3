"""Per-container user-namespace id ranges (hardrun.runtime.userns.lease_id_range): each
container of real root gets host ids of its own, so one container's root is not another's.
Each security test has its control: the same attack under one fixed, shared range
(--userns-remap), where it works."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from hardrun.errors import UsageError
from hardrun.runtime import userns
from hardrun.spec.defaults import DEFAULT_ID_POOL, DEFAULT_RANGE_SIZE
from tests.helpers import hardrun_env, lease_holders, popen_hardrun, run_hardrun, wait_until

pytestmark = pytest.mark.runtime

SHARED = ("--userns-remap", "100000:65536")     # the old fixed range, given to both: the control


def uid_map(text: str) -> list[list[int]]:
    return [[int(field) for field in line.split()] for line in text.splitlines() if line.strip()]


def leases(env) -> list[str]:
    return sorted(lease_holders(os.path.join(env["HARDRUN_STATE_DIR"], userns.RANGES_DIR)))


def start_holding(rootfs, env, *flags, script="true"):
    """A container that prints its uid_map, runs `script`, says ready and waits (its init
    passes SIGTERM on)."""
    proc = popen_hardrun("run", "--rootfs", rootfs, "--init", *flags, "--", "sh", "-c",
                         f"cat /proc/self/uid_map; {script}; echo ready; exec sleep 300", env=env)
    lines = []
    while (line := proc.stdout.readline()) and line.strip() != "ready":
        lines.append(line)
    assert line.strip() == "ready", ("".join(lines), proc.stderr.read() if proc.poll() is not None else "")
    return proc, uid_map("".join(lines))


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


# -- the range arithmetic and the leases ----------------------------------------------------

def test_first_free_offset_takes_the_lowest_gap_that_fits():
    assert userns.first_free_offset(4 * 10, 10, []) == 0
    assert userns.first_free_offset(4 * 10, 10, [(0, 10), (20, 10)]) == 10
    assert userns.first_free_offset(4 * 10, 15, [(0, 10), (20, 10)]) is None
    assert userns.first_free_offset(4 * 10, 10, [(10, 10), (0, 10)]) == 20
    assert userns.first_free_offset(4 * 10, 5, [(3, 10)]) == 13


def test_the_pool_is_roots_subordinate_ids_else_the_documented_default(tmp_path):
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:200000:65536\nroot:300000:655360\n")
    subgid.write_text("root:400000:131072\n")
    assert userns.root_id_pool(str(subuid), str(subgid)) == (300000, 400000, 131072)
    subgid.write_text("alice:200000:65536\n")
    assert userns.root_id_pool(str(subuid), str(subgid)) == (*DEFAULT_ID_POOL[:1] * 2, DEFAULT_ID_POOL[1])


def test_leases_are_disjoint_released_and_reclaimed_from_dead_processes(tmp_path):
    root = str(tmp_path / "state")
    pool = (300000, 400000, 3 * DEFAULT_RANGE_SIZE)
    first = userns.lease_id_range(root=root, pool=pool)
    second = userns.lease_id_range(root=root, pool=pool)
    assert (first.uid_start, first.gid_start) == (300000, 400000)
    assert (second.uid_start, second.gid_start) == (300000 + 65536, 400000 + 65536)
    first.release()
    assert userns.lease_id_range(root=root, pool=pool).uid_start == 300000   # released: taken again
    # a lease naming a dead process (a killed hardrun) is free again
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open(os.path.join(root, userns.RANGES_DIR, f"{2 * 65536}-65536"), "w") as handle:
        handle.write(f"{dead.pid} 1\n")
    assert userns.reclaim_id_ranges(root) == [f"user-namespace id range at pool offset {2 * 65536}-65536"]
    assert userns.lease_id_range(root=root, pool=pool).uid_start == 300000 + 2 * 65536


def test_a_lease_released_while_the_pool_is_listed_is_no_error(tmp_path, monkeypatch):
    """IdLease.release unlinks without the pool's lock: a lease listed by another process's
    allocation may be gone by the time it is read. The control: the name listed and its
    file present is a live lease, so the next range is taken."""
    root = str(tmp_path / "state")
    pool = (300000, 300000, 2 * DEFAULT_RANGE_SIZE)
    held = userns.lease_id_range(root=root, pool=pool)
    listed = userns._lease_names
    monkeypatch.setattr(userns, "_lease_names", lambda directory: listed(directory) + ["65536-65536"])
    assert userns.lease_id_range(root=root, pool=pool).uid_start == 300000 + 65536     # control: held is live
    held.release()
    assert userns.lease_id_range(root=root, pool=pool).uid_start == 300000


def test_a_handed_over_lease_is_released_only_by_its_holder(tmp_path):
    """release_held leaves a lease that names another process (a range reclaimed and leased
    again under the same name); the control: naming its holder, it is removed."""
    root = str(tmp_path / "state")
    lease = userns.lease_id_range(root=root, pool=(300000, 300000, DEFAULT_RANGE_SIZE))
    userns.hand_over(lease, 4242, 17)
    assert open(lease.path).read() == "4242 17\n"
    assert not userns.release_held(lease.path, 4242, 18)
    assert not userns.release_held(lease.path, 4243, 17)
    assert os.path.exists(lease.path)
    assert userns.release_held(lease.path, 4242, 17)
    assert not os.path.exists(lease.path)
    assert not userns.release_held(str(tmp_path / "nowhere" / "0-65536"), 4242, 17)


def test_a_shared_lease_stays_until_its_last_holder_is_gone(tmp_path):
    """share_lease (a pod's container joining its sandbox's user namespace) adds this process
    as a holder; its release leaves the range to the sandbox, still running. Once no holder
    runs, a joiner is refused the range (it may be leased again) and the lease goes."""
    from hardrun.runtime.state import process_start_time
    root = str(tmp_path / "state")
    lease = userns.lease_id_range(root=root, pool=(300000, 300000, DEFAULT_RANGE_SIZE))
    sandbox = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = process_start_time(sandbox.pid)
        userns.hand_over(lease, sandbox.pid, start)
        joined = userns.share_lease(lease.path, lease.uid_start, lease.gid_start, lease.count)
        assert (joined.uid_start, joined.gid_start) == (lease.uid_start, lease.gid_start)
        assert open(lease.path).read() == f"{sandbox.pid} {start}\n{os.getpid()} {process_start_time(os.getpid())}\n"
        joined.release()
        assert open(lease.path).read() == f"{sandbox.pid} {start}\n"
    finally:
        sandbox.kill()
        sandbox.wait()
    with pytest.raises(UsageError, match="no longer leased"):
        userns.share_lease(lease.path, lease.uid_start, lease.gid_start, lease.count)
    assert userns.release_held(lease.path, sandbox.pid, start)
    assert not os.path.exists(lease.path)
    with pytest.raises(UsageError, match="no longer leased"):
        userns.share_lease(lease.path, lease.uid_start, lease.gid_start, lease.count)


def test_no_free_range_is_an_error_never_a_shared_range(tmp_path):
    root = str(tmp_path / "state")
    pool = (300000, 300000, DEFAULT_RANGE_SIZE)
    userns.lease_id_range(root=root, pool=pool)
    with pytest.raises(UsageError, match="no free user-namespace id range of 65536 ids"):
        userns.lease_id_range(root=root, pool=pool)


def test_hardrun_run_refuses_to_start_when_the_pool_is_full(rootfs, env):
    """Every range held (a lease over the whole pool naming this live process): exit 125,
    one line. Control: with the lease gone the same command runs."""
    from hardrun.runtime.state import process_start_time
    directory = os.path.join(env["HARDRUN_STATE_DIR"], userns.RANGES_DIR)
    os.makedirs(directory, mode=0o700)
    os.chmod(env["HARDRUN_STATE_DIR"], 0o700)
    whole = os.path.join(directory, f"0-{DEFAULT_ID_POOL[1]}")
    with open(whole, "w") as handle:
        handle.write(f"{os.getpid()} {process_start_time(os.getpid())}\n")
    full = run_hardrun("run", "--rootfs", rootfs, "--", "true", env=env)
    assert full.returncode == 125 and "no free user-namespace id range" in full.stderr, full
    assert len(full.stderr.strip().splitlines()) <= 2 and "Traceback" not in full.stderr
    os.unlink(whole)
    assert run_hardrun("run", "--rootfs", rootfs, "--", "true", env=env).returncode == 0


# -- from inside the containers and from the host -------------------------------------------

def test_two_running_containers_get_disjoint_ranges(rootfs, env):
    proc, held = start_holding(rootfs, env)
    try:
        other = run_hardrun("run", "--rootfs", rootfs, "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map",
                            env=env)
        assert other.returncode == 0, other.stderr
        second = uid_map(other.stdout)
        assert second[0] == second[1] and held[0][0] == 0 and held[0][2] == second[0][2] == 65536
        (_, a, size), (_, b, _) = held[0], second[0]
        assert a + size <= b or b + size <= a, (held, second)          # disjoint
        assert len(leases(env)) == 1                                  # the second one's is released
        # control: the old fixed range, given to both, is the same range
        shared = run_hardrun("run", "--rootfs", rootfs, *SHARED, "--", "cat", "/proc/self/uid_map", env=env)
        assert uid_map(shared.stdout) == [[0, 100000, 65536]]
    finally:
        stop(proc)
    assert leases(env) == []                                          # released at exit


def test_dry_run_shows_the_range_the_container_would_get(rootfs, env):
    import json
    done = run_hardrun("run", "--dry-run", "--rootfs", rootfs, "--", "true", env=env)
    mappings = json.loads(done.stdout)["linux"]["uidMappings"]
    assert mappings == [{"containerID": 0, "hostID": DEFAULT_ID_POOL[0], "size": 65536}]
    proc, held = start_holding(rootfs, env)
    try:
        done = run_hardrun("run", "--dry-run", "--rootfs", rootfs, "--", "true", env=env)
        assert json.loads(done.stdout)["linux"]["uidMappings"][0]["hostID"] == held[0][1] + 65536
    finally:
        stop(proc)


def _one_writes_the_other_tries(rootfs, env, shared_dir, *flags):
    """Container A (root) creates a 0644 file in a shared bind; container B's root, running
    at the same time, tries to append to it. (A's host uid_map, the file's host owner,
    whether B wrote.)"""
    volume = ("-v", f"{shared_dir}:/data")
    proc, held = start_holding(rootfs, env, *volume, *flags,
                               script="echo a > /data/file && chmod 644 /data/file")
    try:
        other = run_hardrun("run", "--rootfs", rootfs, *volume, *flags, "--", "sh", "-c",
                            "echo b >> /data/file && echo wrote", env=env)
        owner = os.stat(shared_dir / "file").st_uid
    finally:
        stop(proc)
    return held, owner, "wrote" in other.stdout


def test_a_containers_file_is_not_writable_by_another_containers_root(rootfs, env, tmp_path):
    shared_dir = tmp_path / "shared"
    shared_dir.mkdir()
    os.chmod(shared_dir, 0o1777)
    held, owner, wrote = _one_writes_the_other_tries(rootfs, env, shared_dir)
    assert owner == held[0][1]                   # owned on the host by A's range base
    assert not wrote and (shared_dir / "file").read_text() == "a\n"
    # control: under one shared range B's root is the owner too, and writes
    (shared_dir / "file").unlink()
    held, owner, wrote = _one_writes_the_other_tries(rootfs, env, shared_dir, *SHARED)
    assert owner == held[0][1] == 100000
    assert wrote and (shared_dir / "file").read_text() == "a\nb\n"


def test_hardrun_gc_reclaims_the_range_of_a_killed_hardrun(rootfs, env):
    owner = subprocess.Popen([sys.executable, "-m", "hardrun", "run", "--rootfs", rootfs,
                              "--", "sh", "-c", "echo ready; exec sleep 300"],
                             stdout=subprocess.PIPE, text=True, env=hardrun_env(env))
    assert owner.stdout.readline().strip() == "ready"
    held = leases(env)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert len(held) == 1 and leases(env) == held        # control: still on record after the kill
    wait_until(lambda: not os.path.exists(f"/proc/{owner.pid}"))
    done = run_hardrun("gc", env=env)
    assert done.returncode == 0, done.stderr
    assert f"removed user-namespace id range at pool offset {held[0]}" in done.stdout
    assert leases(env) == []


# -- ranges sized by the image and by -u ----------------------------------------------------

def test_range_size_covers_the_highest_id_in_whole_default_ranges():
    assert [userns.range_size(n) for n in (0, 65535, 65536, 70000, 200000)] == [65536, 65536, 131072, 131072, 262144]
    spec = type("Spec", (), {"user": "70000:80000", "group_add": ("90000", "wheel")})()
    assert userns.requested_ids(spec) == (70000, 80000, 90000)
    spec.user, spec.group_add = "app", ()
    assert userns.requested_ids(spec) == ()


def test_a_numeric_user_above_65535_gets_a_range_that_maps_it(rootfs, env):
    """-u 70000: the range grows to 131072 ids and the process is 70000 inside. Control:
    in a fixed 65536 range the same -u is refused before anything starts."""
    done = run_hardrun("run", "--rootfs", rootfs, "-u", "70000", "--", "sh", "-c", "id -u; cat /proc/self/uid_map",
                       env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "70000" and uid_map(done.stdout.split("\n", 1)[1])[0][2] == 131072
    control = run_hardrun("run", "--rootfs", rootfs, "-u", "70000", *SHARED, "--", "id", "-u", env=env)
    assert control.returncode == 125 and "uid 70000 is outside the user namespace's mapped range" in control.stderr


@pytest.fixture(scope="module")
def high_owner_image(tmp_path_factory):
    """An image (busybox, plus /data/high owned by 70000:70001) and a store it runs from."""
    import tarfile
    from tests.imagebuild import Image, busybox_tree, dir_layer, entry, tar_layer, write_layout
    base = tmp_path_factory.mktemp("high-owner")
    os.chmod(base, 0o755)
    top = tar_layer([entry("data", tarfile.DIRTYPE, mode=0o755),
                     entry("data/high", content=b"high\n", mode=0o640, uid=70000, gid=70001)])
    layout = write_layout(base / "layout", {"1": Image([dir_layer(busybox_tree(base / "tree")), top])})
    return f"oci:{layout}:1", str(base / "store")


@pytest.mark.parametrize("idmap", ["idmapped", "chowned-copy"])
def test_an_image_owning_uid_70000_gets_a_range_that_maps_it(high_owner_image, env, idmap):
    """Inside, /data/high is 70000:70001 (not the overflow id) and its owner reads it, both
    through idmapped layers and through the shifted copy. Control: in a 65536 range (the
    fixed --userns-remap one) the same file is nobody's (65534) and 70000 cannot be."""
    image, store = high_owner_image
    env = dict(env, HARDRUN_STORE=store, HARDRUN_NO_IDMAP="1" if idmap == "chowned-copy" else "0")
    script = "stat -c %u:%g /data/high; cat /proc/self/uid_map"
    done = run_hardrun("run", image, "sh", "-c", script, env=env)
    assert done.returncode == 0, done.stderr
    owner, mapping = done.stdout.split("\n", 1)
    assert owner == "70000:70001" and uid_map(mapping)[0][2] == 131072
    reads = run_hardrun("run", "-u", "70000:70001", image, "cat", "/data/high", env=env)
    assert reads.stdout == "high\n", reads.stderr
    dry = run_hardrun("run", "--dry-run", image, "true", env=env)
    assert '"org.hardrun.image.ownership": "' + idmap in dry.stdout
    control = run_hardrun("run", *SHARED, image, "sh", "-c", script, env=env)
    assert control.returncode == 0, control.stderr
    assert control.stdout.split("\n")[0] == "65534:65534" and uid_map(control.stdout.split("\n", 1)[1])[0][2] == 65536


def test_a_layer_unpacked_without_an_owners_record_is_walked_once(high_owner_image, env):
    """A store whose layers predate the owners record (removed here, with the plans): the
    layers are walked, the record written again, and the range still covers uid 70000."""
    import shutil
    image, store = high_owner_image
    env = dict(env, HARDRUN_STORE=store)
    assert run_hardrun("run", image, "true", env=env).returncode == 0
    records = sorted(os.path.join(store, "layers", name, "ids") for name in os.listdir(os.path.join(store, "layers")))
    kept = [open(record).read() for record in records]
    assert "70000 70001\n" in kept
    for record in records:
        os.unlink(record)
    shutil.rmtree(os.path.join(store, "plans"))
    done = run_hardrun("run", image, "stat", "-c", "%u:%g", "/data/high", env=env)
    assert done.stdout == "70000:70001\n", done.stderr
    assert [open(record).read() for record in records] == kept


def test_a_shared_lease_lives_while_any_holder_runs_and_is_never_joined_once_dead(tmp_path):
    """A pod's range: the sandbox's init holds it, a member's too; it stays while either
    runs (allocation and gc keep it), goes with the last, and a lease none of whose holders
    runs cannot be shared (it may be another container's by then). Control: the same lease
    with a live holder is shared."""
    from hardrun.runtime.state import process_start_time
    root = str(tmp_path / "state")
    pool = (300000, 300000, 4 * DEFAULT_RANGE_SIZE)
    lease = userns.lease_id_range(root=root, pool=pool)
    sandbox = subprocess.Popen(["sleep", "60"])
    member = subprocess.Popen(["sleep", "60"])
    try:
        userns.hand_over(lease, sandbox.pid, process_start_time(sandbox.pid))
        shared = userns.share_lease(lease.path, lease.uid_start, lease.gid_start, lease.count)   # the control
        userns.hand_over(shared, member.pid, process_start_time(member.pid))
        directory, name = os.path.split(lease.path)
        assert lease_holders(directory)[name] == [sandbox.pid, member.pid]
        sandbox.kill()
        sandbox.wait()
        assert userns.reclaim_id_ranges(root) == [] and os.path.exists(lease.path)
        assert userns.lease_id_range(root=root, pool=pool).uid_start != lease.uid_start
        member_line = (member.pid, process_start_time(member.pid))
        member.kill()
        member.wait()
        with pytest.raises(UsageError, match="no longer leased"):     # both dead: never joined again
            userns.share_lease(lease.path, lease.uid_start, lease.gid_start, lease.count)
        assert userns.release_held(lease.path, *member_line)
        assert not os.path.exists(lease.path), "the last holder's release leaves a lease"
    finally:
        for process in (sandbox, member):
            process.kill()
            process.wait()
