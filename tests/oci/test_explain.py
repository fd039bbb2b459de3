"""`hardrun-oci --explain` without an engine: the holder's life around create, start and delete."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.helpers import wait_until
from tests.oci.conftest import bind, make_bundle, process_gone, reap_all

pytestmark = pytest.mark.runtime

# hardrun's own allowlist (the floor's) refuses unshare of a user namespace: EPERM
REFUSED = ["/bin/sh", "-c", "unshare -U true 2>&1 | tail -n 1; echo ran"]


@pytest.fixture(autouse=True)
def _no_kept_records():
    """delete keeps each --explain container's record in the state root: this test's go with it."""
    yield
    from hardrun.runtime.oci_explain import KEPT_DIR
    from hardrun.runtime.state import state_root
    directory = os.path.join(state_root(), KEPT_DIR)
    for entry in os.listdir(directory) if os.path.isdir(directory) else ():
        if f"-{os.getpid()}" in entry:
            os.unlink(os.path.join(directory, entry))


def _holder(oci, name: str) -> dict:
    return oci.record(name)["holder"]


def _wait_gone(pid: int) -> None:
    # process_gone reaps: the test plays the shim, the holder's and the init's parent
    wait_until(lambda: process_gone(pid), f"process {pid} to be gone", timeout=30)


def test_the_refused_call_is_recorded_and_delete_kills_the_holder(oci, oci_rootfs, tmp_path):
    name = f"explain-{os.getpid()}"
    bundle = make_bundle(tmp_path / "b", oci_rootfs, REFUSED[:2] + [REFUSED[2] + "; sleep 60"])
    oci("create", "--bundle", bundle, name, global_args=("--explain",), check=True)
    holder = _holder(oci, name)
    assert not process_gone(holder["pid"])
    oci("start", name, check=True)
    denials = os.path.join(oci.root, name, "denials.json")
    wait_until(lambda: os.path.exists(denials), "the denials record", timeout=30)
    with open(denials) as handle:
        recorded = json.load(handle)["denials"]
    assert [(d["syscall"], d["errno_name"]) for d in recorded] == [("unshare", "EPERM")]
    oci("delete", "--force", name, check=True)
    _wait_gone(holder["pid"])


def test_a_holder_gone_before_start_stops_the_process_from_running(oci, oci_rootfs, tmp_path):
    """Fail closed: no holder to hand the listener to, no filter-less run either."""
    name = f"explain-dead-{os.getpid()}"
    shared = tmp_path / "shared"
    shared.mkdir()
    marks = ["/bin/sh", "-c", "touch /shared/ran"]
    oci("create", "--bundle", make_bundle(tmp_path / "b", oci_rootfs, marks, mounts=[bind(str(shared), "/shared")]),
        name, global_args=("--explain",), check=True)
    holder = _holder(oci, name)
    os.kill(holder["pid"], signal.SIGKILL)
    _wait_gone(holder["pid"])
    oci("start", name)
    wait_until(lambda: reap_all() or oci.state(name)["status"] == "stopped", "the container to stop", timeout=30)
    assert not (shared / "ran").exists(), "the process ran without its listener's holder"
    oci("delete", name, check=True)
    # the control: with its holder alive, the same bundle runs
    oci("run", "--bundle", make_bundle(tmp_path / "c", oci_rootfs, marks, mounts=[bind(str(shared), "/shared")]),
        name + "-alive", global_args=("--explain",), check=True)
    assert (shared / "ran").exists()


# the refused call again and again, until the test is done with the container
REPEATED = ["/bin/sh", "-c", "while true; do unshare -U true 2>/dev/null; sleep 0.05; done"]


def _kept_records(name: str) -> list[str]:
    from hardrun.runtime.oci_explain import KEPT_DIR
    from hardrun.runtime.state import state_root
    directory = os.path.join(state_root(), KEPT_DIR)
    return sorted(os.path.join(directory, entry) for entry in os.listdir(directory)
                  if entry.startswith(name + "-2")) if os.path.isdir(directory) else []


def _inspected(oci, name: str) -> str:
    from tests.helpers import run_hardrun
    result = run_hardrun("inspect", "--oci-root", oci.root, str(oci.state(name)["pid"]))
    assert result.returncode == 0, result.stderr
    return result.stdout


def _until(condition, what: str):
    return wait_until(condition, what, timeout=30, interval=0.02)


def test_a_record_that_cannot_be_written_is_an_error_in_the_log_and_inspect_says_so(oci, oci_rootfs, tmp_path):
    """The state directory turned read-only under a running container: the holder writes a json
    error line into the engine's --log and `hardrun inspect` says the record is incomplete. The
    control is the same container before (the record written, no error) and after (writable
    again: the record whole, inspect says nothing of it)."""
    import subprocess
    name = f"explain-lost-{os.getpid()}"
    log = tmp_path / "engine.log"
    oci("create", "--bundle", make_bundle(tmp_path / "b", oci_rootfs, REPEATED), name,
        global_args=("--explain", "--log", str(log), "--log-format", "json"), check=True)
    state = os.path.join(oci.root, name)
    try:
        oci("start", name, check=True)
        _until(lambda: os.path.exists(os.path.join(state, "denials.json")), "the first record")
        assert "incomplete" not in _inspected(oci, name)
        assert not log.exists() or "error" not in log.read_text()
        subprocess.run(["mount", "--bind", state, state], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", state], check=True)
            lines = _until(lambda: [json.loads(line) for line in log.read_text().splitlines()]
                           if log.exists() else None, "the holder's error line")
            assert lines[0]["level"] == "error" and "cannot be written" in lines[0]["msg"] \
                and "read-only" in lines[0]["msg"], lines
            assert "seccomp refused: 1 system call(s) (the record is incomplete" in _inspected(oci, name)
        finally:
            subprocess.run(["umount", state], check=True)
        _until(lambda: "whole again" in log.read_text(), "the record written again")
        assert "incomplete" not in _inspected(oci, name)
    finally:
        oci("delete", "--force", name, check=True)


def test_delete_keeps_the_record_and_gc_prunes_old_ones(oci, oci_rootfs, tmp_path):
    """`docker run --rm` deletes the container as it exits: the record is kept in the state
    root's .explain/, named by id and time, with the calls refused. The control: a container
    created without --explain keeps none. `hardrun gc` removes a kept record older than
    KEPT_DAYS days and leaves a newer one."""
    from hardrun.runtime.oci_explain import KEPT_DAYS, prune_kept
    name = f"explain-kept-{os.getpid()}"
    oci("run", "--bundle", make_bundle(tmp_path / "b", oci_rootfs, REFUSED), name,
        global_args=("--explain",), check=True)
    (kept,) = _kept_records(name)
    with open(kept) as handle:
        record = json.load(handle)
    assert record["id"] == name and record["incomplete"] is False
    assert [(d["syscall"], d["errno_name"]) for d in record["denials"]] == [("unshare", "EPERM")]
    oci("run", "--bundle", make_bundle(tmp_path / "c", oci_rootfs, REFUSED), name + "-plain", check=True)
    assert _kept_records(name + "-plain") == []
    root = tmp_path / "root"
    (root / ".explain").mkdir(parents=True)
    old, new = root / ".explain" / "a-20000101T000000Z.json", root / ".explain" / "b-20000101T000000Z.json"
    for path in (old, new):
        path.write_text("{}")
    os.utime(old, (time.time() - (KEPT_DAYS + 1) * 86400,) * 2)
    assert prune_kept(str(root)) == [f"--explain record {old}"]
    assert not old.exists() and new.exists()


def test_a_record_that_cannot_be_kept_is_reported_in_the_engine_log(oci, oci_rootfs, tmp_path, monkeypatch):
    """The delete goes on, and the engine's log says the record was not kept. The control: the
    same run with a state root that can keep it logs no such line."""
    name = f"explain-unkept-{os.getpid()}"
    for state, blocked in ((tmp_path / "kept", False), (tmp_path / "blocked", True)):
        state.mkdir(mode=0o700)
        if blocked:
            (state / ".explain").write_text("a file where the directory of kept records goes")
        monkeypatch.setenv("HARDRUN_STATE_DIR", str(state))
        log = tmp_path / f"{state.name}.log"
        oci("run", "--bundle", make_bundle(tmp_path / state.name, oci_rootfs, REFUSED), name,
            global_args=("--explain", "--log", str(log), "--log-format", "json"), check=True)
        lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        unkept = [line for line in lines if "record was not kept" in line["msg"]]
        assert [line["level"] for line in unkept] == (["warning"] if blocked else []), lines
        assert not os.path.exists(os.path.join(oci.root, name))     # deleted either way


def test_exec_s_refused_calls_are_recorded_by_the_container_s_holder(oci, oci_rootfs, tmp_path):
    """A process `exec` starts sends its listener to the holder: its refused call is recorded
    with its comm, and refused with the profile's errno. The control: the container's own
    process makes no refused call, so there is no record before the exec."""
    name = f"explain-exec-{os.getpid()}"
    oci("create", "--bundle", make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"]), name,
        global_args=("--explain",), check=True)
    try:
        oci("start", name, check=True)
        assert _read(oci, name) is None      # nothing refused yet, nothing written
        result = oci("exec", name, "/bin/sh", "-c", "exec swapon /dev/null", global_args=("--explain",))
        assert "Operation not permitted" in result.stderr + result.stdout, result.stderr
        recorded = _until(lambda: json.loads(_read(oci, name) or "{}").get("denials"), "the exec's refusal")
        assert [(d["syscall"], d["errno_name"], d["comm"]) for d in recorded] == [("swapon", "EPERM", "swapon")]
        assert "swapon: 1 time(s), first by pid" in _inspected(oci, name)
    finally:
        oci("delete", "--force", name, check=True)


def test_exec_fails_when_the_holder_is_gone(oci, oci_rootfs, tmp_path):
    """Fail closed: with no holder to take its listener the exec does not run (its refusals could
    not be recorded). The control: while the holder lives, the same exec runs."""
    name = f"explain-exec-gone-{os.getpid()}"
    oci("create", "--bundle", make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"]), name,
        global_args=("--explain",), check=True)
    try:
        oci("start", name, check=True)
        assert oci("exec", name, "/bin/true").returncode == 0
        holder = _holder(oci, name)
        os.kill(holder["pid"], signal.SIGKILL)
        _wait_gone(holder["pid"])
        refused = oci("exec", name, "/bin/true")
        assert refused.returncode != 0 and "--explain holder" in refused.stderr, refused.stderr
    finally:
        oci("delete", "--force", name, check=True)


def _read(oci, name: str) -> str | None:
    try:
        with open(os.path.join(oci.root, name, "denials.json")) as handle:
            return handle.read()
    except FileNotFoundError:
        return None
