"""The C walk of tar headers (hardrun/images/_tarscan.c) held to the Python one
(hardrun/images/tarlist.py, the reference): the same entries, fields, contents and errors,
message for message, on every cut of a small archive, on every byte of its headers
changed (with the checksum left wrong, and set right so that the change is parsed), on
random bytes and on generated archives with bytes changed, read in chunks of several
sizes. And a build of it with AddressSanitizer and UndefinedBehaviorSanitizer reads the
same damaged archives without a fault (its control: the same build with a planted
out-of-bounds read is caught)."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardrun.images import tarlist
from hardrun.images.tarlist import TarFormatError, TarLister
from tests.helpers import ROOT, run_hardrun
from tests.images.test_tarlist import FIELDS, _chunks, archives

SOURCE = ROOT / "hardrun" / "images" / "_tarscan.c"
CHUNKS = (512, 700, 4096, 1 << 20)


def _sparse_member() -> bytes:
    """An old GNU sparse file (tarfile cannot write one): a map with one extension block."""
    header = bytearray(tarfile.TarInfo("sparse.img").tobuf(tarfile.GNU_FORMAT))
    header[156:157] = b"S"
    header[124:136] = b"%011o\0" % 1024
    header[386:398], header[398:410] = b"%011o\0" % 0, b"%011o\0" % 1024
    header[482] = 1
    header[483:495] = b"%011o\0" % (1 << 20)
    _fix_checksum(header, 0)
    return bytes(header) + bytes(512) + b"\1" * 1024


def small_archive() -> bytes:
    """Every kind of header the walks read, in a few KiB: GNU long names and links, PAX
    extended and global headers, a ustar name prefix, base-256 numbers, a sparse file."""
    out = io.BytesIO()
    members = [("dir/", tarfile.DIRTYPE, b"", {}), ("d" * 120 + "/file", tarfile.REGTYPE, b"x" * 700, {}),
               ("link", tarfile.SYMTYPE, b"", {"linkname": "t" * 130}),
               ("big-uid", tarfile.REGTYPE, b"y", {"uid": 1 << 40})]
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, data, extra in members:
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, len(data)
            for key, value in extra.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data))
    gnu = out.getvalue().rstrip(b"\0")
    gnu += bytes(-len(gnu) % 512)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"uname": "everyone"}) as tar:
        info = tarfile.TarInfo("pax/é/" + "p" * 90)
        info.size, info.uid = 3, 7
        tar.addfile(info, io.BytesIO(b"abc"))
    pax = out.getvalue().rstrip(b"\0")
    pax += bytes(-len(pax) % 512)
    ustar = tarfile.TarInfo("u" * 60 + "/" + "v" * 60).tobuf(tarfile.USTAR_FORMAT)
    return gnu + pax + ustar + _sparse_member() + bytes(1024)


def _fix_checksum(block: bytearray, at: int) -> None:
    block[at + 148:at + 156] = b"        "
    block[at + 148:at + 156] = b"%06o\0 " % sum(block[at:at + 512])


def _field(header, field):
    try:
        return getattr(header, field)
    except ValueError as error:     # a lazy field the change made unreadable: both alike
        return ("unreadable", str(error))


def outcome(data: bytes, native: bool, chunk: int = 700) -> list:
    """What a walk makes of `data`: each entry's fields and first content bytes, then the
    error it stopped with, if any (only a TarFormatError or tarlist's ValueError)."""
    listed = []
    lister = TarLister(_chunks(data, chunk), native=native)
    try:
        for header in lister.headers():
            listed.append(tuple(_field(header, field) for field in FIELDS))
            if header.isfile():
                listed.append(lister.content(9))
    except (TarFormatError, ValueError) as error:
        listed.append((type(error).__name__, str(error)))
    return listed


def assert_alike(data: bytes, chunk: int = 700) -> None:
    assert outcome(data, True, chunk) == outcome(data, False, chunk)


def header_offsets(data: bytes) -> list[int]:
    """The blocks the reference reads as headers (extended ones included)."""
    offsets = []
    for at in range(0, len(data) - 511, 512):
        block = data[at:at + 512]
        try:
            if any(block) and tarlist._checksum_matches(block, tarlist._number(block[148:156])):
                offsets.append(at)
        except ValueError:
            pass
    return offsets


def test_the_c_walk_is_built_and_used_by_default():
    """scripts/setup.sh builds it; a listing without `native` uses it."""
    assert tarlist._tarscan is not None, "hardrun/images/_tarscan.c is not built: run scripts/setup.sh"
    assert TarLister(lambda: b"")._native


def test_the_small_archive_holds_every_kind_of_header():
    data = small_archive()
    types = {data[at + 156:at + 157] for at in header_offsets(data)}
    assert {b"L", b"K", b"x", b"g", b"S", b"0", b"5", b"2"} <= types
    assert outcome(data, True) == outcome(data, False)
    assert [row[0] for row in outcome(data, True) if isinstance(row, tuple)][-2:] == \
        ["u" * 60 + "/" + "v" * 60, "sparse.img"]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_every_cut_of_a_small_archive_reads_alike(chunk):
    data = small_archive()
    for cut in range(len(data) + 1):
        assert outcome(data[:cut], True, chunk) == outcome(data[:cut], False, chunk), cut


@pytest.mark.parametrize("fix_checksum", [False, True], ids=["checksum-wrong", "checksum-set"])
def test_every_changed_header_byte_reads_alike(fix_checksum):
    """Every byte of every header (each field: name, mode, ids, size, checksum, type, link,
    magic, owner names, device numbers, prefix, sparse map), changed three ways."""
    data = small_archive()
    differences = []
    for at in header_offsets(data):
        for byte in range(512):
            for change in (lambda b: b ^ 0x01, lambda b: b ^ 0x80, lambda b: 0):
                damaged = bytearray(data)
                damaged[at + byte] = change(damaged[at + byte])
                if fix_checksum and not 148 <= byte < 156:
                    _fix_checksum(damaged, at)
                if outcome(bytes(damaged), True) != outcome(bytes(damaged), False):
                    differences.append((at, byte))
    assert not differences


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000), st.sampled_from(CHUNKS))
def test_random_bytes_read_alike(data, chunk):
    assert_alike(data, chunk)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(archives(), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=6),
       st.booleans(), st.sampled_from(CHUNKS))
