"""The escape battery: real container-escape attacks run inside `hardrun run`.

Each attack is performed by a small static C program (tests/escape/probe.c, built
here with gcc) from inside a busybox container and reports a machine-readable
outcome (`capset BLOCKED errno=EPERM`), so every test asserts the precise result.
Every attack has a control that shows it SUCCEEDS when the matching protection is
switched off: through hardrun's own flags where one exists (`--cap-add`,
`--security-opt seccomp=unconfined|no-new-privileges=false|systempaths=unconfined`,
`--read-write`, `--userns host`), otherwise by running the same probe on the host,
in a plain chroot or in a bare `unshare` (each such case says why in its docstring).

Containers are shared: a scenario (one set of flags and the attacks to run under it)
starts one container that runs all its attacks, each in a forked child of the probe.

These tests need root, user namespaces and gcc: they fail, never skip, without them.
"""
from __future__ import annotations

import os
import pty
import select
import shutil
import socket
import stat
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import hardrun_env, popen_hardrun, run_hardrun
from tests.rootfs import CONTAINER_ROOT, FIXED_RANGE, compile_static, require_root

pytestmark = pytest.mark.runtime

PROBE_SOURCE = Path(__file__).resolve().parent / "probe.c"
CAP_NET_RAW = 1 << 13


# -- fixtures ----------------------------------------------------------------------------

def require_namespaces() -> None:
    """Fail (never skip) when the battery cannot run: it needs root and user namespaces."""
    require_root()
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "true"],
                          capture_output=True, text=True)
    assert done.returncode == 0, ("the escape battery needs user namespaces (check the sysctl "
                                  f"user.max_user_namespaces): {done.stderr.strip()}")


@pytest.fixture(scope="session")
def probe(tmp_path_factory) -> Path:
    """The probe, built static (`gcc -static -O1`) so it runs in any root filesystem."""
    require_namespaces()
    binary = tmp_path_factory.mktemp("probe") / "probe"
    compile_static(PROBE_SOURCE.read_text(), binary)
    return binary


def _file_capability(permitted: int) -> bytes:
    """A `security.capability` xattr (VFS_CAP_REVISION_2) with `permitted` and no
    effective bit: the capabilities land in the permitted set at exec."""
    return struct.pack("<IIIII", 0x02000000, permitted & 0xFFFFFFFF, 0, permitted >> 32, 0)


@pytest.fixture(scope="session")
def battery_rootfs(busybox_rootfs, probe) -> Path:
    """The runtime tests' busybox root with the probe and three escalation copies:
    setuid-root as the container's root, setuid-root as the host's root, and one
    carrying the file capability cap_net_raw+p."""
    bin_dir = busybox_rootfs / "bin"
    shutil.copy2(probe, bin_dir / "probe")
    for name, owner in (("probe-suid", CONTAINER_ROOT), ("probe-suid-host", 0)):
        shutil.copy2(probe, bin_dir / name)
        os.chown(bin_dir / name, owner, owner)
        os.chmod(bin_dir / name, 0o4755)
    shutil.copy2(probe, bin_dir / "probe-fcap")
    os.setxattr(bin_dir / "probe-fcap", "security.capability", _file_capability(CAP_NET_RAW))
    return busybox_rootfs


class Outcome:
    """One probe line: `LABEL STATUS key=value...`."""

    def __init__(self, line: str):
        self.line = line
        label, self.status, *pairs = line.split()
        self.fields = dict(pair.split("=", 1) for pair in pairs)

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def __repr__(self) -> str:
        return self.line


def parse_outcomes(stdout: str) -> dict[str, Outcome]:
    outcomes = {}
    for line in stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1] in ("OK", "BLOCKED", "KILLED"):
            outcomes[words[0]] = Outcome(line)
    return outcomes


def assert_blocked(outcome: Outcome, errno: str, step: str | None = None) -> None:
    assert outcome.status == "BLOCKED" and outcome.fields.get("errno") == errno, outcome
    if step is not None:
        assert outcome.fields.get("step") == step, outcome


def assert_ok(outcome: Outcome) -> None:
    assert outcome.status == "OK", outcome


class Host:
    """Facts about the host the attacks aim at."""

    def __init__(self):
        root = os.stat("/")
        self.root = f"{root.st_dev}:{root.st_ino}"
        self.root_disk = f"{os.major(root.st_dev)}:{os.minor(root.st_dev)}"
        self.mnt_ns = os.stat("/proc/self/ns/mnt").st_ino
        interpreter = os.stat(os.path.realpath(sys.executable))
        self.interpreter = f"{interpreter.st_dev}:{interpreter.st_ino}"


HOST = Host()

# label -> the probe's attack (see probe.c)
ATTACKS = {
    "capset": "capset",
    "ambient": "ambient",
    "suid": "exec:/bin/probe-suid",
    "suid_host": "exec:/bin/probe-suid-host",
    "fcap": "exec:/bin/probe-fcap",
    "write_root": "write_dir:/scratch",
    "mount_tmpfs": "mount_tmpfs",
    "remount_rw": "remount_rw",
    "umount_mask": "umount:/proc/interrupts",
    "mount_proc": "mount_proc:interrupts",
    "unshare_user": "unshare:user",
    "unshare_mnt": "unshare:mnt",
    "clone_user": "clone_user",
    "clone3_user": "clone3_user",
    "abi_i386": "abi_unshare:i386",
    "abi_x32": "abi_unshare:x32",
    "setns": f"setns:{HOST.mnt_ns}:{HOST.root}",
    "ptrace_pid1": "ptrace:1",
    "add_key": "add_key",
    "keyctl": "keyctl",
    "bpf": "bpf",
    "io_uring": "io_uring",
    "userfaultfd": "userfaultfd",
    "perf": "perf",
    "syslog": "syslog",
    "init_module": "init_module",
    "finit_module": "finit_module",
    "raw_packet": "raw_socket:packet",
    "raw_inet": "raw_socket:inet",
    "hostname_sysctl": "write:/proc/sys/kernel/hostname=probe-was-here",
    "sys_net": "open_w:/sys/class/net/lo/mtu",
    "sys_kernel": "open_w:/sys/kernel/profiling",
    "procs": "procs",
    "exe_scan": f"exe_scan:{HOST.interpreter}",
    # hardrun's caller has PYTHONPATH set (see run_hardrun); the container's environment never does.
    "pid1_environ": "grep:/proc/1/environ:PYTHONPATH=",
    "pid1_mem": "open_r:/proc/1/mem",
    "chroot_escape": f"chroot_escape:{HOST.root}",
    "mknod_blk": f"mknod:/tmp/disk:{HOST.root_disk}",
    "dev": "ls:/dev",
    "sethostname": "sethostname",
    "fds": "fds",
    # an executable written at run time (a copy of the probe), then executed
    "memfd": "write_exec:memfd",
    "memfd_procfd": "write_exec:memfd_procfd",
    "memfd_exec_flag": "write_exec:memfd_exec",
    "memfd_secret": "write_exec:memfd_secret",
}
# Every place a default container can write: its tmpfs mounts (plain file, O_TMPFILE).
WRITABLE_DIRS = ("/tmp", "/run", "/dev/shm")
for directory in WRITABLE_DIRS:
    ATTACKS["file" + directory] = "write_exec:file:" + directory
    ATTACKS["tmpfile" + directory] = "write_exec:tmpfile:" + directory
ATTACKS["file/dev"] = "write_exec:file:/dev"
MEMFD_ATTACKS = ("memfd", "memfd_procfd", "memfd_exec_flag")
TMPFS_EXEC = tuple(flag for directory in WRITABLE_DIRS for flag in ("--tmpfs", directory + ":exec"))

# Docker's masked files (moby daemon/pkg/oci/defaults.go) and the read-only write targets
# this kernel has: a file the host lacks cannot leak.
MASKED_FILES = [path for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                                  "/proc/interrupts", "/proc/latency_stats", "/proc/timer_stats")
                if os.path.exists(path)]
READONLY_TARGETS = [path for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches",
                                      "/proc/sysrq-trigger") if os.path.exists(path)]
for path in MASKED_FILES:
    ATTACKS["read" + path] = "read:" + path
for path in READONLY_TARGETS:
    ATTACKS["open_w" + path] = "open_w:" + path
ATTACKS["masked_dir"] = "ls:/proc/acpi"
# The device nodes in /dev are the host's own inodes (bind mounts), and so are the masks.
HOST_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
for name in HOST_DEVICES:
    ATTACKS["chmod_dev_" + name] = "chmod:/dev/" + name
ATTACKS["chmod_mask"] = "chmod:/proc/interrupts"


def _release_agent_hierarchies() -> str:
    """The cgroup v1 controllers whose hierarchy root is where the tests run, joined by
    '+': the probe attacks the first whose release_agent the container's cgroup
    namespace shows (as the CVE-2022-0492 exploits picked rdma, which runtimes leave
    at the root)."""
    mounted = set(os.listdir("/sys/fs/cgroup")) if os.path.isdir("/sys/fs/cgroup") else set()
    found = []
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _, controllers, path = line.strip().split(":", 2)
            for controller in controllers.split(","):
                if controller and not controller.startswith("name=") and path == "/" and controller in mounted:
                    found.append(controller)
    return "+".join(found)


RELEASE_AGENT_CONTROLLERS = _release_agent_hierarchies()
ATTACKS["release_agent"] = f"release_agent:{RELEASE_AGENT_CONTROLLERS}"

