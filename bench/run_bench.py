#!/usr/bin/env python3
"""Start-up time of `hardrun run` next to bubblewrap, crun and runc (needs root).

Every runtime starts `/bin/true` in the same busybox root filesystem with comparable
hardening: new user (remapped or single-id), mount, pid, ipc, uts and net namespaces,
a read-only root, no capabilities, no_new_privs and a ~370-syscall seccomp allowlist
(hardrun's default profile: compiled BPF for bubblewrap's --seccomp, the same profile
in OCI form for crun and runc). crun and runc get hardrun's default mounts, masked and
read-only paths too (bubblewrap only a minimal /dev, /proc and /tmp). `hardrun` is
`python -m hardrun`; `hardrun (script)` the installed command (bin/hardrun, started as
`python -IS` like scripts/setup.sh installs it). hardrun
gives every container a cgroup with a pids limit by default; crun and runc get the same
(crun also without, bubblewrap has none). Runs are interleaved round-robin so that drift
on a busy machine hits every runtime alike; the report gives medians, the ratio of each
median to crun's, and the median of the per-round ratios to crun ("paired"), which a busy
spell of a shared machine disturbs least.

    sudo .venv/bin/python bench/run_bench.py [-n 40] [--json] [--load 2]
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


def build_rootfs(directory: Path) -> Path:
    rootfs = directory / "rootfs"
    for name in ("bin", "etc", "proc", "sys", "dev", "tmp", "run"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("true", "sh"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    os.chmod(rootfs, 0o755)
    return rootfs


def hardrun_profile():
    from hardrun.runtime import seccomp
    return seccomp.default_profile()


def seccomp_bpf(directory: Path) -> Path:
    """hardrun's default profile compiled for no capabilities (also warms hardrun's cache)."""
    from hardrun.runtime import seccomp
    path = directory / "filter.bpf"
    path.write_bytes(seccomp.cached_filter(hardrun_profile(), ()))
    return path


def oci_seccomp() -> dict:
    """The same profile as an OCI `linux.seccomp` section for a container without
    capabilities, with the i386 and x32 ABIs hardrun's own filter covers too."""
    from hardrun.policy.export import oci_seccomp as profile_as_oci
    from hardrun.spec.seccomp_portable import for_libseccomp
    source = json.loads((ROOT / "hardrun" / "data" / "seccomp" / "default.json").read_text())
    return profile_as_oci(for_libseccomp(source), ())


def oci_bundle(directory: Path, rootfs: Path, name: str, pids_limit: int | None) -> Path:
    """An OCI bundle with hardrun's default file system: the same mounts (a read-only
    cgroup view, tmpfs /tmp and /run, devpts, /dev/shm), masked and read-only paths; with
    `pids_limit`, a cgroup of its own with that limit (as hardrun's default, 1024, makes
    one for every container)."""
    from hardrun.spec import oci
    from hardrun.spec.defaults import DEFAULT_REMAP, MASKED_PATHS, READONLY_PATHS
    bundle = directory / name
    bundle.mkdir()
    id_map = [(0, *DEFAULT_REMAP)]
    cgroup_view = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                   "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    config = oci.config(
        args=["/bin/true"], env=["PATH=/bin"], cwd="/", user={"uid": 0, "gid": 0},
        capability_sets=oci.capabilities((), ambient=False), no_new_privileges=True,
        root=str(rootfs), read_only=True, hostname="bench",
        mounts=oci.default_tmpfs_mounts(()) + [cgroup_view], namespaces=oci.NAMESPACE_TYPES,
        uid_map=id_map, gid_map=id_map, masked_paths=MASKED_PATHS, readonly_paths=READONLY_PATHS,
        linux_extra={"seccomp": oci_seccomp()})
    if pids_limit is not None:
        config["linux"]["resources"] = {"pids": {"limit": pids_limit}}
        config["linux"]["cgroupsPath"] = f"/hardrun-bench/{name}"
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    return bundle


def installed_script(directory: Path) -> Path:
    """bin/hardrun as scripts/setup.sh installs it: the shebang names this interpreter,
    with the flags of the source's first line (`#!python -IS`)."""
    script = directory / "hardrun"
    first, body = (ROOT / "bin" / "hardrun").read_text().split("\n", 1)
    script.write_text(f"#!{sys.executable}{first[len('#!python'):]}\n{body}")
    script.chmod(0o755)
    return script


