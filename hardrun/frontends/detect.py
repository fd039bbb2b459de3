"""Detection and dispatch for the run-config front ends (compose, Kubernetes, OCI,
docker run lines in scripts/CI/Markdown, hardrun run configs)."""
from __future__ import annotations

RUN_KINDS = ("compose", "kubernetes", "docker-run", "oci", "hardrun")


def detect_run_kind(path: str, head: str | None) -> str | None:
    """The run-config kind of `path` (head: its first few KiB, if already read), or None."""
    return detect_docker_run(path, head)


def detect_docker_run(path: str, head: str | None) -> str | None:
    """`docker-run` for scripts, Makefiles, Markdown and CI YAML that may hold docker run lines."""
    from . import docker_run
    return docker_run.detect(path, head)


def claims(kind: str, text: str, path: str) -> bool:
    """Whether a file found while walking a tree really is of `kind` (its whole text read).

    Scripts, Makefiles and READMEs are everywhere: they count only when they hold a
    docker run command."""
    if kind == "docker-run":
        from . import docker_run
        return docker_run.claims(text, path)
    return True


def parse_run_kind(kind: str, text: str, path: str):
    if kind == "docker-run":
        from . import docker_run
        return docker_run.parse(text, path)
    from ..errors import UsageError
    raise UsageError(f"no front end for kind {kind!r}")
