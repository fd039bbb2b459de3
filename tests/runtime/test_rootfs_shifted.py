"""`hardrun run --rootfs DIR` where DIR was prepared for a range of hardrun's id pool (owned by
host uid 100000, as for `--userns-remap 100000:65536`): the container gets its own leased range
and an idmapped view of DIR that maps DIR's range onto it, so its root owns its root without
the flag. Control: a root owned by host root is left as it is (its files are nobody's inside)."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.helpers import run_hardrun

pytestmark = pytest.mark.runtime

PROBE = "cat /proc/self/uid_map; stat -c '%u %g' / /bin/busybox; touch /made && echo made"


def shifted_copy(source: str, target, base: int) -> None:
    shutil.copytree(source, target, symlinks=True)
    for directory, names, files in os.walk(target):
        for name in [*names, *files, "."]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            os.chown(path, info.st_uid + base, info.st_gid + base, follow_symlinks=False)
            if not os.path.islink(path):
                os.chmod(path, info.st_mode & 0o7777)     # chown cleared setuid bits


def test_a_root_prepared_for_a_pool_range_is_owned_by_the_containers_root(rootfs, env, tmp_path):
    from hardrun.runtime.userns import root_id_pool
    base = root_id_pool()[0]
    prepared = tmp_path / "prepared"
    shifted_copy(rootfs, prepared, base)
    done = run_hardrun("run", "--rootfs", str(prepared), "--read-write", "--", "sh", "-c", PROBE, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1:] == ["0 0", "0 0", "made"], done.stdout
    assert int(lines[0].split()[1]) >= base        # the container's own leased range, not host root
    made = os.lstat(prepared / "made")
    assert (made.st_uid, made.st_gid) == (base, base), "written as the range the root was prepared for"
    # control: a root owned by host root is not idmapped: inside, its files are nobody's
    plain = run_hardrun("run", "--rootfs", rootfs, "--", "sh", "-c", "stat -c '%u %g' /bin/busybox", env=env)
    assert plain.stdout.strip() == "65534 65534", plain.stdout + plain.stderr
