"""`hardrun audit` of a large image next to `tar -t` over its layers, in the same run.

    .venv/bin/python bench/image_audit_bench.py [--size-mib 1024] [--layers 8] [--repeat 3]
        [--compare-with DIR]     # DIR: another revision's checkout, audited in the same run
        [--gzip]                 # layers stored gzip-compressed (level 6, as Docker and Go write them)

Generates (fixed seed) an OCI layout of plain tar layers totalling --size-mib, most of
it small files (4 KiB) and one large file per layer, with a few setuid files, secrets
and whiteouts so that the rules have work. Then, --repeat times each after a warm-up:

- `tar -t` over every layer blob, read from a pipe (`tar -t < blob` would skip file
  contents with lseek; the audit must read them: it checks every layer's digest);
  with --gzip, `tar -tz`, which includes gunzip, and `gzip -dc` alone;
- `sha256sum` over the same blobs, and hashlib's sha256 (OpenSSL, which the audit
  uses; coreutils' sha256sum is much slower here): what checking the digests alone
  costs, which the audit does and `tar -t` does not (with --gzip, the blobs and the
  uncompressed tars: the blob digests and the diff ids);
- `hardrun audit -f json oci:LAYOUT` as one process, with its peak memory (max RSS,
  from getrusage in a small parent of its own).

With --compare-with DIR, the same audit by the hardrun of DIR (run from there, so its
package is the one imported), interleaved with the others: before and after in one run.

Prints files listed per second, the medians, the ratio audit/tar and the peak memory.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = 4096


def _layer(path: Path, index: int, size: int, rng: random.Random) -> int:
    """Write one layer of about `size` bytes; returns the number of entries."""
    count = 0
    big = size // 4
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data=b"", mode=0o644, kind=tarfile.REGTYPE):
            nonlocal count
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.size = kind, mode, len(data)
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
            count += 1
        add(f"layer{index}", kind=tarfile.DIRTYPE, mode=0o755)
        add(f"layer{index}/big.bin", rng.randbytes(1 << 20) * (big >> 20))
        add(f"usr/local/bin/tool{index}", b"ELF", mode=0o4755)
        add(f"home/app{index}/.npmrc", b"//registry.npmjs.org/:_authToken=x\n")
        if index:
            add(f"home/app{index - 1}/.wh..npmrc")
        chunk = rng.randbytes(SMALL)
        written, n = big, 0
        while written < size:
            add(f"layer{index}/d{n // 1000}/f{n}", chunk)
            written += SMALL + 512
            n += 1
    return count


def generate(directory: Path, size_mib: int, layers: int,
             compress: bool = False) -> tuple[Path, list[Path], list[Path], int]:
    """(layout, layer blobs, uncompressed layers, entries)."""
    rng = random.Random(1)
    blobs = directory / "layout" / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descriptors, diff_ids, paths, raws, entries = [], [], [], [], 0
    for index in range(layers):
        raw = directory / f"layer{index}.tar"
        entries += _layer(raw, index, (size_mib << 20) // layers, rng)
        data = raw.read_bytes()
        diff_ids.append("sha256:" + hashlib.sha256(data).hexdigest())
        blob = gzip.compress(data, compresslevel=6, mtime=0) if compress else data
        target = blobs / hashlib.sha256(blob).hexdigest()
        if compress:
            target.write_bytes(blob)
            raws.append(raw)
        else:
            raw.rename(target)
            raws.append(target)
        paths.append(target)
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else ""),
                            "digest": "sha256:" + target.name, "size": target.stat().st_size})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"User": "1000"},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                                      "size": len(config)},
                           "layers": descriptors}).encode()
    for blob in (config, manifest):
        (blobs / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    layout = directory / "layout"
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(), "size": len(manifest)}]}))
    return layout, paths, raws, entries


def time_command(command: list, blobs) -> float:
    """`command` over each blob, given on its standard input (a pipe: nothing is skipped)."""
    start = time.perf_counter()
    for blob in blobs:
        with open(blob, "rb") as stream:
            subprocess.run(command, stdin=stream, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


# Peak memory is read by a small parent of its own: a child's max RSS counts the pages
# it shared with its parent at fork, and this script holds the generated layers' data.
_MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
result = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
elapsed = time.perf_counter() - start
sys.stdout.buffer.write(result.stdout)
print(elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, result.returncode, file=sys.stderr)
"""


