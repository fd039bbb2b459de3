"""A small virtual machine on a pure cgroup v2 hierarchy, for the tests of tests/vm/.

The machine boots Debian 12's own kernel (linux-image-amd64, fetched with `apt-get download`
and unpacked with `dpkg-deb -x` into the per-machine test cache: the host's /boot and
initramfs hooks are never touched) with `cgroup_no_v1=all`, so every controller is on the
v2 hierarchy. Its initramfs, built here from busybox-static and the kernel's virtio and 9p
modules, mounts the host's root read-only over 9p, puts tmpfs where writes are needed
(/run, /tmp, /var/cache/hardrun, /var/lib/hardrun), mounts cgroup2 on /sys/fs/cgroup and
runs a shell script of the test's own, switched into the host's root, with a second,
writable 9p share for its output and a third, read-only, of the checkout under test at its
own path (a clone under /tmp would be hidden by the tmpfs). The machine then powers off.

The machine is emulated by qemu's TCG (multi-threaded), not run under KVM: on a host that
is itself a virtual machine, as CI's is, nested KVM is far slower (measured here: a KVM guest
took 40 s of its own clock to reach the kernel's memory set-up, and several minutes to get
nowhere near user space; the same kernel under TCG runs its init after 2.4 s, and the whole
boot, checks and power-off of tests/vm/ take about 45 s). TCG needs no /dev/kvm.

The kernel and the initramfs are cached per kernel package version (and per init script),
so only the first run on a machine downloads (about 70 MB). Everything fails, never skips,
when it cannot run: qemu-system-x86 missing (scripts/setup.sh --test installs it), the
mirror unreachable on the first run, a machine that does not power off.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.debian_root import CACHE

QEMU = "/usr/bin/qemu-system-x86_64"
BUSYBOX = "/bin/busybox"
KERNEL_PACKAGE = "linux-image-amd64"
# virtio over PCI, then 9p over virtio: the modules the initramfs loads, with what they need;
# fuse for /dev/fuse, a node anyone may open that none of runc's default device rules allows;
# brd for RAM disks (/dev/ram0...), block devices to open
WANTED_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "fuse", "brd")
OUTPUT_TAG, HOST_TAG, PROJECT_TAG = "out", "host", "project"
BOOT_TIMEOUT = 240

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /host
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in $(cat /modules/order); do insmod /modules/$module.ko || echo "vm: insmod $module failed"; done
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=524288,cache=loose host /host || poweroff -f
# writable places of the host's read-only root
for place in /run /var/cache/hardrun /var/lib/hardrun /tmp; do
    [ -d /host$place ] && mount -t tmpfs -o mode=0755 tmpfs /host$place
done
chmod 1777 /host/tmp
mkdir -p /host/run/vm-out
mount -t 9p -o trans=virtio,version=9p2000.L out /host/run/vm-out || poweroff -f
# the project under test, at its own path (a checkout under /tmp or /run is hidden by the tmpfs)
project=$(cat /host/run/vm-out/project)
mkdir -p /host$project
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=524288,cache=loose project /host$project || poweroff -f
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /host/dev/pts
mount -t tmpfs tmpfs /host/dev/shm
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
# switch_root, not chroot: the kernel refuses a new user namespace to a chrooted process
exec switch_root /host /bin/busybox sh -c \
    'sh /run/vm-out/run.sh >/run/vm-out/log 2>&1; echo $? >/run/vm-out/status; sync; /bin/busybox poweroff -f'
"""


def require_machine() -> None:
    assert os.geteuid() == 0, "the VM tests need root"
    assert os.path.exists(QEMU), f"{QEMU} missing: run scripts/setup.sh --test (qemu-system-x86)"
    assert os.path.exists(BUSYBOX), "busybox-static missing: run scripts/setup.sh --test"


def _run(argv: list[str], **kwargs) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
    return done.stdout


def kernel_package() -> tuple[str, str]:
    """The kernel package linux-image-amd64 depends on, and its candidate version."""
    depends = _run(["apt-cache", "depends", KERNEL_PACKAGE])
    match = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)", depends)
    if match is None:     # the package lists were never fetched (a fresh machine)
        _run(["apt-get", "update", "-qq"], timeout=300)
        depends = _run(["apt-cache", "depends", KERNEL_PACKAGE])
        match = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)", depends)
    assert match, f"apt-cache depends {KERNEL_PACKAGE} names no kernel: {depends}"
    policy = _run(["apt-cache", "policy", match.group(1)])
    version = re.search(r"Candidate: (\S+)", policy)
    assert version and version.group(1) != "(none)", f"no candidate for {match.group(1)}: {policy}"
    return match.group(1), version.group(1)


