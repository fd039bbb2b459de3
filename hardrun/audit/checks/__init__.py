"""Check functions, one module per model; importing a module registers its checks.

`load(model)` imports only the modules that judge `model`, so the run gate of
`hardrun run` never pays for the Dockerfile checks; `load()` imports them all.
"""
from __future__ import annotations

import importlib

MODULES = {"build": ("build",), "run": ("run", "policy")}


_LOADED: set = set()


def load(model: str | None = None) -> None:
    if model in _LOADED:
        return
    names = MODULES[model] if model else tuple(n for group in MODULES.values() for n in group)
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    _LOADED.add(model)
