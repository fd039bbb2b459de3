"""Docker's containers in a user namespace of their own under hardrun-oci (`--userns auto`, the
default): seen from inside the container and from the host. The control of each claim is the
same container under `--userns keep` (the `hardrun-keep` runtime) or runc: no user namespace,
the container's root is the host's."""
from __future__ import annotations

import os
import stat

import pytest

from tests.engines.conftest import assert_container_gone
from tests.helpers import lease_holders

pytestmark = pytest.mark.runtime


def uid_map(docker, runtime: str, network: str = "none") -> list[int]:
    line = docker.docker("run", "--rm", "--network", network, "--runtime", runtime, "bb:1",
                         "cat", "/proc/self/uid_map").stdout.split()
    return [int(field) for field in line]


def pool():
    from hardrun.runtime.userns import root_id_pool
    return root_id_pool()


def test_the_container_gets_a_leased_range_and_keep_leaves_it_as_dockers(docker, hardrun_oci):
    inside, outside, count = uid_map(docker, "hardrun")
    uid_base, _, size = pool()
    assert (inside, count) == (0, 65536)
    assert uid_base <= outside and outside + count <= uid_base + size, "not a range of the pool"
    # control: under keep (and runc) the container's root is the host's
    assert uid_map(docker, "hardrun-keep") == [0, 0, 4294967295]
    assert uid_map(docker, "runc") == [0, 0, 4294967295]


def test_what_the_container_creates_in_its_root_and_a_volume_is_host_root_owned_on_disk(docker, hardrun_oci):
    docker.docker("volume", "create", "idmapped-volume")
    try:
        seen = docker.docker("run", "--name", "idmapped-files", "--network", "none", "--runtime", "hardrun",
                             "-v", "idmapped-volume:/data", "bb:1", "sh", "-c",
                             "cat /proc/self/uid_map; echo made > /made; echo made > /data/made; "
                             "stat -c '%u %g' /made /data/made /etc/hosts /bin/sh").stdout.splitlines()
        outside = int(seen[0].split()[1])
        assert outside != 0 and seen[1:] == ["0 0"] * 4, seen
        upper = docker.docker("inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", "idmapped-files").stdout.strip()
        volume = docker.docker("volume", "inspect", "-f", "{{.Mountpoint}}", "idmapped-volume").stdout.strip()
        for path in (os.path.join(upper, "made"), os.path.join(volume, "made")):
            info = os.lstat(path)
            # the container's root is host uid `outside`; through the idmap its files are root's on disk
            assert (info.st_uid, info.st_gid) == (0, 0), path
            with open(path) as handle:
                assert handle.read() == "made\n"
    finally:
        container = docker.docker("inspect", "-f", "{{.Id}}", "idmapped-files", check=False).stdout.strip()
        docker.docker("rm", "-f", "idmapped-files", check=False)
        docker.docker("volume", "rm", "idmapped-volume", check=False)
    assert_container_gone(container, docker.directory)


@pytest.fixture
def host_root_file(tmp_path):
    directory = tmp_path / "host"
    directory.mkdir()
    directory.chmod(0o755)
    target = directory / "owned-by-host-root"
    target.write_text("host\n")
    target.chmod(0o644)
    assert os.lstat(target).st_uid == 0
    return directory, target


WRITE = "echo container >> /h/owned-by-host-root && echo wrote || echo refused; cat /h/owned-by-host-root"


def test_the_containers_root_cannot_write_a_host_root_file_through_a_bind(docker, hardrun_oci, host_root_file):
    directory, target = host_root_file
    hardrun = docker.docker("run", "--rm", "--network", "none", "--runtime", "hardrun", "-v", f"{directory}:/h",
                            "bb:1", "sh", "-c", WRITE)
    assert hardrun.stdout.splitlines() == ["refused", "host"], hardrun.stdout + hardrun.stderr
    assert target.read_text() == "host\n"
    # control: the same container under --userns keep, and under runc, writes the host's file
    for runtime in ("hardrun-keep", "runc"):
        control = docker.docker("run", "--rm", "--network", "none", "--runtime", runtime, "-v", f"{directory}:/h",
                                "bb:1", "sh", "-c", WRITE)
        assert control.stdout.splitlines()[0] == "wrote", (runtime, control.stdout + control.stderr)
    assert target.read_text() == "host\ncontainer\ncontainer\n"


PLANT = ("for d in /other /store /device; do echo x > $d/planted && echo wrote || echo refused; done; "
         "echo 127.0.0.2 own >> /etc/hosts && echo hosts || echo no-hosts; "
         "echo v > /data/v && echo volume || echo no-volume")


