"""`hardrun export`: a policy's run requirements, or a run config, as the equivalent
settings of other runtimes: `docker run` flags, a compose service, a Kubernetes
securityContext, an OCI runtime config.json.

Both sources become one hardened RunSpec first (`gate_run`'s defaults), so what is
exported is what `hardrun run` would start, and `hardrun audit` under the same policy
passes it.
"""
from __future__ import annotations

import json
import shlex

from ..errors import UsageError
from ..spec import oci
from ..spec.capabilities import NAMES as CAPABILITY_NAMES
from ..spec.defaults import (DEFAULT_PATH, DEFAULT_PIDS_LIMIT, DEFAULT_REMAP, DEFAULT_TMPFS_SIZE,
                             DOCKER_DEFAULT_CAPABILITIES, MASKED_PATHS, NAMESPACES, READONLY_PATHS)
from ..spec.run import RunSpec
from .evaluate import harden
from .model import Policy

TARGETS = ("docker-run", "compose", "kubernetes", "oci")
DEFAULT_IMAGE = "IMAGE"
EXPORT_USER = "65534:65534"          # nobody
EXPORT_MEMORY = 1024 ** 3


def export_spec(policy: Policy, config_spec: RunSpec | None = None, image: str | None = None) -> RunSpec:
    """The hardened RunSpec to export: the run config's, or the policy's requirements alone
    (for `image`, default a placeholder to replace)."""
    spec = config_spec or RunSpec(kind="hardrun", name="app")
    if image:
        spec = spec.evolve(image=image)
    spec = harden(spec, policy)
    # Other runtimes have no user namespace by default: root inside would be root outside.
    # What neither the config nor the policy sets gets the same hardened fallback.
    fallbacks = {"user": EXPORT_USER, "pids_limit": DEFAULT_PIDS_LIMIT, "memory": EXPORT_MEMORY}
    return spec.evolve(**{name: value for name, value in fallbacks.items()
                          if getattr(spec, name) is None})


def seccomp_reference(spec: RunSpec, seccomp_file: str | None) -> str | None:
    """The profile the target should name: the file written by --seccomp-out, else the
    spec's own profile file, else None for the runtime's default profile."""
    if spec.seccomp == "unconfined":
        return None
    if seccomp_file:
        return seccomp_file
    return None if spec.seccomp in (None, "default") else spec.seccomp


def to_docker_run(spec: RunSpec, seccomp_file: str | None = None) -> str:
    args = ["docker", "run"]
    if spec.name:
        args += ["--name", spec.name]
    if spec.user:
        args += ["--user", spec.user]
    args += [f"--cap-drop={c}" for c in spec.cap_drop] + [f"--cap-add={c}" for c in spec.cap_add]
    if spec.privileged:
        args.append("--privileged")
    if spec.no_new_privileges:
        args += ["--security-opt", "no-new-privileges=true"]
    profile = seccomp_reference(spec, seccomp_file)
    if profile:
        args += ["--security-opt", f"seccomp={profile}"]
    if spec.apparmor:
        args += ["--security-opt", f"apparmor={spec.apparmor}"]
    if spec.read_only_root:
        args.append("--read-only")
        args += ["--tmpfs", "/tmp:rw,nosuid,nodev,noexec", "--tmpfs", "/run:rw,nosuid,nodev,noexec"]
    if spec.namespaces.get("user") == "host":
        args += ["--userns", "host"]
    for name in ("pid", "ipc", "uts"):
        if spec.namespaces.get(name) == "host":
            args += [f"--{name}", "host"]
    args += ["--network", spec.network or "none"]
    for mount in spec.mounts:
        args += ["--mount", _docker_mount(mount)]
    for port in spec.ports:
        args += ["--publish", _docker_port(port)]
    for name, value in spec.sysctls.items():
        args += ["--sysctl", f"{name}={value}"]
    for group in spec.group_add:
        args += ["--group-add", group]
    if spec.oom_score_adj is not None:
        args += ["--oom-score-adj", str(spec.oom_score_adj)]
    if spec.memory:
        args += ["--memory", str(spec.memory)]
    if spec.pids_limit:
        args += ["--pids-limit", str(spec.pids_limit)]
    if spec.workdir:
        args += ["--workdir", spec.workdir]
    for var in spec.env:
        args += ["--env", var.name if var.value is None else f"{var.name}={var.value}"]
    args.append(spec.image or DEFAULT_IMAGE)
    args += list(spec.command)
    return shlex.join(args) + "\n"


