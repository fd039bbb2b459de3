"""Detection and dispatch for the run-config front ends (compose, Kubernetes, OCI,
docker run lines in scripts/CI/Markdown, hardrun run configs).

The audit engine walks whole repositories, so detection must be cheap and sure:
a detector sees the file name and, only if it asks, the first 4 KiB (`Peek.head`,
read once). It claims a file only when it clearly is its kind; a random `*.yaml`
is left alone. Detectors run in DETECTORS order; the first answer wins.

To add a kind: write `detect_<kind>(name, peek) -> kind | None`, put it in
DETECTORS, and name its parser in PARSERS as "module:function" (imported lazily).
"""
from __future__ import annotations

import fnmatch
import os
import re
from typing import Callable

RUN_KINDS = ("compose", "kubernetes", "docker-run", "oci", "hardrun")
PEEK_BYTES = 4096

COMPOSE_PATTERNS = ("compose.yaml", "compose.yml", "compose.*.yaml", "compose.*.yml",
                    "docker-compose.yaml", "docker-compose.yml", "docker-compose*.yaml",
                    "docker-compose*.yml", "docker-compose*.yaml.dist", "docker-compose*.yml.dist")
YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)
# CI files hold `services:` too, in their own sense: never compose.
NOT_COMPOSE_NAMES = {".gitlab-ci.yml", ".gitlab-ci.yaml", ".travis.yml", "bitbucket-pipelines.yml",
                     ".drone.yml", "action.yml", "action.yaml", "serverless.yml", "serverless.yaml"}

_TOP_SERVICES = re.compile(r"^services:[ \t]*(?:#.*)?$", re.MULTILINE)
_SERVICE_FIELD = re.compile(r"^[ \t]+(?:image|build|extends):", re.MULTILINE)
_TOP_API_VERSION = re.compile(r"^(?:apiVersion:[ \t]*\S|\s*\"apiVersion\"\s*:)", re.MULTILINE)
_TOP_KIND = re.compile(r"^(?:kind:[ \t]*\S|\s*\"kind\"\s*:)", re.MULTILINE)
# The version as a string value (a JSON schema has `"ociVersion": {…}`), and a key only
# a config has (a runtime's state.json has ociVersion too, but no process/root/mounts).
_OCI_VERSION = re.compile(r"\"ociVersion\"\s*:\s*\"")
_OCI_CONFIG_KEY = re.compile(r"\"(?:process|root|mounts|linux)\"\s*:\s*[\[{]")


_COMPOSE_NAME = None      # set below, once any_of exists


class Peek:
    """A file's first PEEK_BYTES as text, read at most once (or given by the caller)."""

    def __init__(self, path: str, head: str | None):
        self.path = path
        self._head = head

    @property
    def head(self) -> str:
        if self._head is None:
            from ..userfiles import read_head
            self._head = read_head(self.path, PEEK_BYTES).decode("utf-8", errors="replace")
        return self._head


def any_of(patterns) -> re.Pattern:
    """One regex matching a name that any of the fnmatch `patterns` matches (case-sensitive):
    every file of a walked tree is tested, and one match is cheaper than one per pattern."""
    return re.compile("|".join(fnmatch.translate(pattern) for pattern in patterns))


def is_compose_name(name: str) -> bool:
    return _COMPOSE_NAME.match(name) is not None


_COMPOSE_NAME = any_of(COMPOSE_PATTERNS)


def detect_compose_name(name: str, peek: Peek) -> str | None:
    return "compose" if is_compose_name(name) else None


def detect_hardrun(name: str, peek: Peek) -> str | None:
    """hardrun run configs: `apiVersion: hardrun/v1` and `kind: Run`, whatever the name."""
    if not name.endswith(YAML_SUFFIXES):
        return None
    from .hardrun_config import looks_like_run_config
    return "hardrun" if looks_like_run_config(peek.head) else None


def detect_kubernetes(name: str, peek: Peek) -> str | None:
    if not name.endswith(YAML_SUFFIXES + JSON_SUFFIXES):
        return None
    head = peek.head
    if "{{" in head and not name.endswith(JSON_SUFFIXES):
        return None   # a Helm/Go template, not YAML until rendered
    if _TOP_API_VERSION.search(head) and _TOP_KIND.search(head):
        return "kubernetes"
    return None


def detect_compose_content(name: str, peek: Peek) -> str | None:
    """Other names (docker-stack.yml, app.yaml…) holding a top-level `services:` mapping."""
    if not name.endswith(YAML_SUFFIXES) or name in NOT_COMPOSE_NAMES:
        return None
    head = peek.head
    match = _TOP_SERVICES.search(head)
    if match is None:
        return None
    following = head[match.end():].lstrip("\r\n")
    if following.lstrip(" \t").startswith("-"):
        return None   # `services:` as a list (GitLab CI, …)
    return "compose" if _SERVICE_FIELD.search(head, match.end()) else None


def detect_oci(name: str, peek: Peek) -> str | None:
    if not name.endswith(JSON_SUFFIXES):
        return None
    head = peek.head
    return "oci" if _OCI_VERSION.search(head) and _OCI_CONFIG_KEY.search(head) else None


Detector = Callable[[str, Peek], "str | None"]
# Order matters: names first, then content. `docker-run` (scripts, Makefiles, CI YAML,
# Markdown) is asked last, by detect_run_kind. A hardrun run config says apiVersion and
# kind too, so it is recognised before Kubernetes.
DETECTORS: list[Detector] = [detect_compose_name, detect_hardrun, detect_kubernetes,
                             detect_compose_content, detect_oci]

PARSERS: dict[str, str] = {
    "compose": "hardrun.frontends.compose:parse_compose",
    "kubernetes": "hardrun.frontends.kubernetes:parse_kubernetes",
    "oci": "hardrun.frontends.oci:parse_oci",
    "hardrun": "hardrun.frontends.hardrun_config:parse_run_config",
    "docker-run": "hardrun.frontends.docker_run:parse",
}


def detect_run_kind(path: str, head: str | None) -> str | None:
    """The run-config kind of the file at `path` (head: its first 4 KiB if already read)."""
    name = os.path.basename(path)
    peek = Peek(path, head)
    for detector in DETECTORS:
        kind = detector(name, peek)
        if kind is not None:
            return kind
    return detect_docker_run(path, peek._head)


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
    """RunSpecs of `text` read as `kind`."""
    target = PARSERS.get(kind)
    if target is None:
        from ..errors import UsageError
        raise UsageError(f"no front end for kind {kind!r}")
    import importlib
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)(text, path)
