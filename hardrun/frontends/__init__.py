"""Front ends: each turns one kind of file into models (a Dockerfile or RunSpecs).

The kinds, their models, detectors and parsers are listed once, in registry.py.
`detect_kind(path, head)` decides what a file is from its name and first bytes;
`parse(kind, text, path)` returns the models. Imports are lazy so that auditing
Dockerfiles never pays for the YAML front ends, and the reverse.
"""
from __future__ import annotations

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
    from .detect import detect_kind as detect
    return detect(path, head)


def sniff_kind(text: str) -> str | None:
    """The kind of a file no detector recognised, judged by its whole text, or None:
    asked only of files named on the command line."""
    from .registry import FRONT_ENDS, resolve
    for front_end in FRONT_ENDS:
        if front_end.sniff is not None and resolve(front_end.sniff)(text):
            return front_end.kind
    return None


def claims(kind: str, text: str, path: str) -> bool:
    """Whether a file found while walking a tree holds something of `kind` worth reporting."""
    from .registry import front_end, resolve
    reference = front_end(kind).claims
    return reference is None or resolve(reference)(text, path)


def parse(kind: str, text: str, path: str):
    """Models of `text`: a Dockerfile for a BUILD kind, a list of RunSpecs for a RUN kind."""
    from .registry import front_end, resolve
    return resolve(front_end(kind).parse)(text, path)