def commands(directory: Path, rootfs: Path) -> dict:
    python = sys.executable
    hardrun = [python, "-m", "hardrun", "run", "--rootfs", str(rootfs), "--", "/bin/true"]
    result = {
        "python -S -c pass": [python, "-S", "-c", "pass"],
        "hardrun": hardrun,
        "hardrun (script)": [str(installed_script(directory))] + hardrun[3:],
        "hardrun (python -S)": [python, "-S"] + hardrun[1:],
        # the script without its first line's -IS: site runs, PYTHONPATH is honoured
        "hardrun (script, plain python)": [python, str(ROOT / "bin" / "hardrun")] + hardrun[3:],
        # the plan cache (runtime/plan_cache.py): the rows above start warm (the warm-up
        # run stored the plan); these start without it and with an empty one
        "hardrun (script, plan cache off)": [str(installed_script(directory))] + hardrun[3:],
        "hardrun (script, cold plan cache)": [str(installed_script(directory))] + hardrun[3:],
        "bwrap": ["bwrap", "--unshare-all", "--uid", "0", "--gid", "0", "--ro-bind", str(rootfs), "/",
                  "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                  "--new-session", "--die-with-parent", "--seccomp", "--SECCOMP-FD--", "/bin/true"],
    }
    state = directory / "state"
    with_cgroup = oci_bundle(directory, rootfs, "bundle-cgroup", 1024)
    without_cgroup = oci_bundle(directory, rootfs, "bundle", None)
    if shutil.which("crun"):
        result["crun"] = ["crun", "--root", str(state / "crun"), "--cgroup-manager=cgroupfs", "run",
                          "--bundle", str(with_cgroup), "--RUNID--"]
        result["crun (no cgroup)"] = ["crun", "--root", str(state / "crun"), "--cgroup-manager=disabled",
                                      "run", "--bundle", str(without_cgroup), "--RUNID--"]
    if shutil.which("runc"):
        result["runc"] = ["runc", "--root", str(state / "runc"), "run", "--bundle", str(with_cgroup),
                          "--RUNID--"]
    return result


def run_once(name: str, argv: list[str], bpf: str, index: int, paths: dict | None = None) -> float:
    argv = [word.replace("--RUNID--", f"bench-{name}-{index}") for word in argv]
    pass_fds = ()
    fd = None
    if name == "bwrap":   # bubblewrap reads the BPF program from this fd, once per run
        fd = os.open(bpf, os.O_RDONLY)
        argv = [str(fd) if word == "--SECCOMP-FD--" else word for word in argv]
        pass_fds = (fd,)
    env = dict(os.environ, PYTHONPATH=str((paths or {}).get(name, ROOT)))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if name.endswith("plan cache off)"):
        env["HARDRUN_PLAN_CACHE"] = "off"
    elif name.endswith("cold plan cache)"):   # a new empty directory each run
        env["HARDRUN_PLAN_CACHE"] = tempfile.mkdtemp(prefix="hardrun-bench-plans-")
    started = time.perf_counter()
    # From a neutral directory: `python -m` puts the current one first on sys.path.
    # stdin is a pipe of our own: crun chowns the container's stdio to the mapped root,
    # and an inherited /dev/null would be the host's /dev/null.
    done = subprocess.run(argv, env=env, input=b"", capture_output=True, pass_fds=pass_fds, cwd="/")
    elapsed = time.perf_counter() - started
    if fd is not None:
        os.close(fd)
    if name.endswith("cold plan cache)"):
        shutil.rmtree(env["HARDRUN_PLAN_CACHE"])
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.decode(errors='replace')[:500]}")
    return elapsed * 1000


def _remove_bench_cgroups() -> None:
    """crun and runc remove their containers' cgroups but not the parent they were put in."""
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        path = f"/sys/fs/cgroup/{hierarchy}/hardrun-bench"
        if os.path.isdir(path):
            try:
                os.rmdir(path)
            except OSError:
                pass


