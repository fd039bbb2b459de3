"""The order of the container's mount phase, system call by system call, without root.

child.main runs with the real mount steps (hardrun.runtime.mounts) making their calls
through a recording fake of the system calls (tests/runtime/fake_kernel.FakeKernel), for a
default `hardrun run`, a read-only root with binds and tmpfs, a root of its own under
`--userns-remap`, a rootless run and a hardrun-oci bundle (masked and read-only paths, a
network namespace joined by path). The parent's idmapped mounts (an image's layers, a
--rootfs of another id range, hardrun-oci's rebuilt overlay root) and clone flags are
followed the same way. Each security ordering is one function over the record, and each is
shown failing on a record reordered (or a step patched) to break it: none of them can pass
vacuously. What the order achieves against the kernel is the escape battery's
(tests/escape, root).
"""
from __future__ import annotations

from unittest import mock

import pytest

from hardrun.runtime import bundle, idmap, image_root, mounts, oci_create, parent, syscalls as k
from hardrun.runtime.cgroups import Hierarchy, Layout, mount_cgroup_view
from hardrun.runtime.config import LaunchState, resolve
from hardrun.spec import oci as oci_writer
from hardrun.spec.defaults import MASKED_PATHS, READONLY_PATHS
from hardrun.spec.record import replace
from hardrun.spec.run import Mount, RunSpec
from tests.runtime.fake_kernel import FakeKernel, first, record_setup

# The kernel paths lstat says are directories (masked with a tmpfs; the others with /dev/null).
DIRECTORIES = {"/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/devices/virtual/powercap", "/sys/firmware"}
ATTACH = ("mount", "bind")                       # events that put a mount somewhere
MOUNTING = ATTACH + ("setattr", "remount", "open_tree", "umount2", "pivot_root")
CGROUP_VIEW = "/sys/fs/cgroup"
# A hybrid host's cgroups, as the container's read-only view mounts them.
HYBRID = Layout([Hierarchy("/sys/fs/cgroup/memory", 1, {"memory"}, "memory"),
                 Hierarchy("/sys/fs/cgroup/unified", 2)])


# -- the record as events, with paths seen from the container -------------------------

def events(calls) -> list[tuple]:
    """The recorded calls as events: ("mount", where, fstype, flags, data) for mount(2),
    ("bind", where, attributes set while detached, source) for move_mount, ("setattr", where,
    attributes, recursive) for mount_setattr on an attached mount, ("remount", where, flags),
    ("propagation", flags);
    `where` as the container sees it (before pivot_root, relative to the new root; "host:"
    and the path for anything outside it). Other calls as recorded; opens and closes left out."""
    pivot = first(calls, "pivot_root")
    root = calls[pivot][1]

    def seen(path: str, index: int) -> str:
        if index > pivot:
            return path
        if path == root:
            return "/"
        return path[len(root):] if path.startswith(root + "/") else "host:" + path

    result = []
    for index, call in enumerate(calls):
        name = call[0]
        if name == "mount" and call[4] & (k.MS_PRIVATE | k.MS_SLAVE) and not call[4] & k.MS_REMOUNT:
            result.append(("propagation", call[4]))
        elif name == "mount" and call[4] & k.MS_REMOUNT:
            result.append(("remount", seen(call[2], index), call[4]))
        elif name == "mount":
            result.append(("mount", seen(call[2], index), call[3], call[4], call[5]))
        elif name == "move_mount":
            result.append(("bind", seen(call[2], index), call[3], call[1]))
        elif name == "open_tree":
            result.append(("open_tree", call[1]))
        elif name == "mount_setattr" and not (result and result[-1][0] == "open_tree"):
            result.append(("setattr", seen(call[1], index), call[2], call[3]))
        elif name not in ("open", "create", "mkdir", "symlink", "mount_setattr", "fchdir", "chdir"):
            result.append(call)
    return result


def index_of(record, kind: str, where: str | None = None) -> int:
    return next(i for i, event in enumerate(record) if event[0] == kind and (where is None or event[1] == where))


def attached(record, where: str) -> list[int]:
    return [i for i, event in enumerate(record) if event[0] in ATTACH and event[1] == where]


def moved(record, index: int, to: int) -> list:
    """The record with event `index` moved to position `to` (a deliberately wrong order)."""
    changed = list(record)
    changed.insert(to, changed.pop(index))
    return changed


# -- the orderings ---------------------------------------------------------------------

