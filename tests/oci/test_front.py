"""hardrun-oci's compiled front (bin/hardrun-oci-front.c, built by scripts/setup.sh as the
virtualenv's `hardrun-oci`, the Python command beside it as `hardrun-oci-py`).

The Python command is the reference: each test runs a call through both and compares what
they print, exit with and log. Whether the front answered a call itself or handed it to Python
is seen through a copy of the front whose `hardrun-oci-py` neighbour leaves a mark before it
runs the real one (the control: a call the front never answers, `list`, leaves the mark)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.helpers import hardrun_env, wait_until
from tests.oci.conftest import make_bundle, process_gone

pytestmark = pytest.mark.runtime

BIN = os.path.dirname(sys.executable)
FRONT = os.path.join(BIN, "hardrun-oci")
PYTHON_FRONT = os.path.join(BIN, "hardrun-oci-py")


@pytest.fixture
def front(tmp_path):
    """A copy of the installed front whose Python neighbour marks each call it gets."""
    with open(FRONT, "rb") as handle:
        assert handle.read(4) == b"\x7fELF", f"{FRONT} is not the compiled front: run scripts/setup.sh"
    with open(PYTHON_FRONT, "rb") as handle:
        assert handle.read(2) == b"#!", f"{PYTHON_FRONT} (the Python command) is missing: run scripts/setup.sh"
    directory = tmp_path / "front"
    directory.mkdir()
    shutil.copy(FRONT, directory / "hardrun-oci")
    mark = tmp_path / "handed-to-python"
    neighbour = directory / "hardrun-oci-py"
    neighbour.write_text(f'#!/bin/sh\necho "$@" >> {mark}\nexec {PYTHON_FRONT} "$@"\n')
    neighbour.chmod(0o755)
    return Front(str(directory / "hardrun-oci"), mark)


class Front:
    def __init__(self, path: str, mark):
        self.path, self.mark = path, mark

    def run(self, binary: str, *args) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *args], capture_output=True, text=True, env=hardrun_env(), timeout=60)

    def both(self, *args) -> tuple[subprocess.CompletedProcess, bool]:
        """The front's result, after checking it is the Python command's; and whether the
        front handed the call to Python."""
        reference = self.run(PYTHON_FRONT, *args)
        if self.mark.exists():
            self.mark.unlink()
        answered = self.run(self.path, *args)
        assert (answered.returncode, answered.stdout, answered.stderr) == \
            (reference.returncode, reference.stdout, reference.stderr), args
        return answered, self.mark.exists()


def created(oci, oci_rootfs, tmp_path, name: str, args=("/bin/sleep", "60")) -> int:
    bundle = make_bundle(tmp_path / name, oci_rootfs, list(args))
    pid_file = tmp_path / f"{name}.pid"
    oci("create", "--bundle", bundle, "--pid-file", str(pid_file), name, check=True)
    return int(pid_file.read_text())


def test_state_is_answered_by_the_front_as_python_prints_it(oci, oci_rootfs, tmp_path, front):
    created(oci, oci_rootfs, tmp_path, "c1")
    root = ("--root", oci.root, "--log", str(tmp_path / "log"), "--log-format", "json")
    result, handed = front.both(*root, "state", "c1")
    assert json.loads(result.stdout)["status"] == "created" and not handed
    assert front.run(front.path, *root, "start", "c1").returncode == 0     # (once only: no reference)
    assert not front.mark.exists()
    result, handed = front.both(*root, "state", "c1")
    assert json.loads(result.stdout)["status"] == "running" and not handed
    oci("pause", "c1", check=True)
    result, handed = front.both(*root, "state", "c1")
    assert json.loads(result.stdout)["status"] == "paused" and not handed
    oci("resume", "c1", check=True)
    assert front.run(front.path, *root, "kill", "c1", "SIGKILL").returncode == 0
    assert not front.mark.exists()
    wait_until(lambda: oci.state("c1")["status"] == "stopped", "the container to stop")
    result, handed = front.both(*root, "state", "c1")
    assert json.loads(result.stdout)["pid"] == 0 and not handed
    # the control: a call the front never answers goes to Python, and so does delete of a container
    # that exists (its clean-up is Python's)
    _, handed = front.both(*root, "list")
    assert handed
    assert front.run(front.path, *root, "delete", "c1").returncode == 0
    assert front.mark.exists()


def test_start_releases_the_held_init(oci, oci_rootfs, tmp_path, front):
    pid = created(oci, oci_rootfs, tmp_path, "c2", ("/bin/sh", "-c", "exit 7"))
    assert not process_gone(pid)
    assert front.run(front.path, "--root", oci.root, "start", "c2").returncode == 0
    assert not front.mark.exists()
    wait_until(lambda: process_gone(pid), "the container's process to exit")
    assert oci.state("c2")["status"] == "stopped"
    # the control: a second start finds nothing to release, and Python words the refusal
    refused = front.run(front.path, "--root", oci.root, "start", "c2")
    assert refused.returncode == 1 and "only a created container can be started" in refused.stderr
    assert front.mark.exists()


def test_a_missing_container_is_refused_as_python_refuses_it(oci, oci_rootfs, tmp_path, front):
    created(oci, oci_rootfs, tmp_path, "present")      # the state root exists
    for log_format in ("json", "text"):
        front_log, python_log = tmp_path / f"front.{log_format}", tmp_path / f"python.{log_format}"
        results = []
        for binary, log in ((front.path, front_log), (PYTHON_FRONT, python_log)):
            results.append(front.run(binary, "--root", oci.root, "--log", str(log), "--log-format", log_format,
                                     "delete", "--force", "gone"))
        assert results[0].returncode == results[1].returncode == 1
        assert results[0].stderr == results[1].stderr == "hardrun-oci: container gone does not exist\n"
        assert not front.mark.exists()
        if log_format == "json":
            lines = [json.loads(log.read_text()) for log in (front_log, python_log)]
            assert [{**line, "time": ""} for line in lines] == [
                {"level": "error", "msg": "container gone does not exist", "time": ""}] * 2
        else:
            lines = [log.read_text().split(" ", 1)[1] for log in (front_log, python_log)]
            assert lines == ['level=error msg="container gone does not exist"\n'] * 2


def fake_container(root, container_id: str, pid: int, start_time: int) -> None:
    """A state directory as `create` leaves one, its init a process of the test's."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    directory = os.path.join(root, container_id)
    os.mkdir(directory, 0o700)
    head = '{"ociVersion": "1.0.2", "id": "%s", "status": ' % container_id
    text = (f"hardrun-oci-light 1\npid {pid}\nstart_time {start_time}\npoststart 0\nhead {head}\n"
            f'middle , "pid": \ntail , "bundle": "/b", "annotations": {{}}}}\n')
    fd = os.open(os.path.join(directory, "state.light"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, text.encode())
    os.close(fd)


def start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[19])