# The argument filters of the built-in seccomp profile, written from Docker's profile
# (tests/data/seccomp/docker-default.json) and the kernel headers, not read from
# hardrun's: label -> (syscall, the filtered argument's value, the probe's `syscall`
# spec: x86-64 number, args).
# Each value is also tried with bit 32 set where the kernel reads the argument as an int.
TIOCSTI, TIOCLINUX, AF_ALG, AF_VSOCK = 0x5412, 0x541C, 38, 40
ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC = 0x0040000, 0x0400000
FILTERED_CALLS = {
    "ioctl_tiocsti": ("ioctl", TIOCSTI, f"16,devnull,{TIOCSTI}"),
    "ioctl_tiocsti_hi": ("ioctl", TIOCSTI, f"16,devnull,{(1 << 32) | TIOCSTI}"),
    "ioctl_tioclinux": ("ioctl", TIOCLINUX, f"16,devnull,{TIOCLINUX}"),
    "ioctl_tioclinux_hi": ("ioctl", TIOCLINUX, f"16,devnull,{(1 << 32) | TIOCLINUX}"),
    "socket_alg": ("socket", AF_ALG, f"41,{AF_ALG},5,0"),
    "socket_alg_hi": ("socket", AF_ALG, f"41,{(1 << 32) | AF_ALG},5,0"),
    "socket_vsock": ("socket", AF_VSOCK, f"41,{AF_VSOCK},1,0"),
    "socket_vsock_hi": ("socket", AF_VSOCK, f"41,{(1 << 32) | AF_VSOCK},1,0"),
    "personality_no_randomize": ("personality", ADDR_NO_RANDOMIZE, f"135,{ADDR_NO_RANDOMIZE}"),
    "personality_implies_exec": ("personality", READ_IMPLIES_EXEC, f"135,{READ_IMPLIES_EXEC}"),
}
# personality values Docker allows (PER_LINUX, PER_LINUX32, UNAME26 variants, the query)
ALLOWED_PERSONALITIES = (0, 8, 0x20000, 0x20008, 0xFFFFFFFF)
for label, (_, _, spec) in FILTERED_CALLS.items():
    ATTACKS[label] = "syscall:" + spec
for value in ALLOWED_PERSONALITIES:
    ATTACKS[f"personality_{value:#x}"] = f"syscall:135,{value}"
# Docker's masked directories (an empty read-only tmpfs each) that this kernel has.
MASKED_DIRS = [path for path in ("/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware",
                                 "/sys/devices/virtual/powercap") if os.path.isdir(path)]
for path in MASKED_DIRS:
    ATTACKS["write_mask" + path] = "write_dir:" + path
ATTACKS["write_mode0_tmpfs"] = "write_dir:/data"

USERNS_HOST = ("--userns", "host")
# name -> (flags, labels of the attacks run under them)
SCENARIOS = {
    "default": ((), [label for label in ATTACKS if label not in ("suid", "suid_host", "fcap", "write_mode0_tmpfs")]),
    "cap_all": (("--cap-add", "ALL"), ["capset", "ambient"]),
    "sys_admin": (("--cap-add", "SYS_ADMIN"),
                  ["mount_tmpfs", "remount_rw", "umount_mask", "mount_proc", "unshare_mnt", "sethostname",
                   "release_agent"]),
    "setns_caps": (("--cap-add", "SYS_ADMIN", "--cap-add", "SYS_CHROOT"), ["setns"]),
    "unconfined": (("--security-opt", "seccomp=unconfined"),
                   ["unshare_user", "clone_user", "clone3_user", "abi_i386", "abi_x32", "add_key", "keyctl",
                    "io_uring", "userfaultfd"] + list(FILTERED_CALLS)),
    # DAC_OVERRIDE passes the masks' mode 0: only their read-only mount stops a write
    "dac_override": (("--cap-add", "DAC_OVERRIDE"), ["write_mask" + path for path in MASKED_DIRS]),
    "dac_override_tmpfs": (("--cap-add", "DAC_OVERRIDE", "--tmpfs", "/data:mode=0"), ["write_mode0_tmpfs"]),
    "net_raw": (("--cap-add", "NET_RAW"), ["raw_packet", "raw_inet"]),
    "sys_chroot": (("--cap-add", "SYS_CHROOT"), ["chroot_escape"]),
    # Capabilities that only mean something in the initial user namespace.
    "userns_caps": (("--cap-add", "BPF", "--cap-add", "PERFMON", "--cap-add", "SYS_MODULE",
                     "--cap-add", "MKNOD", "--cap-add", "SYSLOG"),
                    ["bpf", "perf", "init_module", "finit_module", "mknod_blk", "syslog"]),
    "host_caps": (USERNS_HOST + ("--cap-add", "BPF", "--cap-add", "PERFMON", "--cap-add", "SYS_MODULE",
                                 "--cap-add", "MKNOD", "--cap-add", "SYSLOG"),
                  ["bpf", "perf", "init_module", "finit_module", "mknod_blk", "syslog"]),
    "host_sys_admin": (USERNS_HOST + ("--cap-add", "SYS_ADMIN"), ["release_agent"]),
    "read_write": (("--read-write",), ["write_root"]),
    "tmpfs_exec": (TMPFS_EXEC, [prefix + directory for directory in WRITABLE_DIRS for prefix in ("file", "tmpfile")]),
    "host_ids": (USERNS_HOST, ["hostname_sysctl", "sys_net", "sys_kernel", "masked_dir", "chmod_mask"]
                 + ["chmod_dev_" + name for name in HOST_DEVICES]
                 + ["read" + path for path in MASKED_FILES] + ["open_w" + path for path in READONLY_TARGETS]),
    "host_ids_systempaths": (USERNS_HOST + ("--security-opt", "systempaths=unconfined"),
                             ["hostname_sysctl", "masked_dir"] + ["read" + path for path in MASKED_FILES]
                             + ["open_w" + path for path in READONLY_TARGETS]),
    "init": (("--init",), ["exe_scan", "procs", "pid1_environ", "pid1_mem"]),
    "host_ids_init": (USERNS_HOST + ("--init",), ["exe_scan", "pid1_environ", "pid1_mem"]),
    "host_ptrace_init": (USERNS_HOST + ("--init", "--cap-add", "SYS_PTRACE"), ["exe_scan", "pid1_environ", "pid1_mem"]),
    # setuid and file capabilities, run as the non-root user `app` (in the range probe-suid's
    # owner belongs to: FIXED_RANGE)
    "app": (FIXED_RANGE + ("-u", "app"), ["suid", "suid_host", "fcap"]),
    "app_nnp_off": (FIXED_RANGE + ("-u", "app", "--security-opt", "no-new-privileges=false"),
                    ["suid", "suid_host", "fcap"]),
    "app_net_raw": (FIXED_RANGE + ("-u", "app", "--cap-add", "NET_RAW"), ["suid", "fcap"]),
    "app_net_raw_nnp_off": (FIXED_RANGE + ("-u", "app", "--cap-add", "NET_RAW",
                                           "--security-opt", "no-new-privileges=false"), ["suid", "fcap"]),
    "app_host_ids_nnp_off": (("-u", "app", "--security-opt", "no-new-privileges=false") + USERNS_HOST,
                             ["suid_host"]),
}


class Battery:
    """Runs each scenario's container once and keeps its outcomes. `plans`: an empty
    directory for hardrun's plan cache (runtime/plan_cache.py). Cold: each start resolves
    its plan (and stores it); warm: each start runs from the plan an earlier start of the
    same scenario stored, so the battery judges both ways of starting."""

    def __init__(self, rootfs: Path, plans: Path, warm: bool):
        self.rootfs = str(rootfs)
        self.plans, self.warm = plans, warm
        self._results: dict[str, dict[str, Outcome]] = {}

    def __call__(self, scenario: str) -> dict[str, Outcome]:
        if scenario not in self._results:
            flags, labels = SCENARIOS[scenario]
            specs = [f"{label}={ATTACKS[label]}" for label in labels]
            argv = ("run", "--rootfs", self.rootfs, *flags, "--", "/bin/probe", *specs)
            plans = self.plans / scenario
            plans.mkdir()
            # the same environment for both starts (the plan's key holds it)
            env = {"HARDRUN_PLAN_CACHE": str(plans), "PYTEST_CURRENT_TEST": scenario}
            if self.warm:
                assert run_hardrun(*argv, env=env).returncode == 0, scenario
            stored = _plan_entries(plans)
            done = run_hardrun(*argv, env=env)
            assert done.returncode == 0, (scenario, done.stderr)
            # a plan is stored for every scenario but those sharing the host's user namespace
            assert len(_plan_entries(plans)) == (0 if USERNS_HOST in zip(flags, flags[1:]) else 1), scenario
            if self.warm:
                assert _plan_entries(plans) == stored, "the warm start did not run from the stored plan"
            self._results[scenario] = parse_outcomes(done.stdout)
            assert set(self._results[scenario]) == set(labels), (scenario, done.stdout, done.stderr)
        return self._results[scenario]


def _plan_entries(directory: Path) -> set:
    """(name, inode) of each stored plan: a start that used an entry leaves it as it was."""
    return {(path.name, path.stat().st_ino) for path in directory.glob("*.plan")}


@pytest.fixture(scope="module", params=["cold", "warm"])
def battery(request, battery_rootfs, tmp_path_factory) -> Battery:
    return Battery(battery_rootfs, tmp_path_factory.mktemp(f"battery-plans-{request.param}"),
                   warm=request.param == "warm")


def on_host(probe: Path, *specs: str, **kwargs) -> dict[str, Outcome]:
    """The probe run directly on the host as real root: the control where no hardrun
    flag can switch a protection off."""
    done = subprocess.run([str(probe), *specs], capture_output=True, text=True, timeout=60, **kwargs)
    assert done.returncode == 0, done.stderr
    return parse_outcomes(done.stdout)