def mounted_before_pivot_root(record, plan) -> None:
    """The root, /proc, /sys, /dev and every user mount are attached before pivot_root, none
    outside the new root; after it only the masked and read-only kernel paths are, and the
    cgroup view (which must be mounted in the container's cgroup namespace)."""
    pivot = index_of(record, "pivot_root")
    wanted = {"/", "/proc", "/sys", "/dev"} | {mount.target for mount in plan.mounts}
    for where in wanted:
        found = attached(record, where)
        assert found and max(found) < pivot, f"{where} is not mounted before pivot_root"
    assert not [event for event in record[:pivot] if event[0] in ATTACH and event[1].startswith("host:")]
    hidden = set(plan.masked_paths) | set(plan.readonly_paths)
    late = [event for event in record[pivot:] if event[0] in ATTACH and event[1] not in hidden
            and not (event[1] + "/").startswith(CGROUP_VIEW + "/")]
    assert not late, f"mounted after pivot_root: {late}"


def hidden_after_what_covers_them(record, plan) -> None:
    """Each masked or read-only kernel path is mounted after every mount on it or on a
    directory above it (which would otherwise cover the mask), and is mounted at all."""
    for path in plan.masked_paths + plan.readonly_paths:
        own = attached(record, path)
        assert own, f"{path} is neither masked nor made read-only"
        covering = [i for i, event in enumerate(record) if event[0] in ATTACH and i not in own
                    and (path == event[1] or path.startswith(event[1].rstrip("/") + "/"))]
        assert min(own) > max(covering), f"{path} is hidden before a mount that covers it"


def user_mounts_nosuid_nodev(record, plan) -> None:
    """Every user mount (and the default /tmp, /run) is nosuid and nodev from the moment it
    is attached: a bind's attributes are set on the detached tree, a tmpfs gets the flags."""
    for plan_mount in plan.mounts:
        (index,) = attached(record, plan_mount.target)
        event = record[index]
        if event[0] == "bind":
            assert event[2] & k.MOUNT_ATTR_NOSUID and event[2] & k.MOUNT_ATTR_NODEV, event
        else:
            assert event[3] & k.MS_NOSUID and event[3] & k.MS_NODEV, event


def no_mount_after_capabilities_drop(record) -> None:
    """Nothing is mounted, moved or changed once the bounding set or the capability sets
    have been cut (a mount needs CAP_SYS_ADMIN: one after would fail, or mean it was kept)."""
    dropped = min(i for i, event in enumerate(record) if event[0] in ("drop_bounding", "capset"))
    late = [event for event in record[dropped:] if event[0] in MOUNTING]
    assert not late, f"mounted after the capabilities were dropped: {late}"


def seccomp_last_before_execve(record) -> None:
    """The seccomp filter is loaded last, right before execve (it then governs everything
    the command does), after no_new_privs and the fds closed."""
    assert [event[0] for event in record[-2:]] == ["seccomp.load", "execve"], record[-4:]
    assert sum(event[0] == "seccomp.load" for event in record) == 1
    closed = max(i for i, event in enumerate(record) if event[0] == "close_range")
    assert closed < index_of(record, "seccomp.load")


def proc_of_the_new_pid_namespace(record) -> None:
    """/proc is a procfs mounted by the container's process (cloned into its own pid
    namespace: `clone_flags`), not a bind of the host's, before pivot_root while the
    host's full /proc is still visible (the kernel wants that in a user namespace)."""
    (index,) = attached(record, "/proc")
    assert record[index][:3] == ("mount", "/proc", "proc"), record[index]
    assert index < index_of(record, "pivot_root")


def cgroup_view_in_the_cgroup_namespace(record) -> None:
    """The read-only cgroup view is mounted once the container has a cgroup namespace of
    its own (rooted in its cgroup: it sees no other), and turned read-only as a whole last."""
    unshared = first(record, "unshare", k.CLONE_NEWCGROUP)
    view = [i for i, event in enumerate(record) if event[0] in ATTACH + ("remount",)
            and (event[1] + "/").startswith(CGROUP_VIEW + "/")]
    assert view and unshared < min(view)
    assert record[max(view)] == ("remount", CGROUP_VIEW, k.MS_REMOUNT | k.MS_BIND | k.MS_RDONLY
                                 | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC)
    assert all(event[3] & k.MS_RDONLY for event in record if event[0] == "mount"
               and event[2] in ("cgroup", "cgroup2"))


def root_flags_before_its_submounts(record, read_only: bool) -> None:
    """The root (with its submounts) turns nodev, and read-only unless --read-write, before
    anything is mounted in it: the kernel file systems and user mounts keep their own flags."""
    wanted = k.MOUNT_ATTR_NODEV | (k.MOUNT_ATTR_RDONLY if read_only else 0)
    index = next(i for i, event in enumerate(record) if event[:2] == ("setattr", "/"))
    assert record[index][2] & wanted == wanted and record[index][3] is True, record[index]
    inside = [i for i, event in enumerate(record) if event[0] in ATTACH and event[1].startswith("/")
              and event[1] != "/" and i < index_of(record, "pivot_root")]
    assert index < min(inside)


