"""The image front end: what `hardrun audit` judges in a container image, read without
running or unpacking it.

An image is named by a transport-qualified location (`oci:DIR[:TAG]`,
`oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]`), by a name or digest of
hardrun's local store, or by a registry reference (its blobs streamed from the registry,
nothing written to disk). The model holds the config, the history (each step paired
with the layer it made) and the files the file rules look at: the layers are streamed
once, in order, and only the entries a rule cares about are kept (setuid and
world-writable files, secret files, caches, and the content of /etc/shadow and
sudoers, read with a size cap), so a large image is audited in bounded memory.

Whiteouts are applied as the layers are walked: a file that a later layer deletes,
replaces or hides under an opaque directory is marked `removed_in` that layer. The
file rules judge the final filesystem, except for secrets: a secret removed in a later
layer is still in the earlier layer's blob, which anyone who pulls the image gets.
"""
from __future__ import annotations

from ..spec.record import dataclass, field  # not dataclasses: see record.py

from ..errors import UsageError
from ..images.layers import ENTRY, OPAQUE_ENTRY, WHITEOUT_ENTRY, Layer
from ..images.manifest import diff_ids
from ..spec.secret_files import could_be_secret, secret_file_kind
from .registry import IMAGE_TRANSPORTS

# Files whose content a rule reads; anything larger than CONTENT_CAP is judged by its
# first CONTENT_CAP bytes.
CONTENT_FILES = ("etc/shadow", "etc/sudoers")
CONTENT_DIRS = ("etc/sudoers.d/",)
CONTENT_CAP = 1 << 20
# Package-manager caches: directory prefix -> what it is.
CACHE_DIRS = {
    "var/cache/apt/archives/": "apt's downloaded packages",
    "var/lib/apt/lists/": "apt's package lists",
    "var/cache/apk/": "apk's cache",
    "var/cache/yum/": "yum's cache",
    "var/cache/dnf/": "dnf's cache",
    "root/.cache/pip/": "pip's cache",
    "root/.npm/_cacache/": "npm's cache",
}
SUDO_BINARIES = ("usr/bin/sudo", "bin/sudo", "usr/local/bin/sudo")


@dataclass
class ImageFile:
    """One kept entry of a layer: its path in the image (no leading /), the layer that
    holds it, its tar type and mode, the first CONTENT_CAP bytes of a file a rule reads,
    and the layer that deleted or replaced it (None while it is in the final filesystem)."""
    path: str
    layer: int
    type: bytes
    mode: int
    size: int
    content: bytes | None = None
    removed_in: int | None = None

    @property
    def is_dir(self) -> bool:
        return self.type == b"5"

    @property
    def is_file(self) -> bool:
        return self.type in (b"0", b"\x00", b"7", b"S")     # S: a GNU sparse file


@dataclass(frozen=True)
class HistoryStep:
    """One history entry: its index, `created_by`, and the layer it made (None for an
    empty-layer step such as ENV)."""
    index: int
    created_by: str
    layer: int | None


@dataclass
class ImageModel:
    """An image as the image rules see it."""
    name: str                       # as the user named it (`oci:dir:tag`, a store name…)
    digest: str                     # the manifest digest
    layers: tuple                   # layer digests as stored, in order
    config: dict                    # the container config (`config` of the image config)
    history: tuple                  # HistoryStep
    files: list = field(default_factory=list)    # ImageFile, kept entries in walk order
    entries: int = 0                # entries walked over all layers
    kind: str = "image"

    @property
    def image(self) -> str:
        """The image as named: what a policy exemption's `images:` patterns match."""
        return self.name

    def layer_digest(self, index: int | None) -> str | None:
        return self.layers[index] if index is not None and 0 <= index < len(self.layers) else None


def open_image(text: str):
    """(source, display name) for an image named as `hardrun audit --image` takes it."""
    from ..images.reference import parse_location
    from ..images.sources import open_source
    location = parse_location(text)
    if location.transport in IMAGE_TRANSPORTS:
        return open_source(location), str(location)
    from ..images.operations import find
    from ..images.store import Store, StoreSource, default_root
    store = Store(default_root())
    try:
        name, entry = find(store, text)
    except UsageError:
        if location.reference is None:
            raise
        from ..images.registry import RegistrySource
        return RegistrySource(location), str(location)
    return StoreSource(store, entry["manifest"], name), name


