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
    root = state_module.trusted_root()        # checked once, then passed down
    if root is not None:
        undone, report.problems = reap_stale(root)
        report.removed += [f"container {container_id}" for container_id in undone]
        _remove_unreadable_entries(report, root)
        from .userns import reclaim_id_ranges
        report.removed += reclaim_id_ranges(root)    # the id ranges of killed hardrun processes
        from .oci_explain import prune_kept
        report.removed += prune_kept(root)           # hardrun-oci --explain's records of deleted containers
    if orphans:
        _collect_orphaned_cgroups(report, root)
    return report


def _remove_unreadable_entries(report: Report, root: state_module.TrustedRoot,
                               age: float = 60.0) -> None:
    """State entries without a readable record (a start killed between mkdir and write, or
    a format this hardrun does not read) once they are older than `age` seconds; their
    cgroups then count as orphans."""
    import time
    for path, record in state_module.container_entries(root):
        if record is not None:
            continue
        try:
            if time.time() - os.lstat(path).st_mtime < age:
                continue
        except FileNotFoundError:
            continue
        state_module.remove_tree(path)
        report.removed.append(f"unreadable state {path}")


def _collect_orphaned_cgroups(report: Report, root: state_module.TrustedRoot | None) -> None:
    from . import cgroups
    for path in cgroups.orphaned_cgroups(known_ids=_known_ids(root)):
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


def _known_ids(root: state_module.TrustedRoot | None) -> set:
    """Every name in the state root, readable or not: only a cgroup no entry accounts
    for is an orphan (a container being created has its entry before its cgroup)."""
    names = state_module.entry_names(root) if root else []
    return {name.rpartition(".")[2] if name.startswith(".new-") else name for name in names}


def undo(state: state_module.ContainerState) -> list[str]:
    """Remove everything `state` records; return the problems met (empty: all gone)."""
    problems: list[str] = []
    if state.has_any(state_module.NETWORK_KINDS):
        from . import network
        problems += network.undo(state)
    if state.resources("cgroup"):
        from . import cgroups
        problems += cgroups.undo(state)
    if not problems:
        state.remove()
    return problems


def reap_stale(root: str | None = None) -> tuple[list[str], list[str]]:
    """Undo the containers of dead hardrun processes: (ids undone, problems as lines)."""
    root = state_module.trusted_root(root)
    if root is None:
        return [], []
    undone: list[str] = []
    problems: list[str] = []
    for state in state_module.stale_containers(root):
        fd = state.try_lock()
        if fd is None:
            continue
        try:
            if not os.path.exists(state.path):     # undone by another reaper meanwhile
                continue
            found = undo(state)
            problems += [f"{state.id}: {problem}" for problem in found]
            if not found:
                undone.append(state.id)
        finally:
            os.close(fd)
    _remove_abandoned_staging(root)
    return undone, problems


def _remove_abandoned_staging(root: state_module.TrustedRoot) -> None:
    """`.new-PID.START.ID` directories of a hardrun killed inside `ContainerState.create`."""
    for name in state_module.entry_names(root):
        if not name.startswith(".new-"):
            continue
        pid, _, rest = name[len(".new-"):].partition(".")
        start, _, _ = rest.partition(".")
        try:
            alive = state_module.process_alive(int(pid), None if start == "None" else int(start))
        except ValueError:
            alive = False
        if not alive:
            state_module.remove_tree(os.path.join(root, name))
