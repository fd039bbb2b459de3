"""Garbage collection of dead containers' resources (`hardrun gc`, start of `hardrun run`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import state as state_module


@dataclass
class Report:
    removed: list = field(default_factory=list)
    problems: list = field(default_factory=list)


def collect(orphans: bool = True) -> Report:
    """Undo every container whose owner is dead; optionally also orphaned cgroups."""
    report = Report()
    for container in state_module.stale_containers():
        with container.locked(blocking=False) as acquired:
            if not acquired or not container.path.exists():
                continue
            problems = state_module.undo(container)
            if problems:
                report.problems += [f"{container.id}: {problem}" for problem in problems]
            else:
                report.removed.append(f"container {container.id}")
    state_module.reap_stale()           # staging directories of interrupted starts
    if orphans:
        _collect_orphaned_cgroups(report)
    return report


def _collect_orphaned_cgroups(report: Report) -> None:
    from . import cgroups
    known = {container.id for container in state_module.container_states()}
    known |= {path.name[len(".new-"):] for path in _staging_dirs()}
    for path in cgroups.orphaned_cgroups(known_ids=known):
        problems = cgroups.remove_cgroups([path])
        if problems:
            report.problems += problems
        else:
            report.removed.append(f"cgroup {path}")


def _staging_dirs() -> list[Path]:
    root = state_module.state_root()
    try:
        return [path for path in root.iterdir() if path.name.startswith(".new-")]
    except FileNotFoundError:
        return []
