"""hardrun-oci's container life as an engine drives it: create holds the init before exec,
start releases it, state, kill by number or name, delete leaves nothing behind; hooks,
--preserve-fds, the console socket, run's exit status, the json log."""
from __future__ import annotations

import json
import os
import socket

import pytest

from tests.helpers import wait_until
from tests.oci.conftest import bind, make_bundle, process_gone

pytestmark = pytest.mark.runtime


def _leftovers(record: dict, state_dir: str, bundle: str) -> list[str]:
    """What a deleted container could leave: its process, cgroups, state directory, mounts."""
    found = []
    if record.get("pid") and not process_gone(record["pid"]):
        found.append(f"process {record['pid']}")
    found += [path for path in record.get("cgroups", []) if os.path.exists(path)]
    if os.path.exists(state_dir):
        found.append(state_dir)
    with open("/proc/self/mountinfo") as handle:
        found += [line for line in handle if bundle in line]
    return found


def test_create_holds_the_init_before_exec_until_start(oci, oci_rootfs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sh", "-c", "touch /out/started; exec sleep 60"],
                         mounts=[bind(str(out), "/out")])
    pid_file = tmp_path / "pid"
    oci("create", "--bundle", bundle, "--pid-file", str(pid_file), "c1", check=True)
    pid = int(pid_file.read_text())
    state = oci.state("c1")
    assert (state["status"], state["pid"], state["id"], state["bundle"]) == ("created", pid, "c1", bundle)
    assert not process_gone(pid)
    # The init is set up and held: the payload has not run.
    assert not (out / "started").exists()
    with open(f"/proc/{pid}/status") as handle:
        assert "NoNewPrivs:\t0" in handle.read()       # held before no_new_privs and the filter
    oci("start", "c1", check=True)
    wait_until(lambda: (out / "started").exists(), "the payload to run after start")
    assert oci.state("c1")["status"] == "running"
    # the container's process is pid 1 of its own pid namespace (no hardrun init in between)
    with open(f"/proc/{pid}/status") as handle:
        assert "NSpid:\t%d\t1" % pid in handle.read()
    oci("kill", "c1", "KILL", check=True)
    wait_until(lambda: oci.state("c1")["status"] == "stopped", "the container to stop")
    record = oci.record("c1")
    oci("delete", "c1", check=True)
    assert _leftovers(record, os.path.join(oci.root, "c1"), bundle) == []


@pytest.mark.parametrize("signal_spec", ["15", "TERM", "SIGTERM"])
def test_kill_takes_a_signal_by_number_or_name(oci, oci_rootfs, tmp_path, signal_spec):
    out = tmp_path / "out"
    out.mkdir()
    # pid 1 ignores TERM unless it handles it: the trap shows which signal arrived
    script = "trap 'echo got-term > /out/signal; exit 3' TERM; touch /out/ready; while :; do sleep 0.05; done"
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sh", "-c", script], mounts=[bind(str(out), "/out")])
    oci("create", "--bundle", bundle, "c1", check=True)
    oci("start", "c1", check=True)
    wait_until(lambda: (out / "ready").exists(), "the trap to be set")
    oci("kill", "c1", signal_spec, check=True)
    # the shell creates the file before it writes the line: wait for the whole line
    wait_until(lambda: (out / "signal").exists() and (out / "signal").read_text().endswith("\n"), "the TERM trap")
    assert (out / "signal").read_text() == "got-term\n"
    wait_until(lambda: oci.state("c1")["status"] == "stopped", "the container to stop")
    oci("delete", "c1", check=True)


