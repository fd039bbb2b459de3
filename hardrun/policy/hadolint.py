"""`hardrun policy import .hadolint.yaml`: a hadolint configuration as a hardrun policy.

hadolint's DL rules map to hardrun's rules by DL_RULES (docs/hadolint.md is the table
for people); ShellCheck codes (SC2086) are hardrun rule ids as they are. What maps:

- `ignored`: a hardrun rule is switched off when every DL rule it covers is ignored (it
  stays on, with a comment, when only some are); an SC code is switched off;
- `override`: a severity per rule (`style` is `info`; the highest wins when several DL
  rules of one hardrun rule get different ones);
- `trustedRegistries`: `trusted-registries`; `failure-threshold`: `fail-on`.
Rules hadolint has on by default and hardrun's `default` policy has off (version pinning,
HR1021) are switched on, as hadolint would report them. Whatever has no equivalent is
written as a comment in the policy, so the user sees what was left behind.
"""
from __future__ import annotations

from ..parsing.marked import located_error, parse_marked, validate_located

# hadolint rule -> the hardrun rule that covers it (docs/hadolint.md gives the reasons
# for the DL rules that are not here).
DL_RULES = {
    "DL3000": "HR1025", "DL3002": "HR1001", "DL3003": "HR1026", "DL3004": "HR1012",
    "DL3006": "HR1007", "DL3007": "HR1007", "DL3008": "HR1021", "DL3009": "HR1017",
    "DL3012": "HR1027", "DL3013": "HR1021", "DL3014": "HR1022", "DL3015": "HR1017",
    "DL3016": "HR1021", "DL3018": "HR1021", "DL3019": "HR1017", "DL3020": "HR1011",
    "DL3022": "HR1030", "DL3023": "HR1030", "DL3025": "HR1029", "DL3026": "HR1007",
    "DL3027": "HR1024", "DL3028": "HR1021", "DL3030": "HR1022", "DL3032": "HR1017",
    "DL3033": "HR1021", "DL3034": "HR1022", "DL3035": "HR1023", "DL3036": "HR1017",
    "DL3037": "HR1021", "DL3038": "HR1022", "DL3040": "HR1017", "DL3041": "HR1021",
    "DL3042": "HR1017", "DL3045": "HR1034", "DL3046": "HR1031", "DL3057": "HR1018",
    "DL3059": "HR1016", "DL3060": "HR1017", "DL3062": "HR1021", "DL3064": "HR1003",
    "DL3067": "HR1035", "DL4000": "HR1028", "DL4003": "HR1027", "DL4004": "HR1027",
    "DL4006": "HR1032",
}
# Rules off in hardrun's `default` policy that hadolint reports by default.
_ON_IN_HADOLINT = ("HR1021",)
_SEVERITY = {"error": "error", "warning": "warning", "info": "info", "style": "info"}
_RANK = ("info", "warning", "error")

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "failure-threshold": {"enum": ["error", "warning", "info", "style", "ignore", "none"]},
        "ignored": {"type": "array", "items": {"type": "string", "pattern": "^(DL|SC)[0-9]{4}$"}},
        "override": {
            "type": "object", "additionalProperties": False,
            "properties": {level: {"type": "array", "items": {"type": "string",
                                                              "pattern": "^(DL|SC)[0-9]{4}$"}}
                           for level in ("error", "warning", "info", "style")},
        },
        "trustedRegistries": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "label-schema": {"type": "object"},
        "strict-labels": {"type": "boolean"},
        "disable-ignore-pragma": {"type": "boolean"},
        "no-fail": {"type": "boolean"},
        "no-color": {"type": "boolean"},
        "verbose": {"type": "boolean"},
        "format": {"type": "string"},
    },
}


def import_hadolint(text: str, path: str) -> str:
    """The hardrun policy (YAML text, with comments) equivalent to the hadolint
    configuration `text` read from `path`. ParseError naming the line for bad input."""
    document = parse_marked(text, path, "empty hadolint configuration: expected a mapping")
    if not isinstance(document.data, dict):
        raise located_error(path, document, (), "expected a mapping of hadolint settings")
    validate_located(SCHEMA, document, path)
    data = document.data
    notes: list[str] = []
    rules = _switches(data.get("ignored") or [], notes)
    for level, ids in (data.get("override") or {}).items():
        for rule_id, severity in _overrides(ids, _SEVERITY[level], notes):
            if rules.get(rule_id) != "off" and _higher(severity, rules.get(rule_id)):
                rules[rule_id] = severity
    for rule_id in _ON_IN_HADOLINT:
        rules.setdefault(rule_id, "on")
    return _render(path, data, rules, notes)


def _switches(ignored, notes: list) -> dict:
    """rule id -> "off" for the ignored codes (a hardrun rule only when all its DLs are)."""
    rules = {}
    for code in dict.fromkeys(ignored):
        if code.startswith("SC"):
            rules[code] = "off"
        elif code not in DL_RULES:
            notes.append(f"ignored {code}: hardrun has no rule for it (see docs/hadolint.md)")
    for rule_id in dict.fromkeys(DL_RULES[code] for code in ignored if code in DL_RULES):
        covered = sorted(code for code, target in DL_RULES.items() if target == rule_id)
        kept = [code for code in covered if code not in ignored]
        if kept:
            notes.append(f"{rule_id} stays on: it covers {', '.join(covered)}, and "
                         f"{', '.join(kept)} {'is' if len(kept) == 1 else 'are'} not ignored")
        else:
            rules[rule_id] = "off"
    return rules


def _overrides(ids, severity: str, notes: list):
    for code in ids:
        if code.startswith("SC"):
            yield code, severity
        elif code in DL_RULES:
            yield DL_RULES[code], severity
        else:
            notes.append(f"override of {code}: hardrun has no rule for it")


def _higher(severity: str, current: str | None) -> bool:
    return current not in _RANK or _RANK.index(severity) > _RANK.index(current)


def _render(path: str, data: dict, rules: dict, notes: list) -> str:
    import json
    lines = [f"# Imported from {path} by `hardrun policy import`: hadolint's settings as a",
             "# hardrun policy (docs/hadolint.md maps hadolint's rules to hardrun's).",
             "version: 1",
             f"description: {json.dumps('imported from ' + path)}",
             "extends: default"]
    threshold = data.get("failure-threshold")
    if threshold in _SEVERITY:
        lines.append(f"fail-on: {_SEVERITY[threshold]}")
    elif threshold is not None or data.get("no-fail"):
        notes.append("never failing (failure-threshold: none/ignore, no-fail) is not a policy "
                     "setting: run `hardrun audit --no-fail`")
    if rules:
        lines.append("rules:")
        lines.extend(f"  {rule_id}: {switch}" for rule_id, switch in sorted(rules.items()))
    registries = data.get("trustedRegistries")
    if registries:
        lines.append("trusted-registries:")
        lines.extend(f"  - {json.dumps(registry)}" for registry in registries)
    for key in ("label-schema", "strict-labels", "disable-ignore-pragma", "format", "no-color",
                "verbose"):
        if key in data:
            notes.append(f"{key}: no hardrun equivalent (label rules are not covered; "
                         "formats and colours are `hardrun audit` options)")
    if notes:
        lines.append("# Not carried over:")
        lines.extend(f"#   {note}" for note in notes)
    return "\n".join(lines) + "\n"

