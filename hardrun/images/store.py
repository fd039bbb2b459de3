"""The image store: blobs by sha256, the names that point at manifests, and the layers
unpacked from them, shared by concurrent hardrun processes.

    ROOT/blobs/sha256/HEX      manifests, configs and layers as pulled (never changed)
    ROOT/images.json           names -> manifest digests, and when each image came
    ROOT/layers/HEX/           a layer unpacked (HEX: its diff id): root/ and the record
                               `diff_id`, checked each time the layer is used
    ROOT/merged/HEX/           rootless: an image's layers unpacked into one tree (HEX: its
                               config's digest), root/ and the record naming that digest
    ROOT/tmp/PID-…             what is being written; renamed into place only once complete
    ROOT/lock                  flock: shared to read, exclusive to change names or remove

ROOT is $HARDRUN_STORE, else /var/lib/hardrun for root, else $XDG_DATA_HOME/hardrun.
A blob is written to tmp/ while its digest is computed and renamed into blobs/ only when
it matches, so an interrupted download leaves nothing that counts as complete; reads go
through `VerifiedReader`, so a blob changed on disk is an error naming it.
"""
from __future__ import annotations

import json
import os
import time

from ..errors import HardrunError
from .manifest import Descriptor, ImageError, Manifest, diff_ids, is_sha256, parse_config, parse_manifest
from .plan import STORE_ENV, StoreBusy, StoreLock, default_root, tmp_path  # noqa: F401 (their home before)
from .sources import Source, read_json_blob

_COPY_CHUNK = 1 << 20


