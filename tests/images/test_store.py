"""The image store and its commands: load, pull from transports, images, inspect, save,
rmi, gc; blobs verified when written and when read; interrupted writes leave nothing."""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest

from hardrun.images.manifest import Descriptor, ImageError
from hardrun.images.sources import VerifiedReader
from hardrun.images.store import Store
from tests.helpers import run_hardrun
from tests.imagebuild import Image, digest, entry, tar_layer, write_docker_archive, write_layout, write_oci_archive


def _image(text=b"hi"):
    return Image([tar_layer([entry("etc", tarfile.DIRTYPE), entry("etc/greeting", content=text)])],
                 {"Cmd": ["/bin/sh"], "WorkingDir": "/etc"})


@pytest.fixture
def store_env(tmp_path):
    """A temporary store, and a state directory of the test's own: `hardrun gc` then looks
    at no other run's containers."""
    (tmp_path / "state").mkdir(mode=0o700)
    return {"HARDRUN_STORE": str(tmp_path / "store"), "HARDRUN_STATE_DIR": str(tmp_path / "state")}


def hr(env, *args):
    return run_hardrun(*args, env=env)


def test_load_list_inspect_save_rmi_gc(tmp_path, store_env):
    archive = write_docker_archive(tmp_path / "d.tar", _image(), ["busybox:1.36"])
    assert hr(store_env, "load", "--input", str(archive)).stdout == "loaded docker.io/library/busybox:1.36\n"
    listed = json.loads(hr(store_env, "images", "--format", "json").stdout)
    assert [(r["repository"], r["tag"]) for r in listed] == [("docker.io/library/busybox", "1.36")]
    assert "1.36" in hr(store_env, "images").stdout
    inspected = json.loads(hr(store_env, "image", "inspect", "busybox:1.36").stdout)
    assert inspected["Config"]["config"]["WorkingDir"] == "/etc"
    assert inspected["Digest"] == listed[0]["digest"]
    saved = tmp_path / "saved.tar"
    assert hr(store_env, "save", "busybox:1.36", "-o", str(saved)).returncode == 0
    # the saved OCI archive is readable by skopeo and loads back under the same name
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{saved}"], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert json.loads(raw)["config"]["digest"] == inspected["Id"]
    assert hr(store_env, "rmi", "busybox").returncode == 2      # busybox:latest is not there
    assert hr(store_env, "rmi", "busybox:1.36").stdout == "untagged docker.io/library/busybox:1.36\n"
    assert hr(store_env, "images", "--format", "json").stdout.strip() == "[]"
    blobs = os.listdir(tmp_path / "store" / "blobs" / "sha256")
    assert len(blobs) == 3
    kept = hr(store_env, "gc", "--no-orphans", "--no-images")
    assert kept.returncode == 0, kept.stderr
    assert len(os.listdir(tmp_path / "store" / "blobs" / "sha256")) == 3
    gc = hr(store_env, "gc", "--no-orphans", "--images")
    assert gc.returncode == 0, gc.stderr
    assert os.listdir(tmp_path / "store" / "blobs" / "sha256") == []
    assert hr(store_env, "load", "-i", str(saved)).stdout == "loaded docker.io/library/busybox:1.36\n"


def test_gc_keeps_what_an_image_still_uses(tmp_path, store_env):
    write_layout(tmp_path / "lay", {"a": _image(b"a"), "b": _image(b"b")})
    for tag in ("a", "b"):
        assert hr(store_env, "pull", f"oci:{tmp_path / 'lay'}:{tag}").returncode == 0
    hr(store_env, "rmi", f"oci:{tmp_path / 'lay'}:a")
    hr(store_env, "gc", "--no-orphans")
    inspected = json.loads(hr(store_env, "image", "inspect", f"oci:{tmp_path / 'lay'}:b").stdout)
    blobs = set(os.listdir(tmp_path / "store" / "blobs" / "sha256"))
    assert {d[7:] for d in [inspected["Digest"], inspected["Id"], *inspected["Layers"]]} == blobs


@pytest.mark.parametrize("transport", ["oci", "oci-archive", "docker-archive", "docker-archive-oci-form"])
def test_pull_from_each_transport(tmp_path, store_env, transport):
    image = _image()
    if transport == "oci":
        location = f"oci:{write_layout(tmp_path / 'lay', {'v1': image})}:v1"
    elif transport == "oci-archive":
        location = f"oci-archive:{write_oci_archive(tmp_path / 'o.tar', {'v1': image}, tmp_path / 'w')}:v1"
    else:
        archive = write_docker_archive(tmp_path / "d.tar", image, ["app:1"], transport.endswith("oci-form"))
        location = f"docker-archive:{archive}:app:1"
    pulled = hr(store_env, "pull", location)
    assert pulled.returncode == 0, pulled.stderr
    config = json.loads(hr(store_env, "image", "inspect", location).stdout)["Config"]
    assert config["rootfs"]["diff_ids"] == [digest(image.layers[0])]


def test_platform_other_than_amd64_is_a_clear_error(tmp_path, store_env):
    layout = write_layout(tmp_path / "lay", {"v1": _image()})
    result = hr(store_env, "pull", "--platform", "linux/arm64", f"oci:{layout}:v1")
    assert result.returncode == 2
    assert result.stderr == "hardrun: --platform linux/arm64: only linux/amd64 images run here\n"


