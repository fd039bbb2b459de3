"""A layer's entries, streamed: decompressed on the fly, both digests checked at the end
(the blob's, and the diff id of the uncompressed tar), never unpacked.

Each entry's path is made relative to the image root lexically, as Docker does
(`clean("/" + name)`): `..` cannot climb above the root and a leading `/` means the root.
What a path resolves to through symbolic links is the unpacker's business
(hardrun/runtime/unpack.py), not this module's. Whiteouts are told apart: `.wh.NAME`
deletes NAME from the layers below, `.wh..wh..opq` empties its directory of them.
"""
from __future__ import annotations

import posixpath
import zlib

from .manifest import Descriptor, ImageError
from .sources import Source, VerifiedReader

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ENTRY, WHITEOUT_ENTRY, OPAQUE_ENTRY = "entry", "whiteout", "opaque"


class _Peekable:
    """A stream whose first bytes can be looked at before it is read (to tell gzip from tar)."""

    def __init__(self, stream):
        self._stream, self._head = stream, b""

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            data = self._stream.read(n - len(self._head))
            if not data:
                break
            self._head += data
        return self._head[:n]

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data + (self._stream.read(n - len(data)) if len(data) < n else b"")
        return self._stream.read(n)


def clean_path(name: str) -> str:
    """`name` relative to the image root, `..` and `/` resolved lexically ("" is the root)."""
    return posixpath.normpath("/" + name).lstrip("/") if name else ""


def classify(path: str) -> tuple[str, str]:
    """(kind, path): a plain entry, a whiteout and the path it deletes, or an opaque
    marker and the directory it empties."""
    directory, base = posixpath.split(path)
    if base == OPAQUE:
        return OPAQUE_ENTRY, directory
    if base.startswith(WHITEOUT):
        target = base[len(WHITEOUT):]
        if not target or target in (".", ".."):
            raise ImageError(f"whiteout {path!r} names nothing")
        return WHITEOUT_ENTRY, posixpath.join(directory, target)
    return ENTRY, path


class Layer:
    """One layer opened for streaming: `for kind, path, member, tar in layer.entries()`,
    then `layer.finish()` checks the digests (ImageError naming the layer)."""

    def __init__(self, source: Source, desc: Descriptor, diff_id: str):
        self.desc, self.diff_id = desc, diff_id
        self._blob = source.open_blob(desc, "layer")
        stream = _Peekable(self._blob)
        head = stream.peek(4)
        if head.startswith(ZSTD_MAGIC):
            self._blob.close()
            raise ImageError(f"layer {desc.digest} is zstd-compressed: only gzip and plain tar layers are supported")
        if head.startswith(GZIP_MAGIC):
            import gzip
            stream = gzip.GzipFile(fileobj=stream, mode="rb")
        self._tar_stream = VerifiedReader(stream, diff_id, None, "layer (uncompressed)")
        import tarfile
        self._tarfile = tarfile
        try:
            self.tar = tarfile.open(fileobj=self._tar_stream, mode="r|", encoding="utf-8",
                                    errors="surrogateescape")
        except (tarfile.TarError, OSError, EOFError) as error:
            self._blob.close()
            raise ImageError(f"layer {desc.digest} is not a tar archive: {error}") from None

    def entries(self):
        """(kind, path, member) for each entry, in archive order."""
        try:
            for member in self.tar:
                kind, path = classify(clean_path(member.name))
                yield kind, path, member
        except self.READ_ERRORS as error:
            self.broken(error)

    READ_ERRORS = (OSError, EOFError, zlib.error, __import__("tarfile").TarError)

    def broken(self, error: Exception):
        """Raise the ImageError for a layer that failed to read: the blob's digest mismatch
        when that is the cause, else the archive's own error."""
        self._blame_the_blob()
        raise ImageError(f"layer {self.desc.digest} is a broken tar archive: {error}") from None

    def _blame_the_blob(self) -> None:
        """A layer that does not decompress or parse: if its blob does not match its
        digest, that is the error to report (ImageError naming the blob)."""
        try:
            self._blob.drain()
        except OSError:
            return
        self._blob.verify()

    def read_member(self, member):
        """The content stream of a regular file entry (valid until the next entry)."""
        return self.tar.extractfile(member)

    def finish(self) -> None:
        # the blob's digest first: a changed blob is the error to name
        try:
            self._tar_stream.drain()
        except (OSError, EOFError, zlib.error) as error:
            self._blame_the_blob()
            raise ImageError(f"layer {self.desc.digest} cannot be decompressed: {error}") from None
        self._blob.finish()
        self._tar_stream.verify()

    def close(self) -> None:
        self._blob.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


__all__ = ["Layer", "VerifiedReader", "classify", "clean_path"]
