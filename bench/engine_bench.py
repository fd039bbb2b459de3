"""hardrun-oci under the engines, end to end, against runc and crun in the same run.

    sudo .venv/bin/python bench/engine_bench.py [--repeat 15] [--engine docker|ctr|podman]...

Starts a private dockerd, a private containerd and Podman's configuration
(tests/engines/daemons.py: state in a temporary directory, stopped at the end), imports the
busybox image, then times, interleaved round by round in a rotating order:

- `docker run --rm --network none --runtime=R bb:1 true`
- `ctr run --rm --runc-binary R <image> ID true`
- `podman run --rm --runtime R bb:1 true` (Podman's netns = "none")

for R in runc, crun and hardrun-oci, and prints the medians and the ratios to runc.
`--also NAME=PATH` adds another hardrun-oci (e.g. an earlier checkout's) to the same rounds.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.engines import daemons  # noqa: E402
from tests.rootfs import build_rootfs  # noqa: E402

RUNTIMES = {"runc": daemons.RUNC, "crun": daemons.CRUN, "hardrun": daemons.hardrun_oci()}


class Failed(Exception):
    pass


def as_installed() -> None:
    """hardrun's bytecode compiled, as pip compiles an installed package's, and the daemons
    (so the runtime they start) free to use it: a PYTHONDONTWRITEBYTECODE inherited by the
    daemons made every call of hardrun-oci compile its modules again (about 170 ms of a create)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parent.parent / "hardrun")],
                   check=True, stdout=subprocess.DEVNULL)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def timed(argv: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise Failed(f"exited {result.returncode}: {result.stderr.strip().splitlines()[0]}")
    return elapsed


def interleaved(commands: dict, repeat: int, warmup: int) -> tuple[dict, dict]:
    """Seconds per run of each command, the order rotated every round so none always goes first;
    a runtime whose command fails is dropped from the later rounds and its error kept."""
    names = list(commands)
    samples: dict = {name: [] for name in names}
    failures: dict = {}
    for round_number in range(warmup + repeat):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            if name in failures:
                continue
            try:
                elapsed = commands[name](round_number)
            except Failed as error:
                failures[name] = str(error)
                continue
            if round_number >= warmup:
                samples[name].append(elapsed)
    return samples, failures


def report(title: str, measured: tuple[dict, dict]) -> None:
    samples, failures = measured
    base = statistics.median(samples["runc"])
    print(f"\n{title} ({len(samples['runc'])} runs each, interleaved)\n")
    print("| runtime | median (ms) | min (ms) | ratio to runc |")
    print("|---|---:|---:|---:|")
    for name, values in samples.items():
        if name in failures:
            print(f"| {name} | failed: {failures[name]} | | |")
            continue
        median = statistics.median(values)
        print(f"| {name} | {median * 1000:.0f} | {min(values) * 1000:.0f} | {median / base:.2f}x |")


def docker_commands(docker: daemons.Docker) -> dict:
    def command(runtime: str):
        return lambda _round: timed([daemons.DOCKER, "run", "--rm", "--network", "none", "--runtime", runtime,
                                     daemons.IMAGE, "true"], env=docker.env)
    return {name: command(name) for name in RUNTIMES}


def ctr_commands(containerd: daemons.Containerd) -> dict:
    def command(runtime: str, binary: str):
        return lambda round_number: timed([
            daemons.CTR, "--address", str(containerd.socket), "run", "--rm", "--runc-binary", binary,
            "--runc-root", str(containerd.runc_root), daemons.CRI_IMAGE, f"bench-{runtime}-{round_number}", "true"])
    return {name: command(name, binary) for name, binary in RUNTIMES.items()}


def podman_commands(podman: daemons.Podman) -> dict:
    def command(runtime: str):
        return lambda _round: timed([daemons.PODMAN, "--root", str(podman.directory / "root"), "--runroot",
                                     str(podman.directory / "runroot"), "run", "--rm", "--runtime", runtime,
                                     daemons.IMAGE, "true"], env=podman.env)
    return {name: command(name) for name in RUNTIMES}


ENGINES = ("docker", "ctr", "podman")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                        help="another hardrun-oci to run in the same rounds")
    parser.add_argument("--engine", action="append", choices=ENGINES,
                        help="only these engines (default: all three)")
    args = parser.parse_args()
    engines = args.engine or ENGINES
    for item in args.also:
        name, _, path = item.partition("=")
        RUNTIMES[name] = path
    daemons.require(daemons.DOCKERD, daemons.CONTAINERD, daemons.PODMAN, daemons.RUNC, daemons.CRUN,
                    RUNTIMES["hardrun"])
    as_installed()
    rootfs = build_rootfs(daemons.short_tempdir("hr-bench-rootfs-"))
    started = []
    try:
        if "docker" in engines:
            docker = daemons.Docker(daemons.short_tempdir("hr-bench-docker-"), {
                name: {"path": path} for name, path in RUNTIMES.items() if name != "runc"})
            started.append(docker)
            docker.start()
            docker.import_image(rootfs)
            report("docker run --rm --runtime=R bb:1 true",
                   interleaved(docker_commands(docker), args.repeat, args.warmup))
        if "ctr" in engines:
            containerd = daemons.Containerd(daemons.short_tempdir("hr-bench-containerd-"), {"runc": daemons.RUNC})
            started.append(containerd)
            containerd.start()
            containerd.import_image(rootfs, "default")
            report("ctr run --rm --runc-binary R bb:1 true",
                   interleaved(ctr_commands(containerd), args.repeat, args.warmup))
        if "podman" in engines:
            podman = daemons.Podman(daemons.short_tempdir("hr-bench-podman-"), dict(RUNTIMES))
            started.append(podman)
            podman.start()
            podman.import_image(rootfs)
            report("podman run --rm --runtime R bb:1 true",
                   interleaved(podman_commands(podman), args.repeat, args.warmup))
    finally:
        for engine in started:
            engine.stop()
        daemons.remove_tree(rootfs)   # build_rootfs returns the temporary directory itself


if __name__ == "__main__":
    main()
