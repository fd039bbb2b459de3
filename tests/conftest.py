import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def run_hardrun(*args, input=None, env=None, cwd=None, timeout=120):
    """Run the `hardrun` command as a user would (a fresh interpreter) and capture it."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "hardrun", *args], input=input, env=full_env,
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def hardrun():
    return run_hardrun


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory):
    """A busybox root filesystem (see tests/rootfs.py); fails without root, never skips."""
    from tests.rootfs import build_rootfs
    return build_rootfs(tmp_path_factory.mktemp("busybox-rootfs"))
