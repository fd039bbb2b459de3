"""Compose, Kubernetes and docker-run files per second, in one process.

    python bench/bench_run_configs.py [--files 1000] [--repeat 3] [--pure]

For each kind, over a generated corpus (bench/run_corpus.py, ~50-60 lines a file):
- parse: the front end alone (text already in memory -> RunSpecs);
- audit: the whole engine on the corpus directory (walk, detect, read, parse,
  every run rule that applies), as `hardrun audit DIR` does after start-up.
Rates are files per CPU second of this process, medians over --repeat runs (the
machine is shared: wall time would measure the neighbours). --pure uses PyYAML's
pure-Python loader, what users without libyaml get.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import run_corpus  # noqa: E402
from hardrun.audit.engine import audit  # noqa: E402
from hardrun.frontends import parse  # noqa: E402
from hardrun.parsing import yamlsafe  # noqa: E402


def cpu_rate(work, count: int, repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        started = time.process_time()
        work()
        rates.append(count / (time.process_time() - started))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pure", action="store_true")
    args = parser.parse_args()
    if args.pure:
        yamlsafe.LOADER = yamlsafe.yaml.SafeLoader
    print(f"YAML loader: {yamlsafe.LOADER.__name__}; {args.files} files per kind; "
          f"medians over {args.repeat} runs\n")
    print(f"{'kind':<12}{'lines/file':>11}{'parse files/s':>15}{'audit files/s':>15}")
    with tempfile.TemporaryDirectory(prefix="hardrun-bench-") as tmp:
        for kind in ("compose", "kubernetes", "docker-run"):
            root = Path(tmp) / kind
            files = run_corpus.generate(root, args.files, kind)
            texts = [(str(path), path.read_text()) for path in files]
            lines = sum(text.count("\n") for _, text in texts) / len(texts)

            def parse_all():
                for path, text in texts:
                    parse(kind, text, path)

            def audit_all():
                report = audit([str(root)])
                assert len(report.files) == len(files) and not report.errors

            print(f"{kind:<12}{lines:>11.0f}{cpu_rate(parse_all, len(files), args.repeat):>15.0f}"
                  f"{cpu_rate(audit_all, len(files), args.repeat):>15.0f}")
    print("\ntarget: >= 1000 files/s in one process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
