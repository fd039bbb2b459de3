"""Device cgroup set-up: the BPF device program (cgroup v2) against the v1 devices controller,
side by side in one run, for the same rule list (runc's defaults, as every engine container
gets them; or a Podman-style list of --rules N extra rules).

    .venv/bin/python bench/device_cgroup.py [--repeat 61] [--rules 0]

Each round creates a container cgroup holding only the devices (ContainerCgroup.create: the
directory, then the writes or the program's load and attach) and removes it, interleaving the
two kinds; medians and their ratio. Needs root and /sys/fs/cgroup/unified beside the v1
devices hierarchy (a hybrid host such as this one). The machine is shared and noisy: compare
the figures of one run with each other.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["HARDRUN_CGROUP_PARENT"] = f"hardrun-bench-devices-{os.getpid()}"

from hardrun.runtime import cgroups  # noqa: E402
from hardrun.runtime.device_rules import cgroup_v1_writes  # noqa: E402


def layouts() -> dict:
    hierarchies = cgroups.detect_layout().hierarchies
    v1 = tuple(h for h in hierarchies if h.version == 1 and "devices" in h.controllers)
    v2 = tuple(h for h in hierarchies if h.version == 2)
    assert v1 and v2, "needs a v1 devices hierarchy and a cgroup2 mount (a hybrid host)"
    return {"v1 controller": cgroups.Layout(v1, device_cgroup="v1"),
            "BPF program": cgroups.Layout(v2, device_cgroup="bpf")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=61)
    parser.add_argument("--rules", type=int, default=0, help="extra allow rules before runc's defaults")
    options = parser.parse_args()
    rules = [{"allow": False, "access": "rwm"}] + [
        {"allow": True, "type": "c", "major": 200 + index, "minor": -1, "access": "rw"}
        for index in range(options.rules)]
    limits = cgroups.Limits(pids=None, devices=cgroup_v1_writes(rules), devices_asked=True)
    times: dict = {name: [] for name in layouts()}
    for round_number in range(options.repeat):
        for name, layout in layouts().items():
            started = time.perf_counter()
            cgroup = cgroups.ContainerCgroup.create(f"r{round_number}", limits, layout=layout)
            times[name].append(time.perf_counter() - started)
            problems = cgroup.destroy()
            assert not problems, problems
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:14} median {median:.3f} ms  ({options.repeat} rounds, {len(limits.devices)} writes)")
    print(f"ratio BPF program / v1 controller: {medians['BPF program'] / medians['v1 controller']:.2f}")


if __name__ == "__main__":
    main()