def status_mask(outcome: Outcome, key: str) -> int:
    return int(outcome[key], 16)


# -- capabilities ----------------------------------------------------------------------------

def test_capset_cannot_raise_a_capability(battery):
    """capset(2) may only raise what the permitted set holds, and hardrun leaves it
    empty. Control: with --cap-add ALL, shedding CAP_SYS_ADMIN from the effective set
    and raising it again works."""
    assert_blocked(battery("default")["capset"], "EPERM")
    assert_ok(battery("cap_all")["capset"])


def test_ambient_raise_fails(battery):
    """PR_CAP_AMBIENT_RAISE needs the capability in permitted and inheritable.
    Control: with --cap-add ALL the same sequence raises CAP_SYS_ADMIN ambient."""
    assert_blocked(battery("default")["ambient"], "EPERM")
    assert_ok(battery("cap_all")["ambient"])


def test_setuid_root_binary_gives_nothing_with_no_new_privs(battery):
    """A setuid-root binary owned by the container's root: with no_new_privs its
    caller stays uid 1000. Control: no-new-privileges=false makes it euid 0; the
    empty bounding set still keeps every capability away, and with NET_RAW in the
    bounding set container root regains it at exec, which no_new_privs prevents."""
    for scenario in ("app", "app_net_raw"):
        gained = battery(scenario)["suid"]
        assert gained["euid"] == "1000" and status_mask(gained, "prm") == 0, gained
    control = battery("app_nnp_off")["suid"]
    assert control["euid"] == "0", control
    assert status_mask(control, "prm") == 0 and status_mask(control, "bnd") == 0, control
    regained = battery("app_net_raw_nnp_off")["suid"]
    assert regained["euid"] == "0" and status_mask(regained, "prm") == CAP_NET_RAW, regained


def test_setuid_binary_owned_by_host_root_gives_nothing_in_the_user_namespace(battery):
    """A setuid binary owned by the HOST's root (as a bind mount could bring in): its
    owner is not mapped in the user namespace, so the kernel ignores the bit even with
    no_new_privs off. Control: under --userns host the same exec gives euid 0, real root."""
    assert battery("app")["suid_host"]["euid"] == "1000"
    assert battery("app_nnp_off")["suid_host"]["euid"] == "1000"
    assert battery("app_host_ids_nnp_off")["suid_host"]["euid"] == "0"


def test_file_capabilities_give_nothing(battery):
    """exec of a file carrying cap_net_raw+p after shedding every capability: nothing is
    gained with no_new_privs (even with NET_RAW in the bounding set) nor with the empty
    bounding set. Control: with NET_RAW bounded and no_new_privs off, exec regains it."""
    for scenario in ("app", "app_nnp_off", "app_net_raw"):
        outcome = battery(scenario)["fcap"]
        assert outcome["euid"] == "1000" and status_mask(outcome, "prm") == 0, (scenario, outcome)
    control = battery("app_net_raw_nnp_off")["fcap"]
    assert status_mask(control, "prm") == CAP_NET_RAW, control


# -- filesystem --------------------------------------------------------------------------------

def test_root_filesystem_is_read_only(battery, battery_rootfs):
    """Creating a file in a world-writable directory of the image. Control: --read-write."""
    assert_blocked(battery("default")["write_root"], "EROFS")
    assert_ok(battery("read_write")["write_root"])
    assert not [name for name in os.listdir(battery_rootfs / "scratch") if name.startswith(".probe-")]


def test_mount_remount_and_umount_are_refused(battery):
    """Mounting a tmpfs, remounting / read-write, unmounting the mask over
    /proc/interrupts, mounting a fresh procfs without the masks: all need CAP_SYS_ADMIN
    (and the seccomp profile refuses mount and umount2 without it). Control:
    --cap-add SYS_ADMIN makes all four work (the unmounted mask and the fresh procfs
    then reveal the real file: with SYS_ADMIN the masks are no protection, as in Docker)."""
    default = battery("default")
    for label in ("mount_tmpfs", "remount_rw"):
        assert_blocked(default[label], "EPERM")
    assert_blocked(default["umount_mask"], "EPERM", step="umount")
    assert_blocked(default["mount_proc"], "EPERM", step="mount")
    control = battery("sys_admin")
    assert_ok(control["mount_tmpfs"])
    assert_ok(control["remount_rw"])
    for label in ("umount_mask", "mount_proc"):
        assert_ok(control[label])
        assert int(control[label]["bytes"]) > 0, control[label]


def test_new_user_namespaces_are_refused(battery):
    """unshare(CLONE_NEWUSER), clone(CLONE_NEWUSER) (the argument filter) and clone3
    (answered ENOSYS so libcs fall back to clone): a new user namespace would hand the
    process a full capability set. Control: seccomp=unconfined lets all three through."""
    default = battery("default")
    assert_blocked(default["unshare_user"], "EPERM")
    assert_blocked(default["clone_user"], "EPERM")
    assert_blocked(default["clone3_user"], "ENOSYS")
    control = battery("unconfined")
    for label in ("unshare_user", "clone_user", "clone3_user"):
        assert_ok(control[label])


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the i386 and x32 ABIs exist only on x86-64")
def test_other_syscall_abis_do_not_bypass_the_filter(battery):
    """unshare(CLONE_NEWUSER) through the i386 ABI (int 0x80, another syscall table a
    native-only filter would miss) and through the x32 ABI (numbers with bit 30 set).
    Control: with seccomp=unconfined the i386 call goes through; the x32 one reaches the
    kernel, which answers ENOSYS when built without x32, never the filter's EPERM."""
    default = battery("default")
    assert_blocked(default["abi_i386"], "EPERM")
    assert_blocked(default["abi_x32"], "EPERM")
    control = battery("unconfined")
    assert_ok(control["abi_i386"])
    assert control["abi_x32"].status == "OK" or control["abi_x32"]["errno"] == "ENOSYS", control["abi_x32"]


def test_new_mount_namespace_is_refused(battery):
    """unshare(CLONE_NEWNS) needs CAP_SYS_ADMIN. Control: --cap-add SYS_ADMIN."""
    assert_blocked(battery("default")["unshare_mnt"], "EPERM")
    assert_ok(battery("sys_admin")["unshare_mnt"])


def test_host_namespaces_are_unreachable(battery, probe):
    """setns into the host's mount namespace: no /proc/<pid>/ns/mnt in the container
    is the host's (its PID namespace shows only its own processes), and even its own
    cannot be re-entered. With SYS_ADMIN and SYS_CHROOT added setns itself works, yet
    the host's namespace is still nowhere to be found. Control (no hardrun flag shares the PID
    namespace): the same probe on the host finds it and lands on the host's root."""
    default = battery("default")["setns"]
    assert default["host_ns"] == "unreachable" and default["own_setns"] == "EPERM", default
    with_caps = battery("setns_caps")["setns"]
    assert with_caps["host_ns"] == "unreachable" and with_caps["own_setns"] == "OK", with_caps
    control = on_host(probe, "setns=" + ATTACKS["setns"])["setns"]
    assert_ok(control)
    assert control["host_root"] == "yes"


def test_hostname_change_stays_in_the_container(battery):
    """sethostname needs CAP_SYS_ADMIN in the container's UTS namespace. Control: with
    --cap-add SYS_ADMIN it works, and the host's hostname is untouched (private UTS)."""
    before = socket.gethostname()
    assert_blocked(battery("default")["sethostname"], "EPERM")
    assert_ok(battery("sys_admin")["sethostname"])
    assert socket.gethostname() == before != "probe-was-here"


# -- kernel interfaces -------------------------------------------------------------------------

def test_kernel_keyring_is_out_of_reach(battery):
    """add_key and keyctl (the kernel keyring is not namespaced). Control: seccomp=unconfined."""
    for label in ("add_key", "keyctl"):
        assert_blocked(battery("default")[label], "EPERM")
        assert_ok(battery("unconfined")[label])


@pytest.mark.parametrize("label", ["io_uring", "userfaultfd"])
def test_io_uring_and_userfaultfd_are_refused(battery, label):
    """io_uring_setup and userfaultfd (UFFD_USER_MODE_ONLY), both frequent kernel exploit
    primitives, refused by the seccomp profile. Control: seccomp=unconfined."""
    assert_blocked(battery("default")[label], "EPERM")
    assert_ok(battery("unconfined")[label])


def test_bpf_is_refused(battery):
    """bpf(BPF_MAP_CREATE) needs CAP_BPF, which counts only in the initial user
    namespace: refused by default and still refused with --cap-add BPF inside the user
    namespace. Control: with --userns host and --cap-add BPF the map is created."""
    assert_blocked(battery("default")["bpf"], "EPERM")
    assert_blocked(battery("userns_caps")["bpf"], "EPERM")
    assert_ok(battery("host_caps")["bpf"])


def test_perf_event_open_is_refused(battery):
    """perf_event_open (a self-monitoring software counter): refused by the seccomp
    profile unless CAP_PERFMON is granted. Control: --userns host with --cap-add
    PERFMON opens it whatever kernel.perf_event_paranoid says. (With PERFMON added
    inside the user namespace the filter admits the call, and the kernel then applies
    perf_event_paranoid, as it does for any unprivileged process.)"""
    assert_blocked(battery("default")["perf"], "EPERM")
    assert_ok(battery("host_caps")["perf"])


