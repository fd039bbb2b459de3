"""Detectors of the front ends (compose, Kubernetes, OCI, docker run lines in
scripts/CI/Markdown, hardrun run configs, Dockerfiles by name).

The audit engine walks whole repositories, so detection must be cheap and sure:
a detector sees the file name and, only if it asks, the first 4 KiB (`Peek.head`,
read once). It claims a file only when it clearly is its kind; a random `*.yaml`
is left alone. Which detector is asked when, and for which kind, is written in the
front-end registry (registry.py); `detect_kind` asks them in that order.
"""
from __future__ import annotations

import os

from . import is_dockerfile_name
from ..parsing.patterns import MULTILINE, glob_regex, lazy

TYPE_CHECKING = False  # `re` itself is not imported: the patterns come from the cache
if TYPE_CHECKING:
    import re

PEEK_BYTES = 4096

COMPOSE_PATTERNS = ("compose.yaml", "compose.yml", "compose.*.yaml", "compose.*.yml",
                    "docker-compose.yaml", "docker-compose.yml", "docker-compose*.yaml",
                    "docker-compose*.yml", "docker-compose*.yaml.dist", "docker-compose*.yml.dist")
YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)
SCRIPT_SUFFIXES = (".sh", ".bash", ".zsh")
MAKEFILE_NAMES = ("Makefile", "makefile", "GNUmakefile")
MARKDOWN_SUFFIXES = (".md", ".markdown")
# CI files hold `services:` too, in their own sense: never compose.
NOT_COMPOSE_NAMES = {".gitlab-ci.yml", ".gitlab-ci.yaml", ".travis.yml", "bitbucket-pipelines.yml",
                     ".drone.yml", "action.yml", "action.yaml", "serverless.yml", "serverless.yaml"}

# `\r?$`: a file with Windows line endings is the same file.
_TOP_SERVICES = lazy(r"^services:[ \t]*(?:#.*)?\r?$", MULTILINE)
_SERVICE_FIELD = lazy(r"^[ \t]+(?:image|build|extends):", MULTILINE)
# A Compose v1 file: services at the top level, each a mapping of compose keys.
_TOP_KEY = lazy(r"^([A-Za-z0-9_.-]+):[ \t]*(.*?)\r?$")
# The keys of a compose service (the Compose Specification's and v1's own).
COMPOSE_SERVICE_KEYS = frozenset("""
    annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command
    configs container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period
    cpu_rt_runtime cpu_shares cpus cpuset credential_spec depends_on deploy develop
    device_cgroup_rules devices dns dns_opt dns_search dockerfile domainname entrypoint
    env_file environment expose extends external_links extra_hosts gpus group_add
    healthcheck hostname image init ipc isolation labels links log_driver log_opt logging
    mac_address mem_limit mem_reservation mem_swappiness memswap_limit net network_mode
    networks oom_kill_disable oom_score_adj pid pids_limit platform ports post_start
    pre_stop privileged profiles pull_policy read_only restart runtime scale secrets
    security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt sysctls
    tmpfs tty ulimits use_api_socket user userns_mode uts volume_driver volumes
    volumes_from working_dir""".split())
_TOP_API_VERSION = lazy(r"^(?:apiVersion:[ \t]*\S|\s*\"apiVersion\"\s*:)", MULTILINE)
_TOP_KIND = lazy(r"^(?:kind:[ \t]*\S|\s*\"kind\"\s*:)", MULTILINE)
# The version as a string value (a JSON schema has `"ociVersion": {…}`), and a key only
# a config has (a runtime's state.json has ociVersion too, but no process/root/mounts).
_OCI_VERSION = lazy(r"\"ociVersion\"\s*:\s*\"")
_OCI_CONFIG_KEY = lazy(r"\"(?:process|root|mounts|linux)\"\s*:\s*[\[{]")
_SHEBANG = lazy(r"#![ \t]*\S*/(?:env[ \t]+(?:-\S+[ \t]+)*)?(?:sh|bash|zsh|dash|ksh|ash)\b")


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
    return glob_regex(tuple(patterns))


_COMPOSE_NAME = any_of(COMPOSE_PATTERNS)


