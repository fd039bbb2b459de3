"""zstd-compressed layers (`application/vnd.oci.image.layer.v1.tar+zstd`): read, verified
and unpacked like gzip ones, by `hardrun run`, `pull`, `load` and the image audit (one
decompressor chooser, hardrun/images/layers.py). The layers are built by the tests; each
corruption test names the blob, and its control is the same image unharmed."""
from __future__ import annotations

import os
import tarfile

import pytest

from hardrun.audit.engine import audit
from hardrun.images.layers import Layer
from hardrun.images.manifest import ImageError, diff_ids
from hardrun.images.reference import parse_location
from hardrun.images.sources import open_source
from tests.helpers import run_hardrun
from tests.imagebuild import Image, busybox_tree, digest, dir_layer, entry, tar_layer, write_layout, write_oci_archive
from tests.rootfs import require_root

ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"


def _small_image():
    return Image([tar_layer([entry("etc", tarfile.DIRTYPE), entry("etc/greeting", content=b"zstd says hi\n"),
                             entry("bin", tarfile.DIRTYPE),
                             entry("bin/su", content=b"stand-in" * 4000, mode=0o4755)])],
                 {"Cmd": ["/bin/sh"]}, compress="zstd")


def _corrupt_one_byte(layout, image) -> str:
    """Flip one byte in the middle of the image's (only) layer blob; its digest."""
    _, stored, _ = image.blobs()
    blob = layout / "blobs" / "sha256" / digest(stored[0])[7:]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    return digest(stored[0])


def _read_all(location: str, listing: bool) -> list[str]:
    with open_source(parse_location(location)) as source:
        manifest = source.manifest()
        config = source.config(manifest)
        assert {layer.media_type for layer in manifest.layers} == {ZSTD_LAYER}
        paths = []
        for desc, diff_id in zip(manifest.layers, diff_ids(config)):
            with Layer(source, desc, diff_id, listing=listing) as layer:
                paths += [path for _, path, _ in (layer.headers() if listing else layer.entries())]
                layer.finish()
        return paths


@pytest.mark.parametrize("listing", [False, True])
def test_a_zstd_layer_is_read_and_verified(tmp_path, listing):
    image = _small_image()
    layout = write_layout(tmp_path / "layout", {"1": image})
    assert _read_all(f"oci:{layout}:1", listing) == ["etc", "etc/greeting", "bin", "bin/su"]
    # the same image with one byte of its zstd blob changed: the error names the blob
    blob = _corrupt_one_byte(layout, image)
    with pytest.raises(ImageError, match=blob):
        _read_all(f"oci:{layout}:1", listing)


def test_the_image_audit_reads_zstd_layers(tmp_path):
    image = _small_image()
    layout = write_layout(tmp_path / "layout", {"1": image})
    report = audit([], images=[f"oci:{layout}:1"])
    assert not report.errors, report.errors
    assert ("HR4009", "/bin/su") in [(f.rule, f.image.path) for f in report.findings]
    blob = _corrupt_one_byte(layout, image)
    broken = audit([], images=[f"oci:{layout}:1"])
    assert broken.errors and blob in str(broken.errors[0])


@pytest.fixture(scope="module")
def zstd_busybox(tmp_path_factory):
    """A busybox image whose two layers are zstd (the top one owned by app, 1000)."""
    base = tmp_path_factory.mktemp("zstd-image")
    os.chmod(base, 0o755)
    tree = busybox_tree(base / "tree")
    top = tar_layer([entry("work", tarfile.DIRTYPE, mode=0o755, uid=1000, gid=1000),
                     entry("work/note", content=b"unpacked from zstd\n", mode=0o600, uid=1000, gid=1000)])
    image = Image([dir_layer(tree), top], {"Cmd": ["/bin/sh", "-c", "id -u; cat /work/note"], "User": "1000"},
                  compress="zstd")
    return base, image


def test_run_load_and_pull_a_zstd_image(zstd_busybox, tmp_path):
    require_root()
    base, image = zstd_busybox
    layout = write_layout(tmp_path / "layout", {"1": image})
    env = {"HARDRUN_STORE": str(tmp_path / "store")}
    ran = run_hardrun("run", f"oci:{layout}:1", env=env)
    assert (ran.returncode, ran.stdout) == (0, "1000\nunpacked from zstd\n"), ran.stderr
    archive = write_oci_archive(tmp_path / "z.tar", {"1": image}, tmp_path / "archive-layout")
    loaded = run_hardrun("load", "-i", str(archive), env={"HARDRUN_STORE": str(tmp_path / "loaded")})
    assert loaded.returncode == 0, loaded.stderr
    pulled = run_hardrun("pull", f"oci:{layout}:1", env={"HARDRUN_STORE": str(tmp_path / "pulled")})
    assert pulled.returncode == 0, pulled.stderr


def test_a_corrupt_zstd_layer_is_refused_naming_the_blob(zstd_busybox, tmp_path):
    require_root()
    _, image = zstd_busybox
    layout = write_layout(tmp_path / "layout", {"1": image})
    _, stored, _ = image.blobs()
    blob = layout / "blobs" / "sha256" / digest(stored[1])[7:]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    for command in (("run", f"oci:{layout}:1"), ("pull", f"oci:{layout}:1")):
        refused = run_hardrun(*command, env={"HARDRUN_STORE": str(tmp_path / command[0])})
        assert refused.returncode in (2, 125), refused.stderr
        assert digest(stored[1]) in refused.stderr and "Traceback" not in refused.stderr
    # nothing of the broken layer is taken for complete
    assert not (tmp_path / "run" / "blobs" / "sha256" / digest(stored[1])[7:]).exists()
    assert list((tmp_path / "run").glob("layers/*")) == []
