"""The practice vocabulary a policy may name: the fixed list every rule chooses from,
plus any practice a rule file introduces."""
from __future__ import annotations

BUILD_PRACTICES = (
    "root-user", "copy-all", "secret", "untrusted-base", "unpinned-digest", "add-remote",
    "add-local", "curl-pipe-shell", "sudo", "tls-disabled", "expose-sensitive", "many-layers",
    "package-cache", "no-healthcheck",
)
RUN_PRACTICES = (
    "privileged", "socket-mount", "cap-add-dangerous", "no-cap-drop", "no-nnp", "writable-root",
    "host-namespace", "seccomp-unconfined", "apparmor-unconfined", "sensitive-host-mount",
    "rw-volume", "run-as-root", "publish-all-interfaces", "no-resource-limits", "device-access",
)


def known_practices() -> set[str]:
    from ..audit.rules import practices
    return set(BUILD_PRACTICES) | set(RUN_PRACTICES) | practices()
