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


def _joined_name(block: bytes) -> str:
    """A ustar header's name: its prefix field, when set, then its name field."""
    name = _text(block[0:100])
    if block[257:263] == b"ustar\0" and block[345:346] != b"\0":   # POSIX ustar, not GNU
        return _text(block[345:500]) + "/" + name
    return name


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
        return gzip.GzipFile(fileobj=stream, mode="rb")
    return stream


def clean_path(name: str) -> str:
    """`name` relative to the image root, `..` and `/` resolved lexically ("" is the root)."""
    if name and not name.startswith((".", "/")) and not name.endswith("/") \
            and "//" not in name and "/." not in name:
        return name      # already clean: most entries, and normpath is the walk's largest cost
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


class Header:
    """One entry's tar header, as `Layer.headers()` reads it: the fields of a TarInfo
    that listing needs, and its tests (`isfile`, `isdir`, `issym`)."""
    __slots__ = ("name", "type", "mode", "size", "linkname")

    def __init__(self, name: str, type: bytes, mode: int, size: int, linkname: str):
        self.name, self.type, self.mode, self.size, self.linkname = name, type, mode, size, linkname

    def isfile(self) -> bool:
        return self.type in (b"0", b"\x00", b"7")

    def isdir(self) -> bool:
        return self.type == b"5"

    def issym(self) -> bool:
        return self.type == b"2"


_BLOCK = 512
_CHUNK = 1 << 20
_META = (b"x", b"g", b"L", b"K")     # PAX extended/global headers, GNU long name/link


def _number(field: bytes) -> int:
    """A numeric header field: octal, or GNU base-256 (first byte 0x80)."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    field = field.split(b"\0", 1)[0].strip()
    return int(field, 8) if field else 0


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict:
    """`LEN key=value\n` records of a PAX extended header."""
    records, position = {}, 0
    while position < len(data):
        space = data.find(b" ", position)
        if space < 0:
            break
        length = int(data[position:space] or b"0")
        if length <= 0:
            break
        key, _, value = data[space + 1:position + length - 1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


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
        if listing:
            self._buffer, self._position, self._remaining = b"", 0, 0
            return
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

    def headers(self):
        """(kind, path, Header) for each entry, in archive order, from the headers alone;
        a file's content is skipped unless `content()` reads it first. The archive's
        integrity is the layer's digest, checked by `finish()`."""
        try:
            yield from self._headers()
        except (OSError, EOFError, zlib.error, ValueError) as error:
            self.broken(error)

    def _headers(self):
        long_name = long_link = None
        pax: dict = {}
        while True:
            self._skip(self._remaining)
            block = self._take(_BLOCK)
            if len(block) < _BLOCK or block == bytes(_BLOCK):
                return      # the end-of-archive blocks (or a truncated archive: the digest will tell)
            size, type_ = _number(block[124:136]), block[156:157]
            padded = (size + _BLOCK - 1) // _BLOCK * _BLOCK
            if type_ in _META:
                data = self._take(padded)[:size]
                if type_ == b"x":
                    pax = _pax_records(data)
                elif type_ == b"L":
                    long_name = _text(data)
                elif type_ == b"K":
                    long_link = _text(data)
                self._remaining = 0
                continue
            name = long_name or pax.get("path") or _joined_name(block)
            linkname = long_link or pax.get("linkpath") or _text(block[157:257])
            if "size" in pax:
                size = int(pax["size"])
                padded = (size + _BLOCK - 1) // _BLOCK * _BLOCK
            header = Header(name, type_, _number(block[100:108]), size, linkname)
            long_name = long_link = None
            pax = {}
            # only regular files carry content (a hard link's size is 0 in practice)
            self._remaining = padded if type_ in (b"0", b"\x00", b"7") else 0
            kind, path = classify(clean_path(name))
            yield kind, path, header

    def content(self, cap: int) -> bytes:
        """The first `cap` bytes of the current entry's content (headers() only)."""
        want = min(cap, self._remaining)
        data = self._take(want)
        self._remaining -= len(data)
        return data

    def _take(self, n: int) -> bytes:
        while len(self._buffer) - self._position < n:
            chunk = self._tar_stream.read(_CHUNK)
            if not chunk:
                break
            self._buffer = self._buffer[self._position:] + chunk
            self._position = 0
        data = self._buffer[self._position:self._position + n]
        self._position += len(data)
        return data

    def _skip(self, n: int) -> None:
        available = len(self._buffer) - self._position
        if n <= available:
            self._position += n
            return
        n -= available
        self._buffer, self._position = b"", 0
        while n > 0:
            chunk = self._tar_stream.read(_CHUNK)
            if not chunk:
                return
            if len(chunk) > n:      # the rest of the chunk is the next entries'
                self._buffer, self._position = chunk, n
                return
            n -= len(chunk)

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


__all__ = ["Header", "Layer", "VerifiedReader", "classify", "clean_path", "decompressed"]
