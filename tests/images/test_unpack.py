"""Unpacking layers is an attack surface: no entry writes, links or points outside the
layer's root. Each attack comes with its control: plain `tarfile.extractall` (Python
3.11.2 has no extraction filter) on the same archive does reach outside."""
from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardrun.images.manifest import Descriptor, ImageError
from hardrun.images.layers import Layer
from hardrun.images.reference import Location
from hardrun.images.sources import Source
from hardrun.runtime.unpack import OPAQUE_XATTR, unpack_layer
from tests.imagebuild import digest, entry, tar_layer
from tests.rootfs import require_root


class BytesSource(Source):
    def __init__(self, blobs):
        super().__init__(Location("oci", "memory"))
        self.blobs = {digest(b): b for b in blobs}

    def _open(self, d):
        return io.BytesIO(self.blobs[d])


def unpack(data: bytes, root, rootless=False):
    os.makedirs(root, exist_ok=True)
    source = BytesSource([data])
    with Layer(source, Descriptor("", digest(data), len(data)), digest(data)) as layer:
        return unpack_layer(layer, str(root), rootless=rootless).skipped


def control(data: bytes, root):
    """What plain tarfile does with the same archive."""
    os.makedirs(root, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(str(root))


def snapshot(directory):
    """Every path below `directory` with its type, size and content digest."""
    found = {}
    for top, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(top, name)
            info = os.lstat(path)
            content = open(path, "rb").read() if stat.S_ISREG(info.st_mode) else b""
            found[path] = (stat.S_IFMT(info.st_mode), info.st_size, digest(content), info.st_ino)
    return found


@pytest.fixture
def box(tmp_path):
    """tmp/outside (a victim tree with a secret) beside tmp/store/layers/root."""
    require_root()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"secret")
    root = tmp_path / "store" / "layers" / "root"
    root.mkdir(parents=True)
    return tmp_path, root


def outside_state(tmp_path):
    """Everything below tmp_path but the store (where layers go) and the controls' roots."""
    ignored = (str(tmp_path / "store"), str(tmp_path / "control"))
    return {p: v for p, v in snapshot(tmp_path).items() if not p.startswith(ignored)}


def assert_outside_unchanged(tmp_path, before):
    assert outside_state(tmp_path) == before


