"""`hardrun export --to validating-admission-policy|kyverno`: a policy's Kubernetes
controls as admission objects, so that a cluster refuses at admission what `hardrun
audit --policy` refuses in CI.

Every rule the policy gates on (enabled, at or above its fail-on) that judges Kubernetes
becomes one control: a CEL expression over the pod spec of whatever holds one (Pod,
Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, PodTemplate, Job,
CronJob), written to say what the rule's check says, container settings overriding the
pod's and the pod level judged on its own. The same expressions go into a
ValidatingAdmissionPolicy (+ its Binding, validationActions Deny) and into a Kyverno
ClusterPolicy (one `validate.cel` rule per control). A gating rule with no admission
control here is an error naming it: nothing is silently dropped.

Exemptions: one with no scope drops its rules' controls; one scoped by `services` to whole
objects (`Deployment/web *`, `Job/report-*`) becomes a match exclusion (in the CEL for the
ValidatingAdmissionPolicy, `exclude` for Kyverno). One scoped to containers (`images`, or
`services` naming a container: `app`, `Deployment/web container app`) leaves the containers
it covers out of the controls of rules judged container by container, in the CEL of both.
A `files` scope is an error (an object at admission comes from no file), as is a container
scope on a rule that also judges pod-level settings once per object (PER_CONTAINER, POD_WIDE).
"""
from __future__ import annotations

import fnmatch
import re

from ..audit.checks.run import RUNTIME_SOCKETS, SENSITIVE_HOST_PATHS
from ..audit.images import _HUB_ALIASES
from ..errors import UsageError
from ..spec.defaults import DANGEROUS_CAPABILITIES, SENSITIVE_PORTS
from .model import Policy

ADMISSION_TARGETS = ("validating-admission-policy", "kyverno")

