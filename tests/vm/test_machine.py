"""The VM helper's own parts that need no machine: the module load order read from the
modules' `depends=` fields, and a missing qemu failing (never skipping) with what to install."""
from __future__ import annotations

import pytest

from tests.vm import machine


def _module(tree, name: str, depends: str) -> None:
    # a module's .modinfo section holds NUL-separated key=value strings
    (tree / f"{name}.ko").write_bytes(b"\x7fELF\x00license=GPL\x00depends=" + depends.encode() + b"\x00vermagic=x\x00")


def test_modules_load_after_what_they_depend_on(tmp_path):
    _module(tmp_path, "9p", "9pnet,netfs")
    _module(tmp_path, "9pnet", "")
    _module(tmp_path, "netfs", "")
    _module(tmp_path, "9pnet_virtio", "virtio,9pnet")
    _module(tmp_path, "virtio", "virtio_ring")
    _module(tmp_path, "virtio_ring", "")
    order = machine.load_order(tmp_path, ("9pnet_virtio", "9p"))
    assert order == ["virtio_ring", "virtio", "9pnet", "9pnet_virtio", "netfs", "9p"]


def test_a_module_the_kernel_lacks_is_named(tmp_path):
    _module(tmp_path, "9p", "9pnet")
    with pytest.raises(AssertionError, match="module 9pnet not in"):
        machine.load_order(tmp_path, ("9p",))


def test_without_qemu_the_tests_fail_saying_what_to_install(monkeypatch):
    monkeypatch.setattr(machine, "QEMU", "/nonexistent/qemu-system-x86_64")
    with pytest.raises(AssertionError, match="qemu-system-x86"):
        machine.require_machine()
