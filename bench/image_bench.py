#!/usr/bin/env python3
"""Images: start-up from a stored image next to --rootfs, and unpacking a ~100 MB image
next to umoci and skopeo + tar (needs root, skopeo and umoci: scripts/setup.sh --test).

1. Start-up: `hardrun run IMAGE /bin/true` (the image already in a temporary store, its
   layers unpacked) and `hardrun run --rootfs DIR -- /bin/true` on the same tree,
   interleaved round-robin; medians and the difference (target: +5 ms at most).
2. Unpacking: a generated image of about 100 MB in three gzip layers (an OCI layout),
   unpacked from scratch each round by hardrun (`pull` into an empty store, then the
   layers unpacked by `hardrun run --dry-run`), by `umoci unpack`, and by `skopeo copy`
   to a directory followed by `tar -xzf` of each layer; medians and the ratios to
   hardrun's (target: hardrun within 1.5x of the faster of the two). With
   `--compression zstd` the layers are zstd (`tar+zstd`) and tar reads them with --zstd
   (the zstd program: Debian's zstd package); umoci is left out (Debian's reads no zstd).

    sudo .venv/bin/python bench/image_bench.py [-n 15] [--unpack-rounds 5] [--startup-only]
        [--compare-with DIR]     # DIR: another revision's checkout, its _kernel module built
        [--unpack-only] [--compression gzip|zstd]
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.imagebuild import Image, busybox_tree, dir_layer, write_layout  # noqa: E402

HARDRUN = [sys.executable, "-m", "hardrun"]


def timed(command, env=None, cwd=None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def big_tree(root: Path, megabytes: int, seed: int) -> Path:
    """Files of mixed sizes, half random bytes and half text, like a distribution's tree."""
    rng = random.Random(seed)
    written = 0
    n = 0
    while written < megabytes << 20:
        directory = root / f"d{n % 97}"
        directory.mkdir(parents=True, exist_ok=True)
        size = rng.choice([512, 4096, 30000, 200000, 1 << 20])
        data = rng.randbytes(size) if n % 2 else (b"line of text %d\n" % n) * (size // 16)
        (directory / f"f{n}").write_bytes(data)
        written += len(data)
        n += 1
    return root


def startup(base: Path, rounds: int, compare_with: str | None = None) -> None:
    env = dict(os.environ, HARDRUN_STORE=str(base / "store"))
    tree = busybox_tree(base / "tree")
    layout = write_layout(base / "layout", {"1": Image([dir_layer(tree)], {"Cmd": ["/bin/true"]})})
    subprocess.run(HARDRUN + ["pull", f"oci:{layout}:1"], check=True, env=env, stdout=subprocess.DEVNULL)
    image = f"oci:{layout}:1"
    commands = {"hardrun run --rootfs": HARDRUN + ["run", "--rootfs", str(tree), "--", "/bin/true"],
                "hardrun run IMAGE": HARDRUN + ["run", "--pull", "never", image, "/bin/true"]}
    if compare_with:        # another revision's tree (its _kernel module built), same store, same run
        commands["IMAGE, --compare-with"] = commands["hardrun run IMAGE"]
    # `python -m` puts the working directory first on the path: that picks the revision
    cwds = {"IMAGE, --compare-with": compare_with}
    for command in commands.values():      # warm-up: unpacks the layers, fills the seccomp cache
        subprocess.run(command, check=True, env=env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            times[name].append(timed(command, env, cwds.get(name)))
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"start-up ({rounds} rounds, medians)")
    for name, value in medians.items():
        print(f"  {name:<24} {value:8.1f} ms")
    for name in [name for name in medians if name.startswith(("hardrun run IMAGE", "IMAGE"))]:
        print(f"  {name} - rootfs:  {medians[name] - medians['hardrun run --rootfs']:+8.1f} ms")


def unpacking(base: Path, rounds: int, megabytes: int, compression: str = "gzip") -> None:
    layers = [dir_layer(big_tree(base / f"big{n}", megabytes // 3, n)) for n in range(3)]
    layout = write_layout(base / "big-layout", {"1": Image(layers, {"Cmd": ["/bin/true"]}, compress=compression)})
    print(f"unpacking {sum(len(layer) for layer in layers) / 1e6:.0f} MB in 3 {compression} layers "
          f"({rounds} rounds, medians)")
    times: dict[str, list[float]] = {"hardrun pull + unpack": [], "skopeo copy + tar -x": []}
    if compression == "gzip":       # Debian's umoci (0.4.7) reads no zstd layers
        times["umoci unpack"] = []
    for n in range(rounds):
        work = base / f"round{n}"
        work.mkdir()
        env = dict(os.environ, HARDRUN_STORE=str(work / "store"))
        times["hardrun pull + unpack"].append(
            timed(HARDRUN + ["pull", f"oci:{layout}:1"], env)
            + timed(HARDRUN + ["run", "--dry-run", "--pull", "never", f"oci:{layout}:1"], env))
        if "umoci unpack" in times:
            times["umoci unpack"].append(timed(["umoci", "unpack", "--image", f"{layout}:1", str(work / "bundle")]))
        times["skopeo copy + tar -x"].append(_skopeo_tar(layout, work, compression))
        shutil.rmtree(work)
    medians = {name: statistics.median(values) for name, values in times.items()}
    hardrun = medians["hardrun pull + unpack"]
    for name, value in medians.items():
        print(f"  {name:<24} {value:8.2f} s   hardrun / this: {hardrun / value:5.2f}")


def _skopeo_tar(layout: Path, work: Path, compression: str) -> float:
    start = time.perf_counter()
    subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:1", f"dir:{work / 'dir'}"], check=True, cwd=work)
    (work / "rootfs").mkdir()
    import json
    manifest = json.loads((work / "dir" / "manifest.json").read_text())
    for layer in manifest["layers"]:
        blob = work / "dir" / layer["digest"][7:]
        decompress = "--zstd" if compression == "zstd" else "-z"
        subprocess.run(["tar", decompress, "-xf", str(blob), "-C", str(work / "rootfs")], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=15, help="start-up rounds")
    parser.add_argument("--unpack-rounds", type=int, default=5)
    parser.add_argument("--compare-with", metavar="DIR",
                        help="also time `hardrun run IMAGE` from this checkout (another revision)")
    parser.add_argument("--startup-only", action="store_true", help="skip the unpacking figure")
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--unpack-only", action="store_true", help="skip the start-up figure")
    parser.add_argument("--compression", choices=("gzip", "zstd"), default="gzip", help="the layers' compression")
    args = parser.parse_args()
    assert os.geteuid() == 0, "run as root"
    base = Path(tempfile.mkdtemp(prefix="imgbench-", dir="/var/tmp"))
    try:
        if not args.unpack_only:
            startup(base, args.n, args.compare_with)
        if not args.startup_only:
            unpacking(base, args.unpack_rounds, args.megabytes, args.compression)
    finally:
        subprocess.run(["chmod", "-R", "u+rwX", str(base)], check=False)
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