def _docker_mount(mount) -> str:
    parts = [f"type={mount.type}"]
    if mount.source:
        parts.append(f"source={mount.source}")
    parts.append(f"target={mount.target}")
    if mount.read_only:
        parts.append("readonly")
    return ",".join(parts)


def _docker_port(port) -> str:
    host = port.host_ip or "127.0.0.1"
    published = f"{host}:{port.host_port or ''}:{port.container_port}"
    return published + (f"/{port.protocol}" if port.protocol != "tcp" else "")


def to_compose(spec: RunSpec, seccomp_file: str | None = None) -> dict:
    service: dict = {"image": spec.image or DEFAULT_IMAGE}
    if spec.command:
        service["command"] = list(spec.command)
    if spec.user:
        service["user"] = spec.user
    if spec.cap_drop:
        service["cap_drop"] = list(spec.cap_drop)
    if spec.cap_add:
        service["cap_add"] = list(spec.cap_add)
    if spec.privileged:
        service["privileged"] = True
    options = []
    if spec.no_new_privileges:
        options.append("no-new-privileges:true")
    profile = seccomp_reference(spec, seccomp_file)
    if profile:
        options.append(f"seccomp:{profile}")
    if spec.apparmor:
        options.append(f"apparmor:{spec.apparmor}")
    if options:
        service["security_opt"] = options
    if spec.read_only_root:
        service["read_only"] = True
        service["tmpfs"] = ["/tmp:rw,nosuid,nodev,noexec", "/run:rw,nosuid,nodev,noexec"]
    if spec.namespaces.get("user") == "host":
        service["userns_mode"] = "host"
    service["network_mode"] = spec.network or "none"
    if spec.mounts:
        service["volumes"] = [_compose_volume(m) for m in spec.mounts]
    if spec.ports:
        service["ports"] = [_docker_port(p) for p in spec.ports]
    if spec.sysctls:
        service["sysctls"] = dict(spec.sysctls)
    if spec.group_add:
        service["group_add"] = list(spec.group_add)
    if spec.oom_score_adj is not None:
        service["oom_score_adj"] = spec.oom_score_adj
    if spec.memory:
        service["mem_limit"] = spec.memory
    if spec.pids_limit:
        service["pids_limit"] = spec.pids_limit
    if spec.workdir:
        service["working_dir"] = spec.workdir
    if spec.env:
        service["environment"] = {v.name: v.value for v in spec.env}
    return {"services": {spec.name or "app": service}}


def _compose_volume(mount) -> dict:
    volume = {"type": mount.type, "target": mount.target}
    if mount.source:
        volume["source"] = mount.source
    if mount.read_only:
        volume["read_only"] = True
    return volume