def test_kernel_log_is_unreadable(battery):
    """syslog(2) READ_ALL (the kernel log: addresses, other processes' traces): refused,
    also with --cap-add SYSLOG inside the user namespace (it counts only in the initial
    one). Control: --userns host --cap-add SYSLOG reads it."""
    assert_blocked(battery("default")["syslog"], "EPERM")
    assert_blocked(battery("userns_caps")["syslog"], "EPERM")
    assert_ok(battery("host_caps")["syslog"])


@pytest.mark.parametrize("label", ["init_module", "finit_module"])
def test_kernel_modules_cannot_be_loaded(battery, label):
    """init_module/finit_module with an image that is no module. Refused with EPERM by
    default. Control: with --userns host and CAP_SYS_MODULE the call passes every
    permission check and reaches the loader, which answers with the kernel's own errno
    (ENOEXEC for the bad image, or ENOSYS on a kernel built without modules); nothing can
    ever be loaded."""
    assert_blocked(battery("default")[label], "EPERM")
    control = battery("host_caps")[label]
    assert control.status == "BLOCKED" and control["errno"] in ("ENOEXEC", "ENOSYS", "EKEYREJECTED"), control


@pytest.mark.parametrize("label", ["raw_packet", "raw_inet"])
def test_raw_sockets_need_net_raw(battery, label):
    """AF_PACKET and AF_INET SOCK_RAW sockets (spoofing, sniffing). Control: --cap-add NET_RAW."""
    assert_blocked(battery("default")[label], "EPERM")
    assert_ok(battery("net_raw")[label])


def test_every_argument_filter_of_the_profile_refuses_its_call(battery):
    """Each argument-filtered refusal of the built-in profile, tried from inside: ioctl
    TIOCSTI and TIOCLINUX (on /dev/null), socket AF_ALG and AF_VSOCK, personality outside
    Docker's allowed values; also with bit 32 set, which the kernel ignores. Refused with
    EPERM. Control: seccomp=unconfined lets every call reach the kernel, which answers
    something else (ENOTTY, EAFNOSUPPORT, or success). clone's namespace flags are in
    test_new_user_namespaces_are_refused and test_seccomp.py."""
    default, control = battery("default"), battery("unconfined")
    for label in FILTERED_CALLS:
        assert_blocked(default[label], "EPERM")
        assert control[label].status == "OK" or control[label]["errno"] != "EPERM", control[label]
    for value in ALLOWED_PERSONALITIES:
        assert_ok(default[f"personality_{value:#x}"])


def test_the_argument_filter_list_covers_the_built_in_profile():
    """The list above must grow with the profile: every argument-filtered rule of the
    built-in profile (a refusal on an argument value, or an allowlist of values behind
    a refusal) names a syscall and value tried here or in the clone tests."""
    import json
    from hardrun.runtime.seccomp import DEFAULT_PROFILE_PATH
    profile = json.loads(Path(DEFAULT_PROFILE_PATH).read_text())
    tried = {(name, value) for name, value, _ in FILTERED_CALLS.values()}
    tried |= {("personality", value) for value in ALLOWED_PERSONALITIES} | {("clone", 0x7E020000)}
    filtered = [rule for rule in profile["syscalls"] if rule.get("args")]
    assert filtered
    for rule in filtered:
        for name in rule["names"]:
            for arg in rule["args"]:
                value = arg["valueTwo"] if arg["op"] == "SCMP_CMP_MASKED_EQ" and arg.get("valueTwo") else arg["value"]
                assert (name, value) in tried, (name, hex(value), "an argument filter no test tries")


def test_masked_directories_cannot_be_written(battery):
    """Writing into Docker's masked directories (/proc/acpi, /sys/firmware… where the
    kernel has them): their mode 0 refuses by default (EACCES); with DAC_OVERRIDE, which
    passes the mode, their read-only tmpfs still refuses (EROFS). Control: the same
    write with DAC_OVERRIDE into a read-write tmpfs of mode 0 succeeds."""
    assert MASKED_DIRS, "this kernel has none of Docker's masked directories"
    for path in MASKED_DIRS:
        assert_blocked(battery("default")["write_mask" + path], "EACCES")
        assert_blocked(battery("dac_override")["write_mask" + path], "EROFS")
    assert_ok(battery("dac_override_tmpfs")["write_mode0_tmpfs"])


# -- /proc and /sys ----------------------------------------------------------------------------

def test_masked_proc_files_read_empty(battery):
    """Docker's masked /proc files read as empty files (a /dev/null bind); a masked
    directory cannot be listed. --userns host alone does not lift the masks. Control:
    --userns host plus systempaths=unconfined shows the real contents."""
    assert "/proc/timer_list" in MASKED_FILES and "/proc/interrupts" in MASKED_FILES
    for scenario in ("default", "host_ids"):
        outcomes = battery(scenario)
        for path in MASKED_FILES:
            outcome = outcomes["read" + path]
            assert outcome.status == "OK" and outcome["bytes"] == "0", (scenario, outcome)
        assert_blocked(outcomes["masked_dir"], "EACCES", step="opendir")
    control = battery("host_ids_systempaths")
    for path in MASKED_FILES:
        with open(path, "rb") as handle:
            has_content = bool(handle.read(1))   # as host root
        if has_content:
            assert int(control["read" + path]["bytes"]) > 0, control["read" + path]
    assert_ok(control["masked_dir"])


def test_proc_sys_and_sysrq_trigger_are_not_writable(battery):
    """Writing kernel.hostname and opening core_pattern (the classic pipe-to-host
    escape), drop_caches and /proc/sysrq-trigger (where the kernel has it) for writing.
    By default container root does not own them (EACCES); under --userns host the
    read-only bind still refuses (EROFS). Control: --userns host with
    systempaths=unconfined opens every one (nothing is written but the hostname, which
    belongs to the container's private UTS namespace)."""
    before = socket.gethostname()
    default, host_ids = battery("default"), battery("host_ids")
    assert_blocked(default["hostname_sysctl"], "EACCES", step="open")
    assert_blocked(host_ids["hostname_sysctl"], "EROFS", step="open")
    for path in READONLY_TARGETS:
        assert_blocked(default["open_w" + path], "EACCES")
        assert_blocked(host_ids["open_w" + path], "EROFS")
    control = battery("host_ids_systempaths")
    assert_ok(control["hostname_sysctl"])
    for path in READONLY_TARGETS:
        assert_ok(control["open_w" + path])
    assert socket.gethostname() == before


def test_sys_is_read_only(battery, probe, tmp_path):
    """/sys/class/net/lo/mtu belongs to the container's own network namespace (so to
    its root): only the read-only sysfs mount stands in the way (EROFS, also under
    --userns host). Control (no hardrun flag mounts /sys read-write): a bare
    `unshare --net --mount` with a fresh read-write sysfs lets the same probe open it."""
    for scenario in ("default", "host_ids"):
        assert_blocked(battery(scenario)["sys_net"], "EROFS")
        assert_blocked(battery(scenario)["sys_kernel"], "EROFS")
    sysfs = tmp_path / "sys"
    sysfs.mkdir()
    done = subprocess.run(["unshare", "--net", "--mount", "sh", "-c",
                           f"mount -t sysfs sysfs {sysfs} && {probe} sys_net=open_w:{sysfs}/class/net/lo/mtu dev=ls:/"],
                          # the host's / may hold names that are not UTF-8
                          capture_output=True, text=True, errors="replace", timeout=60)
    assert done.returncode == 0, done.stderr
    assert_ok(parse_outcomes(done.stdout)["sys_net"])


def test_cgroup_release_agent_cve_2022_0492(battery):
    """CVE-2022-0492: mount a cgroup v1 hierarchy and write its release_agent (the
    value it already holds). By default the mount is refused; with --cap-add SYS_ADMIN
    the mount works but container root may not open the host-owned file. Control:
    --userns host with SYS_ADMIN (real root's capability) writes release_agent."""
    assert RELEASE_AGENT_CONTROLLERS, "no cgroup v1 hierarchy is rooted at the tests' cgroup"
    assert_blocked(battery("default")["release_agent"], "EPERM", step="mount")
    with_sys_admin = battery("sys_admin")["release_agent"]
    assert_blocked(with_sys_admin, "EACCES", step="open")
    assert_ok(battery("host_sys_admin")["release_agent"])


# -- devices -----------------------------------------------------------------------------------

def test_mknod_of_a_block_device(battery, probe, tmp_path):
    """mknod of the host's root disk: refused without CAP_MKNOD, and still refused with
    it inside the user namespace (device nodes need the capability in the initial one).
    With --userns host and MKNOD the node is made, but /tmp is nodev so it cannot be
    opened. Control: real root on the host makes the node."""
    assert_blocked(battery("default")["mknod_blk"], "EPERM", step="mknod")
    assert_blocked(battery("userns_caps")["mknod_blk"], "EPERM", step="mknod")
    host_ids = battery("host_caps")["mknod_blk"]
    assert_ok(host_ids)
    assert host_ids["open"] == "EACCES", host_ids
    control = on_host(probe, f"mknod_blk=mknod:{tmp_path}/disk:{HOST.root_disk}")["mknod_blk"]
    assert_ok(control)