class Store:
    """The store at `root` (created 0700 on first write)."""

    def __init__(self, root: str | None = None):
        self.root = os.path.abspath(root or default_root())

    # -- paths and locking
    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def exists(self) -> bool:
        return os.path.isdir(self.path("blobs"))

    def ensure(self) -> None:
        for sub in ("", "blobs", "blobs/sha256", "layers", "tmp"):
            try:
                if sub:
                    os.mkdir(self.path(sub), 0o700)
                else:        # its parents too: ~/.local/share may not exist yet
                    os.makedirs(self.root, 0o700)
            except FileExistsError:
                pass
            except OSError as error:
                raise HardrunError(f"image store {self.root}: cannot create {sub or 'it'}: "
                                   f"{error.strerror}") from None

    def lock(self, exclusive: bool = False, wait: bool = True) -> StoreLock:
        self.ensure()
        return StoreLock(self.path("lock"), exclusive, wait)

    def tmp_path(self, label: str) -> str:
        return tmp_path(self.root, label)

    def blob_path(self, digest: str) -> str:
        if not is_sha256(digest):
            raise ImageError(f"not a sha256 digest: {digest!r}")
        return self.path("blobs", "sha256", digest[7:])

    def has_blob(self, digest: str) -> bool:
        return os.path.isfile(self.blob_path(digest))

    # -- blobs
    def put_blob(self, reader, digest: str, progress=None) -> None:
        """Copy a VerifiedReader's blob into the store: into tmp/ first, renamed into
        blobs/ only when its digest matched (the error names the blob otherwise)."""
        self.ensure()
        tmp = self.tmp_path(digest[7:19])
        try:
            with open(tmp, "xb") as out:
                while True:
                    chunk = reader.read(_COPY_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
                reader.finish()
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o400)
            os.rename(tmp, self.blob_path(digest))
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)

    def put_bytes(self, data: bytes, digest: str) -> None:
        import io
        from .sources import VerifiedReader
        if not self.has_blob(digest):
            self.put_blob(VerifiedReader(io.BytesIO(data), digest, len(data)), digest)

    def open_blob(self, desc: Descriptor, what: str = "blob"):
        from .sources import VerifiedReader
        try:
            stream = open(self.blob_path(desc.digest), "rb")
        except FileNotFoundError:
            raise ImageError(f"image store {self.root}: {what} {desc.digest} is missing") from None
        return VerifiedReader(stream, desc.digest, desc.size, what)

    # -- names
    def _read_names(self) -> dict:
        try:
            with open(self.path("images.json"), "rb") as stream:
                document = json.loads(stream.read())
        except FileNotFoundError:
            return {"images": {}}
        except (OSError, ValueError) as error:
            raise HardrunError(f"image store {self.root}: images.json cannot be read: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("images"), dict):
            raise HardrunError(f"image store {self.root}: images.json is not an object with `images`")
        return document

    def _write_names(self, document: dict) -> None:
        tmp = self.tmp_path("images.json")
        with open(tmp, "x") as out:
            json.dump(document, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, self.path("images.json"))

    def images(self) -> dict:
        """name -> {"manifest": digest, "added": unix time, "source": where it came from}."""
        if not self.exists():
            return {}
        with self.lock():
            return dict(self._read_names()["images"])

    def lookup(self, name: str) -> dict | None:
        return self.images().get(name)

    def tag(self, name: str, manifest_digest: str, source: str) -> None:
        with self.lock(exclusive=True):
            document = self._read_names()
            document["images"][name] = {"manifest": manifest_digest, "added": int(time.time()), "source": source}
            self._write_names(document)

    def untag(self, name: str) -> bool:
        with self.lock(exclusive=True):
            document = self._read_names()
            if document["images"].pop(name, None) is None:
                return False
            self._write_names(document)
            return True

    # -- images
    def import_image(self, source: Source, progress=None) -> tuple[Manifest, dict]:
        """Copy the image `source` names into the store (the blobs it lacks), verified.
        The caller names it with `tag`. Returns its manifest and config."""
        manifest = source.manifest()
        config = source.config(manifest)
        for desc in manifest.layers:
            if not self.has_blob(desc.digest):
                reader = source.open_blob(desc, "layer")
                try:
                    self.put_blob(reader, desc.digest, progress)
                finally:
                    reader.close()
        self.put_bytes(source.read_blob(manifest.config, "image config"), manifest.config.digest)
        self.put_bytes(manifest.raw, manifest.digest)
        return manifest, config

    def manifest(self, digest: str) -> Manifest:
        desc = Descriptor("", digest, os.path.getsize(self.blob_path(digest)) if self.has_blob(digest) else 0)
        return parse_manifest(self.read_blob(desc, "manifest"), digest)

    def read_blob(self, desc: Descriptor, what: str = "blob") -> bytes:
        return read_json_blob(self.open_blob, desc, what)

    def config(self, manifest: Manifest) -> dict:
        return parse_config(self.read_blob(manifest.config, "image config"), manifest.config.digest)

    def image_size(self, manifest: Manifest) -> int:
        return manifest.config.size + sum(layer.size for layer in manifest.layers)

    # -- garbage
    def referenced(self) -> tuple[set, set]:
        """The blobs and the unpacked layers (diff ids) some named image references."""
        blobs: set[str] = set()
        layers: set[str] = set()
        for entry in self._read_names()["images"].values():
            digest = entry.get("manifest", "")
            blobs.add(digest)
            try:
                manifest = self.manifest(digest)
                blobs.add(manifest.config.digest)
                blobs.update(layer.digest for layer in manifest.layers)
                layers.update(diff_ids(self.config(manifest)))
            except HardrunError:
                continue    # a damaged image keeps its blobs; `rmi` it to free them
        return blobs, layers

    def collect_garbage(self) -> list[str]:
        """Remove the blobs and unpacked layers no image references, and what interrupted
        writers left in tmp/. Returns what was removed. A container running from the store
        holds its shared lock: then StoreBusy, at once (gc never waits for containers)."""
        if not self.exists():
            return []
        removed: list[str] = []
        with self.lock(exclusive=True, wait=False):
            blobs, layers = self.referenced()
            for hexpart in sorted(os.listdir(self.path("blobs", "sha256"))):
                if f"sha256:{hexpart}" not in blobs:
                    os.unlink(self.path("blobs", "sha256", hexpart))
                    removed.append(f"image blob sha256:{hexpart}")
            for hexpart in sorted(os.listdir(self.path("layers"))):
                if f"sha256:{hexpart}" not in layers:
                    remove_tree(self.path("layers", hexpart))
                    removed.append(f"unpacked layer sha256:{hexpart}")
            for hexpart in sorted(_listed(self.path("merged"))):
                if f"sha256:{hexpart}" not in blobs:      # keyed by the image's config digest
                    remove_tree(self.path("merged", hexpart))
                    removed.append(f"unpacked image tree sha256:{hexpart}")
            for name in sorted(os.listdir(self.path("tmp"))):
                if not _writer_alive(name):
                    remove_tree(self.path("tmp", name))
                    removed.append(f"unfinished store entry {name}")
            removed += self._remove_stale_plans()
        return removed

    def _remove_stale_plans(self) -> list[str]:
        """The start-up plans (hardrun/images/plan.py) that no longer hold: they would be
        ignored anyway; under the exclusive lock no start is writing one."""
        from .plan import read_plan
        try:
            names = sorted(os.listdir(self.path("plans")))
        except FileNotFoundError:
            return []
        removed = []
        for name in names:
            try:
                text = bytes.fromhex(name).decode("utf-8", "surrogateescape")
            except ValueError:
                text = None
            if text is None or read_plan(self.root, text) is None:
                os.unlink(self.path("plans", name))
                removed.append(f"stale start-up plan of {text or name}")
        return removed


def _listed(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def _writer_alive(name: str) -> bool:
    pid = name.split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_tree(path: str) -> None:
    """Remove a directory tree of the store (an unpacked layer may hold read-only
    directories: they are made writable first), never following symbolic links."""
    import shutil

    def onerror(function, failed, _info):
        parent = os.path.dirname(failed)
        os.chmod(parent, 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, 0o700)
        function(failed)

    if os.path.isdir(path) and not os.path.islink(path):
        for directory, subdirs, _ in os.walk(path):
            for sub in subdirs:
                full = os.path.join(directory, sub)
                if not os.path.islink(full):
                    os.chmod(full, 0o700)
        shutil.rmtree(path, onerror=onerror)
    elif os.path.lexists(path):
        os.unlink(path)


class StoreSource(Source):
    """An image already in the store, by manifest digest."""

    def __init__(self, store: Store, manifest_digest: str, label: str):
        from .reference import Location
        super().__init__(Location("store", store.root, label))
        self.store, self.digest = store, manifest_digest

    def manifest(self) -> Manifest:
        return self.store.manifest(self.digest)

    def open_blob(self, desc: Descriptor, what: str = "blob"):
        return self.store.open_blob(desc, what)
