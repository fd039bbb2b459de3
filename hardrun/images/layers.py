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
from .tarlist import Header, TarLister

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import NoReturn

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


def is_clean(name: str) -> bool:
    """Whether `name` is already relative to the image root and normal (most entries): no
    leading `.` or `/`, no trailing `/`, no `//`, no `/.` (so no whiteout either)."""
    return not (name[:1] in "./" or name[-1:] == "/" or "//" in name or "/." in name)


class _ZstdReader:
    """A zstd stream's decompressed bytes (every frame, as zstd:chunked layers have
    several); a damaged stream is an OSError, as gzip's are."""

    def __init__(self, stream):
        import zstandard     # only for zstd layers: it is not on the start-up path
        self._error = zstandard.ZstdError
        self._reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True,
                                                                  closefd=False)

    def read(self, n: int = -1) -> bytes:
        try:
            return self._reader.read(n)
        except self._error as error:
            raise OSError(f"zstd: {error}") from None


def decompressed(blob):
    """A layer blob's tar stream. The content, not the media type, chooses the decompressor
    (gzip, zstd or none), for every media type that names them: OCI's `tar+gzip` and
    `tar+zstd`, Docker's `rootfs.diff.tar.gzip` and `.zstd`, and plain tars."""
    stream = _Peekable(blob)
    head = stream.peek(4)
    if head.startswith(ZSTD_MAGIC):
        return _ZstdReader(stream)
    if head.startswith(GZIP_MAGIC):
        import gzip
        # typeshed's gzip wants a seekable file object; a forward read never seeks
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[call-overload]
    return stream


def clean_path(name: str) -> str:
    """`name` relative to the image root, `..` and `/` resolved lexically ("" is the root)."""
    if is_clean(name):
        return name      # normpath is costly, and most names need none
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


class _ReadAhead:
    """A stream read by a thread of its own, up to DEPTH chunks ahead of its reader: the
    layer's reading, hashing and decompressing (hashlib and zlib release the GIL on
    large buffers) run beside the parsing of its headers. An error of the stream is
    raised to the reader when it reaches it. `read(n)` gives the next chunk whatever n
    (a stream for VerifiedReader)."""
    DEPTH = 4

    def __init__(self, stream, chunk: int = 1 << 20):
        import queue
        import threading
        self._queue: queue.Queue = queue.Queue(self.DEPTH)
        self._empty = queue.Empty
        self._stopped = self._ended = False
        self._thread = threading.Thread(target=self._fill, args=(stream, chunk), daemon=True,
                                        name="hardrun-layer-read")
        self._thread.start()

    def _fill(self, stream, chunk: int) -> None:
        try:
            while not self._stopped:
                data = stream.read(chunk)
                self._queue.put(data)
                if not data:
                    return
        except BaseException as error:     # handed to the reader, raised there
            self._queue.put(error)

    def read(self, n: int = -1) -> bytes:
        if self._ended:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._ended = True
            self._thread.join()
            raise item
        if not item:
            self._ended = True
            self._thread.join()
        return item

    def stop(self) -> None:
        """Stop the thread (it may be waiting to hand over a chunk) and wait for it."""
        self._stopped = self._ended = True
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except self._empty:
                pass
        self._thread.join()


class _BlobBytes:
    """The tar stream of an uncompressed layer: the blob's own bytes, which the blob's
    reader already hashes. Hashing them twice was a third of the audit's time; the
    layer's diff id must then be the blob's digest."""

    def __init__(self, stream, blob: VerifiedReader, diff_id: str):
        self._stream, self._blob, self.digest = stream, blob, diff_id

    def read(self, n: int = -1) -> bytes:
        return self._stream.read(n)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def verify(self) -> None:
        """After the blob's own check: its digest is the content's."""
        if self.digest != self._blob.digest:
            raise ImageError(f"layer (uncompressed) {self.digest} does not match its digest (its "
                             f"content is {self._blob.digest})")


def _hashed_once(tar_stream: VerifiedReader, blob: VerifiedReader):
    """`tar_stream` itself, or for an uncompressed layer its bytes without a second hash."""
    if isinstance(tar_stream.stream, _Peekable):      # no decompressor between blob and tar
        return _BlobBytes(tar_stream.stream, blob, tar_stream.digest)
    return tar_stream


