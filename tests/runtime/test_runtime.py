"""`hardrun run`: each protection verified from inside the container, with a control
showing the attack works when that protection is switched off.

These tests need root and kernel features (user, mount, pid, net namespaces, seccomp):
they fail, never skip, when those are missing.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import NOBODY, ROOT, as_user, hardrun_env, popen_hardrun, run_hardrun, system_python
from tests.rootfs import FIXED_RANGE, require_root

pytestmark = pytest.mark.runtime

ALL_CAPS_40 = (1 << 41) - 1


def run(rootfs, *args, **kwargs):
    """`hardrun run --rootfs ROOTFS ARGS...` (flags then `--` then the command in ARGS)."""
    return run_hardrun("run", "--rootfs", rootfs, *args, **kwargs)


def sh(rootfs, script, *flags, **kwargs):
    return run(rootfs, *flags, "--", "sh", "-c", script, **kwargs)


def status_fields(text: str) -> dict:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def proc_status(rootfs, *flags) -> dict:
    done = run(rootfs, *flags, "--", "cat", "/proc/self/status")
    assert done.returncode == 0, done.stderr
    return status_fields(done.stdout)


def container_pid(hardrun_pid: int) -> int:
    """The container's PID 1 as seen from the host: hardrun's only child."""
    with open(f"/proc/{hardrun_pid}/task/{hardrun_pid}/children") as handle:
        children = handle.read().split()
    assert len(children) == 1, children
    return int(children[0])


def wait_ready(proc) -> None:
    line = proc.stdout.readline()
    assert line.strip() == "ready", (line, proc.stderr.read() if proc.poll() is not None else "")


# -- capabilities -----------------------------------------------------------------------

def test_no_capabilities_by_default_in_any_of_the_five_sets(rootfs):
    fields = proc_status(rootfs)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[key], 16) == 0, (key, fields[key])


def test_cap_add_all_is_the_control_for_the_empty_sets(rootfs):
    fields = proc_status(rootfs, "--cap-add", "ALL")
    last_cap = int(open("/proc/sys/kernel/cap_last_cap").read())
    assert int(fields["CapBnd"], 16) == (1 << (last_cap + 1)) - 1
    assert int(fields["CapEff"], 16) == (1 << (last_cap + 1)) - 1
    assert int(fields["CapInh"], 16) == 0, "inheritable stays empty for root"


def test_chown_needs_a_capability_that_is_dropped(rootfs):
    script = "touch /tmp/f && chown 1000 /tmp/f && echo chowned"
    denied = sh(rootfs, script)
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr
    allowed = sh(rootfs, script, "--cap-add", "chown")   # control: lower case, no CAP_ prefix
    assert allowed.returncode == 0 and "chowned" in allowed.stdout, allowed.stderr


def test_capability_for_non_root_user_reaches_it_through_ambient(rootfs):
    fields = proc_status(rootfs, "-u", "app", "--cap-add", "CAP_NET_BIND_SERVICE")
    bit = 1 << 10
    for key in ("CapEff", "CapPrm", "CapAmb", "CapInh", "CapBnd"):
        assert int(fields[key], 16) == bit, (key, fields[key])
    root_fields = proc_status(rootfs, "--cap-add", "NET_BIND_SERVICE")
    assert int(root_fields["CapEff"], 16) == bit
    assert int(root_fields["CapInh"], 16) == 0 and int(root_fields["CapAmb"], 16) == 0


def test_cap_drop_wins_over_cap_add_all(rootfs):
    fields = proc_status(rootfs, "--cap-add", "ALL", "--cap-drop", "sys_admin")
    assert not int(fields["CapBnd"], 16) >> 21 & 1
    assert int(fields["CapBnd"], 16) >> 0 & 1


def test_every_cap_drop_is_honoured_not_only_the_first(rootfs):
    """Three drops, three spellings: each is missing from all the sets, nothing else is.
    Control: --cap-add ALL alone holds all three."""
    dropped = (1 << 13) | (1 << 21) | (1 << 16)      # NET_RAW, SYS_ADMIN, SYS_MODULE
    last_cap = int(open("/proc/sys/kernel/cap_last_cap").read())
    full = (1 << (last_cap + 1)) - 1
    control = proc_status(rootfs, "--cap-add", "ALL")
    assert int(control["CapEff"], 16) & dropped == dropped
    fields = proc_status(rootfs, "--cap-add", "ALL", "--cap-drop", "NET_RAW", "--cap-drop", "cap_sys_admin",
                         "--cap-drop", "sys_module")
    for key in ("CapPrm", "CapEff", "CapBnd"):
        assert int(fields[key], 16) == full & ~dropped, (key, fields[key])


def test_unknown_capability_fails_closed(rootfs, tmp_path):
    marker = tmp_path / "ran"
    done = run(rootfs, "-v", f"{tmp_path}:/out", "--cap-add", "NOT_A_CAP", "--", "touch", "/out/ran")
    assert done.returncode == 125
    assert "NOT_A_CAP" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()


# -- no_new_privs and setuid ------------------------------------------------------------

def test_setuid_binary_does_not_gain_root_with_no_new_privs(rootfs):
    fields = proc_status(rootfs)
    assert fields["NoNewPrivs"] == "1"
    done = run(rootfs, *FIXED_RANGE, "-u", "app", "--", "/bin/suid-probe")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "euid=1000"


def test_setuid_binary_gains_root_without_no_new_privs(rootfs):
    done = run(rootfs, *FIXED_RANGE, "-u", "app", "--security-opt", "no-new-privileges=false", "--", "/bin/suid-probe")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "euid=0"
    assert proc_status(rootfs, "--security-opt", "no-new-privileges=false")["NoNewPrivs"] == "0"


# -- seccomp ------------------------------------------------------------------------------

def test_seccomp_filter_blocks_unshare(rootfs):
    fields = proc_status(rootfs)
    assert fields["Seccomp"] == "2"
    blocked = sh(rootfs, "unshare -U true && echo escaped")
    assert blocked.returncode != 0 and "escaped" not in blocked.stdout
    control = sh(rootfs, "unshare -U true && echo escaped", "--security-opt", "seccomp=unconfined")
    assert control.returncode == 0 and "escaped" in control.stdout, control.stderr
    assert proc_status(rootfs, "--security-opt", "seccomp=unconfined")["Seccomp"] == "0"


def test_seccomp_loaded_also_when_no_new_privs_is_off(rootfs):
    fields = proc_status(rootfs, "--security-opt", "no-new-privileges=false")
    assert fields["Seccomp"] == "2" and fields["NoNewPrivs"] == "0"


# -- read-only root, tmpfs ---------------------------------------------------------------

def test_root_is_read_only_and_tmp_is_writable(rootfs):
    done = sh(rootfs, "touch /scratch/x; touch /tmp/x && echo tmp-ok")
    assert "Read-only file system" in done.stderr
    assert "tmp-ok" in done.stdout
    control = sh(rootfs, "touch /scratch/x && echo root-written && rm /scratch/x", "--read-write")
    assert control.returncode == 0 and "root-written" in control.stdout, control.stderr


@pytest.mark.parametrize("directory", ["/tmp", "/run"])
def test_tmp_and_run_are_noexec_tmpfs(rootfs, directory):
    script = f"cp /bin/busybox {directory}/true && {directory}/true && echo executed"
    denied = sh(rootfs, script)
    assert "executed" not in denied.stdout and "Permission denied" in denied.stderr
    allowed = sh(rootfs, script, "--tmpfs", f"{directory}:exec")
    assert "executed" in allowed.stdout, allowed.stderr


def test_a_noexec_bind_mount_is_noexec(rootfs, tmp_path):
    """`-v SRC:DST:rw,noexec`: what the container writes there cannot be executed (the
    option was once ignored for binds). Control: the same bind without noexec runs it."""
    os.chmod(tmp_path, 0o777)
    script = "cp /bin/busybox /data/true && /data/true && echo executed"
    denied = sh(rootfs, script, "-v", f"{tmp_path}:/data:rw,noexec")
    assert "executed" not in denied.stdout and "Permission denied" in denied.stderr, denied.stderr
    (tmp_path / "true").unlink()
    allowed = sh(rootfs, script, "-v", f"{tmp_path}:/data:rw")
    assert "executed" in allowed.stdout, allowed.stderr


def test_sys_is_read_only(rootfs):
    done = run(rootfs, "--", "cat", "/proc/self/mountinfo")
    sys_mounts = [line.split() for line in done.stdout.splitlines() if line.split()[4] == "/sys"]
    assert sys_mounts and sys_mounts[0][5].startswith("ro"), done.stdout


# -- masked and read-only kernel paths ---------------------------------------------------

def test_masked_proc_files_read_empty(rootfs):
    script = "wc -c < /proc/interrupts; wc -c < /proc/timer_list; ls /proc/acpi 2>/dev/null | wc -l"
    done = sh(rootfs, script)
    assert done.stdout.split() == ["0", "0", "0"], done.stdout + done.stderr
    control = sh(rootfs, "wc -c < /proc/interrupts", "--security-opt", "systempaths=unconfined")
    assert int(control.stdout.strip()) > 0


def test_proc_sys_is_read_only(rootfs):
    # With CAP_NET_ADMIN, container root may write its own network namespace's sysctls...
    script = "echo 1 > /proc/sys/net/ipv4/ip_forward && cat /proc/sys/net/ipv4/ip_forward"
    denied = sh(rootfs, script, "--cap-add", "NET_ADMIN")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied.stderr
    # ...which is what happens without the read-only /proc/sys (the control).
    control = sh(rootfs, script, "--cap-add", "NET_ADMIN", "--security-opt", "systempaths=unconfined")
    assert control.returncode == 0 and control.stdout.strip() == "1", control.stderr


# -- user namespace ----------------------------------------------------------------------

def test_root_is_remapped_to_an_unprivileged_range(rootfs):
    from hardrun.runtime.userns import root_id_pool
    done = run(rootfs, "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
    (uid_map, gid_map) = [[int(field) for field in line.split()] for line in done.stdout.splitlines()]
    first, _, size = root_id_pool()
    # the container's own range of the pool (test_id_ranges.py: disjoint from any other's)
    assert uid_map[0] == 0 and uid_map[2] == 65536 and first <= uid_map[1] <= first + size - 65536
    assert gid_map[2] == 65536 and gid_map[1] - root_id_pool()[1] == uid_map[1] - first
    custom = run(rootfs, "--userns-remap", "200000:70000", "--", "cat", "/proc/self/uid_map")
    assert custom.stdout.split() == ["0", "200000", "70000"]


def test_volume_ro_is_read_only_inside_and_rw_is_writable(rootfs, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)      # writable whatever range the container's root gets
    script = "touch /data/x && echo wrote"
    read_only = sh(rootfs, script, "--volume", f"{shared}:/data:ro")
    assert "Read-only file system" in read_only.stderr and not (shared / "x").exists()
    writable = sh(rootfs, script, "--volume", f"{shared}:/data:rw")   # control
    assert "wrote" in writable.stdout, writable.stderr
    assert (shared / "x").exists()


def test_container_root_cannot_write_host_root_files(rootfs, tmp_path):
    host_dir = tmp_path / "host-owned"
    host_dir.mkdir(mode=0o755)
    script = "touch /data/x && echo wrote"
    remapped = sh(rootfs, script, "-v", f"{host_dir}:/data")
    assert "wrote" not in remapped.stdout and "Permission denied" in remapped.stderr
    assert not (host_dir / "x").exists()
    control = sh(rootfs, script, "-v", f"{host_dir}:/data", "--userns", "host")
    assert "wrote" in control.stdout, control.stderr
    assert (host_dir / "x").stat().st_uid == 0


def test_user_and_groups_resolved_in_the_container(rootfs):
    done = sh(rootfs, "id; echo $HOME", "-u", "app")
    assert done.stdout.splitlines() == ["uid=1000(app) gid=1000(app) groups=2000(extra)", "/home/app"]
    numeric = run(rootfs, "-u", "1000:2000", "--", "id")
    assert numeric.stdout.strip().startswith("uid=1000(app) gid=2000(extra)")
    missing = run(rootfs, "-u", "nobody-here", "--", "id")
    assert missing.returncode == 125 and "nobody-here" in missing.stderr


# -- namespaces ----------------------------------------------------------------------------

def test_hostname_is_private(rootfs):
    done = run(rootfs, "--hostname", "box", "--", "hostname")
    assert done.stdout.strip() == "box"
    assert os.uname().nodename != "box"


def test_network_none_has_only_loopback_up(rootfs):
    done = sh(rootfs, "ls /sys/class/net; cat /sys/class/net/lo/flags")
    assert done.stdout.split() == ["lo", "0x9"], done.stdout + done.stderr  # IFF_UP | IFF_LOOPBACK
    host = run(rootfs, "--network", "host", "--", "ls", "/sys/class/net")
    assert sorted(host.stdout.split()) == sorted(os.listdir("/sys/class/net"))


def test_process_is_pid_1_and_a_session_leader(rootfs):
    done = sh(rootfs, "echo $$; cut -d' ' -f6 /proc/$$/stat")
    assert done.stdout.split() == ["1", "1"]


# -- exit statuses ------------------------------------------------------------------------

@pytest.mark.parametrize("command, expected", [
    (["true"], 0),
    (["sh", "-c", "exit 3"], 3),
    (["/etc/passwd"], 126),
    (["no-such-command"], 127),
    (["/no/such/path"], 127),
])
def test_exit_statuses(rootfs, command, expected):
    done = run(rootfs, "--", *command)
    assert done.returncode == expected, done.stderr
    if expected >= 126:
        assert done.stderr.startswith("hardrun: exec ") and "Traceback" not in done.stderr


def test_killed_by_signal_gives_128_plus_n(rootfs):
    proc = popen_hardrun("run", "--rootfs", rootfs, "--", "sh", "-c", "echo ready; exec sleep 30")
    wait_ready(proc)
    os.kill(container_pid(proc.pid), signal.SIGKILL)
    assert proc.wait(timeout=30) == 128 + 9
    inside = run(rootfs, "--init", "--", "sh", "-c", "kill -9 $$")
    assert inside.returncode == 128 + 9


def test_signals_are_forwarded(rootfs):
    script = 'trap "exit 42" TERM; echo ready; while :; do sleep 0.05; done'
    proc = popen_hardrun("run", "--rootfs", rootfs, "--", "sh", "-c", script)
    wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 42
    with_init = popen_hardrun("run", "--rootfs", rootfs, "--init", "--", "sh", "-c", "echo ready; exec sleep 30")
    wait_ready(with_init)
    with_init.send_signal(signal.SIGTERM)
    assert with_init.wait(timeout=30) == 128 + signal.SIGTERM


def test_init_reaps_orphaned_zombies(rootfs):
    # The orphan's parent exits at once; the orphan exits 0.2 s later and is reparented to PID 1.
    script = "sh -c 'sleep 0.2 &'; sleep 0.8; ps -o pid,stat,comm"
    with_init = sh(rootfs, script, "--init")
    rows = with_init.stdout.splitlines()[1:]
    assert rows and not [row for row in rows if row.split()[1].startswith("Z")], with_init.stdout
    # Control: a PID 1 that never waits (exec'd sleep) leaves the orphan a zombie.
    control = sh(rootfs, "sh -c 'sleep 0.2 &'; sh -c 'sleep 0.8; ps -o pid,stat,comm' & exec sleep 1.2")
    assert any(row.split()[1].startswith("Z") for row in control.stdout.splitlines()[1:]), control.stdout


def test_parent_death_kills_the_container_and_a_later_run_cleans_up(rootfs, private_cgroup_parent):
    name, env = private_cgroup_parent
    proc = popen_hardrun("run", "--rootfs", rootfs, "--", "sh", "-c", "echo ready; exec sleep 60", env=env)
    wait_ready(proc)
    child = container_pid(proc.pid)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the container outlived hardrun"
    # hardrun was SIGKILLed: its state and cgroup are left behind...
    left = containers_on_record(env)
    assert len(left) == 1 and os.path.isdir(f"/sys/fs/cgroup/pids/{name}/{left[0]}")
    # ...until the next hardrun removes them.
    assert run(rootfs, "--", "true", env=env).returncode == 0
    assert containers_on_record(env) == []
    assert not os.path.exists(f"/sys/fs/cgroup/pids/{name}/{left[0]}")


def containers_on_record(env) -> list[str]:
    """The container entries of a state root (dot-names: the id-range leases, staging)."""
    return [name for name in os.listdir(env["HARDRUN_STATE_DIR"]) if not name.startswith(".")]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- file descriptors and working directory ----------------------------------------------

def test_inherited_fds_above_2_are_closed(rootfs, tmp_path):
    leaked = os.open(str(tmp_path), os.O_RDONLY)   # inherited below through pass_fds
    try:
        proc = popen_hardrun("run", "--rootfs", rootfs, "--", "sh", "-c",
                             f"echo ready; test -e /proc/self/fd/{leaked} && echo leaked || echo closed; "
                             "sleep 0.5", pass_fds=(leaked,))
        wait_ready(proc)
        # Control: hardrun itself did inherit the fd (it is a real leak to close).
        assert os.path.exists(f"/proc/{proc.pid}/fd/{leaked}")
        out = proc.stdout.read()   # not communicate(): it would miss what readline buffered
        assert proc.wait(timeout=30) == 0 and out.strip() == "closed", proc.stderr.read()
    finally:
        os.close(leaked)


def test_workdir_is_entered_and_verified(rootfs, tmp_path):
    assert run(rootfs, "-w", "/etc", "--", "pwd").stdout.strip() == "/etc"
    missing = run(rootfs, "-v", f"{tmp_path}:/out", "-w", "/nope", "--", "touch", "/out/ran")
    assert missing.returncode == 125 and "workdir /nope" in missing.stderr
    assert not (tmp_path / "ran").exists()


def test_workdir_through_a_leaked_fd_is_refused(rootfs, tmp_path):
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    leaked = os.open(str(host_dir), os.O_RDONLY)
    try:
        done = run(rootfs, "-w", f"/proc/self/fd/{leaked}", "--", "touch", "escaped", pass_fds=(leaked,))
    finally:
        os.close(leaked)
    assert done.returncode == 125 and "outside the container's root" in done.stderr, done.stderr
    assert not (host_dir / "escaped").exists()


# -- mounts ------------------------------------------------------------------------------

def test_bind_mounts_are_nosuid_nodev_and_honour_ro(rootfs, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    done = sh(rootfs, "touch /rw/a && echo rw-ok; touch /ro/b; grep -E ' /(rw|ro) ' /proc/self/mountinfo",
              "-v", f"{shared}:/rw", "--mount", f"type=bind,src={shared},dst=/ro,readonly")
    assert "rw-ok" in done.stdout and "Read-only file system" in done.stderr
    mounts = {line.split()[4]: line.split()[5] for line in done.stdout.splitlines()[1:]}
    assert mounts["/ro"].startswith("ro,") and mounts["/rw"].startswith("rw,")
    assert all("nosuid" in options and "nodev" in options for options in mounts.values())
    assert (shared / "a").exists() and not (shared / "b").exists()


def test_mount_over_proc_is_refused(rootfs, tmp_path):
    for target in ("/proc", "/proc/sys"):
        done = run(rootfs, "-v", f"{tmp_path}:{target}", "--", "true")
        assert done.returncode == 125 and "refused" in done.stderr, done.stderr


def test_symlinked_mount_destination_cannot_escape_the_root(busybox_rootfs, tmp_path):
    rootfs = busybox_rootfs
    outside = tmp_path / "outside"
    outside.mkdir()
    source = tmp_path / "source"
    source.mkdir()
    (rootfs / "escape-abs").symlink_to(outside)
    (rootfs / "escape-rel").symlink_to("../" * 12 + str(outside).lstrip("/"))
    try:
        for link in ("escape-abs", "escape-rel"):
            done = run(str(rootfs), "-v", f"{source}:/{link}/sub", "-v", f"{tmp_path}:/out",
                       "--", "touch", "/out/ran")
            assert done.returncode == 125, done.stderr
            assert "inside the container" in done.stderr
            assert not (outside / "sub").exists()
            assert not (tmp_path / "ran").exists()
        # A symlink that stays inside the root is followed there, as Docker does.
        (rootfs / "data-link").symlink_to("/data")
        done = sh(str(rootfs), "grep -c ' /data ' /proc/self/mountinfo", "-v", f"{source}:/data-link")
        assert done.stdout.strip() == "1", done.stderr
    finally:
        for name in ("escape-abs", "escape-rel", "data-link"):
            (rootfs / name).unlink(missing_ok=True)


def test_impossible_mount_fails_closed_in_the_child(rootfs, tmp_path):
    # /sys is read-only sysfs: the mount point cannot be created, so nothing may run.
    done = run(rootfs, "-v", f"{tmp_path}:/out", "-v", f"{tmp_path}:/sys/new-dir", "--", "touch", "/out/ran")
    assert done.returncode == 125
    assert done.stderr.startswith("hardrun: mount /sys/new-dir: ")
    assert not (tmp_path / "ran").exists()


def test_tmpfs_options(rootfs):
    done = sh(rootfs, "grep ' /cache ' /proc/self/mountinfo", "--tmpfs", "/cache:size=1m,mode=700")
    assert "size=1024k" in done.stdout and "mode=700" in done.stdout, done.stdout + done.stderr


# -- environment -------------------------------------------------------------------------

def test_environment(rootfs, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=yes\n# comment\n")
    done = run(rootfs, "-e", "A=1", "--env", "B=2", "--env-file", str(env_file), "--", "env")
    values = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert values["A"] == "1" and values["B"] == "2" and values["FROM_FILE"] == "yes"
    assert values["HOME"] == "/root" and values["PATH"].startswith("/usr/local/sbin")


def test_env_passthrough_and_explicit_default_flags(rootfs):
    done = run(rootfs, "-e", "FROM_CALLER", "-e", "UNSET_IN_CALLER", "--read-only", "--no-new-privileges",
               "--security-opt", "no-new-privileges=true", "--cap-drop", "ALL", "--", "env",
               env={"FROM_CALLER": "passed"})
    values = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert values["FROM_CALLER"] == "passed" and "UNSET_IN_CALLER" not in values, done.stderr


# -- host root view (no --rootfs) --------------------------------------------------------

def test_without_rootfs_the_host_root_is_a_read_only_view():
    require_root()
    probes = ["/etc/hardrun-probe", f"/var/tmp/hardrun-probe-{os.getpid()}"]
    done = run_hardrun("run", "--", "sh", "-c",
                       f"cat /etc/hostname >/dev/null && echo read-ok; touch {probes[0]}; touch {probes[1]}; "
                       "ls -A /tmp | wc -l")
    assert "read-ok" in done.stdout
    assert done.stderr.count("Read-only file system") == 2, done.stderr
    assert done.stdout.split()[-1] == "0"   # a fresh, empty /tmp
    assert not any(os.path.exists(probe) for probe in probes)
    # Control: the same command as host root really can write there.
    subprocess.run(["sh", "-c", f"touch {probes[1]} && rm {probes[1]}"], check=True)


# -- --dry-run and inspect ---------------------------------------------------------------

def test_dry_run_prints_the_resolved_configuration_and_runs_nothing(rootfs, tmp_path):
    done = run(rootfs, "--dry-run", "-u", "app", "--cap-add", "net_raw", "-v", f"{tmp_path}:/out",
               "--", "touch", "/out/ran")
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert not (tmp_path / "ran").exists()
    from tests.frontends.test_oci import _validator
    _validator().validate(config)   # runtime-spec's own JSON schema (tests/data copy)
    process = config["process"]
    assert process["args"] == ["touch", "/out/ran"]
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
    assert process["capabilities"]["bounding"] == ["CAP_NET_RAW"]
    assert process["capabilities"]["ambient"] == ["CAP_NET_RAW"]
    assert process["noNewPrivileges"] is True
    assert config["root"] == {"path": rootfs, "readonly": True}
    types = {namespace["type"] for namespace in config["linux"]["namespaces"]}
    assert types == {"mount", "pid", "ipc", "uts", "network", "cgroup", "user"}
    [mapping] = config["linux"]["uidMappings"]
    assert mapping["containerID"] == 0 and mapping["hostID"] >= 100000 and mapping["size"] == 65536
    assert "/proc/kcore" in config["linux"]["maskedPaths"]
    assert "/proc/sys" in config["linux"]["readonlyPaths"]
    assert config["annotations"]["org.hardrun.seccomp"] == "default"
    out = next(m for m in config["mounts"] if m["destination"] == "/out")
    assert {"nosuid", "nodev", "rw"} <= set(out["options"])


def _mount_flag_mismatches(oci_mounts, mountinfo: str) -> list:
    """Where the container's mounts (from /proc/self/mountinfo) differ from what the OCI
    `mounts` say: a missing mount point, another file system type, or a nosuid, nodev,
    noexec, ro or rw flag that is not as written."""
    mounted = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        separator = fields.index("-")
        mounted[fields[4]] = (fields[separator + 1], set(fields[5].split(",")))  # a later one covers
    problems = []
    for entry in oci_mounts:
        target, options = entry["destination"], set(entry.get("options", ()))
        if target not in mounted:
            problems.append((target, "not mounted"))
            continue
        fstype, flags = mounted[target]
        if fstype != entry["type"]:
            problems.append((target, fstype, entry["type"]))
        for flag in ("nosuid", "nodev", "noexec", "ro", "rw"):
            if flag in options and flag not in flags:
                problems.append((target, flag, sorted(flags)))
        for flag in ("nosuid", "nodev", "noexec"):
            if flag in flags and flag not in options:
                problems.append((target, f"also {flag}", sorted(options)))
    return problems


def test_dry_run_mounts_are_the_mounts_the_container_gets(rootfs):
    """The OCI config --dry-run prints (the writer `hardrun export --to oci` shares) states
    /proc, /sys, /dev, /dev/pts, /dev/shm, /tmp and /run as the container really has them,
    read from its own mountinfo. The control: the same check finds a config that writes
    /sys read-write or /proc without noexec wrong."""
    config = json.loads(run(rootfs, "--dry-run", "--", "true").stdout)
    done = run(rootfs, "--", "cat", "/proc/self/mountinfo")
    assert done.returncode == 0, done.stderr
    assert [entry["destination"] for entry in config["mounts"]] == [
        "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/tmp", "/run"]
    assert _mount_flag_mismatches(config["mounts"], done.stdout) == []
    wrong = json.loads(json.dumps(config["mounts"]))
    wrong[0]["options"].remove("noexec")
    wrong[1]["options"] = ["nosuid", "noexec", "nodev", "rw"]
    assert {problem[0] for problem in _mount_flag_mismatches(wrong, done.stdout)} == {"/proc", "/sys"}


def test_dry_run_shows_the_limits_the_container_gets(rootfs):
    done = run(rootfs, "--dry-run", "-m", "64m", "--pids-limit", "20", "--cpus", "0.5",
               "--cpu-shares", "256", "--ulimit", "nofile=100:200", "--ulimit", "core=-1", "--", "true")
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    from tests.frontends.test_oci import _validator
    _validator().validate(config)
    assert config["linux"]["resources"] == {
        "memory": {"limit": 64 << 20, "swap": 128 << 20}, "pids": {"limit": 20},
        "cpu": {"shares": 256, "quota": 50000, "period": 100000}}
    assert config["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
        {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}]
    # the default pids limit is shown too; `--pids-limit -1` lifts it
    default = json.loads(run(rootfs, "--dry-run", "--", "true").stdout)
    assert default["linux"]["resources"] == {"pids": {"limit": 1024}}
    unlimited = json.loads(run(rootfs, "--dry-run", "--pids-limit", "-1", "--", "true").stdout)
    assert "resources" not in unlimited["linux"]


def test_inspect_reports_a_running_container(rootfs):
    proc = popen_hardrun("run", "--rootfs", rootfs, "--", "sh", "-c", "echo ready; exec sleep 30")
    try:
        wait_ready(proc)
        pid = container_pid(proc.pid)
        done = run_hardrun("inspect", "--json", str(pid))
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["pid"] == pid and report["command"] == ["sleep", "30"]
        assert all(names == [] for names in report["capabilities"].values())
        assert report["no_new_privs"] is True and report["seccomp"] == "filter"
        for name in ("user", "mnt", "net", "pid", "ipc", "uts", "cgroup"):
            assert report["namespaces"][name]["shared_with_caller"] is False, name
        with open(f"/proc/{pid}/uid_map") as handle:
            assert report["uid_map"] == [[int(field) for field in line.split()] for line in handle]
        assert report["uid_map"][0][1] >= 100000
        text = run_hardrun("inspect", str(pid)).stdout
        assert "no_new_privs: yes" in text and "seccomp:      filter" in text
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_inspect_of_the_host_shows_the_control(rootfs):
    report = json.loads(run_hardrun("inspect", "--json").stdout)
    assert "SYS_ADMIN" in report["capabilities"]["effective"]   # the test runner is real root
    assert report["namespaces"]["mnt"]["shared_with_caller"] is True


# -- hook points: cgroups, ulimits, bridge networks (wired end to end) -------------------

@pytest.fixture
def private_cgroup_parent(tmp_path):
    """A cgroup parent of this test's own, so concurrent containers do not interfere."""
    name = f"hardrun-test-{os.getpid()}-{tmp_path.name}"[:60]
    env = {"HARDRUN_CGROUP_PARENT": name, "HARDRUN_STATE_DIR": str(tmp_path / "state")}
    yield name, env
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        path = f"/sys/fs/cgroup/{hierarchy}/{name}"
        if os.path.isdir(path):
            os.rmdir(path)