def test_device_nodes_outside_dev_cannot_be_used(battery_rootfs, probe):
    """hardrun has no device cgroup: a device node anywhere in the root (an image's, or
    one in the host's tree seen through the default read-only view of /, such as a
    devtmpfs mounted into a chroot) must not be usable. A world-usable node (mode 0666,
    so no permission check stands in the way) in the image and under /var/tmp cannot be
    opened (the root is nodev), also under --userns host. Control: the probe on the host
    opens and writes it."""
    require_namespaces()
    work = Path(f"/var/tmp/hardrun-battery-dev-{os.getpid()}")
    work.mkdir(mode=0o755)
    image_node = battery_rootfs / "scratch" / f"null-node-{os.getpid()}"
    try:
        shutil.copy2(probe, work / "probe")
        for node in (work / "null-node", image_node):
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            os.chmod(node, 0o666)
        attack = f"host_node=write:{work}/null-node=x"
        for flags in ((), USERNS_HOST):
            view = parse_outcomes(run_hardrun("run", *flags, "--", str(work / "probe"), attack, "fds").stdout)
            assert_blocked(view["host_node"], "EACCES", step="open")
            image = parse_outcomes(run_hardrun("run", "--rootfs", str(battery_rootfs), *flags, "--", "/bin/probe",
                                               f"image_node=write:/scratch/{image_node.name}=x", "fds").stdout)
            assert_blocked(image["image_node"], "EACCES", step="open")
        assert_ok(on_host(probe, attack)["host_node"])
        assert_ok(on_host(probe, f"image_node=write:{image_node}=x")["image_node"])
    finally:
        shutil.rmtree(work)
        image_node.unlink(missing_ok=True)


def test_dev_has_no_host_devices(battery):
    """/dev holds only the harmless nodes and links hardrun puts there. Control: the
    host's /dev has the disk and the kernel log."""
    allowed = {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "fd", "stdin", "stdout",
               "stderr", "ptmx"}
    entries = set(battery("default")["dev"]["entries"].split(","))
    assert entries <= allowed, entries - allowed
    host = set(os.listdir("/dev"))
    assert "kmsg" in host and host - allowed


def test_host_device_inodes_cannot_be_changed(battery, battery_rootfs, tmp_path):
    """/dev/null, /dev/tty… in the container are bind mounts of the host's own device
    inodes (as are the masks over /proc files). Under --userns host container root is
    their owner and needs no capability to chmod them: `chmod 000 /dev/null` would
    break the whole host. The binds are read-only (EROFS); reading and writing the
    devices still work. Control: the same chmod on a host file bound read-write under
    --userns host succeeds (and, like the probe's, changes nothing but its ctime)."""
    for scenario in ("default", "host_ids"):
        outcomes = battery(scenario)
        for name in HOST_DEVICES:
            assert_blocked(outcomes["chmod_dev_" + name], "EROFS")
        assert_blocked(outcomes["chmod_mask"], "EROFS")
    host_file = tmp_path / "file"
    host_file.write_text("")
    done = run_hardrun("run", "--rootfs", str(battery_rootfs), "--userns", "host", "-v", f"{host_file}:/data/file",
                       "--", "/bin/probe", "chmod_bound=chmod:/data/file", "null=write:/dev/null=x")
    outcomes = parse_outcomes(done.stdout)
    assert_ok(outcomes["chmod_bound"])
    assert_ok(outcomes["null"])


# -- executing what the container wrote -------------------------------------------------------

def test_nothing_the_container_writes_can_be_executed(battery, probe):
    """An executable written at run time never runs: a memfd (through execveat and through
    /proc/self/fd/N; chmod +x refused by the exec seal; MFD_EXEC refused) because hardrun
    sets vm.memfd_noexec=2 in the container's pid namespace, and a file or O_TMPFILE in
    /tmp, /run or /dev/shm because they are noexec (/dev is read-only). Controls: the
    probe on the host (vm.memfd_noexec=0) runs the memfds; --tmpfs DIR:exec runs the files."""
    outcomes = battery("default")
    for label in ("memfd", "memfd_procfd"):
        assert_blocked(outcomes[label], "EACCES", step="exec")
        assert outcomes[label]["chmod"] == "EPERM", outcomes[label]
    assert_blocked(outcomes["memfd_exec_flag"], "EACCES", step="create")
    for directory in WRITABLE_DIRS:
        assert_blocked(outcomes["file" + directory], "EACCES", step="exec")
        assert_blocked(outcomes["tmpfile" + directory], "EACCES", step="exec")
    assert_blocked(outcomes["file/dev"], "EROFS", step="create")
    for outcome in battery("tmpfs_exec").values():
        assert_ok(outcome)
    with open("/proc/sys/vm/memfd_noexec") as handle:
        assert int(handle.read()) < 2, "the control needs a host where vm.memfd_noexec is below 2"
    for label, outcome in on_host(probe, *(f"{label}={ATTACKS[label]}" for label in MEMFD_ATTACKS)).items():
        assert_ok(outcome)
        assert outcome["ran"] == ATTACKS[label].split(":")[1]


def test_memfds_stay_unexecutable_in_the_hosts_pid_namespace(battery_rootfs, probe, tmp_path):
    """A container sharing the host's pid namespace (run config `namespaces: {pid: host}`)
    keeps the host's vm.memfd_noexec (below 2 here), so hardrun loads its memfd filter:
    memfd_create without MFD_NOEXEC_SEAL is ENOSYS, a sealed memfd cannot be executed.
    Controls: the probe on the host runs the memfd; in a pid namespace of the test's own
    where root set vm.memfd_noexec=2, hardrun's filter is not loaded (only the profile's)
    and the kernel refuses the exec."""
    with open("/proc/sys/vm/memfd_noexec") as handle:
        assert int(handle.read()) < 2, "the test needs a host where vm.memfd_noexec is below 2"
    config = tmp_path / "pid-host.yaml"
    config.write_text("apiVersion: hardrun/v1\nkind: Run\nnamespaces: {pid: host}\n")
    specs = ["memfd=write_exec:memfd", "sealed=write_exec:memfd_sealed"]
    command = ["run", "--rootfs", str(battery_rootfs), "--config", str(config), "--", "sh", "-c",
               'grep Seccomp_filters /proc/self/status; exec /bin/probe "$@"', "sh", *specs]
    done = run_hardrun(*command)
    assert done.returncode == 0 and "Seccomp_filters:\t2\n" in done.stdout, done.stdout + done.stderr
    outcomes = parse_outcomes(done.stdout)
    assert_blocked(outcomes["memfd"], "ENOSYS", step="create")
    assert_blocked(outcomes["sealed"], "EACCES", step="exec")
    assert_ok(on_host(probe, specs[0])["memfd"])
    script = 'echo 2 > /proc/sys/vm/memfd_noexec && exec "$@"'
    set_by_root = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script, "sh",
                                  sys.executable, "-m", "hardrun", *command], env=hardrun_env(),
                                 capture_output=True, text=True, timeout=60)
    assert "Seccomp_filters:\t1\n" in set_by_root.stdout, set_by_root.stdout + set_by_root.stderr
    assert_blocked(parse_outcomes(set_by_root.stdout)["memfd"], "EACCES", step="exec")


def test_secret_memory_cannot_be_executed_anywhere(battery, probe):
    """memfd_secret is allowed by the profile; the kernel never executes its files, in
    the container as on the host (so no protection of hardrun's is involved)."""
    assert_blocked(battery("default")["memfd_secret"], "EACCES", step="exec")
    assert_blocked(on_host(probe, "memfd_secret=" + ATTACKS["memfd_secret"])["memfd_secret"], "EACCES", step="exec")


# -- per-user kernel objects -------------------------------------------------------------------

def _host_can_open_inotify() -> bool:
    import ctypes
    fd = ctypes.CDLL(None, use_errno=True).inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        assert ctypes.get_errno() == 24, os.strerror(ctypes.get_errno())  # EMFILE: the quota
        return False
    os.close(fd)
    return True


