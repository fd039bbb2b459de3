"""Policy-scoped checks over RunSpecs (HR3xxx): off by default, switched on by the
policy settings that parameterise them (`allowed-capabilities`…) or by a policy naming
them. They implement the Kubernetes Pod Security Standards controls that the default
run rules do not cover, for every front end where the setting can occur."""
from __future__ import annotations

from ...spec.capabilities import normalize_capability
from ..findings import Hit
from . import check
from .run import pod_hit

_POD_LEVEL = "every container overrides it, but the pod level is checked on its own"

# SELinux types a container may run as under the Pod Security Standards (baseline).
PSS_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t",
                               "container_engine_t"})
ROOT_USERS = frozenset({"0", "root"})


def _policy(context):
    return context.options.policy


def _listing(items) -> str:
    items = [str(item) for item in items]
    return ", ".join(items) if items else "none"


@check("HR3001")
def capability_not_allowed(spec, context):
    policy = _policy(context)
    allowed = set(policy.allowed_capabilities or ()) if policy else set()
    for name in spec.cap_add:
        capability = normalize_capability(name)
        if capability not in allowed:
            yield Hit(spec.line_of("cap_add"),
                      f"capability {capability} is added; the policy allows adding only: "
                      f"{_listing(sorted(allowed))}")


@check("HR3002")
def host_mount_not_allowed(spec, context):
    policy = _policy(context)
    allowed = policy.allowed_host_mounts or () if policy else ()
    for index, mount in enumerate(spec.mounts):
        if mount.type != "bind" or mount.source is None:
            continue
        line = mount.line or spec.line_of(f"mount:{index}")
        covering = [entry for entry in allowed if entry.covers(mount.source)]
        if not covering:
            yield Hit(line, f"host path {mount.source} is mounted; the policy allows host mounts "
                            f"only of: {_listing(entry.path for entry in allowed)}")
        elif not mount.read_only and all(entry.read_only for entry in covering):
            yield Hit(line, f"host path {mount.source} must be mounted read-only under this policy")
    for key, source in spec.pod_level.items():
        if key.startswith("hostPath:") and not any(entry.covers(source) for entry in allowed):
            yield pod_hit(spec, key, f"hostPath volume {key[9:]} ({source}) is declared (no container "
                                     "mounts it); the policy allows host mounts only of: "
                                     f"{_listing(entry.path for entry in allowed)}")


@check("HR3003")
def host_port_not_allowed(spec, context):
    policy = _policy(context)
    allowed = set(policy.allowed_host_ports or ()) if policy else set()
    if spec.publish_all:
        yield Hit(spec.line_of("publish_all"),
                  "every exposed port is published on a host port; the policy allows host ports "
                  f"only: {_listing(sorted(allowed))}")
    for index, port in enumerate(spec.ports):
        ports = _port_numbers(port.host_port)
        if any(number not in allowed for number in ports):
            yield Hit(port.line or spec.line_of(f"port:{index}"),
                      f"host port {port.host_port} is bound; the policy allows host ports only: "
                      f"{_listing(sorted(allowed))}")


def _port_numbers(text: str | None) -> list[int]:
    """Host port numbers of `8080` or `8000-8010`; [] when unset or 0 (none bound)."""
    if not text:
        return []
    first, _, last = str(text).partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        return [-1]        # unresolved (`$PORT`): cannot be shown allowed
    if low == 0 and high == 0:
        return []
    return list(range(low, high + 1)) if high - low < 70000 else [low]


@check("HR3004")
def selinux_options(spec, context):
    options = spec.selinux_options
    if spec.selinux_disabled and not options.get("type"):   # a type says more, below
        yield Hit(spec.line_of("selinux_disabled"), "SELinux labelling is disabled for the container")
    line = spec.line_of("selinux_options")
    if options.get("type", "") not in PSS_SELINUX_TYPES:
        yield Hit(line, f"SELinux type {options['type']} is set; only container_t, container_init_t, "
                        "container_kvm_t or container_engine_t are allowed")
    for key in ("user", "role"):
        if options.get(key):
            yield Hit(line, f"SELinux {key} {options[key]} is set; it must be left unset")
    pod_type = spec.pod_level.get("selinux:type")
    if pod_type is not None and pod_type not in PSS_SELINUX_TYPES:
        yield pod_hit(spec, "selinux:type", f"the pod's SELinux type {pod_type} is not allowed ({_POD_LEVEL})")
    for key in ("user", "role"):
        if f"selinux:{key}" in spec.pod_level:
            yield pod_hit(spec, f"selinux:{key}", f"the pod's SELinux {key} is set ({_POD_LEVEL})")


