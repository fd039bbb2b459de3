"""Garbage collection of dead containers' resources (`hardrun gc`, start of `hardrun run`)."""
from __future__ import annotations

import os

from . import state as state_module


class Report:
    def __init__(self):
        self.removed: list[str] = []
        self.problems: list[str] = []


def collect(orphans: bool = True) -> Report:
    """Undo every container whose owner is dead; optionally also orphaned cgroups."""
    report = Report()
    undone, report.problems = state_module.reap_stale()
    report.removed += [f"container {container_id}" for container_id in undone]
    if orphans:
        _collect_orphaned_cgroups(report)
    return report


def _collect_orphaned_cgroups(report: Report) -> None:
    from . import cgroups
    for path in cgroups.orphaned_cgroups(known_ids=_known_ids()):
        if cgroups.cgroup_pids(path):
            # a killed hardrun's container dies with it (parent-death signal): processes
            # here belong to something else, which gc does not judge
            report.problems.append(f"cgroup {path} has no state but running processes: left alone")
            continue
        problems = cgroups.remove_cgroups([path])
        if problems:
            report.problems += problems
        else:
            report.removed.append(f"cgroup {path}")


def _known_ids() -> set:
    """Every name in the state root, readable or not: only a cgroup no entry accounts
    for is an orphan (a container being created has its entry before its cgroup)."""
    try:
        names = os.listdir(state_module.state_root())
    except FileNotFoundError:
        return set()
    return {name[len(".new-"):] if name.startswith(".new-") else name for name in names}
