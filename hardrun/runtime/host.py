"""The host-side resources of one container: state directory, cgroup, ulimits, network.

`parent.Hooks` drives one `HostResources` through three stages:

- `prepare()` before clone: clean up after dead hardrun processes (a cheap scan of the
  state root), validate the limits, create the state directory and the cgroup with its
  limits, and for a bridge network: address, bridge, hosts file (added to the child's
  mounts, read-only on /etc/hosts) and published ports. Nothing runs yet, so a failure
  here costs nothing to undo.
- `attach(pid)` after clone, before the child is released: the child joins the cgroup
  (it unshares its cgroup namespace only afterwards), gets its ulimits (prlimit) and
  its eth0 on the bridge.
- `finish(status)` after the container is gone (status None after a failed start):
  the OOM report, then every resource removed and the state directory with them.
"""
from __future__ import annotations

import sys

from . import cgroups, state as state_module, ulimits


def _warn(message: str) -> None:
    print(f"hardrun: warning: {message}", file=sys.stderr, flush=True)


class HostResources:
    def __init__(self, cfg, strict: bool = True, warn=_warn):
        self.cfg = cfg
        self.strict = strict
        self.warn = warn
        self.state = None
        self.cgroup = None
        self.endpoint = None

    def prepare(self) -> None:
        spec = self.cfg.spec
        self._reap_stale()
        limits = cgroups.Limits.from_spec(spec)
        ulimits.validate(spec.ulimits)
        bridge = self.cfg.network.startswith("bridge")
        if not bridge and (spec.ports or spec.publish_all):
            from ..errors import UsageError
            raise UsageError(f"--publish needs a bridge network, not --network {self.cfg.network}",
                             hint="add --network bridge")
        self.state = state_module.ContainerState.create(self.cfg.id)
        try:
            self.cgroup = cgroups.ContainerCgroup.create(self.cfg.id, limits, self.state,
                                                         strict=self.strict, warn=self.warn)
            if bridge:
                self._prepare_bridge(spec)
        except BaseException:
            self.finish(None)
            raise
        if "cgroup" in self.cfg.namespaces and self.cgroup.paths:
            self.cfg.cgroup_layout = self.cgroup.layout   # the child mounts its read-only view

    def _prepare_bridge(self, spec) -> None:
        from . import network
        from .mounts import MountPlan
        self.endpoint = network.prepare(spec, self.cfg.id, self.state)
        if not any(plan.target == "/etc/hosts" for plan in self.cfg.mounts):   # the user's wins
            hosts = MountPlan("bind", "/etc/hosts", source=str(self.endpoint.hosts_file),
                              read_only=True, source_is_dir=False, recursive=False)
            self.cfg.mounts = tuple(self.cfg.mounts) + (hosts,)
        for publish in self.endpoint.publishes:
            print(f"hardrun: published {publish}", file=sys.stderr, flush=True)

    def attach(self, pid: int) -> None:
        if self.cgroup is not None:
            self.cgroup.attach(pid)
        if self.cfg.spec.ulimits:
            ulimits.apply(pid, self.cfg.spec.ulimits)
        if self.endpoint is not None:
            self.endpoint.attach(pid)

    def finish(self, status: int | None) -> str | None:
        """Undo everything; return the OOM message to print, if any."""
        message = None
        if self.cgroup is not None and status is not None:
            from .process import exit_code
            message = self.cgroup.oom_report(exit_code(status))
        problems: list[str] = []
        if self.endpoint is not None or (self.state is not None
                                         and self.state.has_any(state_module.NETWORK_KINDS)):
            from . import network
            problems += network.undo(self.state)
        if self.cgroup is not None:
            problems += self.cgroup.destroy()
        if self.state is not None:
            if problems:
                for problem in problems:
                    self.warn(f"{problem} (left for `hardrun gc`)")
            else:
                self.state.remove()
        self.state = self.cgroup = self.endpoint = None
        return message

    def _reap_stale(self) -> None:
        """What killed hardrun processes left behind: cheap when there is nothing."""
        try:
            _, problems = state_module.reap_stale()
        except OSError as error:
            problems = [f"cannot clean up after dead containers: {error}"]
        for problem in problems:
            self.warn(f"{problem} (run `hardrun gc`)")