def test_bad_archive_is_one_line(tmp_path, store_env):
    (tmp_path / "x.tar").write_bytes(b"not a tar")
    result = hr(store_env, "load", "-i", str(tmp_path / "x.tar"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "x.tar" in result.stderr and "Traceback" not in result.stderr


class _Interrupted(Exception):
    pass


class _Breaking(io.BytesIO):
    def read(self, n=-1):
        if self.tell() > 1000:
            raise _Interrupted()
        return super().read(min(n, 500) if n > 0 else 500)


def test_interrupted_write_leaves_nothing_taken_for_complete(tmp_path):
    store = Store(str(tmp_path / "store"))
    data = os.urandom(5000)
    with pytest.raises(_Interrupted):
        store.put_blob(VerifiedReader(_Breaking(data), digest(data), len(data)), digest(data))
    assert not store.has_blob(digest(data))
    assert os.listdir(store.path("tmp")) == []
    # the same write, not interrupted, lands
    store.put_blob(VerifiedReader(io.BytesIO(data), digest(data), len(data)), digest(data))
    assert store.has_blob(digest(data))


def test_digest_mismatch_on_write_names_the_blob(tmp_path):
    store = Store(str(tmp_path / "store"))
    claimed = "sha256:" + "ab" * 32
    with pytest.raises(ImageError, match=claimed):
        store.put_blob(VerifiedReader(io.BytesIO(b"other"), claimed, 5), claimed)
    assert not store.has_blob(claimed) and os.listdir(store.path("tmp")) == []


def test_a_stored_blob_changed_on_disk_is_refused_when_read(tmp_path, store_env):
    archive = write_docker_archive(tmp_path / "d.tar", _image(), ["app:1"])
    hr(store_env, "load", "-i", str(archive))
    store = Store(store_env["HARDRUN_STORE"])
    inspected = json.loads(hr(store_env, "image", "inspect", "app:1").stdout)
    path = store.blob_path(inspected["Id"])
    os.chmod(path, 0o600)
    content = open(path, "rb").read()
    open(path, "wb").write(content.replace(b"/etc", b"/tmp"))
    result = hr(store_env, "image", "inspect", "app:1")
    assert result.returncode == 2 and inspected["Id"] in result.stderr
    with pytest.raises(ImageError, match=inspected["Id"]):
        store.read_blob(Descriptor("", inspected["Id"], len(content)))


def test_concurrent_loads_share_the_store(tmp_path, store_env):
    """Two processes loading at once: both names land, and images.json stays whole."""
    import sys
    from tests.helpers import hardrun_env
    archives = [write_docker_archive(tmp_path / f"{n}.tar", _image(str(n).encode()), [f"app:{n}"]) for n in range(4)]
    procs = [subprocess.Popen([sys.executable, "-m", "hardrun", "load", "-i", str(a)], env=hardrun_env(store_env),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for a in archives]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    listed = json.loads(hr(store_env, "images", "--format", "json").stdout)
    assert sorted(r["tag"] for r in listed) == ["0", "1", "2", "3"]


def test_store_option_names_the_store(tmp_path):
    """--store DIR on each command, instead of $HARDRUN_STORE."""
    archive = write_docker_archive(tmp_path / "d.tar", _image(), ["app:1"])
    layout = write_layout(tmp_path / "lay", {"v1": _image(b"x")})
    store = str(tmp_path / "other")
    env = {"HARDRUN_STORE": str(tmp_path / "unused")}
    assert hr(env, "load", "-i", str(archive), "--store", store).returncode == 0
    assert hr(env, "pull", f"oci:{layout}:v1", "--store", store).returncode == 0
    assert "app" in hr(env, "images", "--store", store).stdout
    inspected = json.loads(hr(env, "image", "inspect", "app:1", "--store", store).stdout)
    assert inspected["Name"] == "docker.io/library/app:1"
    assert hr(env, "save", "app:1", "-o", str(tmp_path / "s.tar"), "--store", store).returncode == 0
    assert hr(env, "rmi", "app:1", "--store", store).returncode == 0
    assert not os.path.exists(tmp_path / "unused")


def test_gc_leaves_a_store_in_use_alone_without_waiting(tmp_path, store_env):
    """A running container holds the store's shared lock: gc says so at once and removes
    nothing; once the lock is gone the garbage goes (the control)."""
    archive = write_docker_archive(tmp_path / "d.tar", _image(), ["app:1"])
    hr(store_env, "load", "-i", str(archive))
    hr(store_env, "rmi", "app:1")
    store = Store(store_env["HARDRUN_STORE"])
    with store.lock():
        busy = hr(store_env, "gc", "--no-orphans")
        assert busy.returncode == 0 and "in use" in busy.stderr
        assert len(os.listdir(store.path("blobs", "sha256"))) == 3
    assert hr(store_env, "gc", "--no-orphans").returncode == 0
    assert os.listdir(store.path("blobs", "sha256")) == []


def test_the_store_reads_a_json_blob_as_every_source_does(tmp_path):
    """One reader of manifests and configs (sources.read_json_blob): digest checked, size capped."""
    from hardrun.images.sources import MAX_JSON_BLOB
    store = Store(str(tmp_path / "store"))
    store.ensure()
    data = b'{"schemaVersion": 2}'
    store.put_bytes(data, digest(data))
    assert store.read_blob(Descriptor("", digest(data), len(data)), "manifest") == data
    with pytest.raises(ImageError, match="too large for JSON"):
        store.read_blob(Descriptor("", digest(data), MAX_JSON_BLOB + 1), "manifest")
    os.chmod(store.blob_path(digest(data)), 0o600)
    with open(store.blob_path(digest(data)), "wb") as changed:    # control: the same blob altered on disk
        changed.write(b'{"schemaVersion": 3}')
    with pytest.raises(ImageError, match="does not match its digest"):
        store.read_blob(Descriptor("", digest(data), len(data)), "manifest")