# (API group, version, resources, kinds) of what holds a pod spec (frontends/kubernetes.py).
RESOURCES = (
    ("", "v1", ("pods", "replicationcontrollers", "podtemplates"), ("Pod", "ReplicationController", "PodTemplate")),
    ("apps", "v1", ("deployments", "replicasets", "statefulsets", "daemonsets"),
     ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")),
    ("batch", "v1", ("jobs", "cronjobs"), ("Job", "CronJob")),
)
KINDS = tuple(kind for _, _, _, kinds in RESOURCES for kind in kinds)

# Every volume source of the core API (Volume): an object-typed field cannot be iterated
# in Kubernetes CEL, so a volume's type is told by which of these it has.
VOLUME_TYPES = (
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "configMap", "csi",
    "downwardAPI", "emptyDir", "ephemeral", "fc", "flexVolume", "flocker", "gcePersistentDisk",
    "gitRepo", "glusterfs", "hostPath", "image", "iscsi", "nfs", "persistentVolumeClaim",
    "photonPersistentDisk", "portworxVolume", "projected", "quobyte", "rbd", "scaleIO", "secret",
    "storageos", "vsphereVolume")
SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t")
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"

# Where each kind keeps its pod template (frontends/kubernetes.py POD_SPEC_PATHS).
_TEMPLATE = {"Pod": "object", "CronJob": "object.spec.jobTemplate.spec.template",
             "PodTemplate": "object.template"}
_DEFAULT_TEMPLATE = "object.spec.template"


def _by_kind(render) -> str:
    """A CEL choice by object.kind of `render(template expression)`."""
    text = render(_DEFAULT_TEMPLATE)
    for kind, template in reversed(list(_TEMPLATE.items())):
        text = f"object.kind == '{kind}' ? {render(template)} : {text}"
    return text


def _annotations(template: str) -> str:
    return (f"(has({template}.metadata) && has({template}.metadata.annotations) ? "
            f"{template}.metadata.annotations : {{}})")


# The CEL variables every expression uses (evaluated in this order).
VARIABLES = (
    ("podSpec", _by_kind(lambda template: f"{template}.spec")),
    ("containers", "variables.podSpec.containers + (has(variables.podSpec.initContainers) ? "
                   "variables.podSpec.initContainers : []) + (has(variables.podSpec.ephemeralContainers) ? "
                   "variables.podSpec.ephemeralContainers : [])"),
    ("annotations", _by_kind(_annotations)),
)


class Control:
    """One rule as an admission check: a CEL expression true when the object passes."""

    def __init__(self, rule_id: str, title: str, expression: str):
        self.rule_id = rule_id
        self.title = title
        self.expression = expression


def _list(values) -> str:
    return "[" + ", ".join(_quote(v) for v in values) + "]"


def _quote(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _has(base: str, *path: str) -> str:
    """`has(base.a) && has(base.a.b) …` for a field path below `base`."""
    tests, current = [], base
    for part in path:
        current += "." + part
        tests.append(f"has({current})")
    return " && ".join(tests)


def _field(base: str, *path: str) -> str:
    return base + "".join("." + part for part in path)


POD_SC = "variables.podSpec.securityContext"


def _pod_has(*path: str) -> str:
    return _has("variables.podSpec", "securityContext", *path)


def _container_has(*path: str) -> str:
    return _has("c", "securityContext", *path)


def _effective(path: tuple, test: str) -> str:
    """For container `c`: the setting at securityContext.PATH (the container's, else the
    pod's) satisfies `test` (a format with {v})."""
    own = _field("c.securityContext", *path)
    pod = _field(POD_SC, *path)
    return (f"(({_container_has(*path)}) ? {test.format(v=own)} : "
            f"(({_pod_has(*path)}) && {test.format(v=pod)}))")


def _unset_everywhere(path: tuple) -> str:
    return f"!({_container_has(*path)}) && !({_pod_has(*path)})"


def _all_containers(test: str) -> str:
    return f"variables.containers.all(c, {test})"


def _no_container(test: str) -> str:
    return f"!variables.containers.exists(c, {test})"


def _volumes_all(test: str) -> str:
    return f"!has(variables.podSpec.volumes) || variables.podSpec.volumes.all(v, {test})"


# ----------------------------------------------------------------- the controls

def _privileged(policy: Policy) -> str:
    return (_no_container(f"{_container_has('privileged')} && c.securityContext.privileged == true")
            + f" && !({_pod_has('windowsOptions', 'hostProcess')} && "
              f"{POD_SC}.windowsOptions.hostProcess == true) && "
            + _no_container(f"{_container_has('windowsOptions', 'hostProcess')} && "
                            "c.securityContext.windowsOptions.hostProcess == true"))


def _host_namespaces(policy: Policy) -> str:
    return " && ".join(f"!(has(variables.podSpec.{key}) && variables.podSpec.{key} == true)"
                       for key in ("hostNetwork", "hostPID", "hostIPC"))


def _seccomp_annotation(container: str) -> str:
    """The seccomp annotation in force for container `c` (the container's, else the pod's), or ''."""
    key = f"'{SECCOMP_CONTAINER_ANNOTATION}' + {container}.name"
    return (f"({key} in variables.annotations ? variables.annotations[{key}] : "
            f"'{SECCOMP_POD_ANNOTATION}' in variables.annotations ? "
            f"variables.annotations['{SECCOMP_POD_ANNOTATION}'] : '')")


def _seccomp_unconfined(policy: Policy) -> str:
    path = ("seccompProfile", "type")
    return (f"!({_pod_has(*path)} && {POD_SC}.seccompProfile.type == 'Unconfined') && "
            + _no_container(f"{_effective(path, '{v} == ' + _quote('Unconfined'))} || "
                            f"({_unset_everywhere(('seccompProfile',))} && "
                            f"{_seccomp_annotation('c')} == 'unconfined')"))


def _apparmor_selinux_off(policy: Policy) -> str:
    path = ("appArmorProfile", "type")
    annotation = f"'{APPARMOR_ANNOTATION}' + c.name"
    return (f"!({_pod_has(*path)} && {POD_SC}.appArmorProfile.type == 'Unconfined') && "
            + _no_container(
                f"{_effective(path, '{v} == ' + _quote('Unconfined'))} || "
                f"({_unset_everywhere(('appArmorProfile',))} && {annotation} in variables.annotations && "
                f"variables.annotations[{annotation}] == 'unconfined') || "
                + _effective(("seLinuxOptions", "type"), "{v} in " + _list(("spc_t", "unconfined_t")))))


def _capabilities(policy: Policy) -> str:
    allowed = sorted(set(policy.allowed_capabilities or ()))
    spelled = allowed + [f"CAP_{name}" for name in allowed]
    return _all_containers(f"!({_container_has('capabilities', 'add')}) || "
                           f"c.securityContext.capabilities.add.all(x, x in {_list(spelled)})")


def _covered(path: str, base: str) -> str:
    base = base.rstrip("/") or "/"
    if base == "/":
        return "true"
    return f"({path} == {_quote(base)} || {path}.startsWith({_quote(base + '/')}))"


def _host_mounts(policy: Policy) -> str:
    entries = policy.allowed_host_mounts or ()
    path = "v.hostPath.path"
    covered = " || ".join(_covered(path, entry.path) for entry in entries) or "false"
    writable = " || ".join(_covered(path, entry.path) for entry in entries if not entry.read_only) or "false"
    read_only_mounts = _all_containers("!has(c.volumeMounts) || c.volumeMounts.all(m, m.name != v.name || "
                                       "(has(m.readOnly) && m.readOnly == true))")
    return _volumes_all(f"!has(v.hostPath) || (({covered}) && (({writable}) || {read_only_mounts}))")


def _host_ports(policy: Policy) -> str:
    allowed = sorted(set(policy.allowed_host_ports or ()))
    return _all_containers("!has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0 || "
                           f"p.hostPort in {_list(allowed)})")


def _selinux_allowed(base: str) -> str:
    return (f"(!has({base}.type) || {base}.type in {_list(SELINUX_TYPES)}) && "
            f"(!has({base}.user) || {base}.user == '') && (!has({base}.role) || {base}.role == '')")


def _selinux(policy: Policy) -> str:
    return (f"(!({_pod_has('seLinuxOptions')}) || ({_selinux_allowed(POD_SC + '.seLinuxOptions')})) && "
            + _all_containers(f"!({_container_has('seLinuxOptions')}) || "
                              f"({_selinux_allowed('c.securityContext.seLinuxOptions')})"))


def _proc_mount(policy: Policy) -> str:
    return _no_container(f"{_container_has('procMount')} && c.securityContext.procMount == 'Unmasked'")


def _sysctls(policy: Policy) -> str:
    allowed = sorted(set(policy.allowed_sysctls or ()))
    return f"!({_pod_has('sysctls')}) || {POD_SC}.sysctls.all(s, s.name in {_list(allowed)})"


def _volume_types(policy: Policy) -> str:
    allowed = set(policy.allowed_volume_types or ())
    forbidden = [name for name in VOLUME_TYPES if name not in allowed]
    if not forbidden:
        return "true"
    return _volumes_all("!(" + " || ".join(f"has(v.{name})" for name in forbidden) + ")")


def _escalation(policy: Policy) -> str:
    # Kubernetes lets a privileged or CAP_SYS_ADMIN container escalate whatever it says.
    return _all_containers(
        f"{_container_has('allowPrivilegeEscalation')} && c.securityContext.allowPrivilegeEscalation == false"
        f" && !({_container_has('privileged')} && c.securityContext.privileged == true)"
        f" && !({_container_has('capabilities', 'add')} && "
        "c.securityContext.capabilities.add.exists(x, x in ['SYS_ADMIN', 'CAP_SYS_ADMIN']))")


def _drop_all(policy: Policy) -> str:
    return _all_containers(f"{_container_has('capabilities', 'drop')} && "
                           "c.securityContext.capabilities.drop.exists(x, x in ['ALL', 'all'])")


def _run_as_root(policy: Policy) -> str:
    user = ("runAsUser",)
    non_root = ("runAsNonRoot",)
    return _all_containers(f"!{_effective(user, '{v} == 0')} && "
                           f"(!({_unset_everywhere(user)}) || {_effective(non_root, '{v} == true')})")


def _non_root(policy: Policy) -> str:
    return (f"!({_pod_has('runAsUser')} && {POD_SC}.runAsUser == 0) && "
            f"!({_pod_has('runAsNonRoot')} && {POD_SC}.runAsNonRoot == false) && "
            + _all_containers(f"!{_effective(('runAsUser',), '{v} == 0')} && "
                              f"{_effective(('runAsNonRoot',), '{v} == true')}"))


def _seccomp_allowed(policy: Policy) -> tuple[str, str]:
    """CEL tests of a seccompProfile `{v}` and of a seccomp annotation `{a}` against the
    profiles the policy allows (RuntimeDefault or Localhost when it names none)."""
    allowed = policy.runtime.seccomp.allowed
    if allowed is None:
        allowed = ("runtime/default", "localhost/*")
    fields, annotations = [], []
    for pattern in allowed:
        lowered = pattern.lower()
        if lowered in ("runtime/default", "default", "docker/default", "runtimedefault", "builtin"):
            fields.append("{v}.type == 'RuntimeDefault'")
            annotations.append("{a} in ['runtime/default', 'docker/default']")
        elif lowered.startswith("localhost/"):
            regex = _regex(pattern[len("localhost/"):])
            fields.append("({v}.type == 'Localhost' && has({v}.localhostProfile) && "
                          f"{{v}}.localhostProfile.matches({_quote(regex)}))")
            annotations.append(f"({{a}}.startsWith('localhost/') && {{a}}.substring(10).matches({_quote(regex)}))")
        else:
            raise UsageError(f"runtime.seccomp.allowed: {pattern!r} cannot be exported to admission "
                             "(expected runtime/default or localhost/NAME patterns)")
    return "(" + " || ".join(fields) + ")", "(" + " || ".join(annotations) + ")"


def _seccomp_required(policy: Policy) -> str:
    field_test, annotation_test = _seccomp_allowed(policy)
    own = field_test.format(v="c.securityContext.seccompProfile")
    pod = field_test.format(v=POD_SC + ".seccompProfile")
    annotation = annotation_test.format(a=_seccomp_annotation("c"))
    return (f"!({_pod_has('seccompProfile', 'type')} && {POD_SC}.seccompProfile.type == 'Unconfined') && "
            + _all_containers(f"({_container_has('seccompProfile')}) ? {own} : ({_pod_has('seccompProfile')}) ? "
                              f"{pod} : {annotation}"))


# ----------------------------------------------------------------- host paths, ports, images

# Raw hostPath paths: the front end normalises them (posixpath.normpath) before judging; CEL
# cannot, so the patterns accept what normalises to the same path: repeated slashes and `.`
# components (`..` never reaches admission: the API server refuses it in hostPath and subPath).
_SEP = "/(?:\\.?/)*"
_END = "(?:/\\.?)*$"
_SOCKET_FILE = "(?:^|/)(?:" + "|".join(re.escape(name) for name in RUNTIME_SOCKETS) + ")/*$"
_SOCKET_DIRS = ("^" + _SEP + "(?:var" + _SEP + ")?run(?:" + _SEP + "(?:docker|containerd|crio|podman))?" + _END
                + "|^" + _SEP + "(?:var" + _SEP + ")?run" + _SEP + "user" + _SEP + "[0-9]+(?:" + _SEP
                + "(?:docker|podman))?" + _END)
_SENSITIVE = "|".join(["^/(?:\\.?/)*\\.?$"] + [
    "^" + _SEP + _SEP.join(re.escape(part) for part in prefix.strip("/").split("/")) + "(?:/.*)?$"
    for prefix in SENSITIVE_HOST_PATHS])


def _host_path_mounts(test: str) -> str:
    """Every volumeMount `m` of a hostPath volume `v` in every container `c` satisfies
    `test`, which may use `src`: the host path it mounts (subPath appended, as the front end does)."""
    path = "(has(v.hostPath.path) ? v.hostPath.path : '')"
    source = f"(has(m.subPath) && m.subPath != '' ? {path} + '/' + m.subPath : {path})"
    return _all_containers(
        "!has(c.volumeMounts) || c.volumeMounts.all(m, !has(variables.podSpec.volumes) || "
        f"variables.podSpec.volumes.all(v, v.name != m.name || !has(v.hostPath) || "
        f"({test.replace('src', source)})))")


def _is_socket(source: str) -> str:
    return (f"{source} != '' && ({source}.matches({_quote(_SOCKET_FILE)}) || "
            f"(!{source}.contains('$') && {source}.matches({_quote(_SOCKET_DIRS)})))")


def _socket_mount(policy: Policy) -> str:
    return _host_path_mounts("!(" + _is_socket("src") + ")")


def _sensitive_mount(policy: Policy) -> str:
    return _host_path_mounts(f"({_is_socket('src')}) || src.contains('$') || "
                             f"!src.matches({_quote(_SENSITIVE)})")


def _writable_host_mount(policy: Policy) -> str:
    return _host_path_mounts("has(m.readOnly) && m.readOnly == true")


def _dangerous_capabilities(policy: Policy) -> str:
    regex = "(?i)^(?:cap_)?(?:" + "|".join(DANGEROUS_CAPABILITIES) + ")$"
    return _all_containers(f"!({_container_has('capabilities', 'add')}) || "
                           f"!c.securityContext.capabilities.add.exists(x, x.matches({_quote(regex)}))")


def _read_only_root(policy: Policy) -> str:
    return _all_containers(f"{_container_has('readOnlyRootFilesystem')} && "
                           "c.securityContext.readOnlyRootFilesystem == true")


def _host_ports_of(test: str) -> str:
    """Every port `p` a container publishes on the node (any hostPort) satisfies `test`."""
    return _all_containers(f"!has(c.ports) || c.ports.all(p, !has(p.hostPort) || ({test}))")


_ALL_INTERFACES = "^\\s*(?:0\\.0\\.0\\.0|::|\\[::\\])?\\s*$"


def _bound_to_an_address(policy: Policy) -> str:
    return _host_ports_of(f"has(p.hostIP) && !string(p.hostIP).matches({_quote(_ALL_INTERFACES)})")


def _no_admin_ports(policy: Policy) -> str:
    ports = _list(sorted(SENSITIVE_PORTS))
    return _host_ports_of(f"!(has(p.containerPort) && p.containerPort in {ports}) && !(p.hostPort in {ports})")


def _quantity_below_one() -> str:
    """A regex of the Kubernetes quantities (`parse_quantity`) whose whole part is 0: no limit."""
    number = "\\+?0*(?:\\.[0-9]*)?"           # a non-negative number below 1
    below = [number, "\\+?0*\\.?0*(?:[eE][+-]?[0-9]+|[a-zA-Z]*)"]
    below += [f"\\+?0*[0-9]{{0,{digits}}}(?:\\.[0-9]*)?{unit}" for unit, digits in (("n", 9), ("u", 6), ("m", 3))]
    below += [f"\\+?0*[0-9]{{0,{k}}}(?:\\.[0-9]*)?[eE]-0*{k}" for k in range(1, 19)]
    below += ["\\+?[0-9]*(?:\\.[0-9]*)?[eE]-0*(?:19|[2-9][0-9]|[1-9][0-9]{2,})", "-.*"]
    return "^\\s*(?:" + "|".join(below) + ")\\s*$"


def _memory_limit(policy: Policy) -> str:
    return _all_containers("has(c.resources) && has(c.resources.limits) && 'memory' in c.resources.limits && "
                           f"!string(c.resources.limits['memory']).matches({_quote(_quantity_below_one())})")


# An image reference as hardrun.audit.images parses it: a digest pins it; otherwise a tag
# follows the last `:` after the last `/`. References that do not parse (blank, with inner
# whitespace or empty components) are judged by nothing, nor is a tag that is a variable.
_UNPARSED = "^\\s*$|\\S\\s+\\S|^\\s*/|/\\s*$|//|:\\s*$"
_TAG_UNKNOWN = "\\$[^/]*$"


def _judged_image(test: str) -> str:
    """Every container's image that can be judged (parses, no digest, tag not a variable)
    satisfies `test` (on `c.image`)."""
    return _all_containers(f"!has(c.image) || c.image.contains('@') || c.image.matches({_quote(_UNPARSED)}) "
                           f"|| c.image.matches({_quote(_TAG_UNKNOWN)}) || ({test})")


# Registries (hardrun.audit.images.is_trusted): an image's name is `registry/repository`,
# lower-cased; Docker Hub's when the first component names no registry (no `.` or `:`, not
# `localhost`, no capital), `library/NAME` for a one-component name there.
_HUB = "(?i:" + "|".join(re.escape(alias) for alias in _HUB_ALIASES) + ")"
_AFTER_REPOSITORY = "(?::[^/@]*)?(?:@[^/@]*)?\\s*$"       # the tag and the digest


def _any_case(text: str) -> str:
    return "(?i:" + re.escape(text) + ")"


def _below(repository: str, first_as_written: bool = False) -> str:
    """Repositories equal to `repository` or below it (any case; the first component as
    written when it decides the registry), then the tag and digest."""
    first, slash, rest = repository.partition("/")
    head = re.escape(first) if first_as_written else _any_case(first)
    if slash:
        head += "/" + _any_case(rest)
    return head + "(?:/[^@]*|" + _AFTER_REPOSITORY + ")"


def _hub_below(repository: str, written: bool) -> str | None:
    """The same on Docker Hub, where a one-component name is `library/NAME`. `written`: the
    registry is written, else the first component must not name one (None: it cannot)."""
    first, slash, rest = repository.partition("/")
    if not repository:
        return ".*$" if written else "[^/]*$|[^/.:A-Z]+/.*$"
    if not written and ("." in first or ":" in first or first == "localhost"):
        return None
    below = _below(repository, first_as_written=not written)
    if first == "library":
        if not slash:
            return f"(?:[^/]*$|{below})"
        if "/" not in rest:
            return f"(?:{_any_case(rest)}{_AFTER_REPOSITORY}|{below})"
        return below
    if slash:
        return below
    return (_any_case(first) if written else re.escape(first)) + "/.*$"   # `acme:1` alone is library/acme


def _trusted(image: str, entries) -> str:
    """CEL: `image` (a string expression) comes from one of the `entries` registries."""
    start = "^\\s*"
    tests = []
    for entry in entries:
        first, _, repository = entry.strip().rstrip("/").lower().partition("/")
        if first in _HUB_ALIASES:
            below = _hub_below(repository, True)
            assert below is not None, "only an implicit registry can have nothing below it"
            written = start + _HUB + "/(?:" + below + ")"
            tests.append(f"{image}.matches({_quote(written)})")
            implicit = _hub_below(repository, False)
            if implicit is not None:
                tests.append(f"(!{image}.matches({_quote(start + 'localhost/')}) && "
                             f"{image}.matches({_quote(start + '(?:' + implicit + ')')}))")
        elif "." in first or ":" in first or first == "localhost":
            tail = _below(repository) if repository else ".*$"
            tests.append(f"{image}.matches({_quote(start + _any_case(first) + '/(?:' + tail + ')')})")
    return "(" + (" || ".join(tests) or "false") + ")"


# References the registry check skips: a registry that is a variable, a malformed digest.
_REGISTRY_UNKNOWN = "^\\s*[^/]*\\$[^/]*/|^\\s*[^/:@]*\\$[^/]*$"
_GOOD_DIGEST = "@(?:[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}|[^@]*\\$[^@]*)\\s*$"


def _from_trusted_registry(policy: Policy) -> str:
    """For container `c`: its image comes from a registry the policy trusts, or cannot be judged."""
    return (f"!has(c.image) || c.image.matches({_quote(_UNPARSED)}) || "
            f"(c.image.contains('@') && !c.image.matches({_quote(_GOOD_DIGEST)})) || "
            f"c.image.matches({_quote(_REGISTRY_UNKNOWN)}) || {_trusted('c.image', policy.trusted_registries)}")


def _pinned_tag(policy: Policy) -> str:
    tagged = _judged_image("c.image.matches(':[^/:]+\\\\s*$') && !c.image.matches(':latest\\\\s*$')")
    if policy.trusted_registries is None:
        return tagged
    return f"{tagged} && {_all_containers(_from_trusted_registry(policy))}"


def _digest(policy: Policy) -> str:
    return _judged_image("!c.image.matches(':[^/:]+\\\\s*$')")


def _private_user_namespace(policy: Policy) -> str:
    return "!(has(variables.podSpec.hostUsers) && variables.podSpec.hostUsers == true)"


# rule id -> (what the CEL checks, builder)
CONTROLS = {
    "HR2001": ("no privileged or Windows HostProcess container", _privileged),
    "HR2002": ("no container runtime socket is mounted (hostPath)", _socket_mount),
    "HR2003": ("no dangerous capability is added", _dangerous_capabilities),
    "HR2004": ("every container drops ALL capabilities", _drop_all),
    "HR2005": ("allowPrivilegeEscalation is false in every container", _escalation),
    "HR2006": ("readOnlyRootFilesystem is true in every container", _read_only_root),
    "HR2007": ("no host network, PID or IPC namespace", _host_namespaces),
    "HR2008": ("seccomp is not Unconfined", _seccomp_unconfined),
    "HR2009": ("AppArmor and SELinux confinement stay on", _apparmor_selinux_off),
    "HR2010": ("no sensitive host path is mounted (hostPath)", _sensitive_mount),
    "HR2011": ("every hostPath volume is mounted readOnly", _writable_host_mount),
    "HR2012": ("no container runs as root", _run_as_root),
    "HR2013": ("every hostPort is bound to an address (hostIP), not all interfaces", _bound_to_an_address),
    "HR2014": ("every container has a memory limit", _memory_limit),
    "HR2017": ("every image has a version tag other than latest (and a trusted registry)", _pinned_tag),
    "HR2018": ("every image is pinned by digest", _digest),
    "HR2019": ("no remote-administration port is published (hostPort)", _no_admin_ports),
    "HR3001": ("only the allowed capabilities are added", _capabilities),
    "HR3002": ("only the allowed host paths are mounted (hostPath volumes)", _host_mounts),
    "HR3003": ("only the allowed host ports are bound", _host_ports),
    "HR3004": ("SELinux type is allowed, user and role unset", _selinux),
    "HR3005": ("/proc is mounted masked (procMount Default)", _proc_mount),
    "HR3006": ("only the allowed sysctls are set", _sysctls),
    "HR3007": ("only the allowed volume types are used", _volume_types),
    "HR3008": ("runAsNonRoot is true and no user is 0", _non_root),
    "HR3009": ("a seccomp profile the policy allows is set", _seccomp_required),
    "HR3010": ("the pod does not share the host's user namespace (hostUsers)", _private_user_namespace),
}


# Rules that judge the file, not the object: nothing of them reaches admission, and they
# loosen nothing there. HR0001 reports `# hardrun ignore=` comments that suppress nothing (an
# object at admission has no comments, so no finding is suppressed either); HR0002 reports
# the policy's own expired exemptions (expired ones are not exported).
NOT_AT_ADMISSION = ("HR0001", "HR0002")

# Gating rules refused with a reason: their check is one CEL cannot say exactly.
NO_CONTROL = {
    "HR2016": "its secret heuristics (words of camelCase and snake_case names, literal values "
              "beside expansions, token patterns with exceptions, passwords in URLs) cannot be "
              "written in CEL without enforcing less or more than `hardrun audit`",
}


# ----------------------------------------------------------------- the policy's controls

def gating_rules(policy: Policy) -> list:
    """The rules `hardrun audit --policy` fails a Kubernetes manifest on, in id order."""
    from ..audit.findings import severity_rank
    from ..audit.rules import all_rules
    threshold = severity_rank(policy.fail_on)
    return [rule for rule in all_rules().values()
            if "kubernetes" in rule.applies_to and rule.id not in NOT_AT_ADMISSION
            and (severity := policy.rule_severity(rule)) and severity_rank(severity) >= threshold]


class Exclusion:
    """Objects a policy exemption takes out of some rules: (kind glob, name glob) pairs."""

    def __init__(self, rule_ids: frozenset, objects: tuple, reason: str):
        self.rule_ids = rule_ids
        self.objects = objects
        self.reason = reason

    def cel(self) -> str:
        return " || ".join(
            f"object.kind.matches({_quote(_regex(kind))}) && object.metadata.name.matches({_quote(_regex(name))})"
            for kind, name in self.objects)


def _regex(glob: str) -> str:
    return "^" + re.escape(glob).replace(r"\*", ".*").replace(r"\?", ".") + "$"


# How container-scoped exemptions (by image, or by a `services` glob naming containers) reach
# each control. The audit judges these rules container by container, so exempt containers are
# left out of the control's `variables.containers`.
PER_CONTAINER = frozenset({"HR2002", "HR2003", "HR2004", "HR2005", "HR2006", "HR2010", "HR2011", "HR2012",
                           "HR2013", "HR2014", "HR2017", "HR2018", "HR2019", "HR3001", "HR3003", "HR3005"})
# These judge a pod-wide setting, found again in every container: the object passes when
# every container is exempt.
POD_WIDE = frozenset({"HR2007", "HR3006", "HR3007", "HR3010"})
# The others also judge pod-level settings on their own, found once per object (not per
# container): an exemption scoped to containers cannot say which of them it covers.

# A container's subject as the Kubernetes front end writes it: `Kind/name container app`.
_CONTAINER_WORD = ("(has(variables.podSpec.initContainers) && c in variables.podSpec.initContainers ? "
                   "'initContainer' : c in variables.podSpec.containers ? 'container' : 'ephemeralContainer')")
_SUBJECT = f"object.kind + '/' + object.metadata.name + ' ' + {_CONTAINER_WORD} + ' ' + c.name"


class ContainerExemption:
    """Containers a policy exemption takes out of some rules, as a CEL condition on `c`."""

    def __init__(self, exemption, rule_ids: frozenset):
        self.rule_ids = rule_ids
        for glob in exemption.services + exemption.images:
            if "[" in glob:
                raise UsageError(f"{exemption.source}:{exemption.line}: exemption glob {glob!r} cannot be "
                                 "exported to admission (use * and ? only)")
        tests = []
        if exemption.services:
            tests.append(" || ".join(f"({_SUBJECT}).matches({_quote(_regex(glob))}) || "
                                     f"c.name.matches({_quote(_regex(glob))})" for glob in exemption.services))
        if exemption.images:
            tests.append("has(c.image) && c.image != '' && ("
                         + " || ".join(f"c.image.matches({_quote(_regex(glob))})" for glob in exemption.images)
                         + ")")
        self.condition = " && ".join(f"({test})" for test in tests)


def _exempting_containers(rule_id: str, expression: str, exemptions: list[ContainerExemption]) -> str:
    """`expression` with the containers `exemptions` cover left out (see PER_CONTAINER, POD_WIDE)."""
    conditions = [exemption.condition for exemption in exemptions if rule_id in exemption.rule_ids]
    if not conditions:
        return expression
    exempt = " || ".join(f"({condition})" for condition in conditions)
    if rule_id in POD_WIDE:
        return f"variables.containers.all(c, {exempt}) || ({expression})"
    return expression.replace("variables.containers", f"variables.containers.filter(c, !({exempt}))")


def controls(policy: Policy) -> tuple[list[Control], list[Exclusion]]:
    """The policy's admission controls and the exclusions its exemptions make."""
    import datetime
    rules = gating_rules(policy)
    missing = [rule.id for rule in rules if rule.id not in CONTROLS]
    if missing:
        why = "".join(f"; {rule_id}: {NO_CONTROL[rule_id]}" for rule_id in missing if rule_id in NO_CONTROL)
        raise UsageError(f"policy {policy.name}: rules {', '.join(missing)} have no admission control{why}; "
                         "switch them off in the policy to export it (rules: {ID: off})")
    today = datetime.date.today()
    exemptions = [e for e in policy.exemptions if not e.expired(today)]
    exempt_everywhere: set[str] = set()
    exclusions: list[Exclusion] = []
    by_container: list[ContainerExemption] = []
    for exemption in exemptions:
        covered = frozenset(r.id for r in rules if exemption.rule in (None, r.id)
                            and exemption.practice in (None, r.practice))
        if not covered:
            continue
        if exemption.files:
            # A file is gone by admission: the object cannot tell which file it came from.
            raise UsageError(f"{exemption.source}:{exemption.line}: an exemption scoped by files cannot be "
                             "exported to admission (an object there has no file; scope it by object: "
                             "services: [\"Deployment/web *\"], or by image)")
        if not exemption.services and not exemption.images:
            exempt_everywhere |= covered
        elif not exemption.images and all(_names_objects(glob) for glob in exemption.services):
            exclusions.append(Exclusion(covered, tuple(_object_of(glob)
                                                       for glob in exemption.services), exemption.reason))
        else:
            pod_level = sorted(covered - PER_CONTAINER - POD_WIDE)
            if pod_level:
                raise UsageError(f"{exemption.source}:{exemption.line}: an exemption scoped to containers (by "
                                 f"image or container) cannot be exported for {', '.join(pod_level)}: these "
                                 "rules also judge pod-level settings once per object; scope it by object "
                                 "(services: [\"Deployment/web *\"]) or by rule")
            by_container.append(ContainerExemption(exemption, covered))
    out = [Control(rule.id, CONTROLS[rule.id][0],
                   _exempting_containers(rule.id, CONTROLS[rule.id][1](policy), by_container))
           for rule in rules if rule.id not in exempt_everywhere]
    return out, exclusions


_OBJECT_GLOB = re.compile(r"([A-Za-z*?]+)/([a-z0-9*?.-]+?)( ?\*)")


def _names_objects(glob: str) -> bool:
    """A `services` glob that scopes whole objects (`Kind/name *`), not containers."""
    match = _OBJECT_GLOB.fullmatch(glob)
    return match is not None and any(fnmatch.fnmatchcase(kind, match.group(1)) for kind in KINDS)


def _object_of(glob: str) -> tuple[str, str]:
    """(kind glob, name glob) of an exemption's `services` glob that scopes whole objects:
    `Kind/name *` (every container of the object) or `Kind/name*`."""
    match = _OBJECT_GLOB.fullmatch(glob)
    assert match is not None, "_names_objects(glob) chose it"
    name = match.group(2) + ("*" if match.group(3) == "*" else "")
    return match.group(1), name


# ----------------------------------------------------------------- the objects

def _object_name(policy: Policy) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", policy.name.rsplit("/", 1)[-1].lower().rsplit(".", 1)[0]).strip("-")
    return f"hardrun-{name or 'policy'}"


def _expression(control: Control, exclusions: list[Exclusion]) -> str:
    excluded = [exclusion.cel() for exclusion in exclusions if control.rule_id in exclusion.rule_ids]
    if not excluded:
        return control.expression
    return f"({' || '.join(excluded)}) || ({control.expression})"


def validating_admission_policy(policy: Policy) -> list[dict]:
    """A ValidatingAdmissionPolicy and its ValidatingAdmissionPolicyBinding."""
    checks, exclusions = controls(policy)
    name = _object_name(policy)
    validations = [{"expression": _expression(control, exclusions),
                    "message": f"{control.rule_id}: {control.title} (hardrun policy {policy.name})",
                    "reason": "Forbidden"} for control in checks]
    spec = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [
            {"apiGroups": [group], "apiVersions": [version], "operations": ["CREATE", "UPDATE"],
             "resources": list(resources)} for group, version, resources, _ in RESOURCES]},
        "variables": [{"name": var, "expression": expression} for var, expression in VARIABLES],
        "validations": validations,
    }
    annotations = {"hardrun.dev/policy": policy.name}
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": name, "annotations": annotations}, "spec": spec},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": name, "annotations": annotations},
         "spec": {"policyName": name, "validationActions": ["Deny"]}},
    ]