def _hold_inotify_instances(rootfs: Path, *flags: str) -> tuple[Outcome, bool]:
    """A container opens all the inotify instances it can and holds them while the host
    (this test, as root) tries to open one."""
    # -i: the probe holds them until its stdin (this pipe) ends; without it at once
    proc = popen_hardrun("run", "-i", "--rootfs", str(rootfs), *flags, "--", "/bin/probe", "inotify=inotify_hold",
                         stdin=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        host_can_open = _host_can_open_inotify()
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    outcomes = parse_outcomes(line)
    assert "inotify" in outcomes, (line, proc.stderr.read())
    return outcomes["inotify"], host_can_open


def test_a_container_cannot_use_up_host_roots_inotify_instances(battery_rootfs):
    """Everything a user namespace uses is charged to its creator too (root, for every
    container): hardrun gives the container's own user namespace 1/8 of each user.max_*
    limit, so a default container (even with a pids and memory limit) stops (EMFILE) at
    no more than 1/8 of max_inotify_instances and the host's root can still open one while
    it holds them. Control: with --userns host nothing limits the container below host
    root's quota: it takes every instance left, more than 1/8, and the host's root cannot
    open one. (Instances root already holds only shrink what is left.)"""
    from hardrun.runtime.userns import USER_LIMIT_SHARE
    with open("/proc/sys/user/max_inotify_instances") as handle:
        share = int(handle.read()) // USER_LIMIT_SHARE
    control, host_can_open = _hold_inotify_instances(battery_rootfs, *USERNS_HOST)
    assert control["errno"] == "EMFILE" and not host_can_open, control
    assert int(control["count"]) > share, ("root already holds so many inotify instances that fewer than "
                                           f"1/{USER_LIMIT_SHARE} of the limit are left for the control", control)
    outcome, host_can_open = _hold_inotify_instances(battery_rootfs, "--pids-limit", "10", "--memory", "64m")
    assert int(outcome["count"]) <= share and outcome["errno"] == "EMFILE", outcome
    assert host_can_open


# -- processes ---------------------------------------------------------------------------------

def test_only_the_containers_processes_are_visible(battery_rootfs, probe):
    """The PID namespace: /proc lists the probe (PID 1) and its attacking child only, while
    a process the test started runs on the host. Control: the probe on the host lists it."""
    host_process = subprocess.Popen(["sleep", "60"])
    try:
        done = run_hardrun("run", "--rootfs", str(battery_rootfs), "--", "/bin/probe", "procs")
        pids = [int(pid) for pid in parse_outcomes(done.stdout)["procs"]["pids"].split(",")]
        assert pids[0] == 1 and len(pids) == 2, pids
        control = [int(pid) for pid in on_host(probe, "procs")["procs"]["pids"].split(",")]
        assert host_process.pid in control, control
    finally:
        host_process.kill()
        host_process.wait()


def test_ptrace(battery_rootfs, probe):
    """PTRACE_SEIZE of the container's PID 1 is refused without SYS_PTRACE (control:
    --cap-add SYS_PTRACE attaches). A host process cannot be reached at all: its pid
    does not exist in the container's PID namespace, even with SYS_PTRACE. Control: the
    same probe on the host attaches to it."""
    target = subprocess.Popen(["sleep", "60"])
    try:
        specs = ["ptrace_pid1=ptrace:1", f"ptrace_host=ptrace:{target.pid}"]
        default = parse_outcomes(run_hardrun("run", "--rootfs", str(battery_rootfs), "--",
                                             "/bin/probe", *specs).stdout)
        assert_blocked(default["ptrace_pid1"], "EPERM")
        assert_blocked(default["ptrace_host"], "EPERM")
        with_cap = parse_outcomes(run_hardrun("run", "--rootfs", str(battery_rootfs), "--cap-add", "SYS_PTRACE",
                                              "--", "/bin/probe", *specs).stdout)
        assert_ok(with_cap["ptrace_pid1"])
        assert_blocked(with_cap["ptrace_host"], "ESRCH")
        assert_ok(on_host(probe, specs[1])["ptrace_host"])
    finally:
        target.kill()
        target.wait()


def test_image_symlink_cannot_lead_a_mount_over_proc(battery_rootfs, tmp_path):
    """A malicious image plants `/data -> /proc`; the user's innocent `-v SRC:/data`
    would then replace the container's procfs (runc's CVE-2019-16884 and
    CVE-2019-19921 used such mounts to disable protections living in /proc). hardrun
    refuses after resolving the destination, before anything runs. Control: a symlink to
    a directory elsewhere in the image is followed and the bind lands there."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "marker").write_text("from the host")
    links = {"data-proc": "/proc", "data-home": "/home"}
    for name, target in links.items():
        (battery_rootfs / name).symlink_to(target)
    try:
        done = run_hardrun("run", "--rootfs", str(battery_rootfs), "-v", f"{source}:/data-proc", "--",
                           "/bin/probe", "procs", "fds")
        assert done.returncode == 125 and done.stdout == "", (done.stdout, done.stderr)
        assert "mounting over /proc is refused" in done.stderr
        control = run_hardrun("run", "--rootfs", str(battery_rootfs), "-v", f"{source}:/data-home", "--",
                              "/bin/probe", "home=ls:/home", "fds")
        assert parse_outcomes(control.stdout)["home"]["entries"] == "marker", control.stderr
    finally:
        for name in links:
            (battery_rootfs / name).unlink()


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_image_etc_files_cannot_hang_or_touch_the_host(battery_rootfs, kind):
    """hardrun reads the image's /etc/group on the host, as the caller, to resolve -u.
    A malicious image makes it a FIFO (a naive reader blocks for ever) or a device node
    (a naive reader opens and reads the host's device, e.g. the caller's terminal).
    hardrun refuses at once: not a regular file, exit 125. Control: `cat` as the naive
    reader blocks on the FIFO, and reads the host's device through the node."""
    group = battery_rootfs / "etc" / "group"
    saved = group.read_bytes()
    group.unlink()
    try:
        if kind == "fifo":
            os.mkfifo(group)
        else:
            os.mknod(group, 0o644 | stat.S_IFCHR, os.makedev(1, 5))   # the host's /dev/zero
        done = run_hardrun("run", "--rootfs", str(battery_rootfs), "-u", "app", "--", "/bin/probe", "fds", "procs",
                           timeout=20)
        assert done.returncode == 125 and done.stdout == "", (done.stdout, done.stderr)
        assert "/etc/group is not a regular file" in done.stderr
        naive = subprocess.run(["timeout", "2", "head", "-c", "16", str(group)], capture_output=True)
        if kind == "fifo":
            assert naive.returncode == 124   # blocked until killed
        else:
            assert naive.returncode == 0 and naive.stdout == b"\0" * 16
    finally:
        group.unlink()
        group.write_bytes(saved)


# -- chroot and file handles ---------------------------------------------------------------------

def test_chroot_escape(battery, battery_rootfs):
    """The classic chroot break-out (chroot into a subdirectory, fchdir to a directory
    fd kept outside, walk up, chroot "."). Refused without SYS_CHROOT; with
    --cap-add SYS_CHROOT it runs but ends at the container's root (pivot_root leaves
    nothing above it). Control: in a plain chroot(8) of the same root on the host, the
    same probe lands on the host's root."""
    assert_blocked(battery("default")["chroot_escape"], "EPERM", step="chroot")
    contained = battery("sys_chroot")["chroot_escape"]
    assert contained.status == "BLOCKED" and contained["root"] == "container", contained
    done = subprocess.run(["chroot", str(battery_rootfs), "/bin/probe", "chroot_escape=" + ATTACKS["chroot_escape"],
                           "procs"], capture_output=True, text=True, timeout=60)
    control = parse_outcomes(done.stdout)["chroot_escape"]
    assert_ok(control)
    assert control["root"] == "host"


def _file_handle(path: Path) -> str:
    """name_to_handle_at(PATH) as the probe's TYPE:HEX."""
    import ctypes
    buffer = ctypes.create_string_buffer(8 + 128)
    struct.pack_into("<I", buffer, 0, 128)
    mount_id = ctypes.c_int()
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.name_to_handle_at(-100, bytes(path), buffer, ctypes.byref(mount_id), 0) == 0, \
        os.strerror(ctypes.get_errno())
    size, handle_type = struct.unpack_from("<Ii", buffer)
    return f"{handle_type}:{buffer.raw[8:8 + size].hex()}"


@pytest.fixture
def handle_filesystem(battery_rootfs, tmp_path):
    """A tmpfs the test mounts, holding a copy of the battery's root and, outside that
    root, a directory the container must not reach: yields (root, outside)."""
    mountpoint = tmp_path / "fs"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "hardrun-battery", str(mountpoint)], check=True)
    try:
        root = mountpoint / "root"
        shutil.copytree(battery_rootfs, root, symlinks=True, ignore=shutil.ignore_patterns("probe-*", "suid-probe"))
        (mountpoint / "outside").mkdir()
        yield root, mountpoint / "outside"
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)


def test_open_by_handle_at_shocker(handle_filesystem):
    """"Shocker": open_by_handle_at with the handle of a directory outside the container's
    root, on the file system that root lives on (a tmpfs the test mounts). Refused by the
    seccomp profile, and still refused with DAC_READ_SEARCH and seccomp off (the
    capability counts only in the initial user namespace). Control: --userns host with
    DAC_READ_SEARCH and seccomp=unconfined opens the directory outside the root."""
    root, outside = handle_filesystem
    target = os.stat(outside)
    attack = f"shocker=shocker:{_file_handle(outside)}:{target.st_dev}:{target.st_ino}"
    unconfined = ("--cap-add", "DAC_READ_SEARCH", "--security-opt", "seccomp=unconfined")

    def shocker(*flags: str) -> Outcome:
        done = run_hardrun("run", "--rootfs", str(root), *flags, "--", "/bin/probe", attack)
        return parse_outcomes(done.stdout)["shocker"]

    assert_blocked(shocker(), "EPERM", step="open_by_handle_at")
    assert_blocked(shocker(*unconfined), "EPERM", step="open_by_handle_at")
    assert_ok(shocker(*USERNS_HOST, *unconfined))


# -- file descriptors and the runtime binary ---------------------------------------------------

def _probe_with_fd(rootfs: Path, fd: int, *args: str) -> subprocess.CompletedProcess:
    return run_hardrun("run", "--rootfs", str(rootfs), *args, pass_fds=(fd,), timeout=60)


def test_leaked_directory_fd_is_closed(battery_rootfs, probe, tmp_path):
    """A host directory fd inherited by hardrun (opened without O_CLOEXEC): inside,
    /proc/self/fd shows only 0, 1 and 2, and openat on the guessed fd fails. Control:
    the probe run on the host with the same inherited fd creates a file through it."""
    host_dir = tmp_path / "host"
    host_dir.mkdir(mode=0o777)
    leaked = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        done = _probe_with_fd(battery_rootfs, leaked, "--", "/bin/probe", "fds", f"fd_openat:{leaked}",
                              f"cwd_create:/proc/self/fd/{leaked}")
        inside = parse_outcomes(done.stdout)
        assert inside["fds"]["fds"] == "0,1,2", inside
        assert_blocked(inside["fd_openat"], "EBADF")
        assert_blocked(inside["cwd_create"], "ENOENT", step="chdir")
        assert not (host_dir / "probe-escaped").exists()
        control = on_host(probe, "fds", f"fd_openat:{leaked}", pass_fds=(leaked,))
        assert str(leaked) in control["fds"]["fds"].split(",")
        assert_ok(control["fd_openat"])
        assert (host_dir / "probe-escaped").exists()
    finally:
        os.close(leaked)


