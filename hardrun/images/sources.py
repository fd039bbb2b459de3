"""Image sources: read an image's manifest, config and blobs where it lies, without
unpacking anything. `open_source(location)` gives one for `oci:DIR[:TAG]`,
`oci-archive:FILE[:TAG]` and `docker-archive:FILE[:NAME:TAG]` (`docker save` / `podman
save`: the legacy `manifest.json` form and the OCI layout newer Docker writes beside it).

Every blob is checked against its digest (and size) as it is read: `read_blob` for the
small JSON ones, `VerifiedReader` around a layer's stream. A blob that does not match
is an error naming it.
"""
from __future__ import annotations

import hashlib
import json
import os

from ..errors import HardrunError
from .manifest import (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, INDEXES, MANIFESTS, REF_NAME,
                       Descriptor, ImageError, Manifest, check_platform, diff_ids, index_entries, is_sha256,
                       load_json, media_type_of, parse_config, parse_manifest, select_platform, sha256_digest)
from .reference import Location, canonical, parse_reference

MAX_JSON_BLOB = 4 * 1024 * 1024   # manifests, indexes and configs are a few KiB


class VerifiedReader:
    """A blob's byte stream whose sha256 (and size, when known) is checked when it ends:
    `finish()` reads what is left and raises ImageError naming the blob on a mismatch."""

    def __init__(self, stream, digest: str, size: int | None = None, what: str = "blob"):
        self._stream, self.digest, self.size, self.what = stream, digest, size, what
        self._hash = hashlib.sha256()
        self.count = 0

    @property
    def stream(self):
        """The stream read and hashed."""
        return self._stream

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._hash.update(data)
        self.count += len(data)
        if self.size is not None and self.count > self.size:
            raise ImageError(f"{self.what} {self.digest} is larger than the {self.size} bytes its descriptor says")
        return data

    def finish(self) -> None:
        self.drain()
        self.verify()

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def verify(self) -> None:
        if self.size is not None and self.count != self.size:
            raise ImageError(f"{self.what} {self.digest} has {self.count} bytes, not the {self.size} "
                             "its descriptor says")
        found = "sha256:" + self._hash.hexdigest()
        if found != self.digest:
            raise ImageError(f"{self.what} {self.digest} does not match its digest (its content is {found})")

    def close(self) -> None:
        self._stream.close()


def read_json_blob(open_blob, desc: Descriptor, what: str = "blob") -> bytes:
    """The whole of a manifest, index or config blob, read through `open_blob` (a source's
    or the store's) and checked against its digest and size: the one reader of those."""
    if desc.size > MAX_JSON_BLOB:
        raise ImageError(f"{what} {desc.digest} is {desc.size} bytes: too large for JSON")
    reader = open_blob(desc, what)
    try:
        data = reader.read(desc.size + 1)
        reader.finish()
    finally:
        reader.close()
    return data


