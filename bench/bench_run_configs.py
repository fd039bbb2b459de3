"""Files per second through the compose and Kubernetes front ends, in one process.

Usage: python bench/bench_run_configs.py [SECONDS] [--pure]
Parses the test fixtures (realistic sizes: 20-100 lines) repeatedly and prints
files/s for each front end, with the YAML loader in use (libyaml's CSafeLoader or
the pure-Python SafeLoader).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hardrun.frontends import parse  # noqa: E402
from hardrun.frontends import yamlsafe  # noqa: E402

DATA = ROOT / "tests" / "data"
SETS = {
    "compose": [DATA / "compose" / "docker-compose.yml", DATA / "compose" / "v1" / "docker-compose.yml"],
    "kubernetes": [DATA / "kubernetes" / name for name in
                   ("web.yaml", "node-agent.yaml", "backup-cronjob.yaml", "list.json")],
}


def rate(kind: str, files: list[Path], seconds: float) -> tuple[float, int]:
    texts = [(str(path), path.read_text()) for path in files]
    count = 0
    lines = sum(text.count("\n") for _, text in texts) / len(texts)
    # CPU time of this process: the machine is shared, wall time would measure neighbours.
    started = time.process_time()
    while time.process_time() - started < seconds:
        for path, text in texts:
            parse(kind, text, path)
            count += 1
    return count / (time.process_time() - started), int(lines)


def main() -> None:
    numbers = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    seconds = float(numbers[0]) if numbers else 2.0
    if "--pure" in sys.argv:   # what users without libyaml get
        yamlsafe.LOADER = yamlsafe.yaml.SafeLoader
    print(f"YAML loader: {yamlsafe.LOADER.__name__}")
    for kind, files in SETS.items():
        files_per_second, lines = rate(kind, files, seconds)
        print(f"{kind:11s} {files_per_second:8.0f} files per CPU second  (average {lines} lines per file)")


if __name__ == "__main__":
    main()