def test_generated_archives_with_bytes_changed_read_alike(archive, changes, fix_checksums, chunk):
    data = bytearray(archive[0])
    headers = header_offsets(bytes(data))
    for position, value in changes:
        data[position % len(data)] = value
    if fix_checksums:
        for at in headers:
            _fix_checksum(data, at)
    assert_alike(bytes(data), chunk)


@pytest.mark.parametrize("spelling", [b"0000644\0", b"  644 \0\0", b"+644\0\0\0\0", b"6_44\0\0\0\0", b"0o644\0\0\0",
                                      b"\x80\0\0\0\0\0\x01\xa4", b"\xff\xff\xff\xff\xff\xff\xfe\x5c", b"64x\0\0\0\0\0"])
def test_number_spellings_python_reads_are_read_alike(spelling):
    """Octal with spaces, base-256 and what only Python's int() reads (signs, underscores,
    a 0o prefix): the C walk leaves those to tarlist._number."""
    block = bytearray(tarfile.TarInfo("f").tobuf(tarfile.GNU_FORMAT))
    block[100:108] = spelling
    _fix_checksum(block, 0)
    assert_alike(bytes(block) + bytes(1024))


def test_a_negative_pax_size_is_an_error_not_a_walk_backwards():
    """The reference once moved back by a negative PAX size and listed an entry twice."""
    info = tarfile.TarInfo("a")
    info.pax_headers = {"size": "-600"}
    data = info.tobuf(tarfile.PAX_FORMAT) + bytes(1024)
    for native in (False, True):
        with pytest.raises(TarFormatError, match="PAX size '-600' is not a size in bytes"):
            list(TarLister(_chunks(data, 4096), native=native).headers())


_SANITIZED_RUN = r"""
import importlib.machinery, importlib.util, random, sys
sys.path.insert(0, sys.argv[2])
from hardrun.images import tarlist
from tests.images import test_tarscan as cases
spec = importlib.util.spec_from_file_location(
    "hardrun.images._tarscan", sys.argv[1],
    loader=importlib.machinery.ExtensionFileLoader("hardrun.images._tarscan", sys.argv[1]))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
tarlist._tarscan = module
data = cases.small_archive()
corpus = [data[:cut] for cut in range(0, len(data) + 1, 7)]
for at in cases.header_offsets(data):
    for byte in range(0, 512, 3):
        for fix in (False, True):
            damaged = bytearray(data)
            damaged[at + byte] ^= 0x80
            if fix:
                cases._fix_checksum(damaged, at)
            corpus.append(bytes(damaged))
corpus += [cases.huge_file_archive(size) for size in ((1 << 63) - 1, (1 << 63) - 512)]
rng = random.Random(7)
corpus += [rng.randbytes(rng.randrange(2000)) for _ in range(300)]
for sample in corpus:
    for chunk in (512, 700, 1 << 20):
        cases.outcome(sample, True, chunk)
print("read", len(corpus), "archives")
"""


def _sanitized_build(source: Path, directory: Path) -> Path:
    library = directory / "_tarscan.so"
    command = ["gcc", "-shared", "-fPIC", "-g", "-O1", "-fsanitize=address,undefined",
               "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer",
               f"-I{sysconfig.get_paths()['include']}", str(source), "-o", str(library)]
    subprocess.run(command, check=True, capture_output=True)
    return library


