"""Fixtures of the runtime tests: root file systems containers start from."""
from __future__ import annotations

import os

import pytest

from tests.helpers import ROOT
from tests.rootfs import require_root


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A state root and cgroup parent of the test's own (HARDRUN_STATE_DIR,
    HARDRUN_CGROUP_PARENT): no container, cgroup or state may be left behind."""
    from tests.limits_support import remove_test_cgroup_parent, require_root, unique
    require_root()
    values = {"HARDRUN_STATE_DIR": str(tmp_path / "state"),
              "HARDRUN_CGROUP_PARENT": unique("hardrun-test-")}
    for name, value in values.items():
        monkeypatch.setenv(name, value)      # for the checks made from this process
    yield values
    assert remove_test_cgroup_parent() == [], "container cgroups left behind"
    leftovers = list((tmp_path / "state").glob("[!.]*"))
    assert [p.name for p in leftovers if p.name != "net"] == []


@pytest.fixture(scope="module")
def rootfs(busybox_rootfs):
    require_root()
    return str(busybox_rootfs)


@pytest.fixture(scope="module")
def public_rootfs():
    """A rootfs an unprivileged user can reach (pytest's own temporary tree is root-only)."""
    import shutil
    import tempfile
    from pathlib import Path
    from tests.rootfs import build_rootfs
    base = Path(tempfile.mkdtemp(prefix="hardrun-public-rootfs-"))
    os.chmod(base, 0o755)
    home = base / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    # the checkout may sit where nobody cannot read it (a clone under /root): run a copy,
    # with pyseccomp (pure Python over the system's libseccomp) to compile the built-in profile
    source = base / "src"
    for part in ("hardrun", "rules", "policies"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    import pyseccomp
    shutil.copy2(pyseccomp.__file__, source / "pyseccomp.py")
    rootfs = build_rootfs(base / "rootfs")
    from tests.rootfs import compile_static
    from tests.escape.test_escape_battery import PROBE_SOURCE
    compile_static(PROBE_SOURCE.read_text(), rootfs / "bin" / "probe")
    yield rootfs, home, source
    shutil.rmtree(base)
