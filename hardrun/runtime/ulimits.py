"""`--ulimit NAME=SOFT[:HARD]` with Docker's names, applied by the parent.

The parent sets the limits on the paused child with prlimit(2) before releasing it:
no work (and no imports) in the child, and a failure is reported by the parent before
the payload exists. Limits are inherited across execve, so the payload starts with them.
"""
from __future__ import annotations

import resource

from ..errors import UsageError

# Docker's names (`docker run --ulimit`).
# Linux resource numbers (asm-generic/resource.h); Python's module lacks a few names.
RLIMITS = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
    "nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12,
    "nice": 13, "rtprio": 14, "rttime": 15,
}


def _value(number: int) -> int:
    return resource.RLIM_INFINITY if number < 0 else number


def validate(ulimits) -> None:
    for ulimit in ulimits:
        if ulimit.name not in RLIMITS:
            raise UsageError(f"--ulimit: unknown limit {ulimit.name!r}",
                             hint=f"one of {', '.join(sorted(RLIMITS))}")
        soft, hard = _value(ulimit.soft), _value(ulimit.hard)
        if hard != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft > hard):
            raise UsageError(f"--ulimit {ulimit.name}: soft limit {ulimit.soft} is above the "
                             f"hard limit {ulimit.hard}")


def apply(pid: int, ulimits) -> None:
    """Set each ulimit on process `pid` (the paused child); raise on the first failure."""
    from .cgroups import LimitError
    validate(ulimits)
    for ulimit in ulimits:
        limits = (_value(ulimit.soft), _value(ulimit.hard))
        try:
            resource.prlimit(pid, RLIMITS[ulimit.name], limits)
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise LimitError(f"--ulimit {ulimit.name}={ulimit.soft}:{ulimit.hard} cannot be "
                             f"applied: {reason}", hint=_hint(ulimit.name)) from None


def _hint(name: str) -> str:
    """What to do when the limit `name` cannot be set."""
    if name == "nofile":
        return "nofile cannot exceed /proc/sys/fs/nr_open; raising a hard limit needs root"
    hard = resource.getrlimit(RLIMITS[name])[1]
    own = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    return f"raising the hard {name} limit above hardrun's own ({own}) needs CAP_SYS_RESOURCE (root)"