class Source:
    """Where an image's blobs are read from. Subclasses give `manifest()` and `_open(digest)`."""

    def __init__(self, location: Location):
        self.location = location

    def manifest(self) -> Manifest:
        raise NotImplementedError

    def _open(self, digest: str):
        raise NotImplementedError

    def open_blob(self, desc: Descriptor, what: str = "blob") -> VerifiedReader:
        return VerifiedReader(self._open(desc.digest), desc.digest, desc.size, what)

    def read_blob(self, desc: Descriptor, what: str = "blob") -> bytes:
        return read_json_blob(self.open_blob, desc, what)

    def config(self, manifest: Manifest) -> dict:
        raw = self.read_blob(manifest.config, "image config")
        config = parse_config(raw, manifest.config.digest)
        check_platform(config, manifest.config.digest)
        if len(diff_ids(config)) != len(manifest.layers):
            raise ImageError(f"image config {manifest.config.digest} lists {len(diff_ids(config))} layers, "
                             f"its manifest {len(manifest.layers)}")
        return config

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def _from_index(self, raw: bytes, what: str, tag: str | None) -> Manifest:
        """The manifest an OCI layout's index.json names: by its ref.name annotation when a
        tag is given, else the only one; a nested index picks linux/amd64."""
        entries = index_entries(raw, what)
        if tag is not None:
            entries = [e for e in entries if e.annotation(REF_NAME) == tag]
            if not entries:
                raise ImageError(f"{what} names no image tagged {tag!r}")
        elif len(entries) > 1 and not any(e.platform for e in entries):
            raise ImageError(f"{what} holds {len(entries)} images: name one with :TAG")
        chosen = entries[0] if len(entries) == 1 else select_platform(entries, what)
        return self._resolve(chosen, what)

    def _resolve(self, desc: Descriptor, what: str) -> Manifest:
        for _ in range(4):   # an index may name an index; a loop is refused
            raw = self.read_blob(desc, "manifest")
            media_type = media_type_of(load_json(raw, f"manifest {desc.digest}"), desc.media_type)
            if media_type in INDEXES:
                desc = select_platform(index_entries(raw, f"index {desc.digest}"), f"index {desc.digest}")
                continue
            if media_type not in MANIFESTS:
                raise ImageError(f"{what}: {desc.digest} has media type {media_type}, not an image manifest")
            return parse_manifest(raw, desc.digest)
        raise ImageError(f"{what}: indexes nested too deep")


class LayoutSource(Source):
    """An OCI image layout directory (`oci:DIR[:TAG]`)."""

    def manifest(self) -> Manifest:
        self._check_layout()
        raw = _read_file(self._file("index.json"), f"{self.location}: index.json")
        return self._from_index(raw, f"{self.location}: index.json", self.location.name)

    def _check_layout(self) -> None:
        raw = _read_file(self._file("oci-layout"), f"{self.location}: oci-layout")
        version = load_json(raw, f"{self.location}: oci-layout").get("imageLayoutVersion")
        if version != "1.0.0":
            raise ImageError(f"{self.location}: oci-layout has imageLayoutVersion {version!r}, not 1.0.0")

    def _file(self, name: str) -> str:
        return os.path.join(self.location.path or ".", name)

    def _open(self, digest: str):
        try:
            return open(self._file(f"blobs/sha256/{digest[7:]}"), "rb")
        except OSError as error:
            raise ImageError(f"{self.location}: blob {digest}: {error.strerror}") from None


