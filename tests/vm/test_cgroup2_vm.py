"""hardrun on a pure cgroup v2 host: a virtual machine booted with `cgroup_no_v1=all`
(tests/vm/machine.py) runs the checks of tests/vm/inside.py from inside containers, one
boot per machine for the whole module (the two machines boot side by side), and each check
is one test here:

- every controller on v2, and hardrun's layout detection sees only v2;
- `hardrun run --device` PERMS enforced by the BPF device program (r only, w only, m only;
  the control: the same node with rw opens both ways), the program attached to the
  container's own cgroup, runc's default nodes open under it;
- limits written and read from inside (memory.max, pids.max, cpu.max), a fork bomb stopped
  by pids.max (the control: a higher limit refuses no fork), a memory hog killed (the
  control: a higher limit lets it finish);
- a hardrun-oci bundle with `linux.resources.devices` and limits: the cgroup made, limited
  and holding a device program while it runs, gone after delete; `blockIO` throttles and
  weight written to io.max and io.weight, a leaf weight (which v2 lacks) refused;
- a machine booted with `cgroup_disable=memory,pids`: `--memory` and `--pids-limit` refused
  (exit 125, naming the flag) rather than run unlimited; the control: `--limits best-effort`
  runs with a warning for each; the default pids limit alone is a warning, as documented;
  device rules still enforced.

It fails, never skips, when the machine cannot boot.
"""
from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import ROOT
from tests.vm import inside, machine

MACHINES = {"full": "", "reduced": "cgroup_disable=memory,pids"}
CHECK_LINE = re.compile(r"^CHECK (\S+) (ok|FAIL)(?: (.*))?$", re.M)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Each machine's check lines, booting it the first time it is asked for."""
    booted: dict[str, dict | AssertionError] = {}

    def boot(name: str) -> dict | AssertionError:
        try:
            log = machine.boot(f"cd {ROOT} && exec {sys.executable} tests/vm/inside.py {name}\n",
                               tmp_path_factory.mktemp(f"vm-{name}"), ROOT, command_line=MACHINES[name])
        except AssertionError as error:     # one failed boot, not one per check
            return error
        found: dict = {line[0]: (line[1], line[2]) for line in CHECK_LINE.findall(log)}
        found["log"] = (log, "")
        return found

    def of(name: str) -> dict:
        if not booted:
            # both machines at once: each spends most of its time in one emulated CPU
            with ThreadPoolExecutor(len(MACHINES)) as pool:
                booted.update(zip(MACHINES, pool.map(boot, MACHINES)))
        outcome = booted[name]
        if isinstance(outcome, AssertionError):
            raise outcome
        return outcome
    return of


@pytest.mark.parametrize("name,check", [(name, function.__name__)
                                        for name in MACHINES for function in inside.CHECKS[name]])
def test_inside_the_cgroup2_machine(results, name, check):
    found = results(name)
    assert check in found, f"the {name} machine printed no result for {check}; its output: {found['log'][0][-3000:]}"
    outcome, detail = found[check]
    assert outcome == "ok", detail