def test_limits_apply_inside_a_read_only_cgroup_view_and_are_removed(rootfs, private_cgroup_parent):
    name, env = private_cgroup_parent
    script = ("cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; "
              "grep -c ':/$' /proc/self/cgroup; mkdir /sys/fs/cgroup/x")
    done = sh(rootfs, script, "--pids-limit", "20", env=env)
    lines = done.stdout.split()
    assert lines[0] == "20", done.stdout + done.stderr
    assert int(lines[1]) >= 1                       # the cgroup namespace is rooted at its own cgroup
    assert "Read-only file system" in done.stderr
    leftovers = [entry for hierarchy in os.listdir("/sys/fs/cgroup")
                 if os.path.isdir(f"/sys/fs/cgroup/{hierarchy}/{name}")
                 for entry in os.listdir(f"/sys/fs/cgroup/{hierarchy}/{name}")
                 if os.path.isdir(f"/sys/fs/cgroup/{hierarchy}/{name}/{entry}")]
    assert leftovers == []
    assert containers_on_record(env) == []


def test_fork_bomb_stays_in_its_pids_limit(rootfs, private_cgroup_parent):
    _, env = private_cgroup_parent
    # Shell builtins only once the bomb has gone off: at the limit, nothing can fork.
    script = ("(for i in $(seq 40); do sleep 2 & done) 2>/dev/null; "
              "f=/sys/fs/cgroup/pids/pids.current; [ -e $f ] || f=/sys/fs/cgroup/pids.current; "
              "read n < $f; echo $n")
    capped = sh(rootfs, script, "--pids-limit", "10", env=env)
    assert 0 < int(capped.stdout.split()[-1]) <= 10, capped.stdout + capped.stderr
    control = sh(rootfs, script, "--pids-limit", "100", env=env)
    assert int(control.stdout.split()[-1]) > 40, control.stdout + control.stderr