def test_kill_refuses_an_unknown_signal(oci, oci_rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"])
    oci("create", "--bundle", bundle, "c1", check=True)
    result = oci("kill", "c1", "SIGNOPE")
    assert result.returncode == 2 and "unknown signal 'SIGNOPE'" in result.stderr
    assert oci.state("c1")["status"] == "created"


def test_delete_of_a_created_container_kills_its_held_init(oci, oci_rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"])
    oci("create", "--bundle", bundle, "c1", check=True)
    record = oci.record("c1")
    assert record["cgroups"] and all(os.path.isdir(path) for path in record["cgroups"])
    oci("delete", "c1", check=True)
    assert _leftovers(record, os.path.join(oci.root, "c1"), bundle) == []


def test_delete_refuses_a_running_container_without_force(oci, oci_rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"])
    oci("create", "--bundle", bundle, "c1", check=True)
    oci("start", "c1", check=True)
    result = oci("delete", "c1")
    assert result.returncode == 1 and "is running" in result.stderr
    assert oci.state("c1")["status"] == "running"
    record = oci.record("c1")
    oci("delete", "--force", "c1", check=True)
    assert _leftovers(record, os.path.join(oci.root, "c1"), bundle) == []


def test_list_ps_pause_resume_update(oci, oci_rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"])
    oci("create", "--bundle", bundle, "c1", check=True)
    oci("start", "c1", check=True)
    listed = json.loads(oci("list", "--format", "json", check=True).stdout)
    assert [(item["id"], item["status"]) for item in listed] == [("c1", "running")]
    assert oci("list", "-q", check=True).stdout == "c1\n"
    pid = oci.state("c1")["pid"]
    assert json.loads(oci("ps", "--format", "json", "c1", check=True).stdout) == [pid]
    oci("pause", "c1", check=True)
    assert oci.state("c1")["status"] == "paused"
    with open(f"/proc/{pid}/stat") as handle:     # frozen by the freezer: not running
        assert handle.read().rsplit(")", 1)[1].split()[0] in ("S", "D")
    oci("resume", "c1", check=True)
    assert oci.state("c1")["status"] == "running"
    record = oci.record("c1")
    pids_cgroup = next(path for path in record["cgroups"] if os.path.exists(os.path.join(path, "pids.max")))
    oci("update", "--resources", "-", "c1", stdin=open(_write(tmp_path / "r.json", {"pids": {"limit": 77}})),
        check=True)
    with open(os.path.join(pids_cgroup, "pids.max")) as handle:
        assert handle.read().strip() == "77"
    # device rules for a container created without any: written into its device cgroup, which
    # every container has (deny-all and runc's defaults, as runc makes it)
    devices_cgroup = next(path for path in record["cgroups"] if os.path.exists(os.path.join(path, "devices.list")))
    with open(os.path.join(devices_cgroup, "devices.list")) as handle:
        assert "a *:* rwm" not in handle.read().split("\n")
    allow_fuse = {"devices": [{"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"}]}
    oci("update", "--resources", _write(tmp_path / "d.json", allow_fuse), "c1", check=True)
    with open(os.path.join(devices_cgroup, "devices.list")) as handle:
        assert "c 10:229 r" in handle.read().split("\n")


def _write(path, value) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def test_prestart_hook_gets_the_state_and_its_failure_fails_create(oci, oci_rootfs, tmp_path):
    seen = tmp_path / "hook-stdin"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {seen}"]}
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"], hooks={"prestart": [hook]})
    oci("create", "--bundle", bundle, "c1", check=True)
    state = json.loads(seen.read_text())
    assert (state["id"], state["status"], state["pid"]) == ("c1", "created", oci.state("c1")["pid"])
    oci("delete", "c1", check=True)

    failing = {"path": "/bin/sh", "args": ["sh", "-c", "echo no network for you >&2; exit 4"]}
    bad = make_bundle(tmp_path / "bad", oci_rootfs, ["/bin/sleep", "60"], hooks={"prestart": [failing]})
    result = oci("create", "--bundle", bad, "c2")
    assert result.returncode == 1
    assert "prestart hook /bin/sh failed (exit 4): no network for you" in result.stderr
    assert not os.path.exists(os.path.join(oci.root, "c2"))
    assert len(result.stderr.strip().splitlines()) == 1


def test_preserve_fds_passes_exactly_the_fds_asked_for(oci, oci_rootfs, tmp_path):
    script = "echo through-fd-3 >&3 && echo wrote > /out/result || echo closed > /out/result"
    for preserve, expected in ((["--preserve-fds", "1"], "through-fd-3\n"), ([], "")):
        out = tmp_path / f"out{len(preserve)}"
        out.mkdir()
        bundle = make_bundle(tmp_path / f"b{len(preserve)}", oci_rootfs, ["/bin/sh", "-c", script],
                             mounts=[bind(str(out), "/out")])
        read_end, write_end = os.pipe()
        try:
            result = oci("run", "--bundle", bundle, *preserve, "r1", fd3=write_end)
        finally:
            os.close(write_end)
        os.set_blocking(read_end, False)
        try:
            data = os.read(read_end, 100).decode()
        except BlockingIOError:
            data = ""
        os.close(read_end)
        assert result.returncode == 0, result.stderr
        assert data == expected
        # the control: without --preserve-fds the container's fd 3 is closed
        assert (out / "result").read_text() == ("wrote\n" if preserve else "closed\n")


def test_run_returns_the_exit_status_and_leaves_nothing(oci, oci_rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sh", "-c", "echo out; exit 7"])
    result = oci("run", "--bundle", bundle, "r1")
    assert (result.returncode, result.stdout) == (7, "out\n")
    assert os.listdir(oci.root) == []


def test_console_socket_receives_the_terminal_master(oci, oci_rootfs, tmp_path):
    path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sh"], terminal=True)
    try:
        oci("create", "--bundle", bundle, "--console-socket", path, "t1", check=True)
        connection, _ = listener.accept()
        _, fds, _, _ = socket.recv_fds(connection, 16, 1)
        connection.close()
        assert len(fds) == 1
        master = fds[0]
        oci("start", "t1", check=True)
        os.write(master, b"tty; echo sum-$((40+2))\n")
        output = bytearray()

        def answered() -> bool:
            output.extend(_read_some(master))
            return b"sum-42" in output
        wait_until(answered, "the shell's answer on the terminal")
        assert b"/dev/pts/0" in output      # the container's own devpts: its controlling terminal
        os.write(master, b"exit\n")
        os.close(master)
        wait_until(lambda: oci.state("t1")["status"] == "stopped", "the shell to exit")
        oci("delete", "t1", check=True)
    finally:
        listener.close()


def _read_some(fd: int) -> bytes:
    import select
    ready, _, _ = select.select([fd], [], [], 0.05)
    if not ready:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""


def test_errors_go_to_stderr_and_the_json_log(oci, oci_rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/true"], linux__intelRdt={"closID": "x"})
    log = tmp_path / "log.json"
    result = oci("create", "--bundle", bundle, "e1", global_args=("--log", str(log), "--log-format", "json"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "linux.intelRdt: not supported" in result.stderr
    entry = json.loads(log.read_text())
    assert entry["level"] == "error" and "linux.intelRdt: not supported" in entry["msg"] and entry["time"]
    assert not os.path.exists(os.path.join(oci.root, "e1"))


def test_systemd_cgroup_is_a_clear_error_without_systemd(oci, tmp_path):
    result = oci("state", "x", global_args=("--systemd-cgroup",))
    assert result.returncode == 2
    assert "--systemd-cgroup" in result.stderr and "Traceback" not in result.stderr


def test_an_rlimit_above_the_runtime_s_own_is_named(oci, oci_rootfs, tmp_path):
    """Podman asks for RLIMIT_NOFILE 1048576; where the runtime's own hard limit is lower
    and it lacks CAP_SYS_RESOURCE the error names the field and the limit (not EPERM)."""
    import resource
    own = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with open("/proc/self/status") as handle:
        caps = int(next(line for line in handle if line.startswith("CapEff:")).split()[1], 16)
    # above nr_open no one may set it; above our own hard limit only CAP_SYS_RESOURCE may
    with open("/proc/sys/fs/nr_open") as handle:
        too_high = own + 1 if not caps >> 24 & 1 else int(handle.read()) + 1
    asked = {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": too_high}
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/true"], process__rlimits=[asked])
    result = oci("create", "--bundle", bundle, "l1")
    assert result.returncode == 1
    assert f"process.rlimits RLIMIT_NOFILE: hard limit {too_high} is above" in result.stderr or (
        "process.rlimits (RLIMIT_NOFILE)" in result.stderr), result.stderr
    assert not os.path.exists(os.path.join(oci.root, "l1"))
    # the control: the runtime's own hard limit is given, and seen inside
    fine = make_bundle(tmp_path / "fine", oci_rootfs, ["/bin/sh", "-c", "ulimit -Hn"],
                       process__rlimits=[dict(asked, hard=own)])
    ran = oci("run", "--bundle", fine, "l2")
    assert (ran.returncode, ran.stdout) == (0, f"{own}\n"), ran.stderr