ATTACKS = {
    "absolute path": lambda out: [entry(f"{out}/pwned", content=b"x")],
    "dot-dot": lambda out: [entry("../../../outside/pwned", content=b"x")],
    "symlink then entry through it (absolute)": lambda out: [
        entry("link", tarfile.SYMTYPE, linkname=str(out)), entry("link/pwned", content=b"x")],
    "symlink then entry through it (relative)": lambda out: [
        entry("link", tarfile.SYMTYPE, linkname="../../../outside"), entry("link/pwned", content=b"x")],
    "symlink chain": lambda out: [
        entry("a", tarfile.SYMTYPE, linkname="b/../../../../outside"), entry("b", tarfile.DIRTYPE),
        entry("a/pwned", content=b"x")],
    "duplicate entry over a symlink": lambda out: [
        entry("secret", tarfile.SYMTYPE, linkname=f"{out}/secret"), entry("secret", content=b"overwritten")],
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_nothing_is_written_outside(box, attack):
    tmp_path, root = box
    layer = tar_layer(ATTACKS[attack](tmp_path / "outside"))
    before = outside_state(tmp_path)
    try:
        unpack(layer, root)
        # what the entry wrote landed inside the root
        assert any(name in ("pwned", "secret") for _, _, files in os.walk(root) for name in files)
    except ImageError as error:
        assert "Not a directory" in str(error)    # an entry through a link to nothing: refused
    assert_outside_unchanged(tmp_path, before)
    # the control: plain tarfile writes outside
    control(layer, tmp_path / "control" / "a" / "b")
    assert outside_state(tmp_path) != before


def test_entries_through_an_absolute_symlink_land_inside(box):
    tmp_path, root = box
    unpack(tar_layer([entry("etc", tarfile.DIRTYPE), entry("link", tarfile.SYMTYPE, linkname="/etc"),
                      entry("link/passwd", content=b"inside")]), root)
    assert (root / "etc" / "passwd").read_bytes() == b"inside"
    assert os.readlink(root / "link") == "/etc"      # the link itself is kept as the image has it


def test_hardlink_to_a_file_outside_is_refused(box):
    tmp_path, root = box
    secret = tmp_path / "outside" / "secret"
    layer = tar_layer([entry("hl", tarfile.LNKTYPE, linkname=str(secret)), entry("hl", content=b"overwritten")])
    before = outside_state(tmp_path)
    with pytest.raises(ImageError, match="hard link"):
        unpack(layer, root)
    assert_outside_unchanged(tmp_path, before)
    control(layer, tmp_path / "control")
    assert secret.read_bytes() == b"overwritten"


def test_hardlink_through_dot_dot_is_refused(box):
    tmp_path, root = box
    layer = tar_layer([entry("hl", tarfile.LNKTYPE, linkname="../../../outside/secret")])
    with pytest.raises(ImageError, match="hard link"):
        unpack(layer, root)
    control(layer, tmp_path / "control" / "a" / "b")
    assert os.stat(tmp_path / "control" / "a" / "b" / "hl").st_ino == os.stat(tmp_path / "outside" / "secret").st_ino


def test_hardlink_to_an_earlier_layers_file_is_refused(box):
    tmp_path, root = box
    unpack(tar_layer([entry("etc", tarfile.DIRTYPE), entry("etc/shadow", content=b"hash")]), tmp_path / "store" / "l1")
    with pytest.raises(ImageError, match="does not hold"):
        unpack(tar_layer([entry("x", tarfile.LNKTYPE, linkname="etc/shadow")]), root)
    # a hard link to this layer's own file is fine
    unpack(tar_layer([entry("f", content=b"1"), entry("g", tarfile.LNKTYPE, linkname="f")]), tmp_path / "store" / "l3")
    assert os.stat(tmp_path / "store" / "l3" / "g").st_ino == os.stat(tmp_path / "store" / "l3" / "f").st_ino


def test_device_nodes_are_never_made(box):
    tmp_path, root = box
    mem = entry("dev/mem", tarfile.CHRTYPE)
    mem[0].devmajor, mem[0].devminor = 1, 1
    sda = entry("dev/sda", tarfile.BLKTYPE)
    sda[0].devmajor, sda[0].devminor = 8, 0
    layer = tar_layer([mem, sda, entry("fifo", tarfile.FIFOTYPE)])
    skipped = unpack(layer, root)
    assert sorted(skipped) == ["dev/mem", "dev/sda"]
    assert not os.path.lexists(root / "dev" / "mem") and not os.path.lexists(root / "dev" / "sda")
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
    control(layer, tmp_path / "control")
    assert stat.S_ISBLK(os.lstat(tmp_path / "control" / "dev" / "sda").st_mode)


def test_setuid_kept_only_as_the_image_has_it(box):
    tmp_path, root = box
    unpack(tar_layer([entry("suid", content=b"x", mode=0o4755, uid=0), entry("sgid", content=b"x", mode=0o2755, gid=5),
                      entry("plain", content=b"x", mode=0o755, uid=1000, gid=1000)]), root)
    assert stat.S_IMODE(os.stat(root / "suid").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(root / "sgid").st_mode) == 0o2755
    assert (os.stat(root / "sgid").st_gid, stat.S_IMODE(os.stat(root / "plain").st_mode)) == (5, 0o755)
    assert (os.stat(root / "plain").st_uid, os.stat(root / "plain").st_gid) == (1000, 1000)


def test_rootless_keeps_no_setuid_bit_and_no_owner(box):
    tmp_path, root = box
    unpack(tar_layer([entry("suid", content=b"x", mode=0o4755, uid=5)]), root, rootless=True)
    assert stat.S_IMODE(os.stat(root / "suid").st_mode) == 0o755
    assert os.stat(root / "suid").st_uid == os.geteuid()


def test_a_huge_file_of_zeros_costs_no_disk(box):
    tmp_path, root = box
    layer = tar_layer([entry("huge", content=bytes(64 << 20))])
    unpack(layer, root)
    assert os.stat(root / "huge").st_size == 64 << 20
    assert os.stat(root / "huge").st_blocks * 512 < 1 << 20
    control(layer, tmp_path / "control")
    assert os.stat(tmp_path / "control" / "huge").st_blocks * 512 >= 64 << 20


def test_names_that_are_not_utf8_are_kept_as_bytes(box):
    tmp_path, root = box
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        info = tarfile.TarInfo("caf\xe9")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"1"))
    unpack(buffer.getvalue(), root)
    assert os.listdir(os.fsencode(root)) == [b"caf\xe9"]


