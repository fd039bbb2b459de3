"""A busybox root filesystem for runtime tests (Debian's busybox-static).

Layout: /bin with every applet as a symlink to busybox, /etc/passwd and /etc/group
with root, a non-root user `app` (1000:1000, also in group `extra` 2000), empty
mount points, a world-writable /scratch (to tell "read-only" from "permission
denied"), and /bin/suid-probe: a static setuid binary owned by the container's root
under the fixed range FIXED_RANGE (host uid 100000) that prints its effective uid. A
container gets its own range by default, so tests that need these owners pass FIXED_RANGE.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = "/bin/busybox"
CONTAINER_ROOT = 100000   # host uid of container uid 0 under FIXED_RANGE
FIXED_RANGE = ("--userns-remap", f"{CONTAINER_ROOT}:65536")   # the range the files here are owned for

SUID_PROBE = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("euid=%d\n", (int) geteuid()); return 0; }
"""


def require_root() -> None:
    """Runtime tests need root and kernel features: fail (never skip) without them."""
    assert os.geteuid() == 0, "the runtime tests need root (user namespaces, mounts, cgroups)"
    assert os.path.exists(BUSYBOX), "install busybox-static (scripts/setup.sh) for the runtime tests"
    assert shutil.which("gcc"), "install gcc (scripts/setup.sh) for the runtime tests"


def build_rootfs(root: Path) -> Path:
    require_root()
    for name in ("bin", "etc", "proc", "sys", "dev", "tmp", "run", "home/app", "root", "scratch", "data"):
        (root / name).mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    os.chmod(root / "scratch", 0o1777)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "app:x:1000:1000:app:/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    os.chown(root / "home" / "app", CONTAINER_ROOT + 1000, CONTAINER_ROOT + 1000)
    compile_static(SUID_PROBE, root / "bin" / "suid-probe")
    os.chown(root / "bin" / "suid-probe", CONTAINER_ROOT, CONTAINER_ROOT)
    os.chmod(root / "bin" / "suid-probe", 0o4755)
    return root


def compile_static(source: str, output: Path) -> None:
    c_file = output.with_suffix(".c")
    c_file.write_text(source)
    subprocess.run(["gcc", "-static", "-O1", "-o", str(output), str(c_file)], check=True,
                   capture_output=True)
    c_file.unlink()
