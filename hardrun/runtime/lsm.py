"""AppArmor and SELinux requests: what hardrun can honestly accept.

hardrun applies no AppArmor profile and no SELinux label of its own. So a request that
only loosens such confinement (`apparmor=unconfined`, `label=disable`) changes nothing
and is accepted (the policy still judges it, HR2009); a request for confinement
(`apparmor=PROFILE`, `label=type:…`, user, role, level) cannot be applied and is refused,
fail closed, saying whether the host has the LSM at all.
"""
from __future__ import annotations

import os

from ..errors import UsageError

LSM_LIST = "/sys/kernel/security/lsm"


def active_lsms(path: str = LSM_LIST) -> frozenset[str]:
    """The host's active LSMs (securityfs' list; without it, what /sys/module and
    /sys/fs/selinux show)."""
    try:
        with open(path) as handle:
            return frozenset(name for name in handle.read().strip().split(",") if name)
    except OSError:
        pass
    found = set()
    try:
        with open("/sys/module/apparmor/parameters/enabled") as handle:
            if handle.read().strip() == "Y":
                found.add("apparmor")
    except OSError:
        pass
    if os.path.isdir("/sys/fs/selinux") and os.listdir("/sys/fs/selinux"):
        found.add("selinux")
    return frozenset(found)


def check(apparmor: str | None, selinux_options: dict, line_of=lambda key: None) -> None:
    """UsageError for a confinement request hardrun cannot apply."""
    if apparmor not in (None, "unconfined"):
        raise UsageError(f"--security-opt apparmor={apparmor}: {_why('apparmor', 'AppArmor')}",
                         line=line_of("apparmor"),
                         hint="only apparmor=unconfined is accepted: hardrun loads no profile")
    if selinux_options:
        label = ",".join(f"{key}:{value}" for key, value in sorted(selinux_options.items()))
        raise UsageError(f"--security-opt label={label}: {_why('selinux', 'SELinux')}",
                         line=line_of("selinux_options"),
                         hint="only label=disable is accepted: hardrun sets no label")


def _why(name: str, title: str) -> str:
    if name in active_lsms():
        return f"hardrun cannot apply {title} confinement, so the container would run without it"
    return f"this host has no {title} (not in {LSM_LIST}), so the confinement cannot be applied"