def the_security_orderings(record, plan) -> None:
    """Every ordering that holds for any container the child sets up."""
    mounted_before_pivot_root(record, plan)
    hidden_after_what_covers_them(record, plan)
    user_mounts_nosuid_nodev(record, plan)
    no_mount_after_capabilities_drop(record)
    seccomp_last_before_execve(record)
    root_flags_before_its_submounts(record, plan.read_only)
    if "pid" in plan.namespaces:
        proc_of_the_new_pid_namespace(record)
    if "cgroup" in plan.namespaces:
        cgroup_view_in_the_cgroup_namespace(record)


# -- the scenarios ---------------------------------------------------------------------

def _quiet(plan):
    # nothing of the host's own settings may be written by a test: the kernel settings step
    # (vm.memfd_noexec, user.max_*) stays out of these runs
    return replace(plan, memfd_by_seccomp=True, user_limits=())


def _record(plan, **options) -> list:
    calls, _ = record_setup(plan, LaunchState(plan), directories=DIRECTORIES,
                            cgroup_view=(mount_cgroup_view, HYBRID), **options)
    return events(calls)


@pytest.fixture(scope="module")
def default_run():
    plan = _quiet(resolve(RunSpec(command=("/bin/true",))))
    return plan, _record(plan)


@pytest.fixture(scope="module")
def binds_and_tmpfs(tmp_path_factory):
    source = tmp_path_factory.mktemp("bind-source")
    (source / "file").write_text("")
    spec = RunSpec(command=("/bin/true",), read_only_root=True, mounts=(
        Mount(type="bind", source=str(source), target="/data", read_only=True),
        Mount(type="bind", source=str(source / "file"), target="/etc/extra.conf"),
        Mount(type="tmpfs", target="/cache", options=("size=1m",))))
    plan = _quiet(resolve(spec))
    return plan, _record(plan)


@pytest.fixture(scope="module")
def userns_image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("image-root")
    plan = _quiet(resolve(RunSpec(command=("/bin/true",), rootfs=str(root), userns_remap=(300000, 65536),
                                  mounts=(Mount(type="tmpfs", target="/scratch"),))))
    return plan, _record(plan)


@pytest.fixture(scope="module")
def rootless_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rootless-root")
    with mock.patch("os.geteuid", return_value=1000), mock.patch("os.getegid", return_value=1000):
        plan = _quiet(resolve(RunSpec(command=("/bin/true",), rootfs=str(root))))
    assert plan.id_maps is not None and plan.id_maps.uid == [(0, 1000, 1)]
    return plan, _record(plan)


