"""The image reading library: references, transports, manifests, layer streams."""
from __future__ import annotations

import gzip
import json
import tarfile

import pytest

from hardrun.errors import HardrunError
from hardrun.images.layers import ENTRY, OPAQUE_ENTRY, WHITEOUT_ENTRY, Layer
from hardrun.images.manifest import ImageError
from hardrun.images.reference import canonical, parse_location, parse_reference
from hardrun.images.sources import open_source
from tests.imagebuild import (Image, digest, entry, tar_layer, write_docker_archive, write_layout,
                              write_oci_archive)


@pytest.mark.parametrize("text, full", [
    ("alpine", "docker.io/library/alpine:latest"),
    ("alpine:3.19", "docker.io/library/alpine:3.19"),
    ("index.docker.io/org/app:1", "docker.io/org/app:1"),
    ("localhost:5000/team/app:v2", "localhost:5000/team/app:v2"),
    ("localhost/app", "localhost/app:latest"),
    ("ghcr.io/o/a@sha256:" + "a" * 64, "ghcr.io/o/a@sha256:" + "a" * 64),
    ("127.0.0.1:5000/x:1@sha256:" + "b" * 64, "127.0.0.1:5000/x:1@sha256:" + "b" * 64),
])
def test_references_follow_dockers_rules(text, full):
    assert canonical(parse_reference(text)) == full


@pytest.mark.parametrize("text", ["", "UPPER", "a//b", "alpine:", "alpine:bad tag", "a@sha256:abc",
                                  "alpine:${TAG}", "a@md5:" + "a" * 32, "-lead/x"])
def test_bad_references_are_one_line_errors(text):
    with pytest.raises(HardrunError) as raised:
        parse_reference(text)
    assert "\n" not in str(raised.value)


def test_transports():
    assert parse_location("oci:/some/dir:v1") == parse_location("oci:/some/dir:v1")
    oci = parse_location("oci:/some/dir:v1")
    assert (oci.transport, oci.path, oci.name) == ("oci", "/some/dir", "v1")
    archive = parse_location("docker-archive:/a.tar:busybox:1.36")
    assert (archive.transport, archive.path, archive.name) == ("docker-archive", "/a.tar", "busybox:1.36")
    assert parse_location("oci-archive:x.tar").name is None
    assert parse_location("docker://alpine").reference == parse_reference("alpine")
    assert parse_location("alpine:3").transport == "docker"
    with pytest.raises(HardrunError):
        parse_location("oci:")


def _image(text=b"hello"):
    return Image([tar_layer([entry("etc", tarfile.DIRTYPE), entry("etc/greeting", content=text)])],
                 {"Cmd": ["/bin/sh"], "Env": ["A=1"]})


def _names(source, manifest, config):
    from hardrun.images.manifest import diff_ids
    found = []
    for desc, diff_id in zip(manifest.layers, diff_ids(config)):
        with Layer(source, desc, diff_id) as layer:
            found += [(kind, path) for kind, path, _ in layer.entries()]
            layer.finish()
    return found


@pytest.mark.parametrize("platform_index", [False, True])
def test_oci_layout_by_tag_and_platform(tmp_path, platform_index):
    write_layout(tmp_path / "lay", {"v1": _image(b"one"), "v2": _image(b"two")}, platform_index=platform_index)
    with open_source(parse_location(f"oci:{tmp_path / 'lay'}:v2")) as source:
        manifest = source.manifest()
        config = source.config(manifest)
        assert config["config"]["Cmd"] == ["/bin/sh"]
        assert _names(source, manifest, config) == [(ENTRY, "etc"), (ENTRY, "etc/greeting")]
        assert config["rootfs"]["diff_ids"] == [digest(_image(b"two").layers[0])]


def test_oci_layout_with_several_untagged_images_needs_a_tag(tmp_path):
    layout = write_layout(tmp_path / "lay", {"a": _image(), "b": _image(b"x")})
    with pytest.raises(ImageError, match="names no image tagged 'c'"):
        open_source(parse_location(f"oci:{layout}:c")).manifest()


