"""The compiled front (bin/hardrun-oci-front.c) against hostile records and command lines.

The front is built here from the checkout's source with AddressSanitizer and
UndefinedBehaviorSanitizer (an out-of-bounds read, an overflow, a crash fails the test), in a
directory of its own whose `hardrun-oci-py` neighbour only says it was handed the call. The
oracle: the front answers a call itself only from a record that is exactly what
hardrun.runtime.oci's Container.light_record writes (`strict_record` below) and only for a
command line the Python command parses to the same call; everything else is handed over."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hardrun.cli.oci import _command_options, _global_options, _Usage
from hardrun.runtime.state import process_start_time

pytestmark = pytest.mark.runtime

SOURCE = os.path.join(os.path.dirname(__file__), "..", "..", "bin", "hardrun-oci-front.c")
HANDED, HANDED_EXIT = "handed-to-python", 99
SANITIZER_EXIT = 86
SANITIZER_ENV = {"ASAN_OPTIONS": f"detect_leaks=0:exitcode={SANITIZER_EXIT}",
                 "UBSAN_OPTIONS": f"halt_on_error=1:print_stacktrace=1:exitcode={SANITIZER_EXIT}"}
MAX_CGROUPS = 16
INT_MAX = 2 ** 31 - 1
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory):
    """The front built with the sanitizers (required: gcc ships them), beside a neighbour
    that marks a hand-over by its output and exit status."""
    directory = tmp_path_factory.mktemp("front-sanitized")
    binary = directory / "hardrun-oci"
    build = subprocess.run(["gcc", "-O1", "-g", "-Wall", "-Werror", "-fsanitize=address,undefined",
                            "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-o", str(binary), SOURCE],
                           capture_output=True, text=True)
    assert build.returncode == 0, f"the front does not build with the sanitizers: {build.stderr}"
    neighbour = directory / "hardrun-oci-py"
    neighbour.write_text(f"#!/bin/sh\necho {HANDED}\nexit {HANDED_EXIT}\n")
    neighbour.chmod(0o755)
    return str(binary)


@pytest.fixture(scope="module")
def init():
    """A live process the records name as their container's init (SIGWINCH leaves it be)."""
    process = subprocess.Popen(["sleep", "600"])
    yield process.pid, process_start_time(process.pid)
    process.kill()
    process.wait()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("front-root") / "root"
    path.mkdir(mode=0o700)
    return str(path)


def run(binary: str, *args) -> subprocess.CompletedProcess:
    result = subprocess.run([binary, *args], capture_output=True, timeout=30, env={**os.environ, **SANITIZER_ENV})
    # the record's bytes, whatever they are, compared as they were written
    result.stdout, result.stderr = (os.fsdecode(result.stdout), os.fsdecode(result.stderr))
    assert result.returncode >= 0, f"the front died of signal {-result.returncode}: {args}"
    assert result.returncode != SANITIZER_EXIT and "Sanitizer" not in result.stderr, result.stderr
    return result


