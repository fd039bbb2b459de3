"""The click CLI. Each command lives in its own module, imported only when invoked,
so `hardrun audit` never imports the runtime and `hardrun --version` imports neither.

This package itself imports nothing heavy: `hardrun run` (hardrun/cli/run.py) is on a
start-up path measured in milliseconds and must not pay for click. The click group
lives in hardrun/cli/group.py and is reached as `hardrun.cli.cli`.
"""
from __future__ import annotations

# command name -> (module, attribute, one-line help shown by `hardrun --help`)
COMMANDS = {
    # the `hardrun` entry point runs `hardrun run` without click (hardrun/__main__.py);
    # this click form serves shell completion and callers of the click group
    "run": ("hardrun.cli.run_command", "run", "Run a command in a container hardened by default."),
    "audit": ("hardrun.cli.audit", "audit", "Audit Dockerfiles and run configs for container-security practice."),
    "rules": ("hardrun.cli.rules", "rules", "List every audit rule."),
    "explain": ("hardrun.cli.rules", "explain", "Print the documentation of one rule."),
    "policy": ("hardrun.cli.policy", "policy", "List, show and validate policies."),
    "export": ("hardrun.cli.export", "export",
               "Export a policy or run config as docker/compose/Kubernetes/OCI settings."),
    "inspect": ("hardrun.cli.inspect", "inspect",
                "Report how a running process is confined (caps, seccomp, namespaces)."),
    "gc": ("hardrun.cli.gc", "gc", "Remove what containers of killed hardrun processes left behind."),
    "pull": ("hardrun.cli.images", "pull", "Copy an image from a registry or an archive into the store."),
    "images": ("hardrun.cli.images", "images", "List the images in the store."),
    "rmi": ("hardrun.cli.images", "rmi", "Remove images from the store."),
    "image": ("hardrun.cli.images", "image", "Image commands: inspect."),
    "load": ("hardrun.cli.images", "load", "Load the images of a docker or OCI archive into the store."),
    "save": ("hardrun.cli.images", "save", "Write a stored image as an OCI archive."),
}

EPILOG = """\b
Examples:
  hardrun audit .                          audit every Dockerfile below .
  hardrun audit -f sarif -o hardrun.sarif .   SARIF for code scanning
  hardrun audit --fail-on error Dockerfile only errors fail the build
  hardrun explain HR1001                   why a rule matters and how to fix it
  hardrun run --rootfs ./rootfs -- sh      a hardened container (no caps, read-only root…)
  hardrun audit --policy restricted k8s/    gate manifests by the restricted PSS level
  hardrun policy show                      the policy in force here, after extends
\b
Shell completion (bash; zsh and fish likewise):
  eval "$(_HARDRUN_COMPLETE=bash_source hardrun)"
"""


def __getattr__(name):
    if name in ("cli", "LazyGroup"):
        from . import group
        return getattr(group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
