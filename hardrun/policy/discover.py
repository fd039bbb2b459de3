"""Which policy applies where: `.hardrun.yaml` at the repository root, else `default`.

Only `os` here: `hardrun run` asks this on every start (its start-up time is measured).
"""
from __future__ import annotations

import os

POLICY_FILE = ".hardrun.yaml"
DEFAULT = "default"


def find_policy(audited) -> str:
    """The policy for `audited`: `.hardrun.yaml` at its repository root, else `default`.

    Walks up from `audited` (a file or directory) to the first directory that contains
    `.git`; a `.hardrun.yaml` there is the policy. Outside a repository: `default`.
    """
    directory = os.path.realpath(os.fspath(audited))
    if not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    while True:
        if os.path.exists(os.path.join(directory, ".git")):
            candidate = os.path.join(directory, POLICY_FILE)
            return candidate if os.path.isfile(candidate) else DEFAULT
        parent = os.path.dirname(directory)
        if parent == directory:
            return DEFAULT
        directory = parent