class ArchiveSource(Source):
    """A tar file: an OCI layout in a tar (`oci-archive:`) or `docker save` output
    (`docker-archive:`). Members are read in place; nothing is extracted."""

    def __init__(self, location: Location):
        super().__init__(location)
        import tarfile
        try:
            self._tar = tarfile.open(location.path or "", "r:")
        except (OSError, tarfile.TarError) as error:
            raise ImageError(f"{location}: cannot read the archive: {getattr(error, 'strerror', None) or error}") \
                from None
        # first occurrence wins is tar's reading order; a later duplicate would be ambiguous
        self._members: dict = {}
        for member in self._tar.getmembers():
            name = os.path.normpath(member.name).lstrip("/")
            if member.isfile():
                self._members.setdefault(name, member)
        self._blob_names: dict[str, str] = {}

    def close(self) -> None:
        self._tar.close()

    def member_bytes(self, name: str, what: str) -> bytes:
        member = self._members.get(name)
        if member is None:
            raise ImageError(f"{self.location}: the archive has no {name}")
        if member.size > MAX_JSON_BLOB:
            raise ImageError(f"{self.location}: {name} is too large")
        stream = self._tar.extractfile(member)
        return stream.read() if stream else b""

    def has(self, name: str) -> bool:
        return name in self._members

    def _open(self, digest: str):
        name = self._blob_names.get(digest, f"blobs/sha256/{digest[7:]}")
        member = self._members.get(name)
        if member is None:
            raise ImageError(f"{self.location}: the archive has no blob {digest}")
        return self._tar.extractfile(member)

    def manifest(self) -> Manifest:
        if self.location.transport == "oci-archive":
            raw = self.member_bytes("index.json", "index.json")
            return self._from_index(raw, f"{self.location}: index.json", self.location.name)
        return self._docker_manifest()

    def _docker_manifest(self) -> Manifest:
        """`docker save`'s manifest.json: pick the entry by NAME:TAG (or the only one), then
        describe it as a schema 2 manifest (its layers are plain tars named by diff id,
        or blobs/sha256/ names in the OCI form)."""
        what = f"{self.location}: manifest.json"
        try:
            entries = json.loads(self.member_bytes("manifest.json", what))
        except ValueError as error:
            raise ImageError(f"{what} is not valid JSON: {error}") from None
        if not isinstance(entries, list) or not entries:
            raise ImageError(f"{what} must be a non-empty list")
        entry = self._docker_entry(entries, what)
        config_name, layer_names = entry.get("Config"), entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layer_names, list):
            raise ImageError(f"{what}: an entry needs Config (a file name) and Layers (a list)")
        config_raw = self.member_bytes(os.path.normpath(config_name), what)
        config_digest = sha256_digest(config_raw)
        self._blob_names[config_digest] = os.path.normpath(config_name)
        layer_digests = diff_ids(parse_config(config_raw, config_digest))
        if len(layer_digests) != len(layer_names):
            raise ImageError(f"{what}: {len(layer_names)} layers but the config lists {len(layer_digests)}")
        layers = []
        for name, diff_id in zip(layer_names, layer_digests):
            name = os.path.normpath(str(name))
            member = self._members.get(name)
            if member is None:
                raise ImageError(f"{what}: the archive has no layer {name}")
            digest = _digest_from_blob_name(name) or diff_id
            self._blob_names[digest] = name
            layers.append({"mediaType": DOCKER_LAYER, "digest": digest, "size": member.size})
        document = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                    "config": {"mediaType": DOCKER_CONFIG,
                               "digest": config_digest, "size": len(config_raw)},
                    "layers": layers}
        return parse_manifest(json.dumps(document, separators=(",", ":")).encode())

    def _docker_entry(self, entries: list, what: str) -> dict:
        if self.location.name is None:
            if len(entries) > 1:
                raise ImageError(f"{what} holds {len(entries)} images: name one with :NAME:TAG")
            return _object(entries[0], what)
        wanted = canonical(parse_reference(self.location.name))
        for entry in entries:
            for tag in _object(entry, what).get("RepoTags") or []:
                try:
                    if canonical(parse_reference(str(tag))) == wanted:
                        return entry
                except HardrunError:   # a malformed RepoTags entry names nothing
                    continue
        raise ImageError(f"{what} has no image named {self.location.name}")


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ImageError(f"{what}: each entry must be an object")
    return value


def _digest_from_blob_name(name: str) -> str | None:
    if name.startswith("blobs/sha256/"):
        digest = "sha256:" + name[len("blobs/sha256/"):]
        if is_sha256(digest):
            return digest
    return None


def _read_file(path: str, what: str) -> bytes:
    from ..userfiles import read_bytes
    try:
        return read_bytes(path, MAX_JSON_BLOB)
    except HardrunError as error:
        raise ImageError(f"{what}: {error.message}") from None


def open_source(location: Location) -> Source:
    """The source for a transport-qualified location (the store and registries have their
    own: hardrun/images/store.py, hardrun/images/registry.py)."""
    if location.transport == "oci":
        return LayoutSource(location)
    if location.transport in ("oci-archive", "docker-archive"):
        return ArchiveSource(location)
    raise ImageError(f"{location}: not a local transport")


__all__ = ["Descriptor", "ImageError", "Manifest", "Source", "VerifiedReader", "open_source"]
