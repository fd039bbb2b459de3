"""A tar stream listed from its headers alone, without tarfile: what the image audit reads
of every layer (several times faster per entry than tarfile's TarInfo machinery, which
dominates the listing of a large image).

It reads what tarfile reads (POSIX ustar with its name prefix, GNU long names and long
link names, PAX extended and global headers: path, linkpath, size, uid, gid, uname,
gname, GNU.sparse.name/size/realsize; old GNU sparse files with their extension blocks;
base-256 numbers) and gives the same names, types, modes, owners, sizes and link
targets (tests/images/test_tarlist.py compares them on generated archives). Where an
archive is malformed it stops with a TarFormatError saying where and what, where
tarfile would stop listing silently after the first entry: a header whose checksum is
wrong, a number field that is not octal, an archive that ends inside a header, an
extended header or a file's content, an extended header with nothing after it. An
archive that ends between two entries without its end-of-archive blocks is read to
there, as tarfile, GNU tar and Go's archive/tar read it (a layer's digest is what
tells a cut blob).

One difference, on purpose: a ustar name prefix (bytes 345-500) is used only when the
header's magic says POSIX ustar, as Go's archive/tar (the unpacker of Docker and
containerd) does; tarfile also joins those bytes to the name in GNU and V7 headers.

Contents are skipped, never kept: `content(cap)` reads the first bytes of the current
file when the caller asks for them before the next header.

The header walk has two implementations that give the same entries and errors: this
module's Python, the reference, and hardrun/images/_tarscan.c, which walks a whole chunk
of headers per call (several times faster per entry) and is used when it is built. A
checkout without a compiler lists with the Python one, correctly and more slowly.
"""
from __future__ import annotations

import struct
import zlib

try:
    from . import _tarscan  # type: ignore[attr-defined]  # a C module: no stubs
except ImportError:         # not built (no compiler): the Python walk below
    _tarscan = None

BLOCK = 512
MAX_EXTENDED_HEADER = 1 << 20
_MAX_SPARSE_BLOCKS = MAX_EXTENDED_HEADER // BLOCK
_INT64 = 1 << 63            # a number field is refused past 63 bits, as Go's archive/tar does
_ZERO_BLOCK = bytes(BLOCK)
_REGULAR = (b"0", b"\0", b"7", b"S")
# tarfile's SUPPORTED_TYPES: an entry of any other type has its content skipped by its size
_SUPPORTED = (b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"L", b"K", b"S",
              b"x", b"g", b"X")
_META = (b"x", b"g", b"X", b"L", b"K")
# PAX keywords -> the field each sets (GNU sparse files give their real size and name)
_PAX_FIELDS = {"path": "name", "GNU.sparse.name": "name", "linkpath": "linkname", "size": "size",
               "GNU.sparse.size": "size", "GNU.sparse.realsize": "size", "uid": "uid", "gid": "gid",
               "uname": "uname", "gname": "gname"}
_PAX_NUMBERS = ("size", "uid", "gid")


class TarFormatError(ValueError):
    """A malformed tar archive: the message says where (byte offset, entry) and what."""


def _number(field: bytes) -> int:
    """A numeric header field: octal (up to a NUL, spaces ignored), or GNU base-256
    (first byte 0x80, or 0xff for a negative number)."""
    first = field[0]
    if first == 0x80 or first == 0xFF:
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if first == 0xFF else value
    return int(field.partition(b"\0")[0].strip() or b"0", 8)


def _text(field: bytes) -> str:
    return field.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def _checksum_mode_size(block: bytes) -> tuple[int, int, int]:
    """The header's checksum, mode and size fields. Nearly every writer (GNU tar, Go,
    tarfile) ends them with a NUL after 6, 7 and 11 digits: read as that first, which is
    what _number gives then too, without its three calls."""
    if block[154] == 0 and block[107] == 0 and block[135] == 0:
        try:
            return int(block[148:154], 8), int(block[100:107], 8), int(block[124:135], 8)
        except ValueError:
            pass
    numbers = _number(block[148:156]), _number(block[100:108]), _number(block[124:136])
    if not all(-_INT64 <= number < _INT64 for number in numbers):
        raise OverflowError("a number field past 63 bits")
    return numbers