def test_memory_hog_is_oom_killed_and_reported(rootfs, private_cgroup_parent):
    _, env = private_cgroup_parent
    hog = "tail /dev/zero"   # buffers an endless line
    done = run(rootfs, "--memory", "32m", "--memory-swap", "32m", "--init", "--", "sh", "-c", hog, env=env)
    assert done.returncode == 137, done.stderr
    assert "OOM" in done.stderr


def test_ulimit_is_set_before_the_command_starts(rootfs):
    done = sh(rootfs, "ulimit -n", "--ulimit", "nofile=64:64")
    assert done.stdout.strip() == "64", done.stderr


def test_bridge_network_inside_a_throwaway_host_namespace(rootfs, tmp_path):
    """The bridge, veth and nftables rules live in a network namespace made for this test."""
    env = hardrun_env({"HARDRUN_STATE_DIR": str(tmp_path / "state")})
    script = ("ip link set lo up; "
              f"{sys.executable} -m hardrun run --rootfs {rootfs} --network bridge:t1 --name alpha -- "
              "sh -c 'ip -4 addr show eth0 | grep -c inet; grep -c alpha /etc/hosts'; "
              "echo links:$(ip -o link | grep -c hr-)")
    done = subprocess.run(["unshare", "--net", "sh", "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1", "links:0"], done.stdout + done.stderr


# -- rootless and usage --------------------------------------------------------------------

def run_rootless(public_rootfs, script: str, *flags: str, memfd_noexec: bool = False) -> subprocess.CompletedProcess:
    """hardrun run as `nobody` (with FLAGS), in a pid namespace of the test's own where
    host root has set vm.memfd_noexec=2 (which a rootless hardrun cannot set) when
    `memfd_noexec` (with its own /proc: hardrun reads /proc/PID of its children)."""
    rootfs, home, source = public_rootfs
    # the state root in the test's own tree: the default /tmp/hardrun-65534 would outlive it
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(source),
           "XDG_RUNTIME_DIR": str(home)}
    setting = "echo 2 > /proc/sys/vm/memfd_noexec && " if memfd_noexec else ""
    rootless = as_user(NOBODY, system_python(), "-m", "hardrun", "run", "--rootfs", str(rootfs), *flags,
                       "--", "sh", "-c", script)
    own_pid_namespace = ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", setting + 'exec "$@"', "sh"]
    return subprocess.run(own_pid_namespace + rootless, env=env, capture_output=True, text=True, timeout=60)