def test_duplicates_the_last_wins(box):
    tmp_path, root = box
    unpack(tar_layer([entry("a", content=b"one"), entry("a", content=b"two"),
                      entry("d", tarfile.DIRTYPE), entry("d/x", content=b"x"), entry("d", content=b"now a file"),
                      entry("e", tarfile.DIRTYPE, mode=0o700), entry("e", tarfile.DIRTYPE, mode=0o755)]), root)
    assert (root / "a").read_bytes() == b"two"
    assert (root / "d").read_bytes() == b"now a file"
    assert stat.S_IMODE(os.stat(root / "e").st_mode) == 0o755


def test_whiteouts_and_re_adds_through_overlay(box):
    tmp_path, root = box
    layers = [
        tar_layer([entry("a/x", content=b"x1"), entry("a/y", content=b"y1"), entry("b/z", content=b"z"),
                   entry("c/w", content=b"w")]),
        tar_layer([entry("a/.wh.x", content=b""), entry("b/.wh..wh..opq", content=b""), entry("b/new", content=b"n"),
                   entry(".wh.c", content=b""), entry(".wh.q", content=b""), entry("q", content=b"kept")]),
        tar_layer([entry("a/x", content=b"again"), entry("c", tarfile.DIRTYPE), entry("c/v", content=b"v")]),
    ]
    dirs = []
    for n, layer in enumerate(layers):
        dirs.append(tmp_path / "store" / f"l{n}")
        unpack(layer, dirs[-1])
    assert stat.S_ISCHR(os.lstat(dirs[1] / "a" / "x").st_mode)
    assert os.getxattr(dirs[1] / "b", OPAQUE_XATTR) == b"y"
    merged = tmp_path / "merged"
    merged.mkdir()
    lower = ":".join(str(d) for d in reversed(dirs))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lower}", str(merged)], check=True)
    try:
        assert sorted(os.listdir(merged)) == ["a", "b", "c", "q"]
        assert sorted(os.listdir(merged / "a")) == ["x", "y"] and (merged / "a" / "x").read_bytes() == b"again"
        assert os.listdir(merged / "b") == ["new"]
        assert os.listdir(merged / "c") == ["v"]
        assert (merged / "q").read_bytes() == b"kept"
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_a_broken_archive_is_an_error_naming_the_layer(box):
    tmp_path, root = box
    data = tar_layer([entry("a", content=b"x" * 5000)])[:2000]
    with pytest.raises(ImageError, match=digest(data)):
        unpack(data, root)


NAMES = st.sampled_from(["a", "b", "..", ".", "", "link", "/", "outside", "etc", "\udce9", ".wh.a", ".wh..wh..opq"])
PATHS = st.lists(NAMES, min_size=1, max_size=5).map("/".join)
ENTRIES = st.lists(st.tuples(st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                                              tarfile.FIFOTYPE, tarfile.CHRTYPE]),
                             PATHS, st.one_of(PATHS, st.sampled_from(["/", "/tmp", "../../..", "../outside"]))),
                   max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ENTRIES)
