"""The cgroup warm-up of `hardrun run` changes timing only: it moves nothing anywhere,
targets the process's own cgroup, and is gone before clone (which copies one thread)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from .conftest import ROOT
from .limits_support import require_root

pytestmark = pytest.mark.runtime

# A fresh interpreter: pytest's own threads must not blur the thread counts.
PROBE = textwrap.dedent("""
    import json, os
    from hardrun.runtime import cgroup_warmup as w
    before = open("/proc/self/cgroup").read()
    target = w._own_tasks_file()
    members = open(target).read().split()
    w.start()
    during = w._thread_count()
    w.stop()
    print(json.dumps({"before": before, "after": open("/proc/self/cgroup").read(),
                      "target": target, "pid_in_target": str(os.getpid()) in members,
                      "during": during, "after_stop": w._thread_count(),
                      "stopped": w._stop is None}))
""")


def probe() -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_warmup_targets_own_cgroup_and_moves_nothing():
    require_root()
    result = probe()
    assert result["target"].endswith("/tasks")
    assert result["pid_in_target"], f"{result['target']} is not this process's cgroup"
    assert result["after"] == result["before"]


def test_warmup_thread_is_gone_after_stop():
    require_root()
    result = probe()
    assert result["during"] == 2, "the warm-up thread did not start"
    assert result["after_stop"] == 1
    assert result["stopped"]


def test_no_warmup_without_root(monkeypatch):
    from hardrun.runtime import cgroup_warmup
    monkeypatch.setattr(cgroup_warmup.os, "geteuid", lambda: 1000)
    cgroup_warmup.start()
    assert cgroup_warmup._stop is None