def is_compose_name(name: str) -> bool:
    return _COMPOSE_NAME.match(name) is not None


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
    """Other names (docker-stack.yml, app.yaml…) holding a top-level `services:` mapping,
    or a Compose v1 file (its services at the top level)."""
    if not name.endswith(YAML_SUFFIXES) or name in NOT_COMPOSE_NAMES:
        return None
    head = peek.head
    match = _TOP_SERVICES.search(head)
    if match is None:
        return "compose" if _is_compose_v1(head) else None
    following = head[match.end():].lstrip("\r\n")
    if following.lstrip(" \t").startswith("-"):
        return None   # `services:` as a list (GitLab CI, …)
    return "compose" if _SERVICE_FIELD.search(head, match.end()) else None


def _is_compose_v1(head: str) -> bool:
    """Whether every top-level key (but `x-…` extensions) is a service: a mapping whose
    own keys are all compose service keys, `image` or `build` among them. (A v1 file
    has nothing else at the top level: `version`, `volumes`… came with `services:`.)"""
    services = 0
    service: set | None = None    # the keys of the service being read
    child_indent = 0
    lines = head.splitlines()
    if len(head) >= PEEK_BYTES and not head.endswith("\n"):
        lines = lines[:-1]        # cut at the peek's end
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line[0].isspace():
            if service is not None and not service & {"image", "build"}:
                return False
            match = _TOP_KEY.match(line)
            if match is None:
                return False
            key, value = match.groups()
            if key.startswith("x-"):
                service = None
            elif value and not value.startswith("#"):
                return False      # a scalar at the top level: not a v1 file
            else:
                service, services, child_indent = set(), services + 1, 0
            continue
        if service is None:
            continue
        indent = len(line) - len(line.lstrip(" \t"))
        if not child_indent:
            child_indent = indent
        if indent == child_indent and not stripped.startswith("<<:"):   # a YAML merge key
            child = _TOP_KEY.match(stripped)
            if child is None or child.group(1) not in COMPOSE_SERVICE_KEYS:
                return False
            service.add(child.group(1))
    if service is not None and not service & {"image", "build"}:
        return False
    return services > 0


def detect_oci(name: str, peek: Peek) -> str | None:
    if not name.endswith(JSON_SUFFIXES):
        return None
    head = peek.head
    return "oci" if _OCI_VERSION.search(head) and _OCI_CONFIG_KEY.search(head) else None


def detect_dockerfile_name(name: str, peek: Peek) -> str | None:
    return "dockerfile" if is_dockerfile_name(name) else None


def _is_ci_yaml(path: str) -> bool:
    normalized = path.replace(os.sep, "/")
    name = os.path.basename(normalized)
    if name.endswith(YAML_SUFFIXES):
        if "/.github/workflows/" in "/" + normalized:
            return True
        return name in (".gitlab-ci.yml", ".gitlab-ci.yaml") or name.endswith(".gitlab-ci.yml")
    return False


def detect_docker_run(name: str, peek: Peek) -> str | None:
    """`docker-run` when the file may hold docker run lines (scripts, Makefiles, Markdown,
    CI YAML), judging by name, then (only for names without an extension) the 4 KiB head
    for a shell shebang. Whether it really holds any is `docker_run.claims`'s question,
    asked once the file is read."""
    if name.endswith(SCRIPT_SUFFIXES) or name in MAKEFILE_NAMES or name.endswith(".mk") \
            or name.endswith(MARKDOWN_SUFFIXES) or _is_ci_yaml(peek.path):
        return "docker-run"
    if decided_by_name(name):
        return None
    return "docker-run" if _SHEBANG.match(peek.head) else None


def decided_by_name(name: str) -> bool:
    """Whether the name alone settles detection (only names without an extension may be
    scripts known by their shebang)."""
    return "." in name.lstrip(".") or name in MAKEFILE_NAMES


def sniff_dockerfile(text: str) -> bool:
    """Whether the first instruction of `text` is FROM or ARG."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.split(None, 1)[0].upper() in ("FROM", "ARG")
    return False


def detect_kind(path: str, head: str | None) -> str | None:
    """The kind of the file at `path` (head: its first 4 KiB if already read), or None."""
    from .registry import detectors
    name = os.path.basename(path)
    peek = Peek(path, head)
    for kind, detector in detectors():
        if detector(name, peek):
            return kind
    return None