def handed(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == HANDED_EXIT and result.stdout == f"{HANDED}\n"


def write_record(root: str, container_id: str, text: bytes) -> str:
    directory = os.path.join(root, container_id)
    shutil.rmtree(directory, ignore_errors=True)
    os.mkdir(directory, 0o700)
    fd = os.open(os.path.join(directory, "state.light"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, text)
    os.close(fd)
    return directory


def valid_record(pid: int, start_time: int, cgroups=(), poststart: int = 0) -> bytes:
    head = '{"ociVersion": "1.0.2", "id": "c", "status": '
    lines = ["hardrun-oci-light 1", f"pid {pid}", f"start_time {start_time}", f"poststart {poststart}",
             *(f"cgroup {path}" for path in cgroups), f"head {head}", 'middle , "pid": ',
             'tail , "bundle": "/b", "annotations": {}}']
    return ("\n".join(lines) + "\n").encode()


def _decimal(text: str, most: int) -> int | None:
    if not text.isascii() or not text.isdigit() or text.startswith("0") or int(text) > most:
        return None
    return int(text)


def strict_record(text: bytes) -> dict | None:
    """What Container.light_record writes, read as the front may read it; None: not such a record."""
    if b"\0" in text or len(text) >= 65536:
        return None
    lines = os.fsdecode(text).split("\n")
    if lines[0] != "hardrun-oci-light 1" or lines[-1] != "":
        return None
    record: dict = {"cgroup": []}
    for line in lines[1:-1]:
        key, space, value = line.partition(" ")
        if not space or (key in record and key != "cgroup"):
            return None
        if key in ("pid", "start_time"):
            record[key] = _decimal(value, INT_MAX if key == "pid" else 2 ** 64 - 1)
            if record[key] is None:
                return None
        elif key == "poststart" and value in ("0", "1"):
            record[key] = value == "1"
        elif key == "cgroup" and value.startswith("/"):
            record["cgroup"].append(value)
        elif key in ("head", "middle", "tail"):
            record[key] = value
        else:
            return None
    if len(record["cgroup"]) > MAX_CGROUPS or not {"pid", "start_time", "poststart", "head", "middle",
                                                   "tail"} <= record.keys():
        return None
    return record


def _mutated(draw, base: bytes) -> bytes:
    text = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cut", "insert", "replace", "line", "number"]))
        position = draw(st.integers(0, len(text)))
        if kind == "cut":
            del text[position:position + draw(st.integers(1, 64))]
        elif kind == "insert":
            text[position:position] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "replace":
            text[position:position + 1] = draw(st.sampled_from([b"\n", b" ", b"\0", b"0", b"-", b"9", b"x", b"/"]))
        elif kind == "line":
            text[position:position] = draw(st.sampled_from(
                [b"pid 1\n", b"start_time 1\n", b"poststart 1\n", b"cgroup /x\n", b"head {\n", b"fallback\n",
                 b"cgroup relative\n", b"pid 4294967297\n", b"pid -1\n", b"pid 99999999999999999999\n"]))
        else:
            text[position:position] = str(draw(st.integers(-2 ** 70, 2 ** 70))).encode()
    return bytes(text)


@st.composite
def records(draw, pid: int, start_time: int) -> bytes:
    base = valid_record(pid, start_time, draw(st.lists(st.just("/nonexistent/cg"), max_size=3)))
    if draw(st.booleans()):
        return draw(st.binary(max_size=300)) if draw(st.booleans()) else base[:draw(st.integers(0, len(base)))]
    return _mutated(draw, base)


def expected_state(record: dict, live: tuple[int, int]) -> str:
    alive = (record["pid"], record["start_time"]) == live
    status, pid = ("running", record["pid"]) if alive else ("stopped", 0)
    return f'{record["head"]}"{status}"{record["middle"]}{pid}{record["tail"]}\n'


def test_a_valid_record_is_answered_by_the_sanitized_front(sanitized, init, root):
    """The control for the fuzzing below: the oracle's valid record is one the front answers."""
    write_record(root, "c", valid_record(*init))
    result = run(sanitized, "--root", root, "state", "c")
    assert not handed(result) and result.returncode == 0
    assert result.stdout == expected_state(strict_record(valid_record(*init)), init)
    assert handed(run(sanitized, "--root", root, "list"))


@FUZZ
@given(data=st.data())
def test_hostile_records_are_answered_exactly_or_handed_over(sanitized, init, root, data):
    text = data.draw(records(*init))
    write_record(root, "c", text)
    model = strict_record(text)
    for command in (("state", "c"), ("kill", "c", "WINCH"), ("start", "c")):
        result = run(sanitized, "--root", root, *command)
        if handed(result):
            continue
        assert model is not None, f"{command[0]} answered from a record Python never writes: {text!r}"
        assert command[0] != "start", "start answered without an exec.fifo"
        if command[0] == "state":
            assert result.returncode == 0 and result.stdout == expected_state(model, init), text
        else:
            assert result.returncode == 0 and (model["pid"], model["start_time"]) == init, text


TOKENS = ["--root", "ROOT", "--log", "LOG", "--log-format", "json", "text", "xml", "--debug", "--explain",
          "--no-floor", "--policy", "default", "--userns", "auto", "keep", "--systemd-cgroup", "--root=ROOT",
          "state", "start", "kill", "delete", "list", "-f", "--force", "--all", "c", "gone", "..", ".", "", "-",
          "--", "TERM", "SIGKILL", "9", "0", "65", "WINCH", "sigwinch", "-9", "é", "a/b", "x" * 1100, "--version"]


WORD_CHARACTERS = st.characters(blacklist_categories=("Cs",))    # what an argv can hold


def python_call(argv: list[str]) -> tuple | None:
    """The call the Python command parses `argv` to, or None when it refuses the line."""
    try:
        options, command, rest = _global_options(argv)
        if command is None:
            return None
        sub, positional = _command_options(command, rest)
    except _Usage:
        return None
    return options, command, sub, positional


@FUZZ
@given(words=st.lists(st.one_of(st.sampled_from(TOKENS), st.text(WORD_CHARACTERS, max_size=12)), max_size=8))
def test_command_lines_are_answered_only_as_python_parses_them(sanitized, init, root, words):
    write_record(root, "c", valid_record(init[0], init[1] + 1))    # stopped: no signal reaches `init`
    log = os.path.join(root, "..", "log")
    argv = [{"ROOT": root, "--root=ROOT": f"--root={root}", "LOG": log}.get(word, word) for word in words]
    if any("\0" in word for word in argv):
        return
    result = run(sanitized, *argv)
    if handed(result):
        return
    call = python_call(argv)
    assert call is not None, f"the front answered a line Python refuses: {argv}"
    options, command, sub, positional = call
    assert command in ("state", "kill", "start", "delete") and "--debug" not in options, argv
    assert "--all" not in sub and "--systemd-cgroup" not in options, argv
    if command == "delete":
        assert positional == ["gone"] or positional[0] != "c", argv
        assert result.returncode == 1 and result.stderr == f"hardrun-oci: container {positional[0]} does not exist\n"


def test_a_record_with_more_cgroups_than_the_front_reads_is_handed_over(sanitized, init, root, tmp_path):
    """Python's status reads every cgroup of the record for a freezer; a front that read only
    its first MAX_CGROUPS would call a paused container running. The control: with the frozen
    cgroup among the first MAX_CGROUPS, the front answers `paused` itself."""
    cgroups = [tmp_path / f"cg{index}" for index in range(MAX_CGROUPS + 1)]
    for cgroup in cgroups:
        cgroup.mkdir()
    (cgroups[-1] / "freezer.state").write_text("FROZEN\n")
    write_record(root, "c", valid_record(*init, [str(path) for path in cgroups[1:]]))
    result = run(sanitized, "--root", root, "state", "c")
    assert not handed(result) and '"status": "paused"' in result.stdout
    write_record(root, "c", valid_record(*init, [str(path) for path in cgroups]))
    assert handed(run(sanitized, "--root", root, "state", "c"))



def test_a_missing_python_command_is_an_error_in_the_log(sanitized, init, root, tmp_path):
    """Engines show the --log, not stderr: a front without its Python neighbour says so there.
    The control: with the neighbour, the same call is handed to it."""
    log = tmp_path / "log"
    write_record(root, "c", valid_record(*init))
    assert handed(run(sanitized, "--root", root, "--log", str(log), "--log-format", "json", "list"))
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(sanitized, alone / "hardrun-oci")
    result = run(str(alone / "hardrun-oci"), "--root", root, "--log", str(log), "--log-format", "json", "list")
    message = "cannot run hardrun-oci-py beside this front: No such file or directory"
    assert result.returncode == 1 and result.stderr == f"hardrun-oci: {message}\n"
    line = json.loads(log.read_text())
    assert (line["level"], line["msg"]) == ("error", message)
