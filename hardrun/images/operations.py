"""What the image commands do, over the store: pull (from a transport or a registry),
load, save, remove, inspect and list. The CLI (hardrun/cli/images.py) only prints."""
from __future__ import annotations

import os
import time

from ..errors import HardrunError, UsageError
from .manifest import REF_NAME, Descriptor, ImageError, Manifest
from .reference import Location, canonical, parse_location, parse_reference
from .store import Store, StoreSource

PULL_POLICIES = ("always", "missing", "never")


def image_name(location: Location) -> str:
    """The name an image is kept under: the full reference for a registry image, else the
    location as written (`oci:/dir:tag`)."""
    return canonical(location.reference) if location.reference is not None else str(location)


def find(store: Store, text: str) -> tuple[str, dict]:
    """(name, entry) of a stored image: by name as listed, by reference (`alpine` is
    docker.io/library/alpine:latest), or by manifest digest (`sha256:` and 12+ hex digits)."""
    images = store.images()
    if text in images:
        return text, images[text]
    if text.startswith("sha256:") and len(text) >= 19:
        found = [(n, e) for n, e in images.items() if e["manifest"].startswith(text)]
        if len({e["manifest"] for _, e in found}) == 1:
            return found[0]
    try:
        location = parse_location(text)
    except HardrunError:
        location = None
    if location is not None and image_name(location) in images:
        return image_name(location), images[image_name(location)]
    reference = location.reference if location is not None else None
    if reference is not None and reference.digest:     # NAME@sha256:… matches a stored NAME:TAG with that digest
        for name, entry in images.items():
            if entry["manifest"] == reference.digest and name.startswith(reference.name + ":"):
                return name, entry
    raise UsageError(f"no image {text!r} in the store {store.root}", hint="see `hardrun images`")


def pull(store: Store, text: str, policy: str = "always", progress=None, tls_verify: bool = True,
         platform: str | None = None) -> tuple[str, Manifest, dict]:
    """Bring the image `text` names into the store (unless `policy` says it is there
    already or must be) and name it. Returns (name, manifest, config)."""
    check_platform_option(platform)
    if policy not in PULL_POLICIES:
        raise UsageError(f"invalid pull policy {policy!r}: expected always, missing or never")
    location = parse_location(text)
    name = image_name(location)
    stored = store.images().get(name)
    if stored is None and location.reference is not None and location.reference.digest:
        try:
            name, stored = find(store, text)
        except UsageError:
            stored = None
    if stored is not None and (policy == "never" or (policy == "missing" and location.transport == "docker")):
        manifest = store.manifest(stored["manifest"])
        return name, manifest, store.config(manifest)
    if policy == "never":
        raise UsageError(f"image {name} is not in the store and --pull=never forbids fetching it")
    source = _source(location, tls_verify)
    with source:
        manifest, config = store.import_image(source, progress)
    if location.reference is not None and location.reference.digest and manifest.digest != location.reference.digest:
        raise ImageError(f"{name}: the registry sent manifest {manifest.digest}, not the digest asked for")
    store.tag(name, manifest.digest, str(location))
    return name, manifest, config


def check_platform_option(platform: str | None) -> None:
    if platform not in (None, "", "linux/amd64", "linux/x86_64", "amd64"):
        raise UsageError(f"--platform {platform}: only linux/amd64 images run here")


def _source(location: Location, tls_verify: bool):
    if location.transport == "docker":
        from .registry import RegistrySource
        return RegistrySource(location, tls_verify=tls_verify)
    from .sources import open_source
    return open_source(location)


def load(store: Store, path: str) -> list[str]:
    """Every image of a `docker save` or OCI archive into the store; their names."""
    import tarfile
    try:
        with tarfile.open(path, "r:") as tar:
            names = set(tar.getnames())
    except (OSError, tarfile.TarError) as error:
        raise ImageError(f"{path}: cannot read the archive: {getattr(error, 'strerror', None) or error}") from None
    names = {os.path.normpath(n).lstrip("/") for n in names}
    if "manifest.json" in names:
        return _load_docker(store, path)
    if "index.json" in names:
        return _load_oci(store, path)
    raise ImageError(f"{path}: neither a docker archive (manifest.json) nor an OCI archive (index.json)")


def _load_docker(store: Store, path: str) -> list[str]:
    import json
    from .sources import ArchiveSource
    with ArchiveSource(Location("docker-archive", path)) as probe:
        entries = json.loads(probe.member_bytes("manifest.json", "manifest.json"))
    loaded = []
    for n, entry in enumerate(entries if isinstance(entries, list) else []):
        tags = [str(t) for t in (entry.get("RepoTags") or [])] if isinstance(entry, dict) else []
        selector = tags[0] if tags else None
        if selector is None and len(entries) > 1:
            raise ImageError(f"{path}: image {n} of manifest.json has no RepoTags to tell it apart")
        with ArchiveSource(Location("docker-archive", path, selector)) as source:
            manifest, _ = store.import_image(source)
        for tag in tags or [manifest.digest]:
            name = canonical(parse_reference(tag)) if tag != manifest.digest else tag
            store.tag(name, manifest.digest, f"docker-archive:{path}")
            loaded.append(name)
    return loaded