def _hybrid_cgroups() -> bool:
    try:
        with open("/sys/fs/cgroup/unified/cgroup.controllers") as handle:
            return bool(handle.read().split())
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=40)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    parser.add_argument("--pause", type=float, default=0.1, metavar="SECONDS",
                        help="idle time before each run (default 0.1): crun's and runc's cgroup "
                             "moves wait for an RCU grace period unless another ended just before, "
                             "so back-to-back runs would hide that wait from each other")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time `python -m hardrun` from another checkout (e.g. main), interleaved")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="run N CPU-bound processes beside every runtime for the whole run")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run_bench.py needs root (crun, runc and id remapping)")
    if _hybrid_cgroups() and not os.environ.get("HARDRUN_BENCH_PRIVATE_MOUNTS"):
        # crun refuses a v1 hybrid host whose v2 mount holds controllers. Run the whole
        # benchmark (every runtime alike) in a private mount namespace without that mount.
        env = dict(os.environ, HARDRUN_BENCH_PRIVATE_MOUNTS="1")
        os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               'umount -l /sys/fs/cgroup/unified && exec "$@"', "sh",
                               sys.executable, *sys.argv], env)
    # As an installed package would be: bytecode compiled (pip does this at install time).
    trees = [ROOT] + ([Path(args.baseline).resolve()] if args.baseline else [])
    subprocess.run([sys.executable, "-m", "compileall", "-q"] + [str(tree / "hardrun") for tree in trees], check=True,
                   stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="hardrun-bench-") as temp:
        directory = Path(temp)
        os.chmod(directory, 0o755)
        rootfs = build_rootfs(directory)
        bpf = seccomp_bpf(directory)
        table = commands(directory, rootfs)
        paths = {}
        if args.baseline:
            table = dict(table)
            table["hardrun (baseline)"] = table["hardrun"]
            paths["hardrun (baseline)"] = trees[1]
            installed = trees[1] / ".venv" / "bin" / "hardrun"
            if installed.exists():   # the baseline's command as its own setup installed it
                table["hardrun (baseline script)"] = [str(installed)] + table["hardrun"][3:]
        bpf_path = str(bpf)
        times = {name: [] for name in table}
        load = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
        try:
            for name, argv in table.items():   # warm-up: caches, page cache, the BPF cache
                run_once(name, argv, bpf_path, -1, paths)
            for index in range(args.runs):
                for name, argv in table.items():
                    time.sleep(args.pause)
                    times[name].append(run_once(name, argv, bpf_path, index, paths))
        finally:
            for busy in load:
                busy.kill()
                busy.wait()
        _remove_bench_cgroups()
    medians = {name: statistics.median(values) for name, values in times.items()}
    paired = _paired_ratios(times, "crun")
    paired_bwrap = _paired_ratios(times, "bwrap")
    if args.json:
        print(json.dumps({"runs": args.runs, "median_ms": medians, "paired_ratio_to_crun": paired,
                          "paired_ratio_to_bwrap": paired_bwrap}, indent=2))
        return 0
    reference = medians.get("crun")
    print(f"{'runtime':<34}{'median ms':>10}{'min ms':>9}{'vs crun':>9}{'paired':>9}{'vs bwrap':>9}{'paired':>9}"
          f"   ({args.runs} runs each, interleaved, {args.load} CPU-bound processes beside)")
    for name, median in medians.items():
        ratio = f"{median / reference:.2f}x" if reference else "-"
        pair = f"{paired[name]:.2f}x" if name in paired else "-"
        to_bwrap = f"{median / medians['bwrap']:.2f}x"
        print(f"{name:<34}{median:>10.1f}{min(times[name]):>9.1f}{ratio:>9}{pair:>9}{to_bwrap:>9}"
              f"{paired_bwrap[name]:>8.2f}x")
    return 0


def _paired_ratios(times: dict, reference: str) -> dict:
    """Median over rounds of (this runtime's time / the reference's in the same round):
    runs of one round are seconds apart, so a busy spell of the machine hits both."""
    if reference not in times:
        return {}
    return {name: statistics.median(t / r for t, r in zip(values, times[reference]))
            for name, values in times.items()}


if __name__ == "__main__":
    sys.exit(main())