def _checksum_matches(block: bytes, stored: int) -> bool:
    """tarfile's test: the checksum field equals the sum of the header's bytes, the field
    itself counted as spaces (unsigned, or signed as some old tars computed it)."""
    # Adler-32's low half is 1 + the byte sum mod 65521: the exact sum while at most 256
    # bytes are non-NUL (255 * 256 < 65521), which is every ordinary header.
    if block.count(b"\0") >= BLOCK - 256:
        if stored == (zlib.adler32(block) & 0xFFFF) - 1 - sum(block[148:156]) + 256:
            return True
    unsigned = 256 + sum(struct.unpack_from("148B8x356B", block))
    signed = 256 + sum(struct.unpack_from("148b8x356b", block))
    return stored in (unsigned, signed)


def _pax_records(data: bytes) -> dict:
    """`LEN key=value\\n` records of a PAX extended header, as tarfile decodes them."""
    records, position = {}, 0
    while position < len(data) and data[position] != 0:
        space = data.find(b" ", position, position + 21)
        if space < 0 or not data[position:space].isdigit():
            raise TarFormatError("a PAX record does not start with its length")
        length = int(data[position:space])
        end = position + length - 1
        if length < 5 or end >= len(data) or data[end] != 0x0A:
            raise TarFormatError("a PAX record's length does not match its content")
        key, equals, value = data[space + 1:end].partition(b"=")
        if not key or not equals:
            raise TarFormatError("a PAX record has no keyword=value")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


def _pax_fields(records: dict) -> dict:
    """The header fields PAX records set (tarfile: a number that does not parse is 0)."""
    fields = {}
    for key, value in records.items():
        field = _PAX_FIELDS.get(key)
        if field is None:
            continue
        if field in _PAX_NUMBERS:
            try:
                number = int(value)
            except ValueError:
                if field == "size":
                    raise TarFormatError(f"PAX {key} {value!r} is not a number") from None
                value = 0
            else:
                # a negative size would walk the archive backwards
                if field == "size" and not 0 <= number < _INT64:
                    raise TarFormatError(f"PAX {key} {value!r} is not a size in bytes")
                value = number
        elif key == "path":
            value = value.rstrip("/")
        fields[field] = value
    return fields


class Header:
    """One entry's header: the TarInfo fields listing needs (name, type, mode, size),
    the others read from the header block when asked for, and TarInfo's type tests.
    The block is `buffer[at:at + 512]`: the chunk it was read from is kept, not copied."""
    __slots__ = ("name", "type", "mode", "size", "_buffer", "_at", "_fields")

    def __init__(self, name: str, type: bytes, mode: int, size: int, buffer: bytes = b"", at: int = 0,
                 fields: dict | None = None):
        self.name, self.type, self.mode, self.size = name, type, mode, size
        self._buffer, self._at, self._fields = buffer or _ZERO_BLOCK, at, fields

    @property
    def _block(self) -> bytes:
        return self._buffer[self._at:self._at + BLOCK]

    def _field(self, name: str, read):
        if self._fields and name in self._fields:
            return self._fields[name]
        return read(self._block)

    @property
    def linkname(self) -> str:
        return self._field("linkname", lambda block: _text(block[157:257]))

    @property
    def uid(self) -> int:
        return self._field("uid", lambda block: _number(block[108:116]))

    @property
    def gid(self) -> int:
        return self._field("gid", lambda block: _number(block[116:124]))

    @property
    def uname(self) -> str:
        return self._field("uname", lambda block: _text(block[265:297]))

    @property
    def gname(self) -> str:
        return self._field("gname", lambda block: _text(block[297:329]))

    @property
    def devmajor(self) -> int:
        return _number(self._block[329:337])

    @property
    def devminor(self) -> int:
        return _number(self._block[337:345])

    def isfile(self) -> bool:
        return self.type in _REGULAR

    def isdir(self) -> bool:
        return self.type == b"5"

    def issym(self) -> bool:
        return self.type == b"2"

    def islnk(self) -> bool:
        return self.type == b"1"

    def isdev(self) -> bool:
        return self.type in (b"3", b"4", b"6")


