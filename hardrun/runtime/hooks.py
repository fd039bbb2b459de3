"""Where resource limits and networks plug into the runtime (hardrun.runtime.cgroups,
ulimits, network and state). The parent calls each stage exactly once:

- `prepare()`      before clone: clean up what killed hardrun processes left (a cheap
                   scan of the state root), validate, create the container's state record
                   and cgroup, join a bridge (IPAM, hosts file, published ports); put into
                   the launch state (config.LaunchState) the cgroup to join and what the
                   child must mount (the hosts file, the read-only cgroup view);
- `attach(pid)`    after clone, before the child is released: set its ulimits
                   (prlimit: no work in the child), give it its veth in its network
                   namespace (the child enters its cgroup by itself: cgroups.CgroupJoin);
- `freeze(frozen)`  while the container runs: stop (or resume) all of it at once, for
                   job control (Ctrl-Z) in the parent;
- `finish(status)` after the container exited, also after a failed start (status
                   None): undo everything; returns a line to print (an OOM kill) or None.
                   What cannot be undone stays recorded for `hardrun gc`.

Modules are imported only when their feature is in use: `network` (pyroute2) only for
bridge networks and published ports.
"""
from __future__ import annotations

import sys

from .mounts import MountPlan

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from .cgroups import ContainerCgroup
    from .config import LaunchState
    from .network import Endpoint
    from .state import ContainerState


def _warn(message: str) -> None:
    print(f"hardrun: warning: {message}", file=sys.stderr, flush=True)


class Hooks:
    def __init__(self, cfg, limits_mode: str = "strict", warn=_warn, image=None):
        self.cfg = cfg
        self.image = image          # the image_root.ImageRoot it runs, recorded in its state
        self.limits_mode = limits_mode
        self.warn = warn
        # each set by prepare(), and None again once finish() has undone it
        self.launch: LaunchState | None = None
        self.state: ContainerState | None = None
        self.cgroup: ContainerCgroup | None = None
        self.endpoint: Endpoint | None = None

    def prepare(self, launch) -> None:
        """`launch`: the config.LaunchState that receives the cgroup join and view and the
        hosts file (the plan itself stays as resolved)."""
        self.launch = launch
        spec = self.cfg.spec
        from . import cgroups, state
        root = state.trusted_root(create=True)   # checked once for the clean-up and the record
        self._reap_stale(root)
        limits = cgroups.Limits.from_spec(spec)
        if self.cfg.devices and not spec.privileged:
            from .devices import restrict
            restrict(limits, self.cfg.devices)
        if spec.ulimits:
            from . import ulimits
            ulimits.validate(spec.ulimits)
        bridge = self.cfg.network.startswith("bridge")
        if (spec.ports or spec.publish_all) and not bridge:
            from ..errors import UsageError
            raise UsageError(f"--publish needs a bridge network, not --network {self.cfg.network}",
                             hint="add --network bridge")
        self.state = state.ContainerState.create(self.cfg.id, root)  # recorded first: a crash leaves a trace
        try:
            if self.image is not None:      # for `hardrun inspect`
                self.state.record("image", f"{self.image.name} {self.image.digest}")
            layout = cgroups.detect_layout()
            self.cgroup = cgroups.ContainerCgroup.create(
                self.cfg.id, limits, self.state, layout=layout,
                strict=self.limits_mode == "strict", warn=self.warn)
            if self.cgroup.paths:
                launch.cgroup_join = self.cgroup.open_join()
                if "cgroup" in self.cfg.namespaces:
                    launch.cgroup_view = (cgroups.mount_cgroup_view, layout)
            if bridge:
                self._join_bridge(spec, launch)
        except BaseException:
            self.finish(None)
            raise

    def _join_bridge(self, spec, launch: LaunchState) -> None:
        from . import network
        endpoint = network.prepare(spec, self.cfg.id, self.state, hostname=self.cfg.hostname)
        # --network bridge[:NAME] (cfg.network starts with "bridge"): prepare returns None
        # only for the other modes
        assert endpoint is not None, f"no bridge endpoint for --network {self.cfg.network}"
        self.endpoint = endpoint
        if not any(plan.target == "/etc/hosts" for plan in self.cfg.mounts):   # the user's wins
            hosts = MountPlan("bind", "/etc/hosts", source=str(self.endpoint.hosts_file),
                              read_only=True, source_is_dir=False, recursive=False)
            launch.mounts = self.cfg.mounts + (hosts,)
        for publish in self.endpoint.publishes:
            print(f"hardrun: published {publish}", file=sys.stderr, flush=True)

    def attach(self, pid: int) -> None:
        if self.cfg.spec.ulimits:
            from . import ulimits
            ulimits.apply(pid, self.cfg.spec.ulimits)
        if self.endpoint is not None:
            self.endpoint.attach(pid)

    def freeze(self, frozen: bool = True) -> bool:
        """Freeze (or thaw) the container's cgroup; False when it has no freezer."""
        return self.cgroup is not None and self.cgroup.freeze(frozen)

    def finish(self, status: int | None) -> str | None:
        message = None
        join = self.launch.cgroup_join if self.launch is not None else None
        if join is not None:   # the child's copies are its own
            join.close()
        if self.cgroup is not None and status is not None:
            from .process import exit_code
            report = self.cgroup.oom_report(exit_code(status))
            message = f"hardrun: {report}" if report else None
        problems: list[str] = []
        if self.state is not None:
            from .state import NETWORK_KINDS
            if self.state.has_any(NETWORK_KINDS):
                from . import network
                problems += network.undo(self.state)
        if self.cgroup is not None:
            problems += self.cgroup.destroy()
        if self.state is not None:
            if problems:             # kept on record: the next hardrun or `hardrun gc` retries
                for problem in problems:
                    self.warn(f"{problem} (left for `hardrun gc`)")
            else:
                self.state.remove()
        self.state = self.cgroup = self.endpoint = None
        return message

    def _reap_stale(self, root) -> None:
        """Undo containers whose hardrun was killed: costs a directory listing when none."""
        from .gc import reap_stale
        try:
            _, problems = reap_stale(root)
        except OSError as error:
            problems = [f"cannot clean up after dead containers: {error}"]
        for problem in problems:
            self.warn(f"{problem} (run `hardrun gc`)")

