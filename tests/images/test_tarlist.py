"""The lean tar header reader (hardrun/images/tarlist.py) against tarfile: the same names,
types, modes, owners, sizes and link targets on archives hypothesis generates (ustar,
GNU long names and links, PAX extended and global headers, hard links, devices, FIFOs,
whiteouts, base-256 numbers), and a clear TarFormatError, never another exception and
never a silent stop, on cut or damaged archives.

Each of these runs against both walks of the headers: the Python one (`native=False`,
the reference) and the C one (hardrun/images/_tarscan.c, `native=True`), which
tests/images/test_tarscan.py also holds to the Python one on random and damaged bytes."""
from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardrun.images.tarlist import TarFormatError, TarLister
from tests.helpers import run_hardrun
from tests.image_examples import layer_of
from tests.imagebuild import Image, write_layout

FIELDS = ("name", "type", "mode", "uid", "gid", "uname", "gname", "size", "linkname", "devmajor", "devminor")
KINDS = [tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
         tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE]
FORMATS = [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]

_segment = st.one_of(st.text("abcxyz._-", min_size=1, max_size=12),
                     st.text("abcdéü文", min_size=1, max_size=6),
                     st.text("lmnop", min_size=60, max_size=140),      # longer than ustar's fields
                     st.sampled_from([".wh.gone", ".wh..wh..opq", ".git", ".npmrc", "sudo"]))
_path = st.lists(_segment, min_size=1, max_size=5).map("/".join)


@st.composite
def _member(draw):
    info = tarfile.TarInfo(draw(_path))
    info.type = draw(st.sampled_from(KINDS))
    info.mode = draw(st.integers(0, 0o7777))
    info.uid = draw(st.one_of(st.integers(0, 70000), st.integers(0, 1 << 30)))
    info.gid = draw(st.integers(0, 70000))
    info.uname, info.gname = draw(st.sampled_from(["", "root", "app", "üser"])), draw(st.sampled_from(["", "wheel"]))
    data = None
    if info.type == tarfile.REGTYPE:
        data = draw(st.binary(max_size=1500))
        info.size = len(data)
    elif info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = draw(_path)
    elif info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = draw(st.integers(0, 300)), draw(st.integers(0, 300))
    return info, data


@st.composite
def archives(draw):
    """(archive bytes, format) written by tarfile."""
    members = draw(st.lists(_member(), min_size=1, max_size=8))
    fmt = draw(st.sampled_from(FORMATS))
    global_headers = draw(st.sampled_from([{}, {"comment": "built by a test"}, {"uname": "everyone"}]))
    for attempt_format in (fmt, tarfile.PAX_FORMAT):     # ustar cannot hold every name: then PAX
        buffer = io.BytesIO()
        try:
            with tarfile.open(fileobj=buffer, mode="w", format=attempt_format,
                              pax_headers=global_headers if attempt_format == tarfile.PAX_FORMAT else None,
                              encoding="utf-8", errors="surrogateescape") as tar:
                for info, data in members:
                    tar.addfile(info, io.BytesIO(data) if data is not None else None)
        except ValueError:
            continue
        return buffer.getvalue(), attempt_format
    raise AssertionError("tarfile could not write the PAX archive")


def _chunks(data: bytes, size: int):
    """A read() giving `data` in chunks of `size` (headers straddle chunk boundaries)."""
    pieces = iter([data[i:i + size] for i in range(0, len(data), size)])
    return lambda: next(pieces, b"")


def _tarfile_listing(data: bytes):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
        return [tuple(getattr(member, field) for field in FIELDS) for member in tar]


def _lean_listing(data: bytes, chunk: int = 4096, native: bool = False):
    return [tuple(getattr(header, field) for field in FIELDS)
            for header in TarLister(_chunks(data, chunk), native=native).headers()]


WALKS = pytest.mark.parametrize("native", [False, True], ids=["python", "c"])


def _members(data: bytes):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
        return tar.getmembers()


@WALKS
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(archives(), st.sampled_from([512, 700, 4096, 1 << 20]))
def test_the_lean_reader_lists_what_tarfile_lists(native, archive, chunk):
    data, _ = archive
    assert _lean_listing(data, chunk, native) == _tarfile_listing(data)


@WALKS
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(archives(), st.data(), st.sampled_from([512, 777, 4096]))
def test_content_gives_a_files_first_bytes(native, archive, draw, chunk):
    data, _ = archive
    cap = draw.draw(st.integers(0, 2000))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        contents = [tar.extractfile(m).read()[:cap] if m.isreg() else None for m in tar.getmembers()]
    lister = TarLister(_chunks(data, chunk), native=native)
    got = [lister.content(cap) if header.isfile() else None for header in lister.headers()]
    assert got == contents


