"""SARIF 2.1.0: one run, the rules that fired as reportingDescriptors, suppressed
findings kept with an `inSource` suppression, unreadable files as notifications."""
from __future__ import annotations

import json

from ... import __version__
from ..rules import describe

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def render_sarif(report) -> str:
    fired = sorted({f.rule for f in report.findings})
    index = {rule_id: i for i, rule_id in enumerate(fired)}
    run = {
        "tool": {"driver": {
            "name": "hardrun", "version": __version__, "semanticVersion": __version__,
            "informationUri": "https://github.com/hardrun/hardrun",
            "rules": [_descriptor(describe(rule_id)) for rule_id in fired],
        }},
        "artifacts": [{"location": {"uri": f.path}, "sourceLanguage": f.kind} for f in report.files],
        "results": [_result(f, index) for f in report.findings],
        "invocations": [_invocation(report)],
        "columnKind": "unicodeCodePoints",
    }
    document = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2) + "\n"


def _descriptor(rule) -> dict:
    descriptor = {
        "id": rule.id, "name": rule.practice,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.why},
        "help": {"text": rule.fix},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {"practice": rule.practice, "tags": ["security", rule.practice]},
    }
    if rule.references:
        descriptor["helpUri"] = rule.references[0]
    return descriptor


def _result(finding, index) -> dict:
    location: dict = {"physicalLocation": {"artifactLocation": {"uri": finding.path}}}
    if finding.line:
        location["physicalLocation"]["region"] = {"startLine": finding.line}
        if finding.column:
            location["physicalLocation"]["region"]["startColumn"] = finding.column
    if finding.subject:
        location["logicalLocations"] = [{"name": finding.subject}]
    if finding.image is not None:
        location["logicalLocations"] = _image_locations(finding.image)
    result = {
        "ruleId": finding.rule, "ruleIndex": index[finding.rule],
        "level": _LEVEL[finding.severity],
        "message": {"text": finding.message},
        "locations": [location],
        "properties": {"practice": finding.practice, "severity": finding.severity},
    }
    if finding.image is not None:
        result["properties"]["image"] = finding.image.as_json()
    if finding.baseline is not None:
        # An expired baseline entry accepts nothing: its finding is new again.
        result["baselineState"] = "unchanged" if finding.baselined else "new"
        result["partialFingerprints"] = {"hardrun/v1": finding.fingerprint}
    if finding.suppressed:
        # A policy exemption lives outside the audited file: SARIF's `external` kind.
        kind = "external" if finding.exempted_by_policy else "inSource"
        suppression = {"kind": kind, "status": "accepted"}
        if finding.suppression_reason:
            suppression["justification"] = finding.suppression_reason
        result["suppressions"] = [suppression]
    return result


def _image_locations(where) -> list:
    """An image finding's logical locations: the image (by digest), its layer, the path
    inside it, each nested in the one before (parentIndex)."""
    image = f"{where.image}@{where.digest}"
    locations = [{"name": where.image, "fullyQualifiedName": image, "kind": "module"}]
    if where.layer is not None:
        locations.append({"name": f"layer {where.layer}", "kind": "namespace", "parentIndex": 0,
                          "fullyQualifiedName": f"{image}/{where.layer_digest}"})
    if where.path is not None:
        locations.append({"name": where.path, "kind": "resource", "parentIndex": len(locations) - 1,
                          "fullyQualifiedName": f"{image}/{where.layer_digest}{where.path}"})
    return locations


def _invocation(report) -> dict:
    notifications = [{
        "level": "error", "message": {"text": error.message},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": error.path}}}],
    } for error in report.errors]
    return {"executionSuccessful": not report.errors,
            "toolExecutionNotifications": notifications}