def boot_files() -> tuple[Path, Path]:
    """(vmlinuz, initramfs), from the cache or built into it first."""
    require_machine()
    package, version = kernel_package()
    # a new init script or module list builds a new initramfs
    recipe = hashlib.sha256(f"{INIT}{WANTED_MODULES}".encode()).hexdigest()[:12]
    name = f"vm-{package}-{version}-{recipe}"
    final = CACHE / name
    if not (final / "complete").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with open(CACHE / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (final / "complete").exists():
                _build(package, CACHE / f"{name}.building", final)
    return final / "vmlinuz", final / "initramfs.gz"


def _build(package: str, work: Path, final: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        _run(["apt-get", "download", package], cwd=work, timeout=600)
        deb, = work.glob("*.deb")
        _run(["dpkg-deb", "-x", str(deb), str(work / "unpacked")])
        release, = (work / "unpacked" / "lib" / "modules").iterdir()
        vmlinuz, = (work / "unpacked" / "boot").glob("vmlinuz-*")
        shutil.copy2(vmlinuz, work / "vmlinuz")
        _write_initramfs(release, work / "initramfs.gz")
        shutil.rmtree(work / "unpacked")
        deb.unlink()
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    (work / "complete").write_text(f"{package} {release.name}\n")
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)


def _module_files(release: Path) -> dict[str, Path]:
    return {path.name.split(".ko")[0].replace("-", "_"): path for path in release.rglob("*.ko")}


def _depends(path: Path) -> list[str]:
    match = re.search(rb"\x00depends=([^\x00]*)\x00", b"\x00" + path.read_bytes())
    return [name.replace("-", "_") for name in match.group(1).decode().split(",") if name] if match else []


def load_order(release: Path, wanted=WANTED_MODULES) -> list[str]:
    """The modules `wanted` need, each after those it depends on (what modprobe would load)."""
    files, order = _module_files(release), []

    def visit(name: str) -> None:
        assert name in files, f"module {name} not in {release}: this kernel builds it in, or lacks it"
        if name not in order:
            for dependency in _depends(files[name]):
                visit(dependency)
            order.append(name)
    for name in wanted:
        visit(name)
    return order


def _write_initramfs(release: Path, output: Path) -> None:
    files = _module_files(release)
    with tempfile.TemporaryDirectory() as temporary:
        tree = Path(temporary)
        (tree / "bin").mkdir()
        (tree / "modules").mkdir()
        shutil.copy2(BUSYBOX, tree / "bin" / "busybox")
        (tree / "bin" / "sh").symlink_to("busybox")
        order = load_order(release)
        for name in order:
            shutil.copy2(files[name], tree / "modules" / f"{name}.ko")
        (tree / "modules" / "order").write_text("\n".join(order) + "\n")
        (tree / "init").write_text(INIT)
        os.chmod(tree / "init", 0o755)
        names = sorted(str(path.relative_to(tree)) for path in tree.rglob("*"))
        archive = _run_bytes([BUSYBOX, "cpio", "-o", "-H", "newc"], "\n".join(names).encode() + b"\n", tree)
        output.write_bytes(_run_bytes(["gzip", "-9n"], archive, tree))


def _run_bytes(argv: list[str], data: bytes, cwd: Path) -> bytes:
    done = subprocess.run(argv, input=data, capture_output=True, cwd=cwd)
    assert done.returncode == 0, f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')}"
    return done.stdout


def boot(script: str, output: Path, project: Path, *, command_line: str = "", memory: str = "1G") -> str:
    """Boot the machine, run `script` (sh, as root, in the host's root) inside it and return
    its output; `output` (a directory of the test's own) is the machine's writable share, and
    the script's /run/vm-out; `project` (the checkout under test) is shared read-only at its
    own path."""
    vmlinuz, initramfs = boot_files()
    output.mkdir(parents=True, exist_ok=True)
    (output / "run.sh").write_text(script)
    (output / "project").write_text(str(project))
    console = output / "console"
    argv = [QEMU, "-accel", "tcg,thread=multi", "-cpu", "max", "-m", memory, "-smp", "2",
            "-nographic", "-no-reboot", "-nodefaults", "-serial", f"file:{console}",
            "-kernel", str(vmlinuz), "-initrd", str(initramfs),
            "-append", f"console=ttyS0 panic=-1 quiet cgroup_no_v1=all {command_line}".strip(),
            "-fsdev", "local,id=host,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", f"virtio-9p-pci,fsdev=host,mount_tag={HOST_TAG}",
            "-fsdev", f"local,id=out,path={output},security_model=none,multidevs=remap",
            "-device", f"virtio-9p-pci,fsdev=out,mount_tag={OUTPUT_TAG}",
            "-fsdev", f"local,id=project,path={project},security_model=none,readonly=on,multidevs=remap",
            "-device", f"virtio-9p-pci,fsdev=project,mount_tag={PROJECT_TAG}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=BOOT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the VM did not power off within {BOOT_TIMEOUT} s; the script's output: "
                             f"{_tail(output / 'log')}; console: {_tail(console)}") from None
    status = output / "status"
    assert done.returncode == 0 and status.exists(), (
        f"the VM did not run the script (qemu {done.returncode}: {done.stderr.strip()}); console: {_tail(console)}")
    return (output / "log").read_text(errors="replace")


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(none)"