def to_kubernetes(spec: RunSpec, seccomp_file: str | None = None) -> dict:
    """A Pod with the pod-level and container-level securityContext of `spec`."""
    uid, gid = _uid_gid(spec.user)
    pod_context: dict = {}
    if uid is not None:
        pod_context["runAsUser"] = uid
        pod_context["runAsNonRoot"] = uid != 0
    if gid is not None:
        pod_context["runAsGroup"] = gid
    profile = seccomp_reference(spec, seccomp_file)
    if spec.seccomp == "unconfined":
        pod_context["seccompProfile"] = {"type": "Unconfined"}
    elif profile:
        pod_context["seccompProfile"] = {"type": "Localhost", "localhostProfile": _localhost(profile)}
    else:
        pod_context["seccompProfile"] = {"type": "RuntimeDefault"}
    if spec.sysctls:
        pod_context["sysctls"] = [{"name": k, "value": v} for k, v in spec.sysctls.items()]
    context: dict = {"allowPrivilegeEscalation": not spec.no_new_privileges or spec.privileged,
                     "privileged": spec.privileged,
                     "readOnlyRootFilesystem": bool(spec.read_only_root),
                     "capabilities": {"drop": list(spec.cap_drop), **({"add": list(spec.cap_add)}
                                                                       if spec.cap_add else {})}}
    if spec.system_paths_unconfined:
        context["procMount"] = "Unmasked"
    container: dict = {"name": spec.name or "app", "image": spec.image or DEFAULT_IMAGE,
                       "securityContext": context}
    if spec.command:
        container["command"] = list(spec.command)
    limits = {}
    if spec.memory:
        limits["memory"] = str(spec.memory)
    if limits:
        container["resources"] = {"limits": limits}
    volumes, mounts = [], []
    for index, mount in enumerate(spec.mounts):
        name = f"volume-{index}"
        mounts.append({"name": name, "mountPath": mount.target, "readOnly": mount.read_only})
        if mount.type == "bind":
            volumes.append({"name": name, "hostPath": {"path": mount.source}})
        elif mount.type == "tmpfs":
            volumes.append({"name": name, "emptyDir": {"medium": "Memory"}})
        else:
            volumes.append({"name": name, "persistentVolumeClaim": {"claimName": mount.source}})
    if spec.read_only_root:
        for target in ("/tmp", "/run"):
            name = f"scratch{target.replace('/', '-')}"
            mounts.append({"name": name, "mountPath": target})
            volumes.append({"name": name, "emptyDir": {}})
    if mounts:
        container["volumeMounts"] = mounts
    ports = [{"containerPort": int(p.container_port), **({"hostPort": int(p.host_port)}
                                                        if p.host_port else {})} for p in spec.ports]
    if ports:
        container["ports"] = ports
    pod_spec: dict = {"securityContext": pod_context, "containers": [container]}
    if spec.network == "host":
        pod_spec["hostNetwork"] = True
    for name, key in (("pid", "hostPID"), ("ipc", "hostIPC")):
        if spec.namespaces.get(name) == "host":
            pod_spec[key] = True
    if volumes:
        pod_spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": spec.name or "app"},
            "spec": pod_spec}


def _localhost(profile: str) -> str:
    """A Localhost profile is relative to the kubelet's seccomp directory."""
    if profile.startswith("localhost/"):
        return profile[len("localhost/"):]
    return profile.rsplit("/", 1)[-1]


def _uid_gid(user: str | None):
    if not user:
        return None, None
    uid_text, _, gid_text = user.partition(":")
    uid = int(uid_text) if uid_text.isdigit() else (0 if uid_text == "root" else None)
    gid = int(gid_text) if gid_text.isdigit() else None
    return uid, gid


_MACHINE_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
                 "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
                 "riscv64": "SCMP_ARCH_RISCV64", "armv7l": "SCMP_ARCH_ARM", "i686": "SCMP_ARCH_X86"}


