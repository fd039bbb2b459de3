"""Front ends: each turns one kind of file into models (a Dockerfile or RunSpecs).

`detect_kind(path, head)` decides what a file is from its name and first bytes;
`parse(kind, text, path)` returns the models. Imports are lazy so that auditing
Dockerfiles never pays for the YAML front ends, and the reverse.
"""
from __future__ import annotations

import os

DOCKERFILE_NAMES = ("Dockerfile", "Containerfile")
DOCKERFILE_PATTERNS = ("Dockerfile.*", "*.Dockerfile", "*.dockerfile", "Containerfile.*",
                       "*.Containerfile", "*.containerfile")
# Build contexts of the official images sometimes hold files like Dockerfile.template:
# they are Dockerfiles with placeholders and are audited as such.


_dockerfile_pattern = None     # DOCKERFILE_PATTERNS as one regex, compiled on first use


def is_dockerfile_name(name: str) -> bool:
    global _dockerfile_pattern
    if name in DOCKERFILE_NAMES:
        return True
    if _dockerfile_pattern is None:
        # lazily: re is heavy, and this package is on hardrun run's start-up path
        from .detect import any_of
        _dockerfile_pattern = any_of(DOCKERFILE_PATTERNS)
    return _dockerfile_pattern.match(name) is not None


def detect_kind(path: str, head: str | None = None) -> str | None:
    """The kind of the file at `path` (head: its first few KiB, if already read), or None."""
    name = os.path.basename(path)
    if is_dockerfile_name(name):
        return "dockerfile"
    from . import detect
    return detect.detect_run_kind(path, head)


def claims(kind: str, text: str, path: str) -> bool:
    """Whether a file found while walking a tree holds something of `kind` worth reporting."""
    if kind == "dockerfile":
        return True
    from . import detect
    return detect.claims(kind, text, path)


def parse(kind: str, text: str, path: str):
    """Models of `text`: a Dockerfile for `dockerfile`, a list of RunSpecs otherwise."""
    if kind == "dockerfile":
        from .dockerfile import parse_dockerfile
        return parse_dockerfile(text, path)
    from . import detect
    return detect.parse_run_kind(kind, text, path)
