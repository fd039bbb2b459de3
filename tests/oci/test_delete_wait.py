"""`delete --force` waits for the killed init precisely (a pidfd), not for a guessed time:
its cgroups are removed at the first try; a pid whose start time is not the recorded one is
never signalled; and where a cgroup is still busy, remove_cgroups' waits grow from a
millisecond, never a fixed 10 ms."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from hardrun.runtime import cgroups, oci as runtime_oci
from hardrun.runtime.state import process_start_time
from tests.helpers import hardrun_env, record_calls
from tests.oci.conftest import make_bundle, process_gone


def running_container(oci, oci_rootfs, tmp_path, name: str) -> dict:
    bundle = make_bundle(tmp_path / name, oci_rootfs, ["/bin/sleep", "60"])
    oci("create", "--bundle", bundle, name, check=True)
    oci("start", name, check=True)
    return oci.record(name)


# `delete --force` in a process of its own, as engines run it (the init is not its child, so
# no waitpid can tell when it has exited), with each time.sleep of remove_cgroups recorded
DELETE_RECORDING_SLEEPS = """
import sys, time
slept = []
real_sleep = time.sleep
time.sleep = lambda seconds: (slept.append(seconds), real_sleep(seconds))[1]
from hardrun.cli.oci import main
status = main(sys.argv[1:])
print(" ".join(map(str, slept)))
sys.exit(status)
"""


def test_delete_force_removes_the_cgroups_without_waiting_blind(oci, oci_rootfs, tmp_path):
    record = running_container(oci, oci_rootfs, tmp_path, "w1")
    result = subprocess.run([sys.executable, "-c", DELETE_RECORDING_SLEEPS, "--root", oci.root, "delete", "--force",
                             "w1"], capture_output=True, text=True, env=hardrun_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []     # the pidfd said the init had exited: every rmdir succeeded at once
    assert process_gone(record["pid"])
    assert not any(os.path.exists(path) for path in record["cgroups"])
    assert not os.path.exists(os.path.join(oci.root, "w1"))


def test_a_busy_cgroup_is_killed_and_waited_for_in_growing_steps(oci, oci_rootfs, tmp_path, monkeypatch):
    # the control of the test above: removing the cgroups of an init nobody waited for does wait
    record = running_container(oci, oci_rootfs, tmp_path, "w2")
    # every time.sleep from here on (remove_cgroups imports `time` when called), still slept
    recorded = record_calls(monkeypatch, time, "sleep")
    assert cgroups.remove_cgroups(record["cgroups"]) == []
    assert recorded and recorded[0] == 0.001
    assert recorded == sorted(recorded) and max(recorded) <= 0.01
    assert process_gone(record["pid"])


def signals_recorded(monkeypatch):
    """Every signal sent from here on, through a pidfd or by pid (still sent): a call that
    lists them, those through a pidfd first."""
    through_pidfd = record_calls(monkeypatch, runtime_oci.signal, "pidfd_send_signal",
                                 lambda pidfd, signum, *rest: signum)
    by_pid = record_calls(monkeypatch, os, "kill", lambda pid, signum: signum)
    return lambda: through_pidfd + by_pid


def test_a_pid_that_is_not_the_recorded_process_is_never_killed(monkeypatch):
    sent = signals_recorded(monkeypatch)
    other = subprocess.Popen(["sleep", "60"])
    try:
        started = process_start_time(other.pid)
        assert started is not None
        runtime_oci._kill_and_wait(other.pid, started + 1)     # the record of an earlier process
        assert sent() == [] and other.poll() is None
        # the control: with its own start time it is killed, and reaped once it has exited
        runtime_oci._kill_and_wait(other.pid, started)
        assert sent() == [9] and not os.path.exists(f"/proc/{other.pid}")
    finally:
        if os.path.exists(f"/proc/{other.pid}"):
            other.kill()
            other.wait()


class _Recorded:
    """A container record as Container.load gives it, its status checked already."""

    def __init__(self, pid: int, start_time: int):
        self.record = {"pid": pid, "start_time": start_time}

    def status(self) -> str:
        return "running"


def test_kill_signals_no_process_but_the_recorded_one(monkeypatch):
    """`kill` of a container whose pid, after its status was read, is another process's (a
    start time that differs): nothing is signalled. Control: the recorded start time is."""
    sent = signals_recorded(monkeypatch)
    other = subprocess.Popen(["sleep", "60"])
    try:
        started = process_start_time(other.pid)
        monkeypatch.setattr(runtime_oci.Container, "load", lambda root, name: _Recorded(other.pid, started + 1))
        runtime_oci.kill("/nonexistent", "k1", 15)
        assert sent() == [] and other.poll() is None
        monkeypatch.setattr(runtime_oci.Container, "load", lambda root, name: _Recorded(other.pid, started))
        runtime_oci.kill("/nonexistent", "k1", 15)
        assert sent() == [15] and other.wait(timeout=30) == -15
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def test_kill_all_signals_no_pid_that_left_the_cgroup(monkeypatch):
    """`kill --all` of a cgroup whose listed pid is, by the time its pidfd is open, no longer
    in it (the process exited and the pid went to a process outside): nothing is signalled.
    Control: a pid still listed is."""
    from hardrun.runtime import cgroup_removal
    sent = signals_recorded(monkeypatch)
    other = subprocess.Popen(["sleep", "60"])
    try:
        record = _Recorded(other.pid, 0)
        record.record["cgroups"] = ["/sys/fs/cgroup/pids/hardrun/k1"]
        monkeypatch.setattr(runtime_oci.Container, "load", lambda root, name: record)
        readings = iter([[other.pid], []])      # listed, then gone by the second reading
        monkeypatch.setattr(cgroup_removal, "cgroup_pids", lambda path: next(readings))
        runtime_oci.kill("/nonexistent", "k1", 15, all_processes=True)
        assert sent() == [] and other.poll() is None
        monkeypatch.setattr(cgroup_removal, "cgroup_pids", lambda path: [other.pid])
        runtime_oci.kill("/nonexistent", "k1", 15, all_processes=True)
        assert sent() == [15] and other.wait(timeout=30) == -15
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
