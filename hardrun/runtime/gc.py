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
    known = {container.id for container in state_module.container_states()}
    known |= {name[len(".new-"):] for name in _staging_names()}
    for path in cgroups.orphaned_cgroups(known_ids=known):
        problems = cgroups.remove_cgroups([path])
        if problems:
            report.problems += problems
        else:
            report.removed.append(f"cgroup {path}")


def _staging_names() -> list[str]:
    try:
        return [name for name in os.listdir(state_module.state_root()) if name.startswith(".new-")]
    except FileNotFoundError:
        return []
