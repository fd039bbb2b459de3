"""hardrun-oci --userns auto (the default) outside an engine: which bundles get a user
namespace of their own, how an overlay's layers are read from mountinfo, and that a root which
cannot be idmapped is refused (fail closed) where `--userns keep` runs it."""
from __future__ import annotations

import os
import subprocess

import pytest

from hardrun.runtime import oci_userns
from tests.oci.conftest import make_bundle


def linux(*namespaces):
    return {"linux": {"namespaces": list(namespaces)}}


@pytest.mark.parametrize("document, mode, kind", [
    (linux({"type": "mount"}, {"type": "pid"}), "auto", "own"),
    (linux({"type": "mount"}, {"type": "pid"}), "keep", "keep"),
    (linux({"type": "mount"}, {"type": "user"}), "auto", "keep"),              # the engine's own mapping
    # the host's own network namespace, by /proc: no hardrun-oci container's
    (linux({"type": "mount"}, {"type": "network", "path": "/proc/self/ns/net"}), "auto", "keep"),
])
def test_which_bundles_get_a_user_namespace(document, mode, kind, tmp_path):
    from hardrun.runtime.oci_create import user_namespace_plan
    plan = user_namespace_plan(document, mode, "c1", str(tmp_path / "root"))
    assert plan.kind == kind
    if document["linux"]["namespaces"][-1].get("path"):
        assert "joins network by path of a process that is no hardrun-oci container's" in plan.note


def test_the_lease_goes_into_the_document_with_a_cgroup_namespace():
    from hardrun.runtime.userns import IdLease
    document = linux({"type": "mount"})
    note = oci_userns.add_to_document(document, IdLease(165536, 165536, 65536, "/nonexistent"))
    assert document["linux"]["namespaces"] == [{"type": "mount"}, {"type": "user"}, {"type": "cgroup"}]
    assert document["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 165536, "size": 65536}]
    assert "165536-231071" in note and "cgroup namespace" in note


def test_overlay_layers_from_mountinfo_options():
    options = (r"rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B\072c,"
               r"upperdir=/var/lib/docker/overlay2/x/diff,workdir=/var/lib/docker/overlay2/x/work,index=off")
    lowers, upper, work = oci_userns.overlay_layers(options, "/var/lib/docker/overlay2")
    assert lowers == ["/var/lib/docker/overlay2/l/A", "/var/lib/docker/overlay2/l/B:c"]
    assert (upper, work) == ("/var/lib/docker/overlay2/x/diff", "/var/lib/docker/overlay2/x/work")
    # Docker mounts an image of many layers with paths relative to its driver's home
    lowers, upper, work = oci_userns.overlay_layers("lowerdir=l/A:l/B,upperdir=x/diff,workdir=x/work", "/home")
    assert lowers == ["/home/l/A", "/home/l/B"] and upper == "/home/x/diff" and work == "/home/x/work"


def test_the_engines_store_is_where_the_overlay_layout_says():
    assert oci_userns._store_of("/d/overlay2/ID/merged", "/d/overlay2/ID/diff") == ["/d"]
    assert oci_userns._store_of("/b/rootfs", "/elsewhere/diff") == []


def test_a_root_that_cannot_be_idmapped_is_refused_where_keep_runs_it(oci, oci_rootfs, tmp_path):
    """A root inside an overlay but not its mount point: overlayfs refuses the idmap (EINVAL),
    so under auto nothing is created; control: under keep the same bundle runs."""
    import shutil
    merged, lower = tmp_path / "merged", tmp_path / "lower"
    merged.mkdir()
    shutil.copytree(oci_rootfs, lower / "rootfs", symlinks=True)
    (tmp_path / "empty").mkdir()      # two layers: overlayfs wants two without an upper one
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}:{tmp_path / 'empty'}", str(merged)],
                   check=True)
    try:
        bundle = make_bundle(tmp_path / "b", str(merged / "rootfs"), ["/bin/echo", "ran"])
        oci.userns = "auto"
        refused = oci("run", "--bundle", bundle, "c1")
        assert refused.returncode == 1 and "ran" not in refused.stdout
        assert "cannot be idmapped (EINVAL" in refused.stderr and "overlay" in refused.stderr, refused.stderr
        assert "--userns keep" in refused.stderr
        assert not os.path.exists(os.path.join(oci.root, "c1"))
        oci.userns = "keep"
        control = oci("run", "--bundle", bundle, "c2")
        assert (control.returncode, control.stdout) == (0, "ran\n"), control.stderr
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_a_plain_directory_root_is_an_idmapped_bind_and_a_host_bind_is_not(oci, oci_rootfs, tmp_path):
    """Under auto: the uid map is a leased range, the root's files are root's (through the
    idmap), a file the container makes in its root is host root's on disk, and a host
    directory bound from outside the bundle is not writable by the container's root.
    Control: under keep the map is the host's and the host directory is writable."""
    import shutil
    root = tmp_path / "root"
    shutil.copytree(oci_rootfs, root, symlinks=True)
    host = tmp_path / "host"
    host.mkdir()
    host.chmod(0o755)
    script = ("cat /proc/self/uid_map; stat -c '%u' /bin/busybox; touch /made && echo made; "
              "touch /host/x 2>/dev/null && echo host-writable || echo host-refused")
    bundle = make_bundle(tmp_path / "b", str(root), ["/bin/sh", "-c", script],
                         mounts=[{"destination": "/host", "type": "bind", "source": str(host),
                                  "options": ["rbind", "rw"]}], root={"path": "rootfs", "readonly": False})
    oci.userns = "auto"
    auto = oci("run", "--bundle", bundle, "c1")
    lines = auto.stdout.splitlines()
    assert auto.returncode == 0 and len(lines) == 4, auto.stdout + auto.stderr
    assert lines[0].split()[:2] != ["0", "0"] and lines[1:] == ["0", "made", "host-refused"], lines
    assert os.lstat(root / "made").st_uid == 0
    oci.userns = "keep"
    keep = oci("run", "--bundle", bundle, "c2")
    assert keep.stdout.splitlines()[0].split() == ["0", "0", "4294967295"]
    assert keep.stdout.splitlines()[-1] == "host-writable", keep.stdout + keep.stderr


