"""`hardrun-oci --explain` without an engine: the holder's life around create, start and delete."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.oci.conftest import bind, make_bundle, process_gone, reap_all

pytestmark = pytest.mark.runtime

# hardrun's own allowlist (the floor's) refuses unshare of a user namespace: EPERM
REFUSED = ["/bin/sh", "-c", "unshare -U true 2>&1 | tail -n 1; echo ran"]


def _holder(oci, name: str) -> dict:
    with open(os.path.join(oci.root, name, "state.json")) as handle:
        return json.load(handle)["holder"]


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while not process_gone(pid):
        assert time.monotonic() < deadline, f"process {pid} still there"
        reap_all()      # the test plays the shim: the holder's and the init's parent
        time.sleep(0.01)


def test_the_refused_call_is_recorded_and_delete_kills_the_holder(oci, oci_rootfs, tmp_path):
    name = f"explain-{os.getpid()}"
    bundle = make_bundle(tmp_path / "b", oci_rootfs, REFUSED[:2] + [REFUSED[2] + "; sleep 60"])
    oci("create", "--bundle", bundle, name, global_args=("--explain",), check=True)
    holder = _holder(oci, name)
    assert not process_gone(holder["pid"])
    oci("start", name, check=True)
    denials = os.path.join(oci.root, name, "denials.json")
    deadline = time.monotonic() + 30
    while not os.path.exists(denials):
        assert time.monotonic() < deadline, "no denials recorded"
        time.sleep(0.01)
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
    deadline = time.monotonic() + 30
    while oci.state(name)["status"] != "stopped":
        assert time.monotonic() < deadline
        reap_all()
        time.sleep(0.01)
    assert not (shared / "ran").exists(), "the process ran without its listener's holder"
    oci("delete", name, check=True)
    # the control: with its holder alive, the same bundle runs
    oci("run", "--bundle", make_bundle(tmp_path / "c", oci_rootfs, marks, mounts=[bind(str(shared), "/shared")]),
        name + "-alive", global_args=("--explain",), check=True)
    assert (shared / "ran").exists()
