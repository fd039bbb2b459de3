"""Helpers for the limits and network tests: paused payloads, isolated state roots."""
from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path


def require_root() -> None:
    # these tests need root and kernel features: they fail, never skip, without them
    assert os.geteuid() == 0, "limits/network tests need root (CI runs them as root)"


class Paused:
    """A forked process that waits until released, then execs `argv` (like the runtime's
    child waiting on its sync pipe), so limits apply before the payload's first instruction."""

    def __init__(self, argv: list[str], before_exec=None):
        read_end, self._release = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:           # child
            try:
                os.close(self._release)
                os.read(read_end, 1)
                if before_exec:
                    before_exec()
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        os.close(read_end)
        self.status: int | None = None

    def release(self) -> None:
        os.write(self._release, b"x")
        os.close(self._release)

    def wait(self, timeout: float = 30.0) -> int:
        """Exit status as a shell reports it (128+N when killed by signal N)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                if self.status < 0:
                    self.status = 128 - self.status
                return self.status
            time.sleep(0.01)
        self.kill()
        raise AssertionError(f"payload {self.pid} still running after {timeout} s")

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.02):
    """Poll `predicate` until it returns something true; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s: {predicate}")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def isolate_state(monkeypatch, tmp_path: Path) -> Path:
    """A private state root and cgroup parent, so tests never touch real containers."""
    root = tmp_path / "state"
    monkeypatch.setenv("HARDRUN_STATE_DIR", str(root))
    monkeypatch.setenv("HARDRUN_CGROUP_PARENT", unique("hardrun-test-"))
    return root