def _load_oci(store: Store, path: str) -> list[str]:
    from .manifest import index_entries
    from .sources import ArchiveSource
    with ArchiveSource(Location("oci-archive", path)) as probe:
        entries = index_entries(probe.member_bytes("index.json", "index.json"), f"{path}: index.json")
    loaded = []
    stem = _name_component(os.path.basename(path).rsplit(".", 1)[0])
    for entry in entries:
        tag = entry.annotation(REF_NAME)
        location = Location("oci-archive", path, tag)
        with ArchiveSource(location if tag else Location("oci-archive", path)) as source:
            manifest, _ = store.import_image(source)
        name = _oci_name(tag, stem) if tag else manifest.digest
        store.tag(name, manifest.digest, str(location))
        loaded.append(name)
    return loaded


def _oci_name(ref_name: str, stem: str) -> str:
    """An OCI archive's ref.name: a full reference as it is, a bare tag under
    `localhost/ARCHIVE-NAME`."""
    if "/" in ref_name or ":" in ref_name or "@" in ref_name:
        return canonical(parse_reference(ref_name))
    return canonical(parse_reference(f"localhost/{stem}:{ref_name}"))


def _name_component(text: str) -> str:
    cleaned = "".join(c if c.isalnum() and c.isascii() else "-" for c in text.lower()).strip("-")
    return cleaned or "image"


def save(store: Store, text: str, output: str) -> str:
    """The image `text` names as an OCI archive at `output` (written beside it, then
    renamed into place). Returns the image's name."""
    import io
    import json
    import tarfile
    name, entry = find(store, text)
    manifest = store.manifest(entry["manifest"])
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": manifest.media_type, "digest": manifest.digest,
                            "size": len(manifest.raw), "annotations": {REF_NAME: name}}]}
    directory = os.path.dirname(os.path.abspath(output))
    tmp = os.path.join(directory, f".{os.path.basename(output)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "xb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            def add(member: str, data: bytes | None = None, blob: str | None = None) -> None:
                info = tarfile.TarInfo(member)
                info.mtime = int(time.time())
                if blob is None:
                    info.size = len(data or b"")
                    tar.addfile(info, io.BytesIO(data or b""))
                    return
                info.size = os.path.getsize(store.blob_path(blob))
                reader = store.open_blob(Descriptor("", blob, info.size))
                try:
                    tar.addfile(info, reader)
                    reader.finish()
                finally:
                    reader.close()
            add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            add("index.json", json.dumps(index).encode())
            for digest in dict.fromkeys([manifest.digest, manifest.config.digest,
                                         *(layer.digest for layer in manifest.layers)]):
                add(f"blobs/sha256/{digest[7:]}", blob=digest)
        os.rename(tmp, output)
    except OSError as error:
        raise HardrunError(f"{output}: cannot write: {error.strerror or error}") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return name


def remove(store: Store, text: str) -> str:
    """Forget the image `text` names (its blobs go at the next `hardrun gc`)."""
    name, _ = find(store, text)
    store.untag(name)
    return name


def inspect(store: Store, text: str) -> dict:
    """The image's name, digests, size, manifest and config."""
    name, entry = find(store, text)
    manifest = store.manifest(entry["manifest"])
    return {"Name": name, "Digest": manifest.digest, "Id": manifest.config.digest, "Source": entry.get("source"),
            "Added": entry.get("added"), "Size": store.image_size(manifest),
            "Layers": [layer.digest for layer in manifest.layers], "Config": store.config(manifest)}


def listing(store: Store) -> list[dict]:
    """One row per name: repository, tag, digest, size, added."""
    rows = []
    for name, entry in sorted(store.images().items()):
        try:
            size = store.image_size(store.manifest(entry["manifest"]))
        except HardrunError:
            size = -1
        repository, tag = _split_name(name)
        rows.append({"name": name, "repository": repository, "tag": tag, "digest": entry["manifest"],
                     "size": size, "added": entry.get("added", 0)})
    return rows


def _split_name(name: str) -> tuple[str, str]:
    base = name.split("@", 1)[0]
    slash, colon = base.rfind("/"), base.rfind(":")
    if colon > slash and not name.startswith(("oci:", "oci-archive:", "docker-archive:")):
        return base[:colon], base[colon + 1:]
    return (base, "<none>") if not name.startswith("sha256:") else ("<none>", "<none>")


__all__ = ["PULL_POLICIES", "StoreSource", "find", "inspect", "listing", "load", "pull", "remove", "save"]