def test_index_without_amd64_is_refused_naming_what_it_offers(tmp_path):
    layout = write_layout(tmp_path / "lay", {"v1": _image()})
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["platform"] = {"os": "linux", "architecture": "arm64"}
    index["manifests"].append(dict(index["manifests"][0]))
    (layout / "index.json").write_text(json.dumps(index))
    with pytest.raises(ImageError, match="no linux/amd64 image .*linux/arm64"):
        open_source(parse_location(f"oci:{layout}")).manifest()


def test_config_for_another_platform_is_refused(tmp_path):
    layout = write_layout(tmp_path / "lay", {"v1": Image([tar_layer([])], arch="arm64")})
    with open_source(parse_location(f"oci:{layout}:v1")) as source:
        with pytest.raises(ImageError, match="linux/arm64, not linux/amd64"):
            source.config(source.manifest())


def test_oci_archive(tmp_path):
    archive = write_oci_archive(tmp_path / "img.tar", {"1.0": _image()}, tmp_path / "work")
    with open_source(parse_location(f"oci-archive:{archive}:1.0")) as source:
        manifest = source.manifest()
        assert _names(source, manifest, source.config(manifest))[-1] == (ENTRY, "etc/greeting")


@pytest.mark.parametrize("oci_form", [False, True])
def test_docker_archive_both_forms(tmp_path, oci_form):
    archive = write_docker_archive(tmp_path / "d.tar", _image(), ["busybox:1.36", "other/x:2"], oci_form)
    for location in (f"docker-archive:{archive}", f"docker-archive:{archive}:docker.io/other/x:2"):
        with open_source(parse_location(location)) as source:
            manifest = source.manifest()
            config = source.config(manifest)
            assert config["config"]["Env"] == ["A=1"]
            assert _names(source, manifest, config)[-1] == (ENTRY, "etc/greeting")
    with pytest.raises(ImageError, match="no image named nope:1"):
        open_source(parse_location(f"docker-archive:{archive}:nope:1")).manifest()


def test_whiteouts_are_told_apart(tmp_path):
    layer = tar_layer([entry("a/.wh.b", content=b""), entry("a/.wh..wh..opq", content=b""),
                       entry("../../x", content=b"1"), entry("/abs", content=b"2")])
    layout = write_layout(tmp_path / "lay", {"v": Image([layer])})
    with open_source(parse_location(f"oci:{layout}")) as source:
        manifest = source.manifest()
        assert _names(source, manifest, source.config(manifest)) == [
            (WHITEOUT_ENTRY, "a/b"), (OPAQUE_ENTRY, "a"), (ENTRY, "x"), (ENTRY, "abs")]


def test_changed_blob_is_an_error_naming_it(tmp_path):
    image = _image()
    layout = write_layout(tmp_path / "lay", {"v": image})
    _, stored, _ = image.blobs()
    blob = layout / "blobs" / "sha256" / digest(stored[0])[7:]
    blob.write_bytes(gzip.compress(tar_layer([entry("evil", content=b"x" * len(image.layers[0]))]), mtime=0)[
        :len(stored[0])].ljust(len(stored[0]), b"\0"))
    with open_source(parse_location(f"oci:{layout}")) as source:
        manifest = source.manifest()
        with pytest.raises(ImageError, match=digest(stored[0])):
            _names(source, manifest, source.config(manifest))


def test_layer_with_wrong_diff_id_is_refused(tmp_path):
    image = _image()
    image.config["rootfs"]["diff_ids"] = ["sha256:" + "c" * 64]
    layout = write_layout(tmp_path / "lay", {"v": image})
    with open_source(parse_location(f"oci:{layout}")) as source:
        manifest = source.manifest()
        with pytest.raises(ImageError, match="sha256:c{64}"):
            _names(source, manifest, source.config(manifest))


def test_missing_layout_is_one_line(tmp_path):
    with pytest.raises(HardrunError) as raised:
        open_source(parse_location(f"oci:{tmp_path}/nothing")).manifest()
    assert "oci-layout" in str(raised.value)