def test_rootless_maps_the_callers_own_uid(public_rootfs):
    script = "id -u; cat /proc/self/uid_map; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; touch /x"
    done = run_rootless(public_rootfs, script)
    lines = [line.split() for line in done.stdout.splitlines()]
    assert lines and lines[0] == ["0"], done.stdout + done.stderr
    assert lines[1] == ["0", "65534", "1"]
    assert lines[2] == ["CapEff:", "0000000000000000"] and lines[3] == ["NoNewPrivs:", "1"]
    assert "Read-only file system" in done.stderr


MEMFD_PROBE = "probe memfd=write_exec:memfd sealed=write_exec:memfd_sealed"


def test_rootless_memfds_are_sealed_where_vm_memfd_noexec_cannot_be_set(public_rootfs):
    """Only the host's root uid can set vm.memfd_noexec, so a rootless hardrun on a host at 0
    loads a filter of its own, with the built-in profile and with seccomp=unconfined alike:
    memfd_create without MFD_NOEXEC_SEAL is ENOSYS, and a sealed memfd is written but can
    be neither chmod +x-ed nor executed. Controls: on the host (vm.memfd_noexec=0, no
    filter) the probe executes the memfd it wrote; in a pid namespace where root set
    vm.memfd_noexec=2 no filter of hardrun's is loaded and the kernel refuses the exec."""
    rootfs = public_rootfs[0]
    with open("/proc/sys/vm/memfd_noexec") as handle:
        assert int(handle.read()) < 2, "the test needs a host where vm.memfd_noexec is below 2"
    from tests.escape.test_escape_battery import assert_blocked, parse_outcomes
    for flags, filters in (((), "2"), (("--security-opt", "seccomp=unconfined"), "1")):
        done = run_rootless(public_rootfs, "grep Seccomp_filters /proc/self/status; " + MEMFD_PROBE, *flags)
        assert done.returncode == 0 and f"Seccomp_filters:\t{filters}\n" in done.stdout, done.stdout + done.stderr
        outcomes = parse_outcomes(done.stdout)
        assert_blocked(outcomes["memfd"], "ENOSYS", step="create")
        assert_blocked(outcomes["sealed"], "EACCES", step="exec")
        assert outcomes["sealed"]["chmod"] == "EPERM"
    on_host = subprocess.run([str(rootfs / "bin" / "probe"), *MEMFD_PROBE.split()[1:]], capture_output=True,
                             text=True, timeout=60)
    assert parse_outcomes(on_host.stdout)["memfd"].status == "OK", on_host.stdout + on_host.stderr
    set_by_root = run_rootless(public_rootfs, "grep Seccomp_filters /proc/self/status; " + MEMFD_PROBE,
                               "--security-opt", "seccomp=unconfined", memfd_noexec=True)
    assert "Seccomp_filters:\t0\n" in set_by_root.stdout, set_by_root.stdout + set_by_root.stderr
    assert_blocked(parse_outcomes(set_by_root.stdout)["memfd"], "EACCES", step="exec")