def _boundaries(data: bytes) -> tuple[list, int]:
    """Where entries start (their first header, extended ones included), and where the
    last entry's content ends."""
    members = _members(data)
    last = members[-1]
    end = last.offset_data + (-(-last.size // 512) * 512 if last.isreg() else 0)
    return [m.offset for m in members], end


@WALKS
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(archives(), st.data())
def test_a_cut_archive_is_an_error_unless_cut_between_two_entries(native, archive, draw):
    data, _ = archive
    starts, end = _boundaries(data)
    cut = draw.draw(st.integers(1, end + 1024))
    full = _tarfile_listing(data)
    whole = sum(1 for start in starts if start < cut)
    if cut in starts or cut >= end:
        # between two entries, or in the end-of-archive blocks: tarfile, GNU tar and Go stop there too
        assert _lean_listing(data[:cut], native=native) == full[:whole]
    elif whole and not any(data[starts[whole - 1]:cut]):
        # only zero bytes of the cut entry's header are left (an empty name): that is what a
        # cut end-of-archive block looks like, and both readers stop there
        assert _lean_listing(data[:cut], native=native) == full[:whole - 1]
    else:
        # cut right after an entry's extended header(s): what is left describes no entry
        with pytest.raises(TarFormatError, match="ends inside|describes no entry"):
            _lean_listing(data[:cut], native=native)


@WALKS
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(archives(), st.data())
def test_a_damaged_header_is_an_error_naming_its_offset(native, archive, draw):
    data, _ = archive
    members = _members(data)
    member = draw.draw(st.sampled_from(members))
    header = draw.draw(st.sampled_from(sorted({member.offset, member.offset_data - 512})))
    byte = draw.draw(st.integers(0, 511).filter(lambda i: not 148 <= i < 156))   # not the checksum field
    damaged = bytearray(data)
    damaged[header + byte] ^= draw.draw(st.integers(1, 255))
    with pytest.raises(TarFormatError, match=f"header at byte {header} has a (wrong checksum|number field "
                                             "that is not octal)"):
        _lean_listing(bytes(damaged), native=native)


@WALKS
def test_tarfile_stops_silently_where_the_lean_reader_reports_the_damage(native):
    """The control: the damage the tests above make is invisible to tarfile past the
    first entry (it lists what comes before and stops without an error)."""
    data = layer_of([{"path": "a"}, {"path": "usr/bin/hidden", "mode": 0o4755}])
    second = _members(data)[1].offset
    damaged = bytearray(data)
    damaged[second + 3] ^= 0x20
    assert [m[0] for m in _tarfile_listing(bytes(damaged))] == ["a"]
    with pytest.raises(TarFormatError, match=f"header at byte {second} has a wrong checksum"):
        _lean_listing(bytes(damaged), native=native)


@WALKS
def test_an_extended_header_with_no_entry_after_it_is_an_error(native):
    info = tarfile.TarInfo("x" * 200)
    data = info.tobuf(tarfile.GNU_FORMAT)[:-512]      # the long-name header, not the entry
    with pytest.raises(TarFormatError, match="describes no entry"):
        _lean_listing(data + bytes(1024), native=native)


@WALKS
def test_an_extended_header_too_large_to_hold_is_an_error(native):
    """A PAX header claiming 8 GiB would be read into memory: refused (bounded memory)."""
    info = tarfile.TarInfo("pax")
    info.type, info.size = tarfile.XHDTYPE, 1 << 33
    data = info.tobuf(tarfile.GNU_FORMAT) + bytes(4096)
    with pytest.raises(TarFormatError, match="extended header at byte 0 is 8589934592 bytes"):
        _lean_listing(data, native=native)


@WALKS
def test_an_old_gnu_sparse_file_is_listed_with_its_real_size(native):
    """tarfile cannot write one: a header built by hand (type S, real size at 483, one
    extension block), checked against tarfile's reading of it."""
    header = bytearray(tarfile.TarInfo("sparse.img").tobuf(tarfile.GNU_FORMAT))
    header[156:157] = b"S"
    header[124:136] = b"%011o\0" % 1024                     # stored data: two blocks
    header[386:398], header[398:410] = b"%011o\0" % 0, b"%011o\0" % 1024
    header[482] = 1                                          # one extension block follows
    header[483:495] = b"%011o\0" % (1 << 20)                 # the real size
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % sum(header)
    extension = bytearray(512)
    data = bytes(header) + bytes(extension) + b"\1" * 1024 + tarfile.TarInfo("next").tobuf() + bytes(1024)
    assert _lean_listing(data, 512, native) == _tarfile_listing(data)
    assert [row[FIELDS.index("size")] for row in _lean_listing(data, native=native)] == [1 << 20, 0]


def test_a_damaged_layer_is_one_error_line_naming_the_layer_and_the_byte(tmp_path):
    """Through `hardrun audit`: the blob matches its digest, its archive is damaged."""
    data = bytearray(layer_of([{"path": "a"}, {"path": "usr/bin/hidden", "mode": 0o4755}]))
    second = _members(bytes(data))[1].offset
    data[second + 3] ^= 0x20
    layout = write_layout(tmp_path / "layout", {None: Image([bytes(data)], {"User": "1000"})})
    result = run_hardrun("audit", f"oci:{layout}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if ": error: " in line]
    assert len(lines) == 1 and "is a broken tar archive" in lines[0], result.stdout
    assert f"the header at byte {second} has a wrong checksum" in lines[0]


@pytest.mark.parametrize("compress", [False, True, "zstd"], ids=["plain", "gzip", "zstd"])
def test_a_layers_diff_id_is_still_checked(tmp_path, compress):
    """A plain layer's bytes are hashed once (as the blob), a compressed layer's diff id by
    the thread that parses it: a config whose diff id is another is refused (the control:
    the same image with its own diff id passes)."""
    image = Image([layer_of([{"path": "a"}])], {"User": "1000", "Healthcheck": {"Test": ["CMD", "true"]}},
                  compress=compress)
    control = write_layout(tmp_path / "control", {None: image})
    image.config["rootfs"]["diff_ids"] = ["sha256:" + "c" * 64]
    layout = write_layout(tmp_path / "layout", {None: image})
    assert run_hardrun("audit", f"oci:{control}").returncode == 0
    result = run_hardrun("audit", f"oci:{layout}")
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    assert "sha256:" + "c" * 64 in result.stdout and "does not match its digest" in result.stdout
