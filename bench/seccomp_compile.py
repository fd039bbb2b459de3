"""seccomp benchmark: compiling a profile with libseccomp vs finding it in the BPF cache.

    .venv/bin/python bench/seccomp_compile.py [--repeat 21]

Reports medians over --repeat runs of:
  * in one process: compiling the default profile and Docker's profile, and finding the
    default filter in the cache (`default_filter`, the start-up path of `hardrun run`);
  * in fresh interpreters (as a start-up pays it): a bare interpreter,
    a cache hit, and a cold compile (which also imports pyseccomp).
The machine is shared and noisy: compare the figures of one run with each other.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DOCKER_PROFILE = ROOT / "tests" / "data" / "seccomp" / "docker-default.json"


def median_ms(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def in_process(repeat: int, cache_dir: str) -> list[tuple[str, float]]:
    from hardrun.runtime import seccomp

    start = time.perf_counter()
    import pyseccomp  # noqa: F401  (what a cold compile pays once)
    import_ms = (time.perf_counter() - start) * 1000
    default = seccomp.default_profile()
    docker = seccomp.load_profile(DOCKER_PROFILE)
    seccomp.default_filter(cache_dir=cache_dir)  # fill the cache
    return [
        ("import pyseccomp (once)", import_ms),
        ("compile default profile", median_ms(lambda: seccomp.compile_profile(default, ()), repeat)),
        ("compile Docker's profile", median_ms(lambda: seccomp.compile_profile(docker, ()), repeat)),
        ("default_filter, cache hit", median_ms(lambda: seccomp.default_filter(cache_dir=cache_dir), repeat)),
        ("prepare_filter",
         median_ms(lambda: seccomp.prepare_filter(seccomp.default_filter(cache_dir=cache_dir)), repeat)),
    ]


def fresh_process(repeat: int, cache_dir: str) -> list[tuple[str, float]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    hit = ("from hardrun.runtime.seccomp import default_filter, prepare_filter; "
           f"prepare_filter(default_filter(cache_dir={cache_dir!r}))")
    cold = ("from hardrun.runtime.seccomp import compile_profile, default_profile, prepare_filter; "
            "prepare_filter(compile_profile(default_profile()))")

    def run(code):
        return lambda: subprocess.run([sys.executable, "-c", code], env=env, check=True)
    bare = median_ms(run("pass"), repeat)
    rows = [("python -c pass", bare)]
    for label, code in (("cache hit + prepare", hit), ("cold compile + prepare", cold)):
        total = median_ms(run(code), repeat)
        rows.append((f"{label} (+{total - bare:.1f} ms over bare)", total))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        cache_dir = os.path.join(temporary, "seccomp")
        print(f"median of {options.repeat} runs")
        print("in one process:")
        for label, value in in_process(options.repeat, cache_dir):
            print(f"  {label:40} {value:8.2f} ms")
        print("fresh interpreters:")
        for label, value in fresh_process(options.repeat, cache_dir):
            print(f"  {label:40} {value:8.2f} ms")


if __name__ == "__main__":
    main()