def test_the_parent_knows_whether_vm_memfd_noexec_can_hold(tmp_path):
    """Decided before the filters are chosen: a kernel without the sysctl (before Linux
    6.3) cannot; a value of 2 is inherited; the host's root may write it. (A rootless
    hardrun cannot: the test above.)"""
    from hardrun.runtime.userns import MEMFD_NOEXEC, memfd_noexec_can_hold
    assert not memfd_noexec_can_hold(str(tmp_path / "no-such-sysctl"))
    inherited = tmp_path / "memfd_noexec"
    inherited.write_text("2\n")
    assert memfd_noexec_can_hold(str(inherited))
    assert memfd_noexec_can_hold(MEMFD_NOEXEC)


def test_vm_memfd_noexec_that_cannot_be_set_after_all_fails_the_start(tmp_path):
    """Where the parent chose the sysctl over the filter, a failure to set it in the child
    is exit 125 naming it. Control: a value of 2 already there is kept."""
    from hardrun.runtime.process import StepFailure
    from hardrun.runtime.userns import _ensure_memfd_noexec
    with pytest.raises(StepFailure) as failure:
        _ensure_memfd_noexec(str(tmp_path / "no-such-sysctl"))
    assert failure.value.step == "vm.memfd_noexec" and failure.value.code == 125
    assert "vm.memfd_noexec=2 on the host" in failure.value.line()
    inherited = tmp_path / "memfd_noexec"
    inherited.write_text("2\n")
    _ensure_memfd_noexec(str(inherited))


