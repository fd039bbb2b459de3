"""Policies: what "hardened enough" means, written once as YAML and used by both gates.

`load_policy(name_or_file)` reads and validates a policy (following `extends:`),
`find_policy(path)` discovers the one that applies to an audited path,
`audit_options(policy)` turns it into the engine's AuditOptions, and
`evaluate_runspec(spec, policy)` / `gate_run(spec, policy)` judge one container.
"""
from __future__ import annotations

from .load import BUILTIN_NAMES, builtin_policies, find_policy, load_policy, load_policy_text
from .evaluate import (GATE_REFUSED_EXIT, audit_options, evaluate_runspec, gate_run,
                       expired_exemption_findings)

__all__ = ["BUILTIN_NAMES", "builtin_policies", "find_policy", "load_policy", "load_policy_text",
           "audit_options", "evaluate_runspec", "gate_run", "expired_exemption_findings",
           "GATE_REFUSED_EXIT"]
