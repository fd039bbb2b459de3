"""`hardrun run IMAGE` as a non-root user (nobody, made so by setpriv): the store under
$XDG_DATA_HOME/hardrun, the layers unpacked by the user into one tree of the image's
final files, run as a read-only --rootfs with the confinement of a rootless --rootfs
container. Every file is the user's, root inside (a single id mapping: the image's other
owners collapse to root)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.helpers import NOBODY, as_user, system_python
from tests.imagebuild import Image, busybox_tree, dir_layer, entry, tar_layer, write_layout

pytestmark = pytest.mark.runtime

STATUS = "grep -E '^(Cap|NoNewPrivs|Seccomp|Uid|Gid|Groups)' /proc/self/status; cat /proc/self/uid_map"


@pytest.fixture(scope="module")
def rootless_image(public_rootfs):
    """An image nobody can read (busybox and a 0555 directory; a top layer with an
    app-owned note, a file in that directory, a whiteout and an opaque directory) and
    the public copy of hardrun (with click, for the store's commands)."""
    import click
    rootfs, home, source = public_rootfs
    if not (source / "click").exists():
        shutil.copytree(Path(click.__file__).parent, source / "click", ignore=shutil.ignore_patterns("__pycache__"))
    base = home.parent / "rootless-image"
    base.mkdir()
    tree = busybox_tree(base / "tree")
    (tree / "home" / "old").mkdir()
    (tree / "opt" / "ro").mkdir(parents=True)
    (tree / "opt" / "ro" / "a").write_text("a\n")
    os.chmod(tree / "opt" / "ro", 0o555)        # as Fedora's /usr/bin: a user cannot write in it
    top = tar_layer([entry("etc/note", content=b"app's note\n", mode=0o640, uid=1000, gid=1000),
                     entry("opt/ro/b", content=b"b\n"),
                     entry("bin/.wh.vi"), entry("home/.wh..wh..opq"), entry("home/new", tarfile.DIRTYPE)])
    layout = write_layout(base / "layout", {"1": Image(
        [dir_layer(tree), top], {"Cmd": ["/bin/sh", "-c", "echo $GREETING; pwd"], "Env": ["PATH=/bin", "GREETING=hi"],
                                 "WorkingDir": "/home/new"})})
    for path in [base, *base.rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return f"oci:{layout}:1", rootfs, source


@pytest.fixture
def data_home(public_rootfs, tmp_path):
    """An $XDG_DATA_HOME of nobody's own, removed afterwards."""
    _, home, _ = public_rootfs
    directory = Path(home.parent / f"data-{tmp_path.name}")
    directory.mkdir()
    os.chown(directory, NOBODY, NOBODY)
    yield directory
    shutil.rmtree(directory)


def as_nobody(source, data_home, *argv) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(data_home), "PYTHONPATH": str(source),
           "XDG_RUNTIME_DIR": str(data_home), "XDG_DATA_HOME": str(data_home),
           # a cgroup parent of its own: `hardrun gc` judges only what this test made
           "HARDRUN_CGROUP_PARENT": f"hardrun-test-rootless-{os.getpid()}"}
    return subprocess.run(as_user(NOBODY, system_python(), "-m", "hardrun", *argv), env=env, capture_output=True,
                          text=True, timeout=120, cwd="/")


def test_an_image_runs_rootless_from_the_users_own_store(rootless_image, data_home):
    image, _, source = rootless_image
    done = as_nobody(source, data_home, "run", image)
    assert (done.returncode, done.stdout) == (0, "hi\n/home/new\n"), done.stderr
    inside = as_nobody(source, data_home, "run", image, "sh", "-c",
                       "id -u; stat -c '%u %a' /etc/note; cat /etc/note; ls /bin/vi; ls /home")
    assert inside.stdout.split("\n")[:5] == ["0", "0 640", "app's note", "new", ""], inside.stderr
    assert "ls: /bin/vi: No such file or directory" in inside.stderr            # the whiteout applied
    modes = as_nobody(source, data_home, "run", image, "sh", "-c", "ls /opt/ro; stat -c %a /opt/ro /etc")
    assert modes.stdout.split() == ["a", "b", "555", "755"], modes.stderr       # the archive's modes, at the end
    store = data_home / "hardrun"
    merged = list((store / "merged").iterdir())
    assert len(merged) == 1 and merged[0].stat().st_uid == NOBODY
    assert (merged[0] / "root" / "etc" / "note").stat().st_uid == NOBODY   # unpacked by the user
    assert os.listdir(store / "tmp") == []


def test_the_confinement_is_that_of_a_rootless_rootfs_container(rootless_image, data_home):
    image, rootfs, source = rootless_image
    from_image = as_nobody(source, data_home, "run", image, "sh", "-c", STATUS)
    from_rootfs = as_nobody(source, data_home, "run", "--rootfs", str(rootfs), "--", "sh", "-c", STATUS)
    assert from_image.returncode == 0, from_image.stderr
    assert from_image.stdout == from_rootfs.stdout
    assert "NoNewPrivs:\t1" in from_image.stdout and "CapEff:\t0000000000000000" in from_image.stdout
    assert from_image.stdout.splitlines()[-1].split() == ["0", str(NOBODY), "1"]


def test_the_container_cannot_write_the_stores_tree(rootless_image, data_home):
    """Inside, the image's tree is read-only, though its files are the container root's.
    Control: the same file of the store, written by the same user outside the container."""
    image, _, source = rootless_image
    attack = "echo changed > /etc/note && echo wrote"
    inside = as_nobody(source, data_home, "run", image, "sh", "-c", attack)
    assert "wrote" not in inside.stdout and "Read-only file system" in inside.stderr
    note = next((data_home / "hardrun" / "merged").iterdir()) / "root" / "etc" / "note"
    assert note.read_text() == "app's note\n"
    control = subprocess.run(as_user(NOBODY, "sh", "-c", f"echo changed > {note} && echo wrote"),
                             capture_output=True, text=True)
    assert control.stdout == "wrote\n" and note.read_text() == "changed\n", control.stderr


def test_read_write_writes_a_copy_thrown_away_at_exit(rootless_image, data_home):
    image, _, source = rootless_image
    written = as_nobody(source, data_home, "run", "--read-write", image, "sh", "-c",
                        "echo new > /etc/added && cat /etc/added")
    assert (written.returncode, written.stdout) == (0, "new\n"), written.stderr
    store = data_home / "hardrun"
    assert not (next((store / "merged").iterdir()) / "root" / "etc" / "added").exists()
    assert os.listdir(store / "tmp") == []
    again = as_nobody(source, data_home, "run", image, "ls", "/etc/added")
    assert again.returncode != 0


def test_a_volume_target_the_image_lacks_and_gc(rootless_image, data_home):
    image, _, source = rootless_image
    shared = data_home / "shared"
    shared.mkdir()
    shared.joinpath("file").write_text("from the host\n")
    os.chmod(shared / "file", 0o644)
    mounted = as_nobody(source, data_home, "run", "-v", f"{shared}:/srv/data:ro", image, "cat", "/srv/data/file")
    assert mounted.stdout == "from the host\n", mounted.stderr
    listed = as_nobody(source, data_home, "images")
    assert listed.returncode == 0 and "layout" in listed.stdout, listed.stderr
    assert as_nobody(source, data_home, "rmi", image).returncode == 0
    collected = as_nobody(source, data_home, "gc")
    assert collected.returncode == 0, collected.stderr
    assert os.listdir(data_home / "hardrun" / "merged") == []


def test_a_non_root_image_user_needs_subordinate_ids(rootless_image, data_home):
    """With only the caller's own id mapped, the image's user 1000 has no id inside: one
    clear line, nothing started."""
    image, _, source = rootless_image
    refused = as_nobody(source, data_home, "run", "-u", "1000", image, "id")
    assert refused.returncode == 125 and "uid 1000 is outside the user namespace's mapped range" in refused.stderr
    assert "Traceback" not in refused.stderr