def test_workdir_through_a_leaked_fd_cve_2024_21626(battery_rootfs, probe, tmp_path):
    """CVE-2024-21626: `-w /proc/self/fd/N` with N a leaked host directory fd would
    start the command with its working directory outside the container. hardrun
    refuses to run it. Control: the same chdir on the host, with the fd inherited,
    lands in the host directory and creates a file there."""
    host_dir = tmp_path / "host"
    host_dir.mkdir(mode=0o777)
    leaked = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        done = _probe_with_fd(battery_rootfs, leaked, "-w", f"/proc/self/fd/{leaked}", "--",
                              "/bin/probe", "cwd_create:.", "fds")
        assert done.returncode == 125, (done.stdout, done.stderr)
        assert "outside the container's root" in done.stderr and done.stdout == ""
        assert not (host_dir / "probe-escaped").exists()
        control = on_host(probe, f"cwd_create:/proc/self/fd/{leaked}", "fds", pass_fds=(leaked,))
        assert_ok(control["cwd_create"])
        assert (host_dir / "probe-escaped").exists()
    finally:
        os.close(leaked)


EXE_WRITE = ("import os\n"
             "try:\n"
             "    os.close(os.open('/proc/self/exe', os.O_WRONLY))\n"
             "    print('exe_write OK')\n"
             "except OSError as error:\n"
             "    import errno\n"
             "    print('exe_write BLOCKED errno=' + errno.errorcode[error.errno])\n")


def test_runtime_binary_cannot_be_overwritten_cve_2019_5736():
    """CVE-2019-5736: a container whose command is /proc/self/exe makes the runtime exec
    its own binary (here the host's Python interpreter) inside the container, which then
    opens /proc/self/exe for writing. Under the user namespace the kernel refuses at the
    permission check (EACCES: container root has no rights on host root's file; the
    read-only root view does not apply, the magic link leads to the host's mount).
    Control: --userns host passes the permission check, and only the binary being busy
    (ETXTBSY) stops the write; the CVE's exploit waited for the runtime to exit."""
    require_namespaces()
    command = ["--", "/proc/self/exe", "-S", "-c", EXE_WRITE]
    default = parse_outcomes(run_hardrun("run", *command).stdout)
    assert_blocked(default["exe_write"], "EACCES")
    control = parse_outcomes(run_hardrun("run", "--userns", "host", *command).stdout)
    assert_blocked(control["exe_write"], "ETXTBSY")


def test_runtime_binary_is_not_reachable_from_the_container(battery):
    """No process in the container runs the host's runtime binary once the command has
    started, so /proc/<pid>/exe leads nowhere near it. With --init, PID 1 is hardrun's
    reaper, which does run the host's interpreter, but it is non-dumpable: its
    /proc/1/exe cannot be followed (EACCES), in the user namespace and under
    --userns host alike. Control: with real CAP_SYS_PTRACE (--userns host --cap-add
    SYS_PTRACE) the link is followed to the host's interpreter, which then only being
    busy (ETXTBSY) keeps from being opened for writing."""
    default = battery("default")["exe_scan"]
    assert default["found"] == "none" and default["unreadable"] == "0", default
    for scenario in ("init", "host_ids_init"):
        with_init = battery(scenario)["exe_scan"]
        assert with_init["found"] == "none", (scenario, with_init)
        assert with_init["unreadable"] == "1" and with_init["unreadable_errno"] == "EACCES", (scenario, with_init)
    control = battery("host_ptrace_init")["exe_scan"]
    assert control["found"] == "1" and control["errno"] == "ETXTBSY", control


def test_init_reaper_memory_and_environment_are_unreachable(battery):
    """The --init reaper is a fork of hardrun: its memory and /proc/1/environ hold the
    caller's whole environment (tokens, keys), never given to the container. Neither
    /proc/1/environ nor /proc/1/mem can be opened from the container, in the user
    namespace or under --userns host. Control: with real CAP_SYS_PTRACE (--userns host
    --cap-add SYS_PTRACE) the caller's environment is read there."""
    for scenario in ("init", "host_ids_init"):
        outcomes = battery(scenario)
        assert_blocked(outcomes["pid1_environ"], "EACCES", step="open")
        assert_blocked(outcomes["pid1_mem"], "EACCES")
    control = battery("host_ptrace_init")
    assert control["pid1_environ"]["found"] == "yes", control["pid1_environ"]
    assert_ok(control["pid1_mem"])


# -- the caller's terminal ---------------------------------------------------------------------

TERMINAL_SESSION = r"""
import os, select, subprocess, sys, tty
tty.setraw(0)
subprocess.run(sys.argv[1:])
ready, _, _ = select.select([0], [], [], 0.3)
pending = os.read(0, 100) if ready else b""
print("PENDING=" + pending.hex(), flush=True)
"""


def _in_a_terminal(argv: list[str]) -> str:
    """Run `argv` in a new session whose controlling terminal is a fresh pty (as from an
    interactive shell); return everything written to the terminal. The session reports
    what input was waiting on the terminal afterwards as PENDING=<hex>."""
    env = hardrun_env()
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execve(sys.executable, [sys.executable, "-c", TERMINAL_SESSION, *argv], env)
        finally:
            os._exit(127)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            continue
        try:
            data = os.read(master, 4096)
        except OSError:   # EIO: the session has ended
            break
        if not data:
            break
        output += data
    os.close(master)
    os.waitpid(pid, 0)
    return output.decode(errors="replace").replace("\r", "")


TIOCSTI_CALLS = ["tiocsti", "tiocsti_hi=tiocsti:hi", "tiocsti_i386=tiocsti:i386"]


def test_tiocsti_cannot_inject_into_the_callers_terminal(battery_rootfs, probe):
    """TIOCSTI pushes characters into a terminal's input, to be run by the caller's
    shell. The probe runs with the caller's terminal as stdin (the write-only one hardrun
    hands over as stdout: with -i stdin is a pipe) and tries to push "x" (first trying to
    make the terminal its controlling one): through ioctl(2), with the request's ignored
    upper 32 bits set, and through the i386 ABI. Blocked by the seccomp profile; with
    seccomp=unconfined still blocked, because hardrun's setsid leaves the container
    without a controlling terminal and the caller's cannot be taken over (the kernel's
    EPERM). Control: the probe run directly in the caller's session injects the
    character each time, and the caller then reads "xxx"."""
    hardrun = [sys.executable, "-m", "hardrun", "run", "--rootfs", str(battery_rootfs)]
    for flags in ([], ["--security-opt", "seccomp=unconfined"]):
        text = _in_a_terminal(hardrun + flags + ["--", "sh", "-c", 'exec /bin/probe "$@" <&1', "sh",
                                                 *TIOCSTI_CALLS])
        outcomes = parse_outcomes(text)
        for label in ("tiocsti", "tiocsti_hi", "tiocsti_i386"):
            assert_blocked(outcomes[label], "EPERM")
            assert outcomes[label]["ctty"] == "no", text
        assert "PENDING=\n" in text, text
    text = _in_a_terminal([str(probe), *TIOCSTI_CALLS])
    outcomes = parse_outcomes(text)
    for label in ("tiocsti", "tiocsti_hi", "tiocsti_i386"):
        assert_ok(outcomes[label])
        assert outcomes[label]["ctty"] == "yes"
    assert "PENDING=" + b"xxx".hex() + "\n" in text, text


def _with_a_spare_terminal(argv: list[str]) -> tuple[str, bytes]:
    """Run `argv` with stdin a fresh pty that is nobody's controlling terminal (so the
    container can make it its own); return its output and the input then waiting."""
    import tty
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        done = subprocess.run(argv, stdin=slave, capture_output=True, text=True, env=hardrun_env(), timeout=60)
        ready, _, _ = select.select([slave], [], [], 0.3)
        return done.stdout, os.read(slave, 100) if ready else b""
    finally:
        os.close(master)
        os.close(slave)


def test_seccomp_alone_blocks_tiocsti(battery_rootfs):
    """The seccomp layer by itself: with -t the container's own pty is its controlling
    terminal, so only the filter stands between it and TIOCSTI, in all three spellings.
    Control: seccomp=unconfined injects."""
    hardrun = [sys.executable, "-m", "hardrun", "run", "-t", "--rootfs", str(battery_rootfs)]
    for flags, injected in (([], False), (["--security-opt", "seccomp=unconfined"], True)):
        # echo off: an injected "x" would be echoed into the report
        text, _ = _with_a_spare_terminal(hardrun + flags + ["--", "sh", "-c", 'stty -echo && exec /bin/probe "$@"',
                                                            "sh", *TIOCSTI_CALLS])
        outcomes = parse_outcomes(text)
        for label in ("tiocsti", "tiocsti_hi", "tiocsti_i386"):
            assert outcomes[label]["ctty"] == "yes", text
            if injected:
                assert_ok(outcomes[label])
            else:
                assert_blocked(outcomes[label], "EPERM")


# -- unix sockets ---------------------------------------------------------------------------------

@pytest.fixture
def host_listener():
    """Listening unix sockets on the host: yields a function that makes one at an
    address (a path, or @NAME for the abstract namespace) and returns it."""
    sockets = []

    def listen(address: str) -> str:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind("\0" + address[1:] if address.startswith("@") else address)
        if not address.startswith("@"):
            os.chmod(address, 0o777)
        server.listen(8)
        sockets.append(server)
        return address

    yield listen
    for server in sockets:
        server.close()