def _run_sanitized(library: Path) -> subprocess.CompletedProcess:
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True,
                          check=True).stdout.strip()
    # every allocation through malloc, so that a read past a bytes object hits a red zone
    env = dict(os.environ, LD_PRELOAD=asan, PYTHONMALLOC="malloc", ASAN_OPTIONS="detect_leaks=0")
    return subprocess.run([sys.executable, "-c", _SANITIZED_RUN, str(library), str(ROOT)], env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_sanitized_build_reads_damaged_archives_without_a_fault(tmp_path):
    result = _run_sanitized(_sanitized_build(SOURCE, tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "read " in result.stdout and "Sanitizer" not in result.stderr


def test_control_a_planted_out_of_bounds_read_is_caught(tmp_path):
    """The same harness over a copy whose bounds check is one block short: it reads
    past the buffer on a cut archive, and AddressSanitizer stops it."""
    text = SOURCE.read_text()
    check = "if (walk->position + BLOCK > walk->length) {"
    assert text.count(check) == 1
    planted = tmp_path / "_tarscan_planted.c"
    planted.write_text(text.replace(check, "if (walk->position + 1 > walk->length) {"))
    result = _run_sanitized(_sanitized_build(planted, tmp_path))
    assert result.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in result.stderr, result.stderr[-3000:]


_WITHOUT_THE_C_WALK = """
import sys
class NotBuilt:
    def find_spec(self, name, path=None, target=None):
        if name == "hardrun.images._tarscan":
            raise ImportError("not built")
sys.meta_path.insert(0, NotBuilt())
from hardrun.images import tarlist
assert tarlist._tarscan is None
from hardrun.__main__ import main
main(sys.argv[1:])
"""


def test_without_the_c_module_the_audit_walks_in_python_and_finds_the_same(tmp_path):
    """The fallback: an audit where _tarscan cannot be imported gives the same report as
    one with it (the control: the ordinary run does use the C walk, asserted above)."""
    from tests.image_examples import layer_of
    from tests.imagebuild import Image, write_layout
    layers = [layer_of([{"path": "usr/bin/tool", "mode": 0o4755}, {"path": "srv", "type": "dir", "mode": 0o777},
                        {"path": "home/app/.npmrc", "content": "//r/:_authToken=x\n"},
                        {"path": "etc/shadow", "content": "root::1:0:::::\n"}]),
              layer_of([{"path": "srv/.wh..wh..opq"}, {"path": "usr/bin/.wh.tool"}])]
    layout = write_layout(tmp_path / "layout", {None: Image(layers, {"User": "0"})})
    command = ["audit", "-f", "json", f"oci:{layout}"]
    with_c = run_hardrun(*command, cwd=ROOT)
    without = subprocess.run([sys.executable, "-c", _WITHOUT_THE_C_WALK, *command], capture_output=True, text=True,
                             cwd=ROOT)
    assert with_c.returncode == without.returncode == 1, with_c.stderr + without.stderr
    assert with_c.stdout == without.stdout and '"HR4' in with_c.stdout


@pytest.mark.parametrize("size", [(1 << 63) - 1, (1 << 63) - 512, 1 << 40])
def test_a_file_larger_than_the_archive_is_an_error_naming_the_missing_bytes(size):
    """A base-256 size up to 2^63 - 1 (its padding past a signed word): both walks say how
    many bytes are missing, and neither overflows (the sanitized build reads these too)."""
    data = huge_file_archive(size)
    listed = outcome(data, True)
    assert listed == outcome(data, False)
    assert listed[-1] == ("TarFormatError", f"the archive ends inside the content of 'huge' "
                                            f"({-(-size // 512) * 512 - 1024} bytes missing)")


def huge_file_archive(size: int) -> bytes:
    block = bytearray(tarfile.TarInfo("huge").tobuf(tarfile.GNU_FORMAT))
    block[124:136] = b"\x80" + size.to_bytes(11, "big")
    _fix_checksum(block, 0)
    return bytes(block) + bytes(1024)


def test_a_number_past_63_bits_is_an_error_in_both_walks():
    """Base-256 allows 88 bits in the size field; Go's archive/tar refuses past 63, and so do
    both walks (the control: 2^63 - 1 itself is read, as the test above shows)."""
    data = huge_file_archive(1 << 63)
    assert outcome(data, True) == outcome(data, False) == [
        ("TarFormatError", "the header at byte 0 has a number field past 63 bits")]


@pytest.mark.parametrize("blocks", [2048, 2049])
def test_a_sparse_map_is_bounded_like_an_extended_header(blocks):
    """An old GNU sparse map of 2048 extension blocks (1 MiB) is read; one more is refused
    by both walks, as an extended header over 1 MiB is."""
    header = bytearray(_sparse_member()[:512])
    header[124:136] = b"%011o\0" % 0
    _fix_checksum(header, 0)
    extension = bytearray(512)
    extension[504] = 1
    data = bytes(header) + bytes(extension) * (blocks - 1) + bytes(512) + bytes(1024)
    listed = outcome(data, True, 1 << 20)
    assert listed == outcome(data, False, 1 << 20)
    if blocks == 2048:
        assert [row[0] for row in listed if isinstance(row, tuple)] == ["sparse.img"]
    else:
        assert listed == [("TarFormatError", "the sparse file's map at byte 0 is longer than 1048576 bytes")]