def kyverno_policy(policy: Policy) -> dict:
    """A Kyverno ClusterPolicy: one rule per control, its CEL in `validate.cel`."""
    checks, exclusions = controls(policy)
    rules = []
    for control in checks:
        rule = {
            "name": f"{control.rule_id.lower()}",
            "match": {"any": [{"resources": {"kinds": list(KINDS), "operations": ["CREATE", "UPDATE"]}}]},
            "validate": {"cel": {
                "variables": [{"name": var, "expression": expression} for var, expression in VARIABLES],
                "expressions": [{"expression": control.expression,
                                 "message": f"{control.rule_id}: {control.title} (hardrun policy {policy.name})"}],
            }},
        }
        excluded = [{"resources": {"kinds": _kinds(kind), "names": [name]}}
                    for exclusion in exclusions if control.rule_id in exclusion.rule_ids
                    for kind, name in exclusion.objects]
        if excluded:
            rule["exclude"] = {"any": excluded}
        rules.append(rule)
    return {
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": _object_name(policy), "annotations": {
            "hardrun.dev/policy": policy.name,
            # the rules name every kind that holds a pod: no rules generated for controllers
            "pod-policies.kyverno.io/autogen-controllers": "none"}},
        "spec": {"validationFailureAction": "Enforce", "background": True, "rules": rules},
    }


def _kinds(glob: str) -> list[str]:
    return [kind for kind in KINDS if fnmatch.fnmatchcase(kind, glob)]


def export_admission(policy: Policy, target: str) -> str:
    import yaml
    if target == "validating-admission-policy":
        return yaml.safe_dump_all(validating_admission_policy(policy), sort_keys=False, width=1_000_000)
    return yaml.safe_dump(kyverno_policy(policy), sort_keys=False, width=1_000_000)