@check("HR3005")
def unmasked_proc(spec, context):
    if spec.system_paths_unconfined:
        yield Hit(spec.line_of("system_paths_unconfined"),
                  "/proc and /sys are mounted unmasked: the kernel paths runtimes hide are exposed")
    elif spec.masked_paths == ():
        yield Hit(spec.line_of("masked_paths"),
                  "no kernel path is masked: /proc/kcore, /proc/keys… are exposed")


@check("HR3006")
def sysctl_not_allowed(spec, context):
    policy = _policy(context)
    allowed = set(policy.allowed_sysctls or ()) if policy else set()
    for name in spec.sysctls:
        if name not in allowed:
            yield Hit(spec.line_of(f"sysctl:{name}"),
                      f"sysctl {name} is set; the policy allows only: {_listing(sorted(allowed))}")


@check("HR3007")
def volume_type_not_allowed(spec, context):
    policy = _policy(context)
    allowed = set(policy.allowed_volume_types or ()) if policy else set()
    for name, volume_type in spec.volume_types.items():
        if volume_type not in allowed:
            yield Hit(spec.line_of(f"volume:{name}"),
                      f"volume {name} has type {volume_type}; the policy allows only: "
                      f"{_listing(sorted(allowed))}")


@check("HR3008")
def not_enforced_non_root(spec, context):
    uid = (spec.user or "").split(":", 1)[0]
    if uid in ROOT_USERS:
        yield Hit(spec.line_of("user"), "the container runs as user 0: set a non-zero user")
    elif spec.kind == "kubernetes" and spec.run_as_non_root is not True:
        yield Hit(spec.line_of("run_as_non_root"),
                  "runAsNonRoot is not true: the kubelet does not refuse an image that runs as root")
    elif spec.kind != "kubernetes" and spec.user is None:
        yield Hit(spec.line_of("user"), "no user is set: the image's default user (usually root) runs")
    if spec.pod_level.get("user") == "0":
        yield pod_hit(spec, "user", f"the pod's runAsUser is 0 ({_POD_LEVEL})")
    if spec.pod_level.get("run_as_non_root") == "False":
        yield pod_hit(spec, "run_as_non_root", f"the pod's runAsNonRoot is false ({_POD_LEVEL})")


@check("HR3009")
def seccomp_not_in_force(spec, context):
    policy = _policy(context)
    profile = normalize_seccomp(spec.seccomp, spec.kind)
    line = spec.line_of("seccomp")
    if profile is None:
        yield Hit(line, "no seccomp profile is set (Kubernetes runs such pods Unconfined): "
                        "set seccompProfile type RuntimeDefault or Localhost")
    elif profile == "unconfined":
        yield Hit(line, "seccomp is unconfined: every syscall reaches the kernel")
    elif policy and policy.runtime.seccomp.allowed is not None and \
            not seccomp_allowed(profile, policy.runtime.seccomp.allowed):
        yield Hit(line, f"seccomp profile {profile} is not one the policy allows: "
                        f"{_listing(policy.runtime.seccomp.allowed)}")
    if spec.pod_level.get("seccomp") == "Unconfined":
        yield pod_hit(spec, "seccomp", f"the pod's seccompProfile is Unconfined ({_POD_LEVEL})")


def normalize_seccomp(value: str | None, kind: str) -> str | None:
    """`runtime/default`, `localhost/NAME`, `unconfined`, a path, or None when the platform
    default is no profile at all (only Kubernetes: elsewhere None means the runtime default)."""
    if value is None:
        return None if kind == "kubernetes" else "runtime/default"
    lowered = value.lower()
    if lowered in ("runtimedefault", "runtime/default", "docker/default", "default", "builtin"):
        return "runtime/default"
    if lowered == "unconfined":
        return "unconfined"
    for prefix in ("localhost/", "localhost:"):
        if lowered.startswith(prefix):
            return "localhost/" + value[len(prefix):]
    # A profile file given to docker/compose/hardrun is what Kubernetes calls Localhost.
    return "localhost/" + value


def seccomp_allowed(profile: str, allowed) -> bool:
    import fnmatch
    return any(fnmatch.fnmatchcase(profile, normalize_seccomp(pattern, "hardrun") or pattern)
               or fnmatch.fnmatchcase(profile, pattern) for pattern in allowed)


@check("HR3010")
def user_namespace_shared(spec, context):
    if spec.namespaces.get("user") == "host":
        yield Hit(spec.line_of("namespace:user"),
                  "the user namespace is the host's: root in the container is root on the host")
