"""Policies: what "hardened enough" means, written once as YAML and used by both gates.

`load_policy(name_or_file)` reads and validates a policy (following `extends:`),
`find_policy(path)` discovers the one that applies to an audited path,
`audit_options(policy)` turns it into the engine's AuditOptions, and
`evaluate_runspec(spec, policy)` / `gate_run(spec, policy)` judge one container.

Names are imported on first use: `hardrun run` only needs `discover` on its fast path.
"""
from __future__ import annotations

_EXPORTS = {
    "builtin_policies": "load", "load_policy": "load", "load_policy_text": "load",
    "load_found_policy": "load", "named_or_found_policy": "load",
    "find_policy": "discover",
    "audit_options": "evaluate", "evaluate_runspec": "evaluate", "gate_run": "evaluate",
    "expired_exemption_findings": "evaluate", "GATE_REFUSED_EXIT": "evaluate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # __import__, not importlib.import_module: `importlib` (and `warnings`) cost `hardrun
    # run` and `hardrun audit` 0.4 ms
    return getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
