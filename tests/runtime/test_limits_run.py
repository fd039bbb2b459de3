"""Limits and networks end to end, through `hardrun run` with the busybox rootfs.

Each test gets its own state root (and so its own cgroup parent): concurrent hardrun
processes are never judged by these tests' clean-up checks.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hardrun.runtime import cgroups

from tests.helpers import hardrun_env, popen_hardrun, run_hardrun
from tests.helpers import output_of_child, wait_until

pytestmark = pytest.mark.runtime


def hardrun_run(rootfs, env, *args, **kwargs):
    return run_hardrun("run", "--rootfs", rootfs, *args, env=env, **kwargs)


def container_cgroups(env) -> list[str]:
    parent = env["HARDRUN_CGROUP_PARENT"]
    found = []
    for hierarchy in cgroups.detect_layout().hierarchies:
        directory = os.path.join(hierarchy.mountpoint, parent)
        if os.path.isdir(directory):
            found += [entry.path for entry in os.scandir(directory) if entry.is_dir()]
    return found


# ------------------------------------------------------------------ limits

HOG = ["--", "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"]


def test_memory_hog_is_killed_and_reported_as_an_oom_kill(rootfs, env):
    done = hardrun_run(rootfs, env, "--memory", "64m", "--memory-swap", "64m", *HOG)
    assert done.returncode == 137
    assert "hardrun: container killed by the OOM killer (memory limit 64 MiB)" in done.stderr
    assert container_cgroups(env) == []


def test_control_the_hog_completes_without_a_memory_limit(rootfs, env):
    done = hardrun_run(rootfs, env, *HOG)
    assert done.returncode == 0, done.stderr
    assert "OOM" not in done.stderr


SPIN_AND_REPORT = ("while :; do :; done & "
                   "for i in $(seq 100); do "
                   "  n=$(awk '/^nr_throttled/ {print $2}' /sys/fs/cgroup/cpu/cpu.stat); "
                   "  [ \"$n\" -gt 2 ] && break; sleep 0.1; done; "
                   "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; echo throttled=$n")


def test_cpu_spinner_is_throttled_at_its_quota(rootfs, env):
    done = hardrun_run(rootfs, env, "--cpus", "0.2", "--", "sh", "-c", SPIN_AND_REPORT)
    lines = done.stdout.split()
    assert lines[0] == "20000", done.stderr
    assert int(lines[1].split("=")[1]) > 2


def test_control_an_unlimited_spinner_is_not_throttled(rootfs, env):
    script = ("while :; do :; done & sleep 0.5; "
              "awk '/^nr_throttled/ {print $2}' /sys/fs/cgroup/cpu/cpu.stat; "
              "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    done = hardrun_run(rootfs, env, "--", "sh", "-c", script)
    assert done.stdout.split() == ["0", "-1"], done.stderr


def test_default_pids_limit_and_the_read_only_view(rootfs, env):
    script = ("cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes; "
              "echo 5 > /sys/fs/cgroup/pids/pids.max && echo WROTE")
    done = hardrun_run(rootfs, env, "-m", "128m", "--", "sh", "-c", script)
    assert done.stdout.split() == ["1024", str(128 << 20)], done.stdout + done.stderr
    assert "Read-only file system" in done.stderr


def test_the_payload_runs_in_the_container_cgroups(rootfs, env):
    """Seen from the host, the container's PID 1 sits in the container's cgroup in every
    hierarchy hardrun uses (it joins them itself before anything runs)."""
    from .test_runtime import container_pid
    proc = popen_hardrun("run", "-i", "--rootfs", rootfs, "--", "sh", "-c", "echo ready; read line",
                         env=env, stdin=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        lines = Path(f"/proc/{container_pid(proc.pid)}/cgroup").read_text().splitlines()
        membership = dict(line.split(":", 2)[1:] for line in lines)
        parent = env["HARDRUN_CGROUP_PARENT"]
        for controller in ("memory", "pids", "cpu", "cpuacct", "freezer"):
            assert membership[controller].startswith(f"/{parent}/"), lines
        assert not membership["devices"].startswith(f"/{parent}/")   # control: one it does not use
    finally:
        proc.communicate("done\n", timeout=30)
    assert proc.returncode == 0


@pytest.fixture
def quota_capped_parent(env):
    """The cgroup parent itself limited to 0.1 CPU: v1 then refuses a child quota above it,
    a limit that really cannot be applied on this host."""
    path = os.path.join("/sys/fs/cgroup/cpu", env["HARDRUN_CGROUP_PARENT"])
    os.mkdir(path)
    Path(path, "cpu.cfs_quota_us").write_text("10000")
    return path


def test_a_limit_that_cannot_apply_fails_closed_by_default(rootfs, env, quota_capped_parent):
    done = hardrun_run(rootfs, env, "--cpus", "1", "--", "echo", "payload ran")
    assert done.returncode == 125
    assert "payload ran" not in done.stdout
    assert "--cpus cannot be applied: cannot write 100000" in done.stderr
    assert "Invalid argument" in done.stderr and "--limits best-effort" in done.stderr


def test_best_effort_warns_once_and_runs(rootfs, env, quota_capped_parent):
    done = hardrun_run(rootfs, env, "--limits", "best-effort", "--cpus", "1", "--pids-limit", "50",
                       "--", "sh", "-c", "echo payload ran; cat /sys/fs/cgroup/pids/pids.max")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["payload", "ran", "50"]     # the other limits still apply
    assert done.stderr.count("warning: --cpus not applied (--limits best-effort)") == 1


def test_ulimits_reach_the_payload(rootfs, env):
    done = hardrun_run(rootfs, env, "--ulimit", "nofile=100:200", "--ulimit", "core=0",
                       "--", "sh", "-c", "ulimit -n; ulimit -H -n; ulimit -c")
    assert done.stdout.split() == ["100", "200", "0"], done.stderr


@pytest.mark.parametrize("directory", ["/tmp", "/run"])
def test_tmp_and_run_hold_at_most_64_mib(rootfs, env, directory):
    """A default tmpfs was half of RAM each: a container could fill the host's memory."""
    fill = (f"grep ' {directory} ' /proc/self/mountinfo; "
            f"dd if=/dev/zero of={directory}/fill bs=1M count=65 && echo filled")
    for flags in ([], ["--tmpfs", f"{directory}:exec"]):     # also a tmpfs asked for without size=
        done = hardrun_run(rootfs, env, *flags, "--", "sh", "-c", fill)
        assert "size=65536k" in done.stdout and "No space left on device" in done.stderr, done
        assert "filled" not in done.stdout
    # control: size=0 is the kernel's unlimited tmpfs, and the same write fits
    control = hardrun_run(rootfs, env, "--tmpfs", f"{directory}:size=0", "--", "sh", "-c", fill)
    assert "size=0k" in control.stdout and "filled" in control.stdout, control