def test_the_containers_engine_files_are_idmapped_wherever_the_engine_keeps_them(oci, oci_rootfs, tmp_path):
    """Podman's layout: the bundle in its graphroot (`<id>/userdata`), /etc/hosts and
    /etc/hostname in its runroot, outside the bundle and any storage the root shows. The
    container's own (in a directory named after it) is idmapped and writable by its root;
    another container's, bound the same way, is a host bind: refused. Control: under keep
    both are written."""
    import shutil
    root = tmp_path / "root"
    shutil.copytree(oci_rootfs, root, symlinks=True)
    own, other = "a" * 64, "b" * 64
    for name in (own, other):
        userdata = tmp_path / "runroot" / name / "userdata"
        userdata.mkdir(parents=True)
        (userdata / "hosts").write_text("127.0.0.1 localhost\n")
        (userdata / "hostname").write_text(f"{name[:12]}\n")
    script = ("cat /proc/self/uid_map; for f in /etc/hosts /etc/hostname; do "
              "echo x >> $f && echo wrote $f || echo refused $f; done")
    binds = [{"destination": "/etc/hosts", "type": "bind", "source": str(tmp_path / "runroot" / own / "userdata" /
                                                                          "hosts"), "options": ["bind", "rw"]},
             {"destination": "/etc/hostname", "type": "bind", "source": str(tmp_path / "runroot" / other /
                                                                              "userdata" / "hostname"),
              "options": ["bind", "rw"]}]
    seen = {}
    for mode in ("auto", "keep"):
        bundle = make_bundle(tmp_path / mode / own / "userdata", str(root), ["/bin/sh", "-c", script], mounts=binds,
                             root={"path": "rootfs", "readonly": False})
        oci.userns = mode
        result = oci("run", "--bundle", bundle, own)
        assert result.returncode == 0, result.stdout + result.stderr
        seen[mode] = result.stdout.splitlines()
    assert seen["auto"][0].split()[:2] != ["0", "0"]
    assert seen["auto"][1:] == ["wrote /etc/hosts", "refused /etc/hostname"], seen["auto"]
    assert seen["keep"][1:] == ["wrote /etc/hosts", "wrote /etc/hostname"], seen["keep"]
    assert os.stat(tmp_path / "runroot" / own / "userdata" / "hosts").st_uid == 0


