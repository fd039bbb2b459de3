"""Detection and dispatch for the run-config front ends (compose, Kubernetes, OCI,
docker run lines in scripts/CI/Markdown, hardrun run configs)."""
from __future__ import annotations

import os

RUN_KINDS = ("compose", "kubernetes", "docker-run", "oci", "hardrun")
YAML_SUFFIXES = (".yaml", ".yml")


def detect_run_kind(path: str, head: str | None) -> str | None:
    """The run-config kind of `path` (head: its first few KiB, read here if needed), or None."""
    if not path.endswith(YAML_SUFFIXES):
        return None
    if head is None:
        head = _peek(path)
    from .hardrun_config import looks_like_run_config
    if looks_like_run_config(head):
        return "hardrun"
    return None


def parse_run_kind(kind: str, text: str, path: str):
    if kind == "hardrun":
        from .hardrun_config import parse_run_config
        return parse_run_config(text, path)
    from ..errors import UsageError
    raise UsageError(f"no front end for kind {kind!r}")


def _peek(path: str, size: int = 4096) -> str | None:
    try:
        with open(path, "rb") as stream:
            return stream.read(size).decode("utf-8", errors="replace")
    except OSError:
        return None