def test_kill_signals_only_the_process_the_record_started(tmp_path, front):
    """A pid that another process reuses is never signalled: the start time decides. The
    control: the same record with the process's true start time kills it."""
    root = tmp_path / "root"
    victim = subprocess.Popen(["sleep", "60"])
    try:
        fake_container(root, "reused", victim.pid, start_time(victim.pid) + 1)
        front.run(front.path, "--root", str(root), "kill", "reused", "KILL")
        assert victim.poll() is None
        fake_container(root, "same", victim.pid, start_time(victim.pid))
        assert front.run(front.path, "--root", str(root), "kill", "same", "KILL").returncode == 0
        assert victim.wait(timeout=10) == -signal.SIGKILL
        assert not (tmp_path / "handed-to-python").read_text().count("kill same")
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("spoil", ["root open to others", "record open to others", "record a link"])
def test_an_untrusted_state_directory_is_handed_to_python(tmp_path, front, spoil):
    """The front trusts a record only as Python trusts it; anything else is Python's to refuse.
    Each case first shows the same record IS answered by the front (the control)."""
    root = tmp_path / "root"
    victim = subprocess.Popen(["sleep", "60"])
    try:
        fake_container(root, "c", victim.pid, start_time(victim.pid))
        result = front.run(front.path, "--root", str(root), "state", "c")
        assert json.loads(result.stdout)["status"] == "running" and not front.mark.exists()
        record = root / "c" / "state.light"
        if spoil == "root open to others":
            root.chmod(0o755)
        elif spoil == "record open to others":
            record.chmod(0o644)
        else:
            record.rename(root / "c" / "elsewhere")
            record.symlink_to(root / "c" / "elsewhere")
        result = front.run(front.path, "--root", str(root), "state", "c")
        assert front.mark.exists() and result.returncode != 0 and "hardrun-oci:" in result.stderr
    finally:
        victim.kill()
        victim.wait()


def test_the_python_command_is_the_same_call_through_the_front(oci, oci_rootfs, tmp_path):
    """What the front hands over keeps its arguments: `features` and an unknown option give
    the Python command's output and exit status."""
    for args in (("features",), ("--bogus", "state", "x"), ("--version",)):
        front = subprocess.run([FRONT, *args], capture_output=True, text=True, env=hardrun_env(), timeout=60)
        python = subprocess.run([PYTHON_FRONT, *args], capture_output=True, text=True, env=hardrun_env(), timeout=60)
        assert (front.returncode, front.stdout, front.stderr) == (python.returncode, python.stdout, python.stderr)
