"""Images built offline for the tests: layers made with `tarfile`, written as an OCI
layout directory, an OCI archive, or a `docker save` archive (legacy and OCI forms)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_layer(entries) -> bytes:
    """A layer from (TarInfo, content bytes or None) pairs, in the order given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in entries:
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def entry(name, kind=tarfile.REGTYPE, content=None, linkname="", mode=0o644, uid=0, gid=0):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.gid = kind, linkname, mode, uid, gid
    if kind == tarfile.DIRTYPE:
        info.mode = mode if mode != 0o644 else 0o755
    return info, (content if content is not None else (b"" if kind == tarfile.REGTYPE else None))


def dir_layer(root: Path) -> bytes:
    """A layer holding the tree at `root` (symlinks kept as they are)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            tar.add(str(path), arcname=str(path.relative_to(root)), recursive=False)
    return buffer.getvalue()


def compressed(layer: bytes, compression: str | None) -> bytes:
    """A layer blob as stored: gzip, zstd (two frames, as zstd:chunked writes) or plain."""
    if compression == "gzip":
        return gzip.compress(layer, mtime=0)
    if compression == "zstd":
        import zstandard
        half = len(layer) // 2
        compressor = zstandard.ZstdCompressor()
        return compressor.compress(layer[:half]) + compressor.compress(layer[half:])
    return layer


class Image:
    """Layers (uncompressed tars) and a config; stored in the manifest compressed with
    `compress` (True: gzip; "zstd"; False: plain tars)."""

    def __init__(self, layers, config=None, compress=True, os_name="linux", arch="amd64"):
        self.layers = list(layers)
        self.compression = "gzip" if compress is True else (compress or None)
        body = dict(config or {})
        self.config = {"architecture": arch, "os": os_name, "config": body,
                       "rootfs": {"type": "layers", "diff_ids": [digest(layer) for layer in self.layers]}}

    def blobs(self):
        """(config bytes, [layer blobs as stored], manifest bytes)."""
        config = json.dumps(self.config).encode()
        stored = [compressed(layer, self.compression) for layer in self.layers]
        layer_type = "application/vnd.oci.image.layer.v1.tar" + (f"+{self.compression}" if self.compression else "")
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": len(config)},
                    "layers": [{"mediaType": layer_type, "digest": digest(b), "size": len(b)} for b in stored]}
        return config, stored, json.dumps(manifest).encode()


def write_layout(directory: Path, images: dict, platform_index: bool = False) -> Path:
    """An OCI layout: `images` maps a tag (or None) to an Image. With `platform_index`
    each image sits behind a nested index that also names an arm64 decoy."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = digest(data)
        (blobs / d[7:]).write_bytes(data)
        return d

    entries = []
    for tag, image in images.items():
        config, stored, manifest = image.blobs()
        put(config)
        for blob in stored:
            put(blob)
        desc = {"mediaType": OCI_MANIFEST, "digest": put(manifest), "size": len(manifest)}
        if platform_index:
            decoy = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 1,
                     "platform": {"os": "linux", "architecture": "arm64"}}
            inner = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
                decoy, dict(desc, platform={"os": "linux", "architecture": "amd64"})]}).encode()
            desc = {"mediaType": OCI_INDEX, "digest": put(inner), "size": len(inner)}
        if tag:
            desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        entries.append(desc)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    return directory


def tar_directory(directory: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(str(path), arcname=str(path.relative_to(directory)), recursive=False)
    return archive


def write_oci_archive(archive: Path, images: dict, work: Path) -> Path:
    return tar_directory(write_layout(work, images), archive)


def write_docker_archive(archive: Path, image: Image, repo_tags, oci_form: bool = False) -> Path:
    """`docker save` output: legacy (ID/layer.tar, ID.json) or the OCI form Docker 25
    writes (blobs/sha256/…, with index.json and oci-layout beside manifest.json)."""
    members: dict[str, bytes] = {}
    config = json.dumps(image.config).encode()
    layer_names = []
    if oci_form:
        members[f"blobs/sha256/{digest(config)[7:]}"] = config
        config_name = f"blobs/sha256/{digest(config)[7:]}"
        for layer in image.layers:
            name = f"blobs/sha256/{digest(layer)[7:]}"
            members[name] = layer
            layer_names.append(name)
        members["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
        members["index.json"] = b'{"schemaVersion": 2, "manifests": []}'
    else:
        config_name = f"{digest(config)[7:]}.json"
        members[config_name] = config
        for n, layer in enumerate(image.layers):
            name = f"{n:064x}/layer.tar"
            members[name] = layer
            layer_names.append(name)
    members["manifest.json"] = json.dumps([{"Config": config_name, "RepoTags": list(repo_tags),
                                            "Layers": layer_names}]).encode()
    with tarfile.open(archive, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def busybox_tree(root: Path, busybox: str = "/bin/busybox") -> Path:
    """A small busybox tree with relative symlinks (as images carry them)."""
    import shutil
    import subprocess
    for name in ("bin", "etc", "tmp", "home/app", "work", "proc", "sys", "dev"):
        (root / name).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split():
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\n")
    os.chmod(root / "tmp", 0o1777)
    return root