def read_image(text: str) -> ImageModel:
    """The model of the image `text` names; ImageError/UsageError (one line) when it cannot
    be read."""
    source, name = open_image(text)
    with source:
        manifest = source.manifest()
        image_config = source.config(manifest)
        model = ImageModel(name, manifest.digest, tuple(desc.digest for desc in manifest.layers),
                           dict(image_config.get("config") or {}), _history(image_config))
        walker = _Walker(model)
        for index, (desc, diff_id) in enumerate(zip(manifest.layers, diff_ids(image_config))):
            with Layer(source, desc, diff_id, listing=True) as layer:
                walker.walk(index, layer)
                layer.finish()
    return model


def _history(image_config: dict) -> tuple:
    """History steps, each with the index of the layer it made (steps marked
    `empty_layer` made none)."""
    steps, layer = [], 0
    history = image_config.get("history")
    for index, item in enumerate(history if isinstance(history, list) else []):
        if not isinstance(item, dict):
            continue
        empty = bool(item.get("empty_layer"))
        steps.append(HistoryStep(index, str(item.get("created_by") or ""), None if empty else layer))
        layer += 0 if empty else 1
    return tuple(steps)


class _Walker:
    """Streams layers into the model's kept files, applying whiteouts as it goes."""

    def __init__(self, model: ImageModel):
        self.model = model
        self.present: dict[str, ImageFile] = {}     # kept files in the filesystem so far

    def walk(self, index: int, layer: Layer) -> None:
        count, present = 0, self.present
        for kind, path, member in layer.headers():
            count += 1
            if kind is ENTRY:
                if path in present:
                    present.pop(path).removed_in = index
                if path and _kept(path, member):
                    self._keep(index, path, member, layer)
            elif kind == WHITEOUT_ENTRY:
                self._remove(index, lambda p, target=path: p == target or p.startswith(target + "/"))
            elif kind == OPAQUE_ENTRY:
                prefix = path + "/" if path else ""
                # an opaque directory hides what the layers below put in it, not its own layer's
                self._remove(index, lambda p, prefix=prefix, f=self.present: p.startswith(prefix)
                             and f[p].layer < index)
        self.model.entries += count

    def _remove(self, index: int, covered) -> None:
        for path in [p for p in self.present if covered(p)]:
            self.present.pop(path).removed_in = index

    def _keep(self, index: int, path: str, member, layer: Layer) -> None:
        kept = ImageFile(path, index, member.type, member.mode, member.size)
        if member.isfile() and _content_wanted(path):
            kept.content = layer.content(CONTENT_CAP)
        self.model.files.append(kept)
        self.present[path] = kept


def _kept(path: str, member) -> bool:
    """Whether a rule looks at this entry (the walk keeps nothing else). The first tests
    settle almost every entry: its mode, one prefix test, one set lookup by name."""
    if not member.mode & 0o6002 and not path.startswith(_KEPT_PREFIXES):
        name = path[path.rfind("/") + 1:]
        if name not in _KEPT_NAMES and not could_be_secret(name):
            return False
    return _kept_exactly(path, member)


def _kept_exactly(path: str, member) -> bool:
    if member.issym():
        return False
    if member.mode & 0o6000 and member.isfile():
        return True
    if member.mode & 0o002:
        return True
    if path in SUDO_BINARIES or _content_wanted(path):
        return True
    if member.type == b"5":
        return path == ".git" or path.endswith("/.git")
    return secret_file(path) is not None or cache_of(path) is not None


def _content_wanted(path: str) -> bool:
    return path in CONTENT_FILES or path.startswith(CONTENT_DIRS)


def secret_file(path: str) -> str | None:
    """What secret a file at `path` in an image is (the Dockerfile rules' list), or None;
    a `.git` directory counts too."""
    if path == ".git" or path.endswith("/.git"):
        return "a git repository (.git)"
    return secret_file_kind(path)


_CACHE_PREFIXES = tuple(CACHE_DIRS)
# what _kept_exactly keeps other than by mode: these prefixes, these names, secret names
_KEPT_PREFIXES = CONTENT_FILES + CONTENT_DIRS + _CACHE_PREFIXES
_KEPT_NAMES = frozenset({".git"} | {binary.rsplit("/", 1)[-1] for binary in SUDO_BINARIES})


def cache_of(path: str) -> str | None:
    """The cache directory (a CACHE_DIRS key) a file at `path` lies in, or None."""
    if not path.startswith(_CACHE_PREFIXES):
        return None
    for prefix in CACHE_DIRS:
        if path.startswith(prefix) and not path.endswith(("/lock", "/partial")):
            return prefix
    return None


def parse_image(text: str, path: str) -> list:
    """The registry's parser for the image kind: `text` names the image."""
    return [read_image(text.strip())]


__all__ = ["ImageFile", "ImageModel", "HistoryStep", "read_image", "cache_of",
           "secret_file"]
