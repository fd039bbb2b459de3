import pytest

from tests.helpers import run_hardrun


@pytest.fixture
def hardrun():
    return run_hardrun


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory):
    """A busybox root filesystem (see tests/rootfs.py); fails without root, never skips."""
    from tests.rootfs import build_rootfs
    return build_rootfs(tmp_path_factory.mktemp("busybox-rootfs"))


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """hardrun's cache directory under an $XDG_CACHE_HOME of the test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "hardrun"