def test_an_overlay_root_is_rebuilt_over_idmapped_layers(oci, oci_rootfs, tmp_path):
    """Docker's layout (upper and work beside the merged directory): the container's root is
    not host root, yet what it creates and deletes lands in the upper layer as host root's
    (a whiteout for the deleted file), and the rebuilt overlay is writable (overlayfs mounts
    read-only when its mounter has no id on disk in the upper layer). Control: the engine's
    overlay itself is left as it was, and under keep the map is the host's."""
    import shutil
    lower, container = tmp_path / "lower", tmp_path / "container"
    shutil.copytree(oci_rootfs, lower, symlinks=True)
    for name in ("diff", "work", "merged"):
        (container / name).mkdir(parents=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={container / 'diff'},workdir={container / 'work'}",
                    str(container / "merged")], check=True)
    try:
        script = "cat /proc/self/uid_map; touch /made && echo made; rm /bin/true && echo removed"
        bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sh", "-c", script],
                             root={"path": str(container / "merged"), "readonly": False})
        oci.userns = "auto"
        auto = oci("run", "--bundle", bundle, "c1")
        lines = auto.stdout.splitlines()
        assert lines[1:] == ["made", "removed"], auto.stdout + auto.stderr
        assert lines[0].split()[:2] != ["0", "0"]
        made = os.lstat(container / "diff" / "made")
        whiteout = os.lstat(container / "diff" / "bin" / "true")
        assert (made.st_uid, made.st_gid, whiteout.st_uid, whiteout.st_rdev) == (0, 0, 0, 0)
        assert os.path.exists(lower / "bin" / "true")
        oci.userns = "keep"
        keep = oci("run", "--bundle", bundle, "c2")
        assert keep.stdout.splitlines()[0].split() == ["0", "0", "4294967295"], keep.stdout + keep.stderr
    finally:
        subprocess.run(["umount", str(container / "merged")], check=True)


def test_delete_releases_the_lease_and_gc_reclaims_a_dead_inits(oci, oci_rootfs, tmp_path, own_state):
    """The range is the init's: `delete` frees it; an init that died without a delete leaves
    a lease `hardrun gc` reclaims. Control: gc keeps the lease of a live container."""
    import signal
    from hardrun.runtime.userns import RANGES_DIR
    from tests.helpers import lease_holders, run_hardrun
    from tests.oci.conftest import process_gone
    ranges = own_state / RANGES_DIR

    def leases():
        return sorted(lease_holders(ranges))

    oci.userns = "auto"
    pids = {}
    for name in ("freed", "killed", "alive"):
        bundle = make_bundle(tmp_path / name, oci_rootfs, ["/bin/sleep", "60"])
        oci("create", "--bundle", bundle, name, check=True)
        pids[name] = oci.state(name)["pid"]
    assert len(leases()) == 3
    holders = {pids[0]: lease for lease, pids in lease_holders(ranges).items()}
    assert set(holders) == set(pids.values()), "each lease names its container's init"
    oci("delete", "freed", check=True)
    assert holders[pids["freed"]] not in leases()
    os.kill(pids["killed"], signal.SIGKILL)
    assert wait_gone(pids["killed"], process_gone)
    gc = run_hardrun("gc")
    assert gc.returncode == 0, gc.stderr
    assert "user-namespace id range" in gc.stdout, gc.stdout
    assert leases() == [holders[pids["alive"]]]       # the control: the live one is kept
    oci("delete", "killed", check=True)
    oci("delete", "--force", "alive", check=True)
    assert leases() == []


def wait_gone(pid: int, process_gone) -> bool:
    from tests.helpers import wait_until
    wait_until(lambda: process_gone(pid), "the killed init to be gone")
    return True


@pytest.mark.parametrize("value, expected", [
    ("0 2147483647", "0 65535"),      # Docker's "every group": every group of the container
    ("0 1000", "0 1000"),             # already inside the mapping: as asked
    ("70000 80000", "70000 80000"),   # outside it altogether: left for the kernel to refuse
])
def test_dockers_ping_group_range_becomes_the_containers_groups(value, expected):
    linux = {"sysctl": {"net.ipv4.ping_group_range": value}}
    oci_userns._clamp_ping_group_range(linux, 65536)
    assert linux["sysctl"]["net.ipv4.ping_group_range"] == expected