def test_host_abstract_unix_sockets_are_unreachable(battery_rootfs, host_listener):
    """Abstract unix sockets belong to the network namespace (CVE-2020-15257 reached
    containerd-shim's through a shared one): the host's is unreachable from the
    container's own network namespace. Control: --network host connects to it."""
    address = host_listener(f"@hardrun-battery-{os.getpid()}")
    for flags, expected in (((), "ECONNREFUSED"), (("--network", "host"), None)):
        done = run_hardrun("run", "--rootfs", str(battery_rootfs), *flags, "--", "/bin/probe",
                           f"abstract=unix_connect:{address}", "fds")
        outcome = parse_outcomes(done.stdout)["abstract"]
        if expected:
            assert_blocked(outcome, expected)
        else:
            assert_ok(outcome)


@pytest.mark.xfail(strict=True, reason=(
    "without --rootfs the container sees a read-only view of the host's /, and a read-only "
    "mount does not stop connect(2): any world-writable unix socket of a host service outside "
    "/tmp, /run and /dev is reachable from the default container (network none does not cover "
    "path sockets; the Landlock domain that covers host FIFOs has no right for connect(2) on this "
    "kernel). A known limit, documented in SECURITY.md: untrusted code belongs in --rootfs"))
def test_host_path_sockets_are_unreachable_through_the_host_root_view(probe, host_listener):
    """A host service's world-writable unix socket under /var/tmp, seen through the
    default read-only view of the host's / (no --rootfs). Control: with --rootfs the
    socket is simply not there."""
    require_namespaces()
    work = Path(f"/var/tmp/hardrun-battery-{os.getpid()}")
    work.mkdir(mode=0o755, exist_ok=True)
    try:
        shutil.copy2(probe, work / "probe")
        address = host_listener(str(work / "service.sock"))
        done = run_hardrun("run", "--", str(work / "probe"), f"path_socket=unix_connect:{address}", "fds")
        assert_blocked(parse_outcomes(done.stdout)["path_socket"], "ENOENT")
    finally:
        shutil.rmtree(work)


@contextmanager
def host_fifo_service(directory: Path):
    """A host service's world-writable FIFO in `directory`, its reader listening (without
    blocking): yields (fifo, reader fd); what a writer sent is os.read(reader, …)."""
    fifo = directory / "service.fifo"
    os.mkfifo(fifo)
    os.chmod(fifo, 0o666)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        yield fifo, reader
    finally:
        os.close(reader)


@contextmanager
def host_work_dir(name: str, probe):
    """/var/tmp/NAME-PID, world-readable (the container's root reads it through the host
    view), with the probe copied in; removed afterwards."""
    work = Path(f"/var/tmp/{name}-{os.getpid()}")
    work.mkdir(mode=0o755, exist_ok=True)
    try:
        shutil.copy2(probe, work / "probe")
        yield work
    finally:
        shutil.rmtree(work)


def test_host_fifos_are_not_writable_through_the_host_root_view(probe):
    """A host service's world-writable FIFO under /var/tmp, seen through the default
    read-only view of the host's / (no --rootfs): a read-only mount does not stop writing
    a FIFO, Landlock does (EACCES; nothing reaches the host's reader). The container's
    own /tmp stays writable. Controls: --read-write (no Landlock domain then) writes
    into the host's FIFO, and so does the probe on the host."""
    require_namespaces()
    with host_work_dir("hardrun-battery", probe) as work, host_fifo_service(work) as (fifo, reader):
        attacks = (f"fifo=write:{fifo}=from-the-container", "own_tmp=write_dir:/tmp")
        done = run_hardrun("run", "--", str(work / "probe"), *attacks)
        outcomes = parse_outcomes(done.stdout)
        assert_blocked(outcomes["fifo"], "EACCES", step="open")
        assert_ok(outcomes["own_tmp"])
        assert os.read(reader, 100) == b""   # no writer ever came
        control = run_hardrun("run", "--read-write", "--", str(work / "probe"), attacks[0])
        assert_ok(parse_outcomes(control.stdout)["fifo"])
        assert os.read(reader, 100) == b"from-the-container"
        assert_ok(on_host(probe, attacks[0])["fifo"])
        assert os.read(reader, 100) == b"from-the-container"


def test_host_fifos_are_not_writable_through_read_only_binds_in_an_image(battery_rootfs, tmp_path):
    """`--rootfs R -v DIR:/x:ro`: a read-only bind does not stop writing into a host
    service's FIFO in DIR, Landlock does (EACCES; nothing reaches the reader), also in a
    read-only bind nested in a writable one. Everything else stays writable: /tmp, the
    writable bind's directories, and with --read-write the image's. Control: the same bind :rw, the
    write reaches the host's reader."""
    service, data = tmp_path / "service", tmp_path / "data"
    service.mkdir()
    for directory in (data, data / "x", data / "work"):   # the container's root cannot create them
        directory.mkdir(mode=0o777)
        os.chmod(directory, 0o777)
    attack = "fifo=write:/x/service.fifo=from-the-container"
    with host_fifo_service(service) as (_, reader):
        for binds in ((f"{service}:/x:ro",), (f"{data}:/data", f"{service}:/data/x:ro")):
            flags = [flag for bind in binds for flag in ("-v", bind)] + ["--read-write"]
            target = binds[-1].split(":")[1]
            done = run_hardrun("run", "--rootfs", str(battery_rootfs), *flags, "--", "/bin/probe",
                               attack.replace("/x/", target + "/"), "own_tmp=write_dir:/tmp",
                               "image=write_dir:/scratch", *(["bind=write_dir:/data/work"] if len(binds) > 1 else []))
            outcomes = parse_outcomes(done.stdout)
            assert_blocked(outcomes["fifo"], "EACCES", step="open")
            for label in set(outcomes) - {"fifo"}:
                assert_ok(outcomes[label])
            assert os.read(reader, 100) == b""   # no writer ever came
        control = run_hardrun("run", "--rootfs", str(battery_rootfs), "-v", f"{service}:/x:rw", "--",
                              "/bin/probe", attack)
        assert_ok(parse_outcomes(control.stdout)["fifo"])
        assert os.read(reader, 100) == b"from-the-container"


def test_a_directory_on_stdin_does_not_open_its_tree_for_writing(probe):
    """`hardrun run -i` with DIR on stdin: the container's stdin is the host directory holding a host
    service's FIFO, but only stdio that is not a directory gets a Landlock rule, so the
    FIFO stays out of reach (EACCES, nothing reaches the reader). Control: with the FIFO
    itself on stdin, its rule lets the container reopen it for writing through
    /proc/self/fd/0, and the write reaches the reader."""
    require_namespaces()
    # the interpreter refuses a directory on stdin at start-up: hardrun is called from a
    # program that puts one there afterwards, as any caller of the library may
    caller = ("import os, sys; os.dup2(os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK), 0); "
              "from hardrun.__main__ import main; main(sys.argv[2:])")
    with host_work_dir("hardrun-battery-stdin", probe) as work, host_fifo_service(work) as (fifo, reader):
        def run_with_stdin(path, attack):
            done = subprocess.run([sys.executable, "-c", caller, str(path), "run", "-i", "--",
                                   str(work / "probe"), attack], env=hardrun_env(), capture_output=True,
                                  text=True, timeout=60)
            return parse_outcomes(done.stdout).get("fifo", done.stdout + done.stderr)
        assert_blocked(run_with_stdin(work, f"fifo=write:{fifo}=through-stdin"), "EACCES", step="open")
        assert os.read(reader, 100) == b""   # no writer ever came
        assert_ok(run_with_stdin(fifo, "fifo=write:/proc/self/fd/0=through-stdin"))
        assert os.read(reader, 100) == b"through-stdin"


# -- the operator's terminal --------------------------------------------------------------------

def test_inspect_does_not_relay_escape_sequences_from_the_container(battery_rootfs):
    """The container chooses its own command line; `hardrun inspect PID` prints it to
    the operator's terminal. A command line carrying escape sequences (here: set the
    window title, clear the screen) must come out escaped. Control: the raw
    /proc/PID/cmdline really carries the ESC and BEL bytes."""
    payload = "\x1b]0;owned\x07\x1b[2J"
    proc = popen_hardrun("run", "--rootfs", str(battery_rootfs), "--", "sh", "-c", "echo ready; sleep 30; true",
                         payload)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as handle:
            pid = int(handle.read().split()[0])
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            assert payload.encode() in handle.read()
        done = run_hardrun("inspect", str(pid))
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout, repr(done.stdout)
        assert "\\x1b]0;owned\\x07" in done.stdout.splitlines()[0], done.stdout
    finally:
        proc.kill()
        proc.wait()


# -- user namespace ------------------------------------------------------------------------------

def test_container_root_is_an_unprivileged_host_uid(battery_rootfs, tmp_path):
    """Files container root creates in a writable bind mount belong to its range's first
    host uid, so a setuid binary it plants there for a host user to run grants that uid,
    not root. Control: under --userns host the planted binary is a setuid-root file on the
    host (removed at once), which is why --userns host is an opt-out."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    try:
        for flags, name, owner in ((FIXED_RANGE, "remapped", CONTAINER_ROOT), (USERNS_HOST, "host-ids", 0)):
            done = run_hardrun("run", "--rootfs", str(battery_rootfs), "-v", f"{shared}:/data", *flags,
                               "--", "/bin/probe", f"create:/data/{name}", f"plant_suid:/data/{name}-suid")
            outcomes = parse_outcomes(done.stdout)
            assert_ok(outcomes["create"])
            assert_ok(outcomes["plant_suid"])
            assert (shared / name).stat().st_uid == owner
            planted = (shared / f"{name}-suid").stat()
            assert planted.st_uid == owner and planted.st_mode & 0o4000, oct(planted.st_mode)
    finally:
        shutil.rmtree(shared)
