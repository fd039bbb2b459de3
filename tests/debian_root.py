"""A real Debian minbase root for the image tests: `debootstrap --variant=minbase
bookworm`, built once and cached outside the checkout in a directory keyed by
debootstrap's version (a new debootstrap builds a new root), so that only the first run
on a machine pays for it (about 35 s from deb.debian.org).

It fails, never skips, when it cannot be built: debootstrap missing (scripts/setup.sh
--test installs it) or the mirror unreachable. Builders in parallel wait on a lock; a
half-built root is never used (it is renamed into place only when complete).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("HARDRUN_TEST_CACHE", "/var/cache/hardrun-tests"))
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
BUILD_TIMEOUT = 900


def debootstrap_version() -> str:
    result = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "debootstrap"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and shutil.which("debootstrap", path="/usr/sbin:/usr/bin"), \
        "debootstrap is not installed: run scripts/setup.sh --test"
    return result.stdout.strip()


def minbase_root() -> Path:
    """The cached root directory, built first if needed."""
    name = f"debian-{SUITE}-minbase-debootstrap-{debootstrap_version()}"
    final = CACHE / name
    if (final / "complete").exists():
        return final / "root"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / "complete").exists():
            _build(CACHE / f"{name}.building", final)
    return final / "root"


def _build(work: Path, final: Path) -> None:
    _remove(work)      # a build a crash left behind
    work.mkdir()
    try:
        result = subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(work / "root"), MIRROR],
                                capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        result = None
    if result is None or result.returncode != 0:
        _remove(work)
        tail = "timed out" if result is None else (result.stdout + result.stderr)[-2000:]
        raise AssertionError(f"debootstrap --variant=minbase {SUITE} {MIRROR} failed: {tail}")
    (work / "complete").write_text(f"debootstrap --variant=minbase {SUITE} {MIRROR}\n")
    _remove(final)
    work.rename(final)


def _mounts_below(path: Path) -> list:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return sorted((point for point in points if point.startswith(prefix)), reverse=True)


def _remove(path: Path) -> None:
    """Delete a (partial) root, never through a mount a failed debootstrap left in it
    (it may bind-mount the host's /dev)."""
    if not path.exists():
        return
    for point in _mounts_below(path):
        subprocess.run(["umount", "-l", point], check=False)
    assert not _mounts_below(path), f"{path} still has mounts below it: not removed"
    shutil.rmtree(path)
