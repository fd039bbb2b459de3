"""Where resource limits and networks plug into the runtime (hardrun.runtime.cgroups,
ulimits, network and state). The parent calls each stage exactly once:

- `prepare()`      before clone: validate, create the container's state record and
                   cgroup, join a bridge (IPAM, hosts file, published ports); add what
                   the child must mount (the hosts file, the read-only cgroup view);
- `attach(pid)`    after clone, before the child is released: move it into its cgroup
                   (the child unshares its cgroup namespace only afterwards), set its
                   ulimits, give it its veth in its network namespace;
- `finish(status)` after the container exited, also after a failed start (status
                   None): undo everything; returns a line to print (an OOM kill) or None.

Modules are imported only when their feature is in use: `network` (pyroute2) only for
bridge networks and published ports.
"""
from __future__ import annotations

import os

from .mounts import MountPlan


class Hooks:
    def __init__(self, cfg, limits_mode: str = "best-effort"):
        self.cfg = cfg
        self.limits_mode = limits_mode
        self.state = None
        self.cgroup = None
        self.endpoint = None

    def prepare(self) -> None:
        spec = self.cfg.spec
        try:
            from . import cgroups, state, ulimits
        except ImportError:  # a build without the limits modules: only refuse asked-for limits
            if _limits_requested(spec):
                from ..errors import UsageError
                raise UsageError("resource limits are not available in this build of hardrun") from None
            return
        if os.geteuid() != 0 and not _limits_requested(spec):
            # Rootless without limits asked for: the default pids limit needs a delegated
            # cgroup, which an unprivileged user normally does not have.
            return
        limits = cgroups.Limits.from_spec(spec)
        ulimits.validate(spec.ulimits)
        bridge = self.cfg.network.startswith("bridge")
        if (spec.ports or spec.publish_all) and not bridge:
            from ..errors import UsageError
            raise UsageError(f"--publish needs a bridge network, not --network {self.cfg.network}",
                             hint="add --network bridge")
        # What containers of killed hardrun processes left behind goes first (issue: cgroups
        # and links must not pile up); problems are left for `hardrun gc` to report.
        state.reap_stale()
        self.state = state.ContainerState.create(self.cfg.id)  # recorded first: a crash leaves a trace
        layout = cgroups.detect_layout()
        self.cgroup = cgroups.ContainerCgroup.create(self.cfg.id, limits, self.state, layout=layout,
                                                     strict=self.limits_mode == "strict")
        if self.cgroup.paths and "cgroup" in self.cfg.namespaces:
            self.cfg.cgroup_view = (cgroups.mount_cgroup_view, layout)
        if bridge:
            from . import network
            self.endpoint = network.prepare(spec, self.cfg.id, self.state)
            hosts = MountPlan("bind", "/etc/hosts", source=str(self.endpoint.hosts_file), read_only=True,
                              source_is_dir=False)
            self.cfg.mounts = tuple(self.cfg.mounts) + (hosts,)

    def attach(self, pid: int) -> None:
        if self.cgroup is not None:
            self.cgroup.attach(pid)
        if self.cfg.spec.ulimits:
            from . import ulimits
            ulimits.apply(pid, self.cfg.spec.ulimits)
        if self.endpoint is not None:
            self.endpoint.attach(pid)

    def finish(self, status: int | None) -> str | None:
        message = None
        try:
            if self.cgroup is not None and status is not None:
                message = self.cgroup.oom_report(status)
        finally:
            if self.endpoint is not None:
                self.endpoint.release()
            if self.cgroup is not None:
                self.cgroup.destroy()
            if self.state is not None:
                self.state.remove()
        return message


def _limits_requested(spec) -> bool:
    return any(value is not None for value in (spec.memory, spec.memory_swap, spec.pids_limit,
                                               spec.cpus, spec.cpu_shares)) or bool(spec.ulimits)
