"""Detection and dispatch for the run-config front ends (compose, Kubernetes, OCI,
docker run lines in scripts/CI/Markdown, hardrun run configs)."""
from __future__ import annotations

RUN_KINDS = ("compose", "kubernetes", "docker-run", "oci", "hardrun")


def detect_run_kind(path: str, head: str | None) -> str | None:
    """Not yet able to read run configs: nothing is detected."""
    return None


def parse_run_kind(kind: str, text: str, path: str):
    from ..errors import UsageError
    raise UsageError(f"no front end for kind {kind!r}")