def oci_seccomp(profile: dict, capabilities, machine: str | None = None) -> dict:
    """A Docker-format profile as the OCI `linux.seccomp` of a container with these
    capabilities on this machine: the rules' `includes`/`excludes` conditions resolved,
    as Docker does when it writes the OCI config."""
    import os
    arch = _MACHINE_ARCH.get(machine or os.uname().machine, "SCMP_ARCH_X86_64")
    caps = {c if c.startswith("CAP_") else f"CAP_{c}" for c in capabilities}
    architectures = [arch]
    for entry in profile.get("archMap") or ():
        if entry.get("architecture") == arch:
            architectures += list(entry.get("subArchitectures") or ())
    if profile.get("architectures"):
        architectures = list(dict.fromkeys([arch, *profile["architectures"]]))
    syscalls = []
    for rule in profile.get("syscalls") or ():
        if not _condition_holds(rule.get("includes") or {}, caps, arch, True) or \
                not _condition_holds(rule.get("excludes") or {}, caps, arch, False):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if not names:
            continue
        out = {"names": names, "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            out["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            out["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                           for a in rule["args"]]
        syscalls.append(out)
    result = {"defaultAction": profile["defaultAction"], "architectures": architectures,
              "syscalls": syscalls}
    if profile.get("defaultErrnoRet") is not None:
        result["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return result


def _condition_holds(condition: dict, caps: set, arch: str, include: bool) -> bool:
    """An `includes` holds when every listed cap/arch is there; an `excludes` when none is."""
    wanted_caps = set(condition.get("caps") or ())
    wanted_arches = set(condition.get("arches") or ())
    if include:
        return wanted_caps <= caps and (not wanted_arches or arch in wanted_arches)
    return not (wanted_caps & caps) and arch not in wanted_arches


def to_oci(spec: RunSpec, seccomp_profile: dict | None = None) -> dict:
    """An OCI runtime-spec config.json (Linux) for `spec`, written by the same writer as
    `hardrun run --dry-run`. Without `seccomp_profile` the spec's own (hardrun's default
    profile unless unconfined) is embedded: an OCI runtime applies no seccomp filter that
    the config does not hold."""
    uid, gid = _uid_gid(spec.user)
    if spec.user and uid is None:
        raise UsageError(f"user {spec.user!r} is a name: an OCI config needs numeric uid[:gid]")
    capabilities = _effective_capabilities(spec)
    namespaces = {name for name in NAMESPACES if spec.namespaces.get(name) != "host"}
    if spec.network == "host":
        namespaces.discard("network")
    user_map = None
    if "user" in namespaces:
        start, count = spec.userns_remap or DEFAULT_REMAP
        user_map = [(0, start, count)]
    resources = {}
    if spec.memory:
        resources["memory"] = {"limit": spec.memory}
    if spec.pids_limit:
        resources["pids"] = {"limit": spec.pids_limit}
    linux: dict = {}
    if spec.sysctls:
        linux["sysctl"] = dict(spec.sysctls)
    if seccomp_profile is None and spec.seccomp != "unconfined":
        seccomp_profile = seccomp_profile_data(spec)
    if seccomp_profile is not None:
        linux["seccomp"] = oci_seccomp(seccomp_profile, capabilities)
    process = {}
    if spec.apparmor and spec.apparmor != "unconfined":
        process["apparmorProfile"] = spec.apparmor
    return oci.config(
        args=list(spec.command) or ["/bin/sh"],
        # A variable passed through from the caller's environment (`--env NAME`) has no
        # value to write down: left out, as Docker leaves it out when the caller has none.
        env=[f"PATH={DEFAULT_PATH}"]
        + [f"{v.name}={v.value}" for v in spec.env if v.value is not None],
        cwd=spec.workdir or "/", user={"uid": uid or 0, "gid": gid or 0},
        capability_sets=oci.capabilities(capabilities, ambient=bool(uid)),
        no_new_privileges=bool(spec.no_new_privileges), process_rlimits=oci.rlimits(spec.ulimits),
        root=spec.rootfs or "rootfs", read_only=bool(spec.read_only_root),
        hostname=spec.hostname or spec.name or "hardrun", mounts=_oci_mounts(spec.mounts),
        namespaces=namespaces, uid_map=user_map, gid_map=user_map,
        masked_paths=MASKED_PATHS, readonly_paths=READONLY_PATHS, resources=resources,
        linux_extra=linux, process_extra=process)


def _oci_mounts(mounts) -> list[dict]:
    """The spec's bind and tmpfs mounts and the default tmpfs /tmp and /run, parents
    before children, as `hardrun run` orders them."""
    entries = [_oci_mount(mount) for mount in mounts]
    entries += oci.default_tmpfs_mounts({entry["destination"] for entry in entries})
    return sorted(entries, key=lambda entry: entry["destination"].count("/"))


def _oci_mount(mount) -> dict:
    """Binds keep exec, tmpfs gets noexec, unless the mount's options say otherwise."""
    options = [option for option in mount.options
               if option not in ("nosuid", "nodev", "rbind", "bind")]
    exec_ = "exec" in options or (mount.type != "tmpfs" and "noexec" not in options)
    read_only = mount.read_only or "ro" in options or "readonly" in options
    data = [option for option in options if option not in ("ro", "readonly", "rw", "exec", "noexec")]
    if mount.type == "tmpfs":
        if not any(option.startswith("size=") for option in data):
            data.append(f"size={DEFAULT_TMPFS_SIZE}")
        return oci.mount("tmpfs", mount.target, read_only=read_only, exec_=exec_, data=",".join(data))
    return oci.mount("bind", mount.target, mount.source, read_only=read_only, exec_=exec_)


def _effective_capabilities(spec: RunSpec) -> list[str]:
    """Docker's rules: privileged keeps every capability; --cap-add ALL every one but the
    dropped; --cap-drop ALL only the added; otherwise the defaults less drops plus adds."""
    if spec.privileged:
        kept = set(CAPABILITY_NAMES)
    elif "ALL" in spec.cap_add:
        kept = set(CAPABILITY_NAMES) - set(spec.cap_drop)
    elif "ALL" in spec.cap_drop:
        kept = set(spec.cap_add)
    else:
        kept = (set(DOCKER_DEFAULT_CAPABILITIES) - set(spec.cap_drop)) | set(spec.cap_add)
    return sorted(f"CAP_{name}" for name in kept if name != "ALL")


def export(target: str, spec: RunSpec, seccomp_file: str | None = None,
           seccomp_profile: dict | None = None) -> str:
    """The text `hardrun export --to TARGET` prints."""
    import yaml
    if target == "docker-run":
        return to_docker_run(spec, seccomp_file)
    if target == "compose":
        return yaml.safe_dump(to_compose(spec, seccomp_file), sort_keys=False)
    if target == "kubernetes":
        return yaml.safe_dump(to_kubernetes(spec, seccomp_file), sort_keys=False)
    if target == "oci":
        return json.dumps(to_oci(spec, seccomp_profile), indent=2) + "\n"
    raise UsageError(f"unknown export target {target!r} (expected one of: {', '.join(TARGETS)})")


def default_seccomp_profile() -> dict:
    """hardrun's built-in seccomp profile (Docker's JSON format), as `hardrun run` loads it."""
    from ..resources import data_dir
    path = data_dir("data") / "seccomp" / "default.json"
    return json.loads(path.read_text(encoding="utf-8"))


def seccomp_profile_data(spec: RunSpec) -> dict:
    """The seccomp profile (Docker's JSON format) `spec` runs with, for `--seccomp-out` and
    the OCI config, rewritten so that libseccomp applies it as hardrun does."""
    from ..spec.seccomp_portable import for_libseccomp
    return for_libseccomp(_seccomp_profile_as_run(spec))


def _seccomp_profile_as_run(spec: RunSpec) -> dict:
    if spec.seccomp in (None, "default"):
        return default_seccomp_profile()
    if spec.seccomp == "unconfined":
        raise UsageError("seccomp is unconfined: there is no profile to write")
    path = spec.seccomp[len("localhost/"):] if spec.seccomp.startswith("localhost/") else spec.seccomp
    from ..errors import HardrunError
    from ..parsing.seccomp_file import read_profile
    try:
        data, _ = read_profile(path)
    except HardrunError as error:
        raise UsageError(f"cannot read seccomp profile {path}: {error.located()}") from None
    if not isinstance(data, dict):
        raise UsageError(f"cannot read seccomp profile {path}: expected a JSON object")
    return data