def oci_document(bind_source: str, namespaces=("mount", "pid", "ipc", "uts", "network", "cgroup")) -> dict:
    """A config.json from hardrun's OCI writer: Docker's masked and read-only paths, a bind
    over /sys/devices/virtual (above a masked path), /dev/mqueue, the network joined by path."""
    document = oci_writer.config(
        args=["/bin/true"], env=["PATH=/bin"], cwd="/", user={"uid": 0, "gid": 0},
        capability_sets=oci_writer.capabilities(("CHOWN",), False), no_new_privileges=True, root="rootfs",
        read_only=True, hostname="oci-test", namespaces=set(namespaces),
        mounts=[{"destination": "/sys/devices/virtual", "type": "bind", "source": bind_source,
                 "options": ["rbind", "nosuid", "nodev", "ro"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                 "options": ["nosuid", "noexec", "nodev"]}],
        masked_paths=MASKED_PATHS, readonly_paths=READONLY_PATHS, terminal=False)
    for entry in document["linux"]["namespaces"]:
        if entry["type"] == "network":
            entry["path"] = "/proc/1/ns/net"
    return document


@pytest.fixture(scope="module")
def oci_bundle(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bundle")
    (directory / "rootfs").mkdir()
    plan = _quiet(bundle.from_document(oci_document(str(directory)), str(directory), False).config)
    assert plan.namespace_paths == (("network", "/proc/1/ns/net"),) and plan.mqueue
    return plan, _record(plan)


SCENARIOS = ("default_run", "binds_and_tmpfs", "userns_image_root", "rootless_run", "oci_bundle")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_keeps_the_security_orderings(scenario, request):
    plan, record = request.getfixturevalue(scenario)
    the_security_orderings(record, plan)


# -- what each scenario adds -------------------------------------------------------------

def test_a_default_run_mounts_the_host_root_copy_read_only_and_nodev_with_fresh_kernel_file_systems(default_run):
    plan, record = default_run
    assert plan.rootfs is None and plan.read_only
    assert record[0] == ("cgroup.enter",)
    assert record[index_of(record, "propagation")][1] == k.MS_REC | k.MS_PRIVATE
    assert index_of(record, "propagation") < index_of(record, "bind", "/")   # the root copy: no event leaks
    assert record[index_of(record, "bind", "/")][3] == "/"                     # a copy of the host's /
    assert [event[:3] for event in record if event[0] == "mount" and event[1] in ("/proc", "/sys", "/dev")] == [
        ("mount", "/proc", "proc"), ("mount", "/sys", "sysfs"), ("mount", "/dev", "tmpfs")]
    assert record[index_of(record, "mount", "/sys")][3] & k.MS_RDONLY
    # /dev holds only the nodes bound read-only from the host, then turns read-only itself
    nodes = [event for event in record if event[0] == "bind" and event[1].startswith("/dev/")]
    assert {event[1] for event in nodes} <= {f"/dev/{name}" for name in mounts.DEVICES} and nodes
    assert all(event[2] & k.MOUNT_ATTR_RDONLY and event[2] & k.MOUNT_ATTR_NOSUID for event in nodes)
    dev_read_only = next(i for i, event in enumerate(record) if event[:2] == ("setattr", "/dev"))
    assert max(i for i, event in enumerate(record) if event[1:2] and str(event[1]).startswith("/dev/")) < dev_read_only
    assert record[dev_read_only][2] == k.MOUNT_ATTR_RDONLY


def test_binds_keep_their_read_only_flag_and_a_tmpfs_is_noexec(binds_and_tmpfs):
    plan, record = binds_and_tmpfs
    (data,) = attached(record, "/data")
    (conf,) = attached(record, "/etc/extra.conf")
    assert record[data][2] & k.MOUNT_ATTR_RDONLY and not record[conf][2] & k.MOUNT_ATTR_RDONLY
    assert record[attached(record, "/cache")[0]][3] & k.MS_NOEXEC
    assert record[index_of(record, "setattr", "/")][2] & k.MOUNT_ATTR_RDONLY


def test_bind_sources_are_opened_before_the_root_is_prepared(tmp_path):
    """A bind's source is held open before anything is mounted, so no mount made for the
    container can stand in for it."""
    (tmp_path / "src").mkdir()
    plan = _quiet(resolve(RunSpec(command=("/bin/true",), mounts=(
        Mount(type="bind", source=str(tmp_path / "src"), target="/data"),))))
    calls, _ = record_setup(plan, LaunchState(plan), directories=DIRECTORIES)
    opened = first(calls, "open", str(tmp_path / "src"))
    assert opened < first(calls, "open_tree", "/") < first(calls, "move_mount")


def test_under_a_user_namespace_the_child_becomes_its_root_before_mounting(userns_image_root):
    plan, record = userns_image_root
    assert "user" in plan.namespaces and plan.id_maps.uid == [(0, 300000, 65536)]
    assert record[index_of(record, "mount")][1:3] == ("/", None)    # the image root bound on itself
    assert index_of(record, "setresuid") < index_of(record, "setattr", "/") < index_of(record, "mount", "/proc")


def with_a_user_namespace(calls: list, kernel_class=FakeKernel) -> FakeKernel:
    """The fake, with fd 77 standing for the container's user namespace (the id map's)."""
    kernel = kernel_class(calls, -1)
    kernel.paths[77] = "/proc/4242/ns/user"
    return kernel


def test_an_image_layer_is_idmapped_and_read_only_before_it_is_attached():
    """hardrun run's image root under a user namespace: each layer is a detached copy given
    the container's id map, read-only and nodev, and only then attached."""
    calls: list = []
    kernel = with_a_user_namespace(calls)
    mounted = image_root._idmapped(["/store/layers/a", "/store/layers/b"], 77, "/work", k=kernel)
    assert mounted == ["/work/idmapped-0", "/work/idmapped-1"]
    idmapped_layers_attached_with_their_map(calls, 77, 2)


def idmapped_layers_attached_with_their_map(calls, userns_fd: int, count: int) -> None:
    wanted = k.MOUNT_ATTR_IDMAP | k.MOUNT_ATTR_RDONLY | k.MOUNT_ATTR_NODEV
    moves = [call for call in calls if call[0] == "move_mount"]
    assert len(moves) == count and all(call[3] & wanted == wanted for call in moves), moves
    assert all(call[4] == userns_fd for call in calls if call[0] == "mount_setattr")


def test_control_an_idmap_set_after_the_attach_is_caught(monkeypatch):
    def attach_then_map(source_fd, target, userns_fd, attrs, recursive=False, k=k):
        tree = k.open_tree(source_fd, recursive=recursive)
        target_fd = k.open_fd(target, k.O_PATH)
        k.move_mount(tree, target_fd)          # attached before it is mapped: the wrong order
        k.mount_setattr(tree, k.MOUNT_ATTR_IDMAP | attrs, recursive=recursive, userns_fd=userns_fd)
    monkeypatch.setattr(image_root, "attach_idmapped", attach_then_map)
    calls: list = []
    kernel = with_a_user_namespace(calls)
    image_root._idmapped(["/store/layers/a"], 77, "/work", k=kernel)
    with pytest.raises(AssertionError):
        idmapped_layers_attached_with_their_map(calls, 77, 1)


def _adopt(monkeypatch, calls: list) -> None:
    """image_root.adopt_shifted_rootfs of a --rootfs prepared for the range 300000 onto the
    container's 400000, against the fake (the user namespace of the shift is fd 77)."""
    from hardrun.runtime.userns import IdMaps
    kernel = with_a_user_namespace(calls)
    monkeypatch.setattr(image_root, "userns_with", lambda maps: calls.append(["userns", maps.uid]) or 77)
    maps = IdMaps([(0, 400000, 65536)], [(0, 400000, 65536)], "direct")
    image_root.adopt_shifted_rootfs("/srv/root", maps, (300000, 300000), k=kernel)


def shifted_root_attached_in_its_own_namespace(calls) -> None:
    """The idmapped bind of a --rootfs prepared for another range goes over the root in a
    mount namespace of hardrun's own, a slave of the host's (nothing mounted reaches the
    host), idmapped from that range onto the container's before it is attached."""
    own = first(calls, "unshare", k.CLONE_NEWNS)
    slave = first(calls, "mount", None, "/", None, k.MS_REC | k.MS_SLAVE)
    (move,) = [i for i, call in enumerate(calls) if call[0] == "move_mount"]
    assert own < slave < move and calls[move][1:3] == ("/srv/root", "/srv/root")
    assert calls[move][3] & k.MOUNT_ATTR_IDMAP
    assert first(calls, "userns") < move and calls[first(calls, "userns")][1] == [(300000, 400000, 65536)]


def test_a_rootfs_of_another_range_is_idmapped_onto_the_containers_in_a_namespace_of_its_own(monkeypatch):
    calls: list = []
    _adopt(monkeypatch, calls)
    shifted_root_attached_in_its_own_namespace([tuple(call) for call in calls])


def test_control_a_shifted_root_mounted_in_the_hosts_namespace_is_caught(monkeypatch):
    calls: list = []
    _adopt(monkeypatch, calls)
    record = [tuple(call) for call in calls]
    with pytest.raises(AssertionError):
        shifted_root_attached_in_its_own_namespace(moved(record, first(record, "unshare"), len(record)))


def test_a_rootless_run_denies_setgroups_and_keeps_gid_5_out_of_devpts(rootless_run):
    plan, record = rootless_run
    assert not plan.id_maps.setgroups
    assert not [event for event in record if event[0] == "setgroups"]
    devpts = record[index_of(record, "mount", "/dev/pts")]
    assert devpts[2] == "devpts" and "gid=5" not in devpts[4]       # group 5 is not mapped
    # the caller's single id is mapped by the parent before the child makes anything
    first_change = min(i for i, event in enumerate(record) if event[0] in MOUNTING + ("setresuid", "setresgid"))
    assert index_of(record, "read") < first_change


def test_with_gid_5_mapped_devpts_gives_new_terminals_group_tty(default_run):
    _, record = default_run
    assert "gid=5" in record[index_of(record, "mount", "/dev/pts")][4]


def test_an_oci_bundle_joins_its_network_before_sysfs_and_gets_its_own_mqueue(oci_bundle):
    plan, record = oci_bundle
    sysfs_after_the_joined_network(record)
    mqueue = record[index_of(record, "mount", "/dev/mqueue")]
    assert mqueue[2] == "mqueue" and mqueue[3] & k.MS_NOSUID and mqueue[3] & k.MS_NODEV
    # the bind above a masked path is there, and the mask went on top of it
    assert attached(record, "/sys/devices/virtual")[0] < attached(record, "/sys/devices/virtual/powercap")[0]


def sysfs_after_the_joined_network(record) -> None:
    """sysfs shows the network namespace of its mounter: the one named by path is joined first."""
    joined = next(i for i, event in enumerate(record) if event[:3] == ("setns", "/proc/1/ns/net", k.CLONE_NEWNET))
    assert joined < index_of(record, "mount", "/sys")


def test_the_container_is_cloned_into_a_pid_namespace_of_its_own(default_run):
    plan, _ = default_run
    assert parent.clone_flags(plan.namespaces) & k.CLONE_NEWPID
    host_pid = _quiet(resolve(RunSpec(command=("/bin/true",), namespaces={"pid": "host"})))
    assert not parent.clone_flags(host_pid.namespaces) & k.CLONE_NEWPID     # control


def test_an_oci_init_is_cloned_into_the_pid_namespace_its_bundle_names():
    calls: list = []
    kernel = FakeKernel(calls, -1)
    kernel.clone = lambda flags, cgroup_fd: calls.append(["clone", flags]) or 4242
    pid = oci_create._clone(parent.clone_flags({"mount", "pid"}, {"pid": "/proc/7/ns/pid"}), _Launch(),
                     "/proc/7/ns/pid", kernel)
    assert pid == 4242
    names = [call[:3] for call in calls if call[0] in ("setns", "clone")]
    assert names == [["setns", "/proc/7/ns/pid", k.CLONE_NEWPID], ["clone", k.CLONE_NEWNS],
                     ["setns", "/proc/self/ns/pid", k.CLONE_NEWPID]]


class _Launch:
    cgroup_join = None


# -- controls: each ordering fails on a record that breaks it ----------------------------

def test_control_a_mount_after_pivot_root_is_caught(default_run):
    plan, record = default_run
    proc = index_of(record, "mount", "/proc")
    with pytest.raises(AssertionError):
        mounted_before_pivot_root(moved(record, proc, index_of(record, "pivot_root") + 1), plan)


def test_control_a_mask_covered_by_a_later_mount_is_caught(oci_bundle):
    plan, record = oci_bundle
    (bind,) = attached(record, "/sys/devices/virtual")
    mask = attached(record, "/sys/devices/virtual/powercap")[0]
    with pytest.raises(AssertionError):
        hidden_after_what_covers_them(moved(record, bind, mask + 1), plan)
    # and a read-only path made so before /proc is mounted (then covered by it)
    read_only = attached(record, "/proc/sys")[0]
    with pytest.raises(AssertionError):
        hidden_after_what_covers_them(moved(record, read_only, index_of(record, "mount", "/proc")), plan)


@pytest.mark.parametrize("constant, value", [("BIND_ATTRS", k.MOUNT_ATTR_NOSUID), ("TMPFS_FLAGS", k.MS_NODEV)])
def test_control_a_user_mount_without_nosuid_or_nodev_is_caught(binds_and_tmpfs, monkeypatch, constant, value):
    plan, _ = binds_and_tmpfs
    monkeypatch.setattr(mounts, constant, value)      # a patched step: the flags left out
    with pytest.raises(AssertionError):
        user_mounts_nosuid_nodev(_record(plan), plan)


def test_control_a_bind_given_its_flags_after_it_is_attached_is_caught(binds_and_tmpfs, monkeypatch):
    plan, _ = binds_and_tmpfs

    def attach_then_flag(source_fd, target_fd, attrs, recursive=True, k=k):
        tree = k.open_tree(source_fd, recursive)
        k.move_mount(tree, target_fd)
        k.mount_setattr(tree, attrs, recursive=recursive)
    monkeypatch.setattr(mounts, "bind", attach_then_flag)
    with pytest.raises(AssertionError):
        user_mounts_nosuid_nodev(_record(plan), plan)


def test_control_a_mount_after_the_capabilities_are_dropped_is_caught(default_run):
    _, record = default_run
    late = record[:-2] + [("mount", "/late", "tmpfs", 0)] + record[-2:]
    with pytest.raises(AssertionError):
        no_mount_after_capabilities_drop(late)
    with pytest.raises(AssertionError):
        no_mount_after_capabilities_drop(moved(record, index_of(record, "pivot_root"), len(record) - 3))


def test_control_seccomp_not_last_is_caught(default_run):
    _, record = default_run
    seccomp = index_of(record, "seccomp.load")
    with pytest.raises(AssertionError):
        seccomp_last_before_execve(moved(record, seccomp, index_of(record, "close_range")))
    with pytest.raises(AssertionError):
        seccomp_last_before_execve(record[:-1] + [("set_no_new_privs",)] + record[-1:])


def test_control_a_host_proc_bound_in_is_caught():
    """--pid host binds the host's /proc: the check that /proc is the new namespace's fails."""
    plan = _quiet(resolve(RunSpec(command=("/bin/true",), namespaces={"pid": "host"})))
    record = _record(plan)
    assert record[attached(record, "/proc")[0]][0] == "bind"
    with pytest.raises(AssertionError):
        proc_of_the_new_pid_namespace(record)


def test_control_proc_mounted_after_pivot_root_is_caught(default_run):
    _, record = default_run
    with pytest.raises(AssertionError):
        proc_of_the_new_pid_namespace(moved(record, index_of(record, "mount", "/proc"),
                                            index_of(record, "pivot_root") + 1))


def test_control_root_flags_set_after_a_submount_are_caught(default_run):
    plan, record = default_run
    root_flags = next(i for i, event in enumerate(record) if event[:2] == ("setattr", "/"))
    with pytest.raises(AssertionError):
        root_flags_before_its_submounts(moved(record, root_flags, index_of(record, "mount", "/dev") + 1), True)


def test_control_a_cgroup_view_mounted_before_the_cgroup_namespace_is_caught(default_run):
    _, record = default_run
    unshared = first(record, "unshare", k.CLONE_NEWCGROUP)
    with pytest.raises(AssertionError):
        cgroup_view_in_the_cgroup_namespace(moved(record, unshared, len(record) - 3))


def test_control_sysfs_before_the_joined_network_is_caught(oci_bundle):
    _, record = oci_bundle
    joined = next(i for i, event in enumerate(record) if event[0] == "setns")
    with pytest.raises(AssertionError):
        sysfs_after_the_joined_network(moved(record, joined, index_of(record, "mount", "/sys") + 1))


# -- hardrun-oci's idmapped root (--userns auto), made by `create` before the clone ---------

DOCKER = "/var/lib/docker"
CONTAINER_ID = "4f2c" * 16     # a Docker container id: the engine names its files' directory after it
MERGED = f"{DOCKER}/overlay2/c1/merged"
OVERLAY = (f"rw,lowerdir={DOCKER}/overlay2/l/A:{DOCKER}/overlay2/l/B,upperdir={DOCKER}/overlay2/c1/diff,"
           f"workdir={DOCKER}/overlay2/c1/work,index=off")


def _mapped_root(monkeypatch, tmp_path, mount_as=None, kernel_class=FakeKernel) -> tuple[list, object]:
    """MappedMounts.enter and leave for a Docker overlay2 root with a bind of Docker's own
    (/etc/hostname) and one from elsewhere (/data), against the fake (the container's user
    namespace is fd 77): the record and the config to run."""
    from hardrun.runtime import oci_userns
    from hardrun.runtime.mounts import MountPlan
    from hardrun.runtime.userns import IdMaps
    calls: list = []
    kernel = with_a_user_namespace(calls, kernel_class)
    monkeypatch.setattr(idmap, "userns_with", lambda maps: calls.append(["userns", maps.uid]) or 77)
    monkeypatch.setattr(oci_userns, "read_mountinfo", lambda: [oci_userns.MountEntry(MERGED, "overlay", OVERLAY)])
    from hardrun.spec import oci as spec_oci
    monkeypatch.setattr(spec_oci, "is_engine_source", lambda destination, source: True)   # no files to stat here
    if mount_as is not None:
        monkeypatch.setattr(oci_userns, "_mount_as", mount_as)
    directory = tmp_path / CONTAINER_ID    # named after the container, as Docker's bundle directory is
    (directory / "rootfs").mkdir(parents=True)
    plan = bundle.from_document(oci_document(str(directory)), str(directory), False).config
    plan = replace(plan, rootfs=MERGED, id_maps=IdMaps([(0, 500000, 65536)], [(0, 500000, 65536)], "direct"),
                   mounts=(MountPlan("bind", "/etc/hostname", f"{DOCKER}/containers/{CONTAINER_ID}/hostname",
                                     source_is_dir=False),
                           MountPlan("bind", "/data", "/srv/data")))
    mapped = oci_userns.MappedMounts("/run/hardrun-oci/c1", plan, str(directory), k=kernel)
    run_cfg = mapped.enter()
    mapped.leave()
    return [tuple(call) for call in calls], run_cfg


def oci_root_idmapped_before_its_overlay(calls, staging: str) -> None:
    """hardrun-oci's idmapped root: in a mount namespace of its own (a slave: nothing made
    there reaches the host), on a private tmpfs, every layer and the upper directory a detached
    copy idmapped (nosuid, nodev) before it is attached, and the overlay over them mounted
    last, as the container's root (euid), from the idmapped copies only; then back."""
    own = first(calls, "unshare", k.CLONE_NEWNS)
    slave = first(calls, "mount", None, "/", None, k.MS_REC | k.MS_SLAVE)
    tmpfs = first(calls, "mount", "tmpfs", staging, "tmpfs")
    moves = [i for i, call in enumerate(calls) if call[0] == "move_mount"]
    layers_moved = [i for i in moves if calls[i][2].startswith((staging + "/lower-", staging + "/upper"))]
    overlay = first(calls, "mount", "overlay")
    assert own < slave < tmpfs < min(moves) and layers_moved and max(layers_moved) < overlay
    wanted = k.MOUNT_ATTR_IDMAP | k.MOUNT_ATTR_NOSUID | k.MOUNT_ATTR_NODEV
    assert all(calls[i][3] & wanted == wanted and calls[i][2].startswith(staging + "/") for i in moves)
    assert all(call[4] == 77 for call in calls if call[0] == "mount_setattr")
    assert first(calls, "seteuid", 500000) < overlay < first(calls, "seteuid", 0)
    layers = [part for option in calls[overlay][5].split(",") for part in option.partition("=")[2].split(":")
              if option.startswith(("lowerdir=", "upperdir=", "workdir="))]
    assert layers and all(layer.startswith(staging + "/") for layer in layers), layers
    assert overlay < first(calls, "setns", "/proc/self/ns/mnt", k.CLONE_NEWNS) < first(calls, "fchdir")


def test_an_oci_root_is_rebuilt_from_idmapped_layers_in_a_namespace_of_its_own(monkeypatch, tmp_path):
    calls, run_cfg = _mapped_root(monkeypatch, tmp_path)
    staging = "/run/hardrun-oci/c1/mounts"
    oci_root_idmapped_before_its_overlay(calls, staging)
    assert run_cfg.rootfs == f"{staging}/root"
    # Docker's own bind is shown through an idmapped copy; a bind from elsewhere is left as it is
    assert [(plan.target, plan.source) for plan in run_cfg.mounts] == [
        ("/etc/hostname", f"{staging}/bind-0"), ("/data", "/srv/data")]


HOSTNAME_FILE = f"{DOCKER}/containers/{CONTAINER_ID}/hostname"


class SwappingKernel(FakeKernel):
    """The path of the engine's /etc/hostname resolves once (opened or made real) to itself,
    then, a link swapped into it meanwhile by whoever may write a directory on it, to the
    host's /etc."""
    resolved = 0

    def _resolve(self, path):
        if path != HOSTNAME_FILE:
            return path
        self.resolved += 1
        return path if self.resolved == 1 else "/etc"

    def realpath(self, path):
        return super().realpath(self._resolve(path))

    def open_fd(self, path, flags, mode=0o777, *, dir_fd=None):
        return super().open_fd(self._resolve(path) if dir_fd is None else path, flags, mode, dir_fd=dir_fd)


def test_an_engine_bind_is_idmapped_from_the_file_judged(monkeypatch, tmp_path):
    """The bind's source is opened once, judged by where that opening is and idmapped through
    it: a link swapped in after the check does not get the host's /etc idmapped onto the
    container's range (its root would own it)."""
    calls, run_cfg = _mapped_root(monkeypatch, tmp_path, kernel_class=SwappingKernel)
    staging = "/run/hardrun-oci/c1/mounts"
    assert ("move_mount", HOSTNAME_FILE, f"{staging}/bind-0", calls[first(calls, "move_mount", HOSTNAME_FILE)][3]) \
        in calls
    assert ("open", "/etc") not in calls, "the path was resolved twice"
    assert run_cfg.mounts[0].source == f"{staging}/bind-0"


def test_control_a_bind_source_opened_again_by_path_follows_the_swap():
    """The control: with the same swap, opening the source by path after the check (as the
    idmapping did) idmaps the host's /etc."""
    from hardrun.runtime import oci_userns
    calls: list = []
    kernel = SwappingKernel(calls, -1)
    assert kernel.realpath(HOSTNAME_FILE) == HOSTNAME_FILE     # the check's resolution
    oci_userns._idmapped_bind(HOSTNAME_FILE, "/run/hardrun-oci/c1/mounts/bind-0", 77, False, "the bind", k=kernel)
    assert [call[1] for call in calls if call[0] == "move_mount"] == ["/etc"]


def test_control_an_oci_overlay_mounted_as_host_root_is_caught(monkeypatch, tmp_path):
    from hardrun.runtime import oci_userns

    def as_host_root(ids, target, options, flags, k=k):
        k.mount("overlay", target, "overlay", flags, options)     # no switch to the container's root
    calls, _ = _mapped_root(monkeypatch, tmp_path, mount_as=as_host_root)
    assert oci_userns._mount_as is as_host_root
    with pytest.raises(AssertionError):
        oci_root_idmapped_before_its_overlay(calls, "/run/hardrun-oci/c1/mounts")


def test_control_an_oci_overlay_mounted_before_its_idmapped_layers_is_caught(monkeypatch, tmp_path):
    calls, _ = _mapped_root(monkeypatch, tmp_path)
    overlay = first(calls, "mount", "overlay")
    with pytest.raises(AssertionError):
        oci_root_idmapped_before_its_overlay(moved(calls, overlay, first(calls, "move_mount")),
                                             "/run/hardrun-oci/c1/mounts")
