"""Fixes for compose files and Kubernetes manifests, as text edits at YAML node marks.

Only what is missing is added: a setting written with the opposite value (`read_only:
false`, `allowPrivilegeEscalation: true`, a `no-new-privileges:false`) was chosen by
someone and is left for them to change.
"""
from __future__ import annotations

from .edits import Edit, YamlText, child, is_block_mapping, scalars

LOCALHOST = "127.0.0.1"
# The long-syntax options of a short compose volume (`src:dst:OPTIONS`).
_VOLUME_OPTIONS = {"rw", "ro", "z", "Z", "cached", "delegated", "consistent", "nocopy"}

# rule -> what a compose service gets
COMPOSE_WANTED: dict[str, dict] = {
    "HR2004": {"cap_drop": ["ALL"]},
    "HR2005": {"security_opt": ["no-new-privileges:true"]},
    "HR2006": {"read_only": True},
}
# rule -> what a Kubernetes container gets
KUBERNETES_WANTED: dict[str, dict] = {
    "HR2004": {"securityContext": {"capabilities": {"drop": ["ALL"]}}},
    "HR2005": {"securityContext": {"allowPrivilegeEscalation": False}},
    "HR2006": {"securityContext": {"readOnlyRootFilesystem": True}},
    "HR2012": {"securityContext": {"runAsNonRoot": True}},
    "HR3008": {"securityContext": {"runAsNonRoot": True}},
    "HR3009": {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
}
COMPOSE_RULES = frozenset(COMPOSE_WANTED) | {"HR2011", "HR2013"}
KUBERNETES_RULES = frozenset(KUBERNETES_WANTED)


def compose_edits(document: YamlText, findings) -> tuple[list[Edit], list]:
    """(edits, the findings they fix) for a compose file."""
    services = _compose_services(document)
    edits, fixed = [], []
    by_service: dict[str, list] = {}
    for finding in findings:
        by_service.setdefault(finding.subject, []).append(finding)
    for name, service_findings in by_service.items():
        service = child(services, name) if services is not None else None
        if service is None or not is_block_mapping(service):
            continue
        wanted: dict = {}
        for finding in service_findings:
            made = _compose_fix(document, service, finding, wanted)
            if made is not None:
                edits += made
                fixed.append(finding)
        edits += document.ensure_keys(service, wanted)
    return edits, fixed


def _compose_services(document: YamlText):
    if len(document.documents) != 1 or not is_block_mapping(document.documents[0]):
        return None
    top = document.documents[0]
    services = child(top, "services")
    if services is None:
        return top                     # Compose v1: services at the top level
    return services if is_block_mapping(services) else None


def _compose_fix(document: YamlText, service, finding, wanted: dict) -> list[Edit] | None:
    """Edits for one finding (settings to add go into `wanted`); None: not fixable."""
    rule = finding.rule
    if rule in COMPOSE_WANTED:
        key = next(iter(COMPOSE_WANTED[rule]))
        present = child(service, key)
        if rule == "HR2006" and present is not None:
            return None                # read_only: false, written on purpose
        if rule == "HR2005" and present is not None and (
                not _is_list(present) or any("no-new-privileges" in v for v in scalars(present))):
            return None
        if rule == "HR2004" and present is not None and not _is_list(present):
            return None
        wanted.update(COMPOSE_WANTED[rule])
        return []
    if rule == "HR2011":
        return _item_fix(document, child(service, "volumes"), finding.line, _read_only_volume,
                         {"read_only": True})
    if rule == "HR2013":
        return _item_fix(document, child(service, "ports"), finding.line, _localhost_port,
                         {"host_ip": LOCALHOST})
    return None


def _item_fix(document: YamlText, items, line: int | None, short_form, long_form: dict):
    """The edits for the list items written on `line` (a flow list may hold several): a
    short form rewritten by `short_form(text) -> text | None`, or `long_form` added to a
    long form. None when there is none to make."""
    if not _is_list(items) or line is None:
        return None
    edits = []
    for item in items.value:
        if item.start_mark.line + 1 != line:
            continue
        if is_block_mapping(item):
            if any(child(item, key) is not None for key in long_form):
                return None
            edits += document.ensure_keys(item, long_form)
        elif hasattr(item, "style") and isinstance(item.value, str):
            new = short_form(item.value)
            if new is not None and _writable(item, new):
                edits.append(_rewrite_scalar(document, item, new))
    return edits or None


def _read_only_volume(value: str) -> str | None:
    """`./src:/dst` -> `./src:/dst:ro`; `:rw` -> `:ro`; `:z` -> `:ro,z`."""
    parts = value.split(":")
    if len(parts) >= 3 and set(parts[-1].split(",")) <= _VOLUME_OPTIONS:
        options = [o for o in parts[-1].split(",") if o not in ("rw", "ro")]
        return ":".join(parts[:-1]) + ":" + ",".join(["ro"] + options)
    if len(parts) == 2:
        return value + ":ro"
    return None


def _localhost_port(value: str) -> str | None:
    """`8080:80` -> `127.0.0.1:8080:80`; `80` -> `127.0.0.1::80` (a random host port)."""
    spec = value.split("/", 1)[0]
    colons = spec.count(":")
    if colons == 0:
        return f"{LOCALHOST}::{value}"
    if colons == 1:
        return f"{LOCALHOST}:{value}"
    return None


def _rewrite_scalar(document: YamlText, node, new: str) -> Edit:
    start, end = node.start_mark.index, node.end_mark.index
    quote = document.text[start] if node.style in ("'", '"') else ""
    return Edit(start, end, f"{quote}{new}{quote}")


def _writable(node, new: str) -> bool:
    """Whether `new` can be written in `node`'s style as it is (no escaping needed)."""
    if node.style == '"':
        return '"' not in new and "\\" not in new
    if node.style == "'":
        return "'" not in new
    if node.style is None:
        return not new.startswith(("-", "[", "{", "&", "*", "!", "|", ">", "%", "@", "`"))
    return False                       # a block scalar: not a mount or a port


def _is_list(node) -> bool:
    import yaml
    return isinstance(node, yaml.SequenceNode)


# ------------------------------------------------------------------------- Kubernetes

def kubernetes_edits(document: YamlText, findings) -> tuple[list[Edit], list]:
    """(edits, the findings they fix) for a Kubernetes manifest."""
    containers = dict(_containers(document))
    edits, fixed = [], []
    wanted_by_container: dict[str, dict] = {}
    for finding in findings:
        container = containers.get(finding.subject)
        if container is None or not _kubernetes_fixable(container, finding.rule):
            continue
        _merge(wanted_by_container.setdefault(finding.subject, {}), KUBERNETES_WANTED[finding.rule])
        fixed.append(finding)
    for subject, wanted in wanted_by_container.items():
        edits += document.ensure_keys(containers[subject][0], wanted)
    return edits, fixed


def _kubernetes_fixable(container, rule: str) -> bool:
    """Whether the container lacks the setting (rather than sets it the other way), and
    the setting may be added: Kubernetes refuses allowPrivilegeEscalation false on a
    privileged container, and runAsNonRoot where the pod or container sets a user."""
    node, pod_security = container
    security = child(node, "securityContext")
    if security is not None and not is_block_mapping(security):
        return False
    key = next(iter(KUBERNETES_WANTED[rule]["securityContext"]))
    if security is not None and child(security, key) is not None:
        return key == "capabilities" and is_block_mapping(child(security, key))
    if rule == "HR2005":
        return security is None or child(security, "privileged") is None
    if rule in ("HR2012", "HR3008"):
        return not any(s is not None and (child(s, "runAsUser") is not None or
                                          child(s, "runAsNonRoot") is not None)
                       for s in (security, pod_security))
    if rule == "HR3009":
        return pod_security is None or child(pod_security, "seccompProfile") is None
    return True


def _containers(document: YamlText):
    """(subject, (container node, the pod's securityContext node)) as the Kubernetes
    front end names them (`Deployment/web container app`)."""
    from ...frontends.kubernetes import CONTAINER_LISTS, POD_SPEC_PATHS
    for top in document.documents:
        for obj in _objects(top):
            kind = _scalar(child(obj, "kind"))
            if kind not in POD_SPEC_PATHS:
                continue
            metadata = child(obj, "metadata")
            name = (_scalar(child(metadata, "name")) or _scalar(child(metadata, "generateName"))
                    if _is_mapping(metadata) else None) or "<unnamed>"
            pod = obj
            for key in POD_SPEC_PATHS[kind]:
                pod = child(pod, key) if _is_mapping(pod) else None
            if not _is_mapping(pod):
                continue
            pod_security = child(pod, "securityContext")
            for key, word in CONTAINER_LISTS:
                listed = child(pod, key)
                for container in (listed.value if _is_list(listed) else ()):
                    if is_block_mapping(container):
                        cname = _scalar(child(container, "name")) or "<unnamed>"
                        yield f"{kind}/{name} {word} {cname}", (container, pod_security)


def _objects(node):
    """The object, or the items of a List."""
    if not _is_mapping(node):
        return
    items = child(node, "items")
    kind = _scalar(child(node, "kind")) or ""
    if kind.endswith("List") and _is_list(items):
        for item in items.value:
            yield from _objects(item)
    else:
        yield node


def _is_mapping(node) -> bool:
    import yaml
    return isinstance(node, yaml.MappingNode)


def _scalar(node) -> str | None:
    import yaml
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _merge(into: dict, more: dict) -> None:
    """`more` merged into `into`, nested mappings copied (the WANTED tables stay as they are)."""
    for key, value in more.items():
        if isinstance(value, dict):
            _merge(into.setdefault(key, {}), value)
        else:
            into[key] = value