def test_another_containers_files_and_the_engines_storage_stay_host_binds(docker, hardrun_oci, host_root_file):
    """Under the engine's storage only the container's own files and named volumes are idmapped:
    `-v <data-root>/containers/<other id>:/other -v <data-root>/image:/store`, and a volume that
    is a bind of a host directory (`--opt o=bind,device=DIR`), leave the container's root unable
    to plant a file owned by host root there. Controls: its own /etc/hosts and a named volume are
    writable in the same container, and the same attack under `--userns keep` and runc (no user
    namespace: root is the host's) plants the three files."""
    data_root = docker.directory / "data"
    host_directory, _ = host_root_file
    other = docker.docker("run", "-d", "--network", "none", "--runtime", "runc", "bb:1").stdout.strip()
    docker.docker("volume", "create", "own-volume")
    docker.docker("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", f"device={host_directory}",
                  "device-volume")
    planted = [data_root / "containers" / other / "planted", data_root / "image" / "planted",
               host_directory / "planted"]
    try:
        def attack(runtime: str) -> list[str]:
            return docker.docker("run", "--rm", "--network", "none", "--runtime", runtime,
                                 "-v", f"{data_root / 'containers' / other}:/other",
                                 "-v", f"{data_root / 'image'}:/store", "-v", "device-volume:/device",
                                 "-v", "own-volume:/data", "bb:1", "sh", "-c", PLANT).stdout.splitlines()
        assert attack("hardrun") == ["refused", "refused", "refused", "hosts", "volume"]
        assert not any(path.exists() for path in planted)
        for runtime in ("hardrun-keep", "runc"):
            assert attack(runtime) == ["wrote", "wrote", "wrote", "hosts", "volume"], runtime
            assert all(os.lstat(path).st_uid == 0 for path in planted)
            for path in planted:
                path.unlink()
    finally:
        for path in planted:
            if path.exists():
                path.unlink()
        docker.docker("rm", "-f", other, check=False)
        docker.docker("volume", "rm", "own-volume", "device-volume", check=False)
    assert_container_gone(other, docker.directory)


def test_docker_rm_leaves_no_lease_mount_or_overlay(docker, hardrun_oci):
    from hardrun.runtime.state import state_root
    from hardrun.runtime.userns import RANGES_DIR
    container = docker.docker("run", "-d", "--network", "none", "--runtime", "hardrun", "bb:1").stdout.strip()
    try:
        pid = int(docker.docker("inspect", "-f", "{{.State.Pid}}", container).stdout)
        with open(f"/proc/{pid}/uid_map") as handle:
            outside = int(handle.read().split()[1])
        ranges, lease = os.path.join(state_root(), RANGES_DIR), f"{outside - pool()[0]}-65536"
        assert lease_holders(ranges).get(lease, [None])[0] == pid, "the lease does not name the container's init"
        upper = docker.docker("inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", container).stdout.strip()
        assert not _host_mounts_of(upper), "the rebuilt overlay is mounted on the host"
    finally:
        docker.docker("rm", "-f", container)
    assert_container_gone(container, docker.directory)
    # gone, or taken again since by another container: never ours
    assert lease_holders(ranges).get(lease, [None])[0] != pid
    assert not _host_mounts_of(upper)


def _host_mounts_of(upper: str) -> list[str]:
    parent = os.path.dirname(upper)
    with open("/proc/self/mountinfo") as handle:
        return [line for line in handle if parent in line and "merged" not in line.split()[4]]


def test_a_container_joining_a_hardrun_containers_network_gets_its_range(docker, hardrun_oci):
    """`--network container:X`: X's network namespace is owned by X's user namespace, so the
    joining container shares X's user namespace and range (and its lease: X's stays until
    both are gone). Control: joining a runc container's network keeps Docker's choice (host
    root), as does `--userns keep`."""
    first = docker.docker("run", "-d", "--network", "none", "--runtime", "hardrun", "bb:1").stdout.strip()
    control = docker.docker("run", "-d", "--network", "none", "--runtime", "runc", "bb:1").stdout.strip()
    try:
        pid = int(docker.docker("inspect", "-f", "{{.State.Pid}}", first).stdout)
        with open(f"/proc/{pid}/uid_map") as handle:
            owners = [int(field) for field in handle.read().split()]
        assert owners[:2] != [0, 0]
        assert uid_map(docker, "hardrun", network=f"container:{first}") == owners
        assert uid_map(docker, "hardrun-keep", network=f"container:{first}") == [0, 0, 4294967295]
        assert uid_map(docker, "hardrun", network=f"container:{control}") == [0, 0, 4294967295]
    finally:
        docker.docker("rm", "-f", first, control)
    assert_container_gone(first, docker.directory)


def test_the_overlay_itself_cannot_be_idmapped(tmp_path):
    """Why the root is rebuilt: MOUNT_ATTR_IDMAP on an overlayfs mount is EINVAL on this
    kernel (control: the same call on a directory of the host's ext4 works)."""
    import errno
    from hardrun.runtime import syscalls as k
    from hardrun.runtime.idmap import userns_with
    from hardrun.runtime.userns import IdMaps
    for name in ("lower", "upper", "work", "merged"):
        (tmp_path / name).mkdir()
    maps = IdMaps([(0, 100000, 65536)], [(0, 100000, 65536)], "direct")
    pid = os.fork()
    if pid == 0:      # in a child: the overlay is mounted in a mount namespace of its own
        code = 1
        try:
            k.unshare(k.CLONE_NEWNS)
            k.mount(None, "/", None, k.MS_REC | k.MS_PRIVATE)
            k.mount("overlay", str(tmp_path / "merged"), "overlay", 0,
                    f"lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,workdir={tmp_path}/work")
            userns = userns_with(maps)
            results = []
            for path in (tmp_path / "merged", tmp_path / "lower"):
                fd = os.open(path, k.O_PATH | os.O_CLOEXEC)
                tree = k.open_tree(fd, recursive=False)
                try:
                    k.mount_setattr(tree, k.MOUNT_ATTR_IDMAP, recursive=False, userns_fd=userns)
                    results.append(0)
                except OSError as error:
                    results.append(error.errno)
            code = 0 if results == [errno.EINVAL, 0] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "overlayfs accepted an idmap, or ext4 refused one"
    assert stat.S_ISDIR(os.lstat(tmp_path / "merged").st_mode)