def test_fuzz_nothing_escapes(box, entries):
    """Random entries (`..`, absolute paths, links to `/` and outside, whiteouts, non-UTF-8
    names) never write beside the root. The controls are the per-attack tests above (plain
    tarfile writes outside); this property checked with plain tarfile fails at once, and
    writes into the host's `/` doing so: never run it that way outside a throw-away root."""
    tmp_path, _ = box
    base = tempfile.mkdtemp(dir=tmp_path / "store")
    root = os.path.join(base, "deep", "root")
    os.makedirs(root)
    members = []
    for kind, name, target in entries:
        members.append(entry(name or ".", kind, content=b"data" if kind == tarfile.REGTYPE else None,
                             linkname=target if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""))
    try:
        layer = tar_layer(members)
    except (ValueError, UnicodeError):
        return
    before = outside_state(tmp_path)
    parent_before = sorted(os.listdir(os.path.join(base, "deep")))
    try:
        unpack(layer, root)
    except ImageError:
        pass
    assert_outside_unchanged(tmp_path, before)
    assert sorted(os.listdir(os.path.join(base, "deep"))) == parent_before


# -- rootless: every layer into one tree (merged=True) ----------------------------------------

def unpack_merged(layers, root):
    os.makedirs(root, exist_ok=True)
    for data in layers:
        with Layer(BytesSource([data]), Descriptor("", digest(data), len(data)), digest(data)) as layer:
            unpack_layer(layer, str(root), rootless=True, merged=True)


def test_merged_gives_the_tree_the_overlay_of_the_layers_gives(box):
    """The layers of the overlay test above, unpacked into one tree: the same final files
    (the overlay test is the reference). Also: a whiteout does not remove this layer's own
    name, an opaque directory keeps what its own layer put there, below it too."""
    tmp_path, root = box
    unpack_merged([
        tar_layer([entry("a/x", content=b"x1"), entry("a/y", content=b"y1"), entry("b/z", content=b"z"),
                   entry("c/w", content=b"w"), entry("d/old", content=b"o")]),
        tar_layer([entry("a/.wh.x", content=b""), entry("b/new", content=b"n"), entry("b/.wh..wh..opq", content=b""),
                   entry(".wh.c", content=b""), entry("q", content=b"kept"), entry(".wh.q", content=b""),
                   entry("d/sub/deep", content=b"d"), entry("d/.wh..wh..opq", content=b"")]),
        tar_layer([entry("a/x", content=b"again"), entry("c", tarfile.DIRTYPE), entry("c/v", content=b"v")]),
    ], root)
    assert sorted(os.listdir(root)) == ["a", "b", "c", "d", "q"]
    assert sorted(os.listdir(root / "a")) == ["x", "y"] and (root / "a" / "x").read_bytes() == b"again"
    assert os.listdir(root / "b") == ["new"] and os.listdir(root / "c") == ["v"]
    assert (root / "q").read_bytes() == b"kept" and os.listdir(root / "d") == ["sub"]
    assert not any(stat.S_ISCHR(os.lstat(os.path.join(top, name)).st_mode)
                   for top, dirs, files in os.walk(root) for name in dirs + files)   # no 0/0 devices


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_merged_nothing_is_written_outside_across_layers(box, attack):
    """Each attack's first entry in one layer, the rest in the next (a link left by a lower
    layer, followed by an upper one). The control is the single-layer one above."""
    tmp_path, root = box
    members = ATTACKS[attack](tmp_path / "outside")
    before = outside_state(tmp_path)
    try:
        unpack_merged([tar_layer(members[:1]), tar_layer(members[1:])], root)
    except ImageError as error:
        assert "Not a directory" in str(error)
    assert_outside_unchanged(tmp_path, before)


def test_mount_points_are_made_inside_the_tree_whatever_its_links(box):
    """make_missing("/srv/data") where the image's /srv is a link to /outside-path: that
    path inside the tree when it exists there, else refused. Control: a plain makedirs
    through the same link lands outside."""
    from hardrun.runtime.unpack import make_missing
    tmp_path, root = box
    outside = tmp_path / "outside"
    os.symlink(str(outside), root / "srv")
    before = outside_state(tmp_path)
    with pytest.raises(NotADirectoryError):
        make_missing(str(root), "/srv/data", True)      # no such directory in the tree
    inside = root / str(outside).lstrip("/")
    inside.mkdir(parents=True)
    make_missing(str(root), "/srv/data", True)
    make_missing(str(root), "/srv/file", False)
    assert_outside_unchanged(tmp_path, before)
    assert (inside / "data").is_dir() and (inside / "file").is_file()
    os.makedirs(root / "srv" / "data")
    assert (outside / "data").is_dir()
