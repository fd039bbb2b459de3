"""hardrun-oci against runc and crun: `RUNTIME run --bundle B ID` of `/bin/true`, end to end.

    .venv/bin/python bench/oci_bench.py [--rounds 21]      (as root)

One busybox bundle (written by hardrun's OCI writer, hardrun/spec/oci.py) is run by each
runtime in turn, interleaved round by round so that a busy machine weighs on all of them
alike; each figure is the median wall time of one whole `run` process (create, start,
wait, delete). hardrun-oci runs three times: as configured by default (the policy gate,
the floor: no_new_privs, its seccomp allowlist from the cache, and a user namespace of the
container's own with its idmapped root), with `--no-floor` under the built-in `default`
policy, and with `--userns keep` (no user namespace added, as runc). Nothing here is a test.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_bundle(base: Path) -> Path:
    from hardrun.spec import oci as writer
    from hardrun.spec.defaults import MASKED_PATHS, READONLY_PATHS
    from tests.rootfs import build_rootfs
    bundle = base / "bundle"
    bundle.mkdir()
    build_rootfs(bundle / "rootfs")
    document = writer.config(
        args=["/bin/true"], env=["PATH=/bin"], cwd="/", user={"uid": 0, "gid": 0},
        capability_sets=writer.capabilities(["CHOWN"], False), no_new_privileges=True, root="rootfs",
        read_only=True, hostname="bench", namespaces={"mount", "pid", "ipc", "uts", "network"}, mounts=[],
        masked_paths=MASKED_PATHS, readonly_paths=READONLY_PATHS)
    (bundle / "config.json").write_text(json.dumps(document))
    return bundle


def runtimes(base: Path) -> dict:
    hardrun = str(ROOT / ".venv" / "bin" / "hardrun-oci")
    found = {"hardrun-oci": [hardrun, "--root", str(base / "hardrun")],
             "hardrun-oci --no-floor": [hardrun, "--root", str(base / "hardrun-nofloor"), "--no-floor"],
             # the default adds a user namespace and an idmapped root; keep is runc's choice
             "hardrun-oci --userns keep": [hardrun, "--root", str(base / "hardrun-keep"), "--userns", "keep"]}
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path:
            found[name] = [path, "--root", str(base / name)]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="hardrun-oci-bench-"))
    try:
        bundle = make_bundle(base)
        commands = runtimes(base)
        # as an installed tool runs: its bytecode compiled and cached
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "hardrun")], check=True,
                       stdout=subprocess.DEVNULL)
        environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        times: dict = {name: [] for name in commands}
        for round_number in range(options.rounds + 1):       # round 0 warms caches up
            for name, command in list(commands.items()):
                started = time.perf_counter()
                done = subprocess.run(command + ["run", "--bundle", str(bundle), f"b{round_number}"],
                                      stdin=subprocess.DEVNULL, capture_output=True, env=environment)
                elapsed = time.perf_counter() - started
                if done.returncode != 0:     # e.g. crun 1.8 refuses a cgroup v1/v2 hybrid host
                    print(f"{name}: left out, it failed: {done.stderr.decode(errors='replace').strip()}")
                    del commands[name], times[name]
                    continue
                if round_number:
                    times[name].append(elapsed)
        reference = statistics.median(times["runc"]) if "runc" in times else None
        print(f"{'runtime':<24} {'median ms':>10} {'vs runc':>8}   ({options.rounds} rounds, interleaved)")
        for name, values in times.items():
            median = statistics.median(values)
            ratio = f"{median / reference:.2f}x" if reference else "-"
            print(f"{name:<24} {median * 1000:>10.1f} {ratio:>8}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
