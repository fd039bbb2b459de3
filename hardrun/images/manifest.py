"""Manifests, indexes and image configs (OCI image spec and Docker's schema 2).

An index (OCI) or manifest list (Docker) names one manifest per platform; `select_platform`
picks linux/amd64. A manifest names the config blob and the layer blobs, each by digest.
Docker's schema 1 (signed, unverifiable, long retired) is refused with a clear error.
"""
from __future__ import annotations

import json

from ..errors import HardrunError
from ..spec.record import dataclass

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEXES = (OCI_INDEX, DOCKER_LIST)
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
# the media types a pull asks a registry for, most wanted first
ACCEPTED = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
SUPPORTED_PLATFORM = ("linux", "amd64")
REF_NAME = "org.opencontainers.image.ref.name"


class ImageError(HardrunError):
    """An image, manifest, config or blob that cannot be used."""


@dataclass(frozen=True)
class Descriptor:
    """A blob named by digest: media type, `sha256:…`, size in bytes, and for an index's
    entries the platform (`os`, `architecture`, `variant`) and annotations."""
    media_type: str
    digest: str
    size: int
    platform: tuple = ()
    annotations: tuple = ()

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)

    def to_json(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Manifest:
    """One image's manifest: its digest, bytes as stored, media type, config and layers."""
    digest: str
    raw: bytes
    media_type: str
    config: Descriptor
    layers: tuple


def sha256_digest(data: bytes) -> str:
    import hashlib
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load_json(data: bytes, what: str) -> dict:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ImageError(f"{what} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ImageError(f"{what} is not a JSON object")
    return document


def media_type_of(document: dict, fallback: str | None = None) -> str:
    """A manifest's media type: its own field, else what its shape says (an OCI
    manifest may leave `mediaType` out)."""
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if document.get("schemaVersion") == 1:
        return "application/vnd.docker.distribution.manifest.v1+json"
    if "manifests" in document:
        return OCI_INDEX
    if "layers" in document:
        return OCI_MANIFEST
    return fallback or "unknown"


def descriptor(value, what: str) -> Descriptor:
    """A descriptor from its JSON, checked: a sha256 digest, a size, a media type."""
    if not isinstance(value, dict):
        raise ImageError(f"{what}: a descriptor must be an object")
    digest = value.get("digest")
    size = value.get("size")
    media_type = value.get("mediaType", "")
    if not isinstance(digest, str) or not is_sha256(digest):
        raise ImageError(f"{what}: digest {digest!r} is not sha256:<64 hex digits>")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageError(f"{what}: size {size!r} is not a byte count")
    if not isinstance(media_type, str):
        raise ImageError(f"{what}: mediaType must be a string")
    platform = value.get("platform") or {}
    annotations = value.get("annotations") or {}
    if not isinstance(platform, dict) or not isinstance(annotations, dict):
        raise ImageError(f"{what}: platform and annotations must be objects")
    return Descriptor(media_type, digest, size,
                      tuple((k, str(v)) for k, v in sorted(platform.items()) if isinstance(v, str)),
                      tuple((str(k), str(v)) for k, v in sorted(annotations.items())))


def is_sha256(digest: str) -> bool:
    hexpart = digest[7:]
    return (digest.startswith("sha256:") and len(hexpart) == 64
            and all(c in "0123456789abcdef" for c in hexpart))


def parse_manifest(raw: bytes, digest: str | None = None) -> Manifest:
    """An image manifest (OCI or Docker schema 2) from its bytes."""
    digest = digest or sha256_digest(raw)
    document = load_json(raw, f"manifest {digest}")
    media_type = media_type_of(document)
    if media_type not in MANIFESTS:
        raise ImageError(f"manifest {digest} has media type {media_type}: only OCI and Docker "
                         "schema 2 image manifests are supported")
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise ImageError(f"manifest {digest}: `layers` must be a list")
    return Manifest(digest, raw, media_type, descriptor(document.get("config"), f"manifest {digest} config"),
                    tuple(descriptor(layer, f"manifest {digest} layer {n}") for n, layer in enumerate(layers)))


def index_entries(raw: bytes, what: str) -> list[Descriptor]:
    document = load_json(raw, what)
    entries = document.get("manifests")
    if not isinstance(entries, list):
        raise ImageError(f"{what}: `manifests` must be a list")
    return [descriptor(entry, f"{what} entry {n}") for n, entry in enumerate(entries)]


def select_platform(entries, what: str, platform: tuple = SUPPORTED_PLATFORM) -> Descriptor:
    """The linux/amd64 manifest of an index (an entry without a platform counts when it is
    the only image manifest: OCI layouts written by hand often leave it out)."""
    wanted_os, wanted_arch = platform
    images = [e for e in entries if e.media_type in MANIFESTS or not e.media_type]
    for entry in images:
        fields = dict(entry.platform)
        if fields.get("os") == wanted_os and fields.get("architecture") == wanted_arch:
            return entry
    unplatformed = [e for e in images if not e.platform]
    if len(images) == 1 and unplatformed:
        return unplatformed[0]
    offered = sorted({_platform_name(e) for e in images} - {""})
    raise ImageError(f"{what} has no {wanted_os}/{wanted_arch} image (it offers: "
                     f"{', '.join(offered) or 'none'})")


def _platform_name(entry: Descriptor) -> str:
    fields = dict(entry.platform)
    return "/".join(fields[k] for k in ("os", "architecture", "variant") if k in fields)


def check_platform(config: dict, digest: str, platform: tuple = SUPPORTED_PLATFORM) -> None:
    """A config for another platform is refused: its programs would not run here."""
    found = (config.get("os"), config.get("architecture"))
    if found != platform and found != (None, None):
        raise ImageError(f"image config {digest} is for {found[0]}/{found[1]}, not "
                         f"{platform[0]}/{platform[1]}")


def parse_config(raw: bytes, digest: str) -> dict:
    """An image config: a JSON object whose rootfs lists one sha256 diff id per layer."""
    config = load_json(raw, f"image config {digest}")
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise ImageError(f"image config {digest}: `rootfs.diff_ids` must be a list")
    for diff_id in rootfs["diff_ids"]:
        if not isinstance(diff_id, str) or not is_sha256(diff_id):
            raise ImageError(f"image config {digest}: diff id {diff_id!r} is not sha256:<64 hex digits>")
    container = config.get("config")
    if container is not None and not isinstance(container, dict):
        raise ImageError(f"image config {digest}: `config` must be an object")
    return config


def diff_ids(config: dict) -> list[str]:
    return list(config["rootfs"]["diff_ids"])