# Runs hardrun (argv[1:]) where landlock_create_ruleset answers ENOSYS, as on a kernel without
# Landlock: a seccomp filter of the test's own, inherited by hardrun and its child.
WITHOUT_LANDLOCK = """
import errno, os, sys
import pyseccomp
without = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
without.set_attr(pyseccomp.Attr.CTL_NNP, 0)     # hardrun as root would run without no_new_privs
without.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "landlock_create_ruleset")
without.load()
os.execv(sys.executable, [sys.executable, "-m", "hardrun", *sys.argv[1:]])
"""


@pytest.mark.parametrize("where", ["host view", "read-only bind in an image"])
def test_a_kernel_without_landlock_fails_closed_naming_it(rootfs, tmp_path, where):
    """Without Landlock neither the read-only view of the host nor a read-only bind of a
    host path under --rootfs can keep the host's FIFOs out of reach: exit 125 naming
    Landlock, and the command never runs. Control: the same start with Landlock runs it."""
    import shutil
    # outside /tmp: the host view's /tmp is the container's own tmpfs
    out = Path(f"/var/tmp/hardrun-test-landlock-{os.getpid()}")
    out.mkdir(mode=0o777)
    try:
        os.chmod(out, 0o777)
        inside = "/data" if where != "host view" else str(out)   # a mount point the root already has
        image = ["--rootfs", rootfs, "-v", f"{tmp_path}:/srv:ro"] if where != "host view" else []
        args = ["run", *image, "-v", f"{out}:{inside}", "--", "touch", f"{inside}/ran"]
        done = subprocess.run([sys.executable, "-c", WITHOUT_LANDLOCK, *args], env=hardrun_env(),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 125, done.stderr
        assert done.stderr.startswith("hardrun: landlock: ") and "Landlock" in done.stderr, done.stderr
        assert not (out / "ran").exists()
        control = run_hardrun(*args)
        assert control.returncode == 0 and (out / "ran").exists(), control.stderr
    finally:
        shutil.rmtree(out)


def test_container_gets_its_share_of_the_user_namespace_limits(rootfs):
    """Inside, every user.max_* (inotify, fanotify, namespaces) is 1/8 of the host's; the
    container cannot raise it back (/proc/sys is read-only). Control: --userns host
    shares the host's user namespace and so shows the host's own limits."""
    from hardrun.runtime.userns import USER_LIMIT_SHARE
    names = sorted(name for name in os.listdir("/proc/sys/user") if name.startswith("max_"))
    host = {name: int(open(f"/proc/sys/user/{name}").read()) for name in names}
    script = "cd /proc/sys/user && for f in max_*; do echo $f $(cat $f); done; echo 1 > max_inotify_instances"
    done = sh(rootfs, script)
    inside = {name: int(value) for name, value in (line.split() for line in done.stdout.splitlines())}
    assert inside == {name: min(value, max(1, value // USER_LIMIT_SHARE)) for name, value in host.items()}, done.stderr
    assert "Read-only file system" in done.stderr
    control = sh(rootfs, script, "--userns", "host")
    assert {name: int(value) for name, value in (line.split() for line in control.stdout.splitlines())} == host


def test_usage_errors_exit_125_without_traceback(rootfs):
    for args in ([], ["--rootfs", "/no/such/dir", "true"], ["--workdir", "relative", "true"],
                 ["-v", "relative:/x", "true"], ["--tmpfs", "/x:size=lots", "true"]):
        done = run_hardrun("run", *args)
        assert done.returncode == 125, (args, done.stderr)
        assert done.stderr.startswith("hardrun: ") and "Traceback" not in done.stderr, done.stderr


def test_unavailable_user_namespaces_fail_closed_and_name_the_sysctl(rootfs, tmp_path):
    # The limit is per user namespace: set to 0 in a throwaway one, hardrun's clone fails.
    env = hardrun_env({"HARDRUN_STATE_DIR": str(tmp_path / "state")})
    script = ("echo 0 > /proc/sys/user/max_user_namespaces && "
              f'exec {sys.executable} -m hardrun run --rootfs "$1" -v "$2":/out -- touch /out/ran')
    done = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh", rootfs,
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 125, done.stderr
    assert done.stderr.startswith("hardrun: clone: ") and "user.max_user_namespaces" in done.stderr
    assert not (tmp_path / "ran").exists()


HIDE_MODULE = """
import sys
HIDDEN = sys.argv[1]
class Missing:                  # an install that lacks one of hardrun's own modules
    def find_spec(self, name, path=None, target=None):
        if name == HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
if HIDDEN:
    sys.meta_path.insert(0, Missing())
from hardrun.__main__ import main
main(["run", "--rootfs", sys.argv[2], "--", "echo", "PAYLOAD RAN"])
"""


@pytest.mark.parametrize("module", ["hardrun.runtime.cgroups", "hardrun.runtime.state",
                                    "hardrun.runtime.seccomp"])
def test_a_missing_runtime_module_refuses_the_start(rootfs, module):
    """A module of the limits, state or seccomp machinery that cannot be imported is one
    clear line and exit 125, never a container started without what it would apply."""
    def start(hidden: str):
        return subprocess.run([sys.executable, "-c", HIDE_MODULE, hidden, rootfs], cwd=ROOT,
                              env=hardrun_env(), capture_output=True, text=True, timeout=60)
    control = start("")
    assert control.returncode == 0 and control.stdout == "PAYLOAD RAN\n", control.stderr
    done = start(module)
    assert done.returncode == 125, done.stdout + done.stderr
    assert "PAYLOAD" not in done.stdout and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("hardrun: "), done.stderr
    assert module.rpartition(".")[2] in done.stderr and "reinstall" in done.stderr, done.stderr


def test_start_up_path_imports_nothing_heavy(rootfs):
    """`hardrun run` is measured against crun: click, YAML, pyroute2, libseccomp's binding
    (once the filter is cached) and dataclasses/inspect/typing stay off its path."""
    run(rootfs, "--", "true")   # fills the seccomp cache if needed
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "hardrun", "run", "--rootfs", rootfs,
                           "--", "true"], env=hardrun_env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "hardrun.runtime.parent" in imported      # the measurement itself works
    heavy = {"click", "yaml", "pyroute2", "pyseccomp", "dataclasses", "inspect", "typing"}
    assert imported & heavy == set()


def test_reaping_leaves_a_state_being_created_alone(rootfs, private_cgroup_parent):
    """Another hardrun's half-made state directory is left alone while its maker lives,
    and removed once the maker is dead (the staging name carries its pid and start time)."""
    from hardrun.runtime.state import process_start_time
    _, env = private_cgroup_parent
    state_dir = env["HARDRUN_STATE_DIR"]
    maker = subprocess.Popen(["sleep", "60"])
    try:
        staging = f".new-{maker.pid}.{process_start_time(maker.pid)}.0123456789abcdef"
        os.mkdir(state_dir, 0o700)                       # a state root is the caller's alone
        os.mkdir(f"{state_dir}/{staging}")
        assert run(rootfs, "--", "true", env=env).returncode == 0
        assert sorted(os.listdir(state_dir)) == [staging, ".userns"]   # .userns: the id-range leases
    finally:
        maker.kill()
        maker.wait()
    assert run(rootfs, "--", "true", env=env).returncode == 0
    assert os.listdir(state_dir) == [".userns"]