class TarLister:
    """`for header in TarLister(read).headers()`: `read()` gives the archive's next bytes
    (any amount, b"" at its end). `native`: walk the headers in C (the default when
    _tarscan is built) or in Python (the reference)."""

    def __init__(self, read, native: bool | None = None):
        if native and _tarscan is None:
            raise ImportError("hardrun.images._tarscan is not built (scripts/setup.sh builds it)")
        self._read = read
        self._native = _tarscan is not None if native is None else native
        self._buffer, self._position, self._base = b"", 0, 0     # _base: offset of _buffer[0]
        self._remaining = 0          # bytes of the current entry's content and padding not read yet
        self._content_left = 0       # of which content
        self._entry = ""
        self._next = self._content_at = 0      # the C walk's: stream offsets of the next header, of content

    @property
    def offset(self) -> int:
        return self._base + self._position

    def headers(self):
        """Each entry's Header, in archive order; TarFormatError for a malformed archive."""
        return self._scanned() if self._native else self._walked()

    def content(self, cap: int) -> bytes:
        """The first `cap` bytes of the current entry's content (before the next header)."""
        return self._scanned_content(cap) if self._native else self._walked_content(cap)

    def _scanned(self):
        """headers() by _tarscan, a chunk at a time."""
        scanner = _tarscan.Scanner(TarFormatError, _number)
        final = False
        while True:
            buffer, base = self._buffer, self._base
            if self._next - base <= len(buffer):      # else still in the content of the entry before
                entries, position, outcome = scanner.scan(buffer, self._next - base, base, final)
                self._next = base + position
                for name, type_, mode, size, at, content, stored, fields in entries:
                    self._entry, self._content_at, self._content_left = name, base + content, stored
                    yield Header(name, type_, mode, size, buffer, at, fields)
                if outcome is True:
                    return
                if outcome is not None:
                    raise outcome
            if not self._refill():
                missing = self._next - self._base - len(self._buffer)
                if missing > 0:
                    raise TarFormatError(f"the archive ends inside the content of {self._entry!r} "
                                         f"({missing} bytes missing)")
                final = True

    def _refill(self) -> bool:
        """The next chunk into the buffer, after what is left of it from the next header on
        (a header or an extended header the chunk cut); False at the end of the stream."""
        chunk = self._read()
        if not chunk:
            return False
        kept = self._next - self._base
        if kept < len(self._buffer):
            self._buffer, self._base = self._buffer[kept:] + chunk, self._next
        else:
            self._buffer, self._base = chunk, self._base + len(self._buffer)
        return True

    def _scanned_content(self, cap: int) -> bytes:
        wanted = min(cap, self._content_left)
        start = self._content_at - self._base
        data = self._buffer[start:start + wanted]
        while len(data) < wanted:       # the chunk's last entry: its content runs on in the next chunks
            if not self._refill():
                raise TarFormatError(f"the archive ends inside the content of {self._entry!r}")
            data += self._buffer[:wanted - len(data)]
        self._content_at += wanted
        self._content_left -= wanted
        return data

    def _walked(self):
        """headers() in Python, a header at a time: the reference."""
        overrides: dict = {}         # set by GNU long names and PAX headers for the next entry
        pending = False              # whether a GNU long name or PAX header awaits its entry
        global_fields: dict = {}     # PAX global headers: for every entry after them
        while True:
            if self._remaining:       # the previous entry's content, skipped
                if self._position + self._remaining <= len(self._buffer):
                    self._position += self._remaining
                    self._remaining = 0
                else:
                    self._skip(self._remaining)
            position = self._position
            if position + BLOCK <= len(self._buffer):      # _take(BLOCK), inline: once an entry
                block = self._buffer[position:position + BLOCK]
                self._position = position + BLOCK
            else:
                block = self._take(BLOCK)
            start = self.offset - len(block)
            if len(block) < BLOCK or block == _ZERO_BLOCK:
                if block.count(0) < len(block):
                    raise TarFormatError(f"the archive ends inside the header at byte {start}")
                if pending:
                    raise TarFormatError(f"the extended header before byte {start} describes no entry")
                return      # the end-of-archive blocks, or the end of the stream between entries
            try:
                checksum, mode, size = _checksum_mode_size(block)
                if not _checksum_matches(block, checksum):
                    raise TarFormatError(f"the header at byte {start} has a wrong checksum: not a tar "
                                         "header (a damaged or truncated archive?)")
                type_ = block[156:157]
            except OverflowError:
                raise TarFormatError(f"the header at byte {start} has a number field past 63 bits") from None
            except ValueError as error:
                if isinstance(error, TarFormatError):
                    raise
                raise TarFormatError(f"the header at byte {start} has a number field that is not "
                                     "octal") from None
            if size < 0:
                raise TarFormatError(f"the header at byte {start} gives a negative size")
            if type_ in _META:
                self._meta(type_, size, start, overrides, global_fields)
                pending = True
                continue
            header = self._entry_header(block, type_, mode, size, overrides, global_fields, start)
            overrides, pending = {}, False
            self._entry = header.name
            yield header

    def _meta(self, type_: bytes, size: int, start: int, overrides: dict, global_fields: dict) -> None:
        """A GNU long name/link or a PAX header: what it says about the entries after it.
        The first one before an entry wins, as in tarfile (each wraps the ones after it)."""
        if size > MAX_EXTENDED_HEADER:      # it is read into memory: bounded, as Go's archive/tar does
            raise TarFormatError(f"the extended header at byte {start} is {size} bytes, more than "
                                 f"the {MAX_EXTENDED_HEADER} a name or PAX records need")
        padded = -(-size // BLOCK) * BLOCK
        data = self._take(padded)
        if len(data) < padded:
            raise TarFormatError(f"the archive ends inside the extended header at byte {start}")
        data = data[:size]
        if type_ == b"L":
            if "name" not in overrides:
                overrides["name"], overrides["long"] = _text(data), True
        elif type_ == b"K":
            overrides.setdefault("linkname", _text(data))
        elif type_ == b"g":
            global_fields.update(_pax_fields(_pax_records(data)))
        else:
            for field, value in _pax_fields(_pax_records(data)).items():
                overrides.setdefault(field, value)

    def _entry_header(self, block: bytes, type_: bytes, mode: int, size: int, overrides: dict,
                      global_fields: dict, start: int) -> Header:
        name = _text(block[:100])
        if type_ == b"\0" and name.endswith("/"):      # an old V7 directory
            type_ = b"5"
        if type_ == b"5":
            name = name.rstrip("/")
        if block[345] and block[257:263] == b"ustar\0":     # POSIX ustar: the name's prefix
            name = _text(block[345:500]) + "/" + name
        stored = size
        if type_ == b"S":
            stored, size = size, self._sparse(block, start)
        fields = None
        if overrides or global_fields:
            fields = {**global_fields, **overrides} if global_fields else overrides
            name = fields.get("name", name)
            if "size" in fields:
                stored = size = fields["size"]
        if type_ == b"5":       # tarfile strips a directory's slashes: all but a GNU long name's last
            name = name.removesuffix("/") if overrides.get("long") else \
                name if overrides.get("name") else name.rstrip("/")
        # only regular files (and types tarfile does not know) have their content follow
        if type_ in _REGULAR or type_ not in _SUPPORTED:
            self._remaining, self._content_left = -(-stored // BLOCK) * BLOCK, stored
        else:
            self._remaining = self._content_left = 0
        return Header(name, type_, mode, size, block, 0, fields)

    def _sparse(self, block: bytes, start: int) -> int:
        """An old GNU sparse file: skip its extension blocks, return its real size."""
        extended, count = block[482], 0
        while extended:
            if count == _MAX_SPARSE_BLOCKS:      # bounded, as extended headers are
                raise TarFormatError(f"the sparse file's map at byte {start} is longer than "
                                     f"{MAX_EXTENDED_HEADER} bytes")
            count += 1
            more = self._take(BLOCK)
            if len(more) < BLOCK:
                raise TarFormatError("the archive ends inside a sparse file's map")
            extended = more[504]
        return _number(block[483:495])

    def _walked_content(self, cap: int) -> bytes:
        wanted = min(cap, self._content_left)      # not the padding after it
        data = self._take(wanted)
        if len(data) < wanted:
            raise TarFormatError(f"the archive ends inside the content of {self._entry!r}")
        self._remaining -= len(data)
        self._content_left -= len(data)
        return data

    def _take(self, n: int) -> bytes:
        position, end = self._position, self._position + n
        if end <= len(self._buffer):
            self._position = end
            return self._buffer[position:end]
        data = self._buffer[position:]
        while len(data) < n:
            chunk = self._read()
            if not chunk:
                self._base, self._buffer, self._position = self._base + len(self._buffer), b"", 0
                return data
            need = n - len(data)
            # keep the new chunk as the buffer: no copy of it, only of the bytes taken
            self._base += len(self._buffer)
            self._buffer, self._position = chunk, min(need, len(chunk))
            data += chunk[:need]
        return data

    def _skip(self, n: int) -> None:
        """Skip the current entry's remaining content (`n` bytes, padding included)."""
        self._remaining = 0
        while True:
            available = len(self._buffer) - self._position
            if n <= available:
                self._position += n
                return
            n -= available
            self._base += len(self._buffer)
            self._buffer, self._position = self._read(), 0
            if not self._buffer:
                raise TarFormatError(f"the archive ends inside the content of {self._entry!r} "
                                     f"({n} bytes missing)")


__all__ = ["Header", "TarFormatError", "TarLister"]
