"""Check functions, one module per model; importing a module registers its checks
(`@check("HR…")`).

`load(model)` imports only the modules that judge `model`, so the run gate of
`hardrun run` never pays for the Dockerfile checks; `load()` imports them all.
"""
from __future__ import annotations

import importlib

from ...errors import RuleError

MODULES = {"build": ("build", "build_practices"), "run": ("run", "policy", "seccomp_profile"),
           "image": ("image",)}


_LOADED: set = set()
REGISTERED: dict = {}    # rule id -> check function (audit/rules.py pairs them with the rule files)


def check(rule_id: str):
    """Register the check function of rule `rule_id`."""
    def register(fn):
        if rule_id in REGISTERED:
            raise RuleError(f"two checks registered for {rule_id}")
        REGISTERED[rule_id] = fn
        return fn
    return register


def load(model: str | None = None) -> None:
    if model in _LOADED:
        return
    names = MODULES[model] if model else tuple(n for group in MODULES.values() for n in group)
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    _LOADED.add(model)
