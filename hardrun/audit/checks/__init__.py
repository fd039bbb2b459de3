"""Check functions, one module per model; importing a module registers its checks
(`@check("HR…")`).

`load(model, kind)` imports only the modules that judge `model` or `kind`, as the
generated index (index.py) lists them: the run gate of `hardrun run` never pays for the
Dockerfile checks, nor a Dockerfile audit for the run or image checks; `load()` imports
them all.
"""
from __future__ import annotations

from ...errors import RuleError

# Every check module; index.py says which of them judge which kind.
MODULES = ("build", "build_practices", "image", "policy", "run", "seccomp_profile")

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


def load(model: str | None = None, kind: str | None = None) -> None:
    """Import the check modules that judge `kind`, else those of every kind of `model`,
    else all of them. A kind the index does not know yet (a front end added since it was
    generated) gets its model's modules."""
    if (model, kind) in _LOADED:
        return
    from .index import KINDS, MODELS
    kinds = (kind,) if kind in KINDS else MODELS.get(model) if model is not None else None
    if kinds:
        names = sorted({name for each in kinds for name in KINDS[each][0]})
    else:
        names = list(MODULES)
    for name in names:
        __import__(f"{__name__}.{name}")    # not importlib's: it (with `warnings`) costs 0.4 ms
    _LOADED.add((model, kind))