# ------------------------------------------------------------------ hardrun killed

def _start_and_kill_hardrun(rootfs, env):
    """A running container whose hardrun gets SIGKILL: its cgroups and state stay behind."""
    full_env = hardrun_env(env)
    owner = subprocess.Popen([sys.executable, "-m", "hardrun", "run", "--rootfs", rootfs, "-m", "64m",
                              "--", "sh", "-c", "echo ready; exec sleep 300"],
                             stdout=subprocess.PIPE, text=True, env=full_env)
    assert owner.stdout.readline().strip() == "ready"
    left = container_cgroups(env)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert left and all(os.path.isdir(path) for path in left)
    # the container dies with its hardrun (parent-death signal), its cgroups empty out
    wait_until(lambda: all(not cgroups.cgroup_pids(path) for path in left))
    return left


def test_a_later_run_cleans_up_after_a_killed_hardrun(rootfs, env):
    left = _start_and_kill_hardrun(rootfs, env)
    done = hardrun_run(rootfs, env, "--", "true")
    assert done.returncode == 0, done.stderr
    assert not any(os.path.exists(path) for path in left)
    assert container_cgroups(env) == []


def test_hardrun_gc_cleans_up_after_a_killed_hardrun(rootfs, env):
    left = _start_and_kill_hardrun(rootfs, env)
    done = run_hardrun("gc", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("removed container ")
    assert not any(os.path.exists(path) for path in left)


# ------------------------------------------------------------------ networks

NETWORK_SCRIPT = r"""
set -u
ip link set lo up
sysctl -qw net.ipv4.ip_forward=1     # this namespace forwards: isolation is hardrun's doing
run() { exec PYTHON -m hardrun run --rootfs ROOTFS --init "$@"; }   # exec: $! is hardrun
ask() { busybox nc -w 2 127.0.0.1 "$1" </dev/null; }
run --network bridge:e2e --name alpha -p 18080:7000 -- nc -ll -p 7000 -e echo hi-from-alpha &
alpha=$!
for i in $(seq 100); do
  ask 18080 | grep -q hi && break
  sleep 0.1
done
gateway=$(ip -4 -o addr show hr-e2e | busybox awk '{print $4}' | cut -d/ -f1)
echo "by-name=$(run --network bridge:e2e --name beta -- nc -w 2 alpha 7000 </dev/null)"
echo "published=$(ask 18080)"
echo "unpublished=$(ask 7000)"
echo "other-bridge=$(run --network bridge:e2e2 -- nc -w 2 ${gateway%.1}.2 7000 </dev/null)"
run --network bridge:e2e --name gamma --expose 7000 -P -- nc -ll -p 7000 -e echo hi-from-gamma 2>gamma.err &
gamma=$!
for i in $(seq 100); do
  grep -q published gamma.err 2>/dev/null && break
  sleep 0.1
done
port=$(sed -n 's/.*published 127.0.0.1:\([0-9]*\)->7000.*/\1/p' gamma.err)
for i in $(seq 100); do
  ask "$port" | grep -q hi && break
  sleep 0.1
done
echo "publish-all=$(ask "$port")"
kill -TERM $alpha $gamma; wait $alpha $gamma
echo "links=$(ip -o link | grep -c -e hr- -e hrv)"
echo "nft=$(nft list ruleset | grep -c table)"
"""


def test_bridge_names_publishing_and_clean_up_through_hardrun_run(rootfs, env, tmp_path):
    script = NETWORK_SCRIPT.replace("PYTHON", sys.executable).replace("ROOTFS", rootfs)
    full_env = hardrun_env(env)
    done = subprocess.run(["unshare", "--net", "sh", "-c", script], env=full_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert seen.get("by-name") == "hi-from-alpha", done.stdout + done.stderr
    assert seen["published"] == "hi-from-alpha"
    assert seen["unpublished"] == "" and seen["other-bridge"] == ""
    assert seen["publish-all"] == "hi-from-gamma"
    assert seen["links"] == "0" and seen["nft"] == "0"
    assert "hardrun: published 127.0.0.1:18080->7000/tcp" in done.stderr
    assert not list((tmp_path / "state" / "net").glob("*"))


def _apply_ulimit(ulimit) -> str:
    """ulimits.apply on a fresh process whose own hard limit is 0: the error, or "applied"."""
    import resource

    from hardrun.runtime import ulimits

    def apply_under_a_zero_hard_limit() -> str:
        resource.setrlimit(ulimits.RLIMITS[ulimit.name], (0, 0))
        try:
            ulimits.apply(os.getpid(), [ulimit])
        except Exception as error:          # noqa: BLE001 - reported to the parent
            return str(error)
        return "applied"

    return output_of_child(apply_under_a_zero_hard_limit)


@pytest.mark.parametrize("name", ["rtprio", "nice", "memlock"])
def test_a_ulimit_above_hardruns_own_names_that_limit_in_its_hint(name):
    """Raising a hard limit needs CAP_SYS_RESOURCE (this machine's root lacks it too); the
    hint used to talk about nofile whatever the limit."""
    from hardrun.spec.run import Ulimit
    assert _apply_ulimit(Ulimit(name, 0, 0)) == "applied"     # control: within its own limit
    message = _apply_ulimit(Ulimit(name, 40, 40))
    assert "Operation not permitted" in message and "nofile" not in message, message
    assert f"raising the hard {name} limit above hardrun's own (0) needs" in message, message
    nofile = _apply_ulimit(Ulimit("nofile", 1 << 30, 1 << 30))     # above nr_open
    assert "/proc/sys/fs/nr_open" in nofile, nofile