def time_sha256sum(blobs) -> float:
    """What checking the layers' digests alone costs (the audit does it; tar -t does not)."""
    start = time.perf_counter()
    subprocess.run(["sha256sum", *map(str, blobs)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def time_hashlib(blobs) -> float:
    """sha256 of the blobs with hashlib (OpenSSL), as the audit computes them: the floor of
    any audit that checks the digests in one thread."""
    start = time.perf_counter()
    for blob in blobs:
        with open(blob, "rb") as stream:
            hashlib.file_digest(stream, "sha256")
    return time.perf_counter() - start


def time_audit(layout: Path, tree: Path = ROOT) -> tuple[float, list, int]:
    """(seconds, findings, peak KiB) of one `hardrun audit` process, of the hardrun in `tree`."""
    result = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "hardrun", "audit",
                             "-f", "json", f"oci:{layout}"], capture_output=True, text=True, cwd=tree)
    elapsed, peak, code = result.stderr.split()[-3:]
    if int(code) not in (0, 1):
        raise SystemExit(f"hardrun audit failed: {result.stdout}{result.stderr}")
    findings = [(f["rule"], f["message"]) for f in json.loads(result.stdout)["findings"]]
    return float(elapsed), findings, int(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare-with", metavar="DIR", type=Path,
                        help="another revision's checkout: its audit of the same image, in the same run")
    parser.add_argument("--gzip", action="store_true", help="layers stored gzip-compressed (level 6)")
    args = parser.parse_args()
    trees = {"hardrun audit": ROOT}
    if args.compare_with:
        trees["hardrun audit (DIR)"] = args.compare_with.resolve()
    tar = ["tar", "-tz"] if args.gzip else ["tar", "-t"]
    with tempfile.TemporaryDirectory(prefix="hardrun-image-bench-") as work:
        layout, blobs, raws, entries = generate(Path(work), args.size_mib, args.layers, args.gzip)
        size = sum(raw.stat().st_size for raw in raws)
        stored = sum(blob.stat().st_size for blob in blobs)
        hashed = blobs + raws if args.gzip else blobs      # blob digests, and the diff ids of compressed layers
        time_command(tar, blobs)
        findings = {name: time_audit(layout, tree)[1] for name, tree in trees.items()}  # warm-up
        if len({tuple(f) for f in findings.values()}) > 1:
            raise SystemExit(f"the two revisions' findings differ: {findings}")
        times: dict = {"tar": [], "gunzip": [], "sha256sum": [], "hashlib": [], **{name: [] for name in trees}}
        peaks = dict.fromkeys(trees, 0)
        for _ in range(args.repeat):
            times["tar"].append(time_command(tar, blobs))
            if args.gzip:
                times["gunzip"].append(time_command(["gzip", "-dc"], blobs))
            else:
                times["sha256sum"].append(time_sha256sum(blobs))
            times["hashlib"].append(time_hashlib(hashed))
            for name, tree in trees.items():
                elapsed, _, peak = time_audit(layout, tree)
                times[name].append(elapsed)
                peaks[name] = max(peaks[name], peak)
    medians = {name: statistics.median(values) for name, values in times.items() if values}
    tar_median, hashlib_median = medians["tar"], medians["hashlib"]
    kind = f"gzip layers ({stored / (1 << 20):.0f} MiB stored)" if args.gzip else "plain tar layers"
    print(f"image: {size / (1 << 20):.0f} MiB in {args.layers} {kind}, {entries} entries; "
          f"{len(findings['hardrun audit'])} findings; medians of {args.repeat}")
    print(f"{'':26}{'seconds':>9}{'entries/s':>11}{'x tar':>8}{'x sha256':>10}{'peak MiB':>10}")
    print(f"{' '.join(tar) + ' (a pipe)':26}{tar_median:>9.2f}{entries / tar_median:>11.0f}{1:>8.2f}"
          f"{tar_median / hashlib_median:>10.2f}")
    if args.gzip:
        print(f"{'gzip -dc (gunzip alone)':26}{medians['gunzip']:>9.2f}{'':11}{medians['gunzip'] / tar_median:>8.2f}")
    else:
        print(f"{'sha256sum (digests)':26}{medians['sha256sum']:>9.2f}")
    print(f"{'hashlib sha256 (digests)':26}{hashlib_median:>9.2f}{'':11}{hashlib_median / tar_median:>8.2f}{1:>10.2f}")
    for name in trees:
        median = medians[name]
        print(f"{name:26}{median:>9.2f}{entries / median:>11.0f}{median / tar_median:>8.2f}"
              f"{median / hashlib_median:>10.2f}{peaks[name] / 1024:>10.1f}")


if __name__ == "__main__":
    main()