class Layer:
    """One layer opened for streaming: `for kind, path, member, tar in layer.entries()`,
    then `layer.finish()` checks the digests (ImageError naming the layer).

    With `listing=True` the entries are read by `headers()` from the tar headers
    directly, without tarfile (several times faster per entry: listing a large image
    is dominated by it); `content(cap)` reads the current entry's first bytes."""

    def __init__(self, source: Source, desc: Descriptor, diff_id: str, listing: bool = False):
        self.desc, self.diff_id = desc, diff_id
        self._blob = source.open_blob(desc, "layer")
        self._tar_stream = VerifiedReader(decompressed(self._blob), diff_id, None, "layer (uncompressed)")
        self._ahead: _ReadAhead | None = None
        if listing:
            self._listing()
            return
        import tarfile
        self._tarfile = tarfile
        try:
            # typeshed's tarfile wants a file object that seeks, tells and writes; a
            # stream ("r|") only reads
            self.tar = tarfile.open(fileobj=self._tar_stream, mode="r|",  # type: ignore[call-overload]
                                    encoding="utf-8", errors="surrogateescape")
        except (tarfile.TarError, OSError, EOFError) as error:
            self._blob.close()
            raise ImageError(f"layer {desc.digest} is not a tar archive: {error}") from None

    def _listing(self) -> None:
        """The read-ahead thread reads the blob and hashes it. A plain layer is hashed once
        (as the blob); a compressed one is decompressed in that thread too, and its diff id
        hashed in this one as its headers are parsed, so that the two hashes run side by side."""
        plain = _hashed_once(self._tar_stream, self._blob)
        if plain is not self._tar_stream:
            self._ahead = _ReadAhead(plain)
            self._tar_stream, self._next_chunk = plain, self._ahead.read
        else:
            self._ahead = _ReadAhead(self._tar_stream.stream)
            self._tar_stream = VerifiedReader(self._ahead, self._tar_stream.digest, None, self._tar_stream.what)
            self._next_chunk = self._tar_stream.read
        self._lister = TarLister(self._next_chunk)

    def entries(self):
        """(kind, path, member) for each entry, in archive order."""
        try:
            for member in self.tar:
                kind, path = classify(clean_path(member.name))
                yield kind, path, member
        except self.READ_ERRORS as error:
            self.broken(error)

    READ_ERRORS = (OSError, EOFError, zlib.error, __import__("tarfile").TarError)
    # what the header walk raises on a damaged layer (tarlist's TarFormatError is a ValueError)
    LISTING_ERRORS = (OSError, EOFError, zlib.error, ValueError)

    def headers(self):
        """(kind, path, Header) for each entry, in archive order, from the headers alone
        (hardrun/images/tarlist.py); a file's content is skipped unless `content()` reads
        it first. The archive's integrity is the layer's digest, checked by `finish()`."""
        try:
            for header in self._lister.headers():
                name = header.name
                if is_clean(name):      # a clean name holds no `/.`, so it is no whiteout
                    yield ENTRY, name, header
                else:
                    kind, path = classify(clean_path(name))
                    yield kind, path, header
        except self.LISTING_ERRORS as error:
            self.broken(error)

    def content(self, cap: int) -> bytes:
        """The first `cap` bytes of the current entry's content (headers() only)."""
        try:
            return self._lister.content(cap)
        except self.LISTING_ERRORS as error:
            self.broken(error)

    def broken(self, error: Exception) -> NoReturn:
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
            if self._ahead is not None:
                while self._next_chunk():
                    pass
            else:
                self._tar_stream.drain()
        except (OSError, EOFError, zlib.error) as error:
            self._stop_reading()
            self._blame_the_blob()
            raise ImageError(f"layer {self.desc.digest} cannot be decompressed: {error}") from None
        self._blob.finish()
        self._tar_stream.verify()

    def _stop_reading(self) -> None:
        if self._ahead is not None:
            self._ahead.stop()

    def close(self) -> None:
        self._stop_reading()
        self._blob.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


__all__ = ["Header", "Layer", "VerifiedReader", "classify", "clean_path", "decompressed"]
