"""The hardrun run-config format: one container described in YAML.

    apiVersion: hardrun/v1
    kind: Run
    name: web
    rootfs: ./rootfs
    command: [/bin/httpd, -f, -p, "8080"]
    user: "1000:1000"
    capabilities: {add: [NET_BIND_SERVICE]}
    mounts: [{type: bind, source: /srv/www, target: /www, read-only: true}]
    limits: {memory: 256m, pids: 128}

A file is a run config when its YAML says `apiVersion: hardrun/v1` and `kind: Run`,
whatever its name. Settings left out take hardrun's hardened defaults, and the RunSpec
says so explicitly, so the audit judges exactly what `hardrun run --config` starts.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from ..errors import ParseError
from ..spec.capabilities import normalize_capability
from ..spec.run import EnvVar, Mount, Port, RunSpec
from ..parsing.runvalues import parse_size

KIND = "hardrun"
API_VERSION = "hardrun/v1"
_HEAD = re.compile(r"^apiVersion:\s*[\"']?" + re.escape(API_VERSION) + r"[\"']?\s*$", re.MULTILINE)
_KIND = re.compile(r"^kind:\s*[\"']?Run[\"']?\s*$", re.MULTILINE)


def looks_like_run_config(head: str | None) -> bool:
    return bool(head and _HEAD.search(head) and _KIND.search(head))


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads((Path(__file__).parent / "hardrun_config.schema.json").read_text(encoding="utf-8"))


def parse_run_config(text: str, path: str) -> list[RunSpec]:
    """The RunSpec of a run config; ParseError with line and column on bad input."""
    from ..parsing.marked import parse_marked, validate_located
    document = parse_marked(text, path, f"empty run config: expected apiVersion: {API_VERSION}, kind: Run")
    validate_located(schema(), document, path)
    return [_spec(document, path)]


def apply_hardrun_defaults(spec: RunSpec) -> RunSpec:
    """`spec` with the settings left unspecified set to what `hardrun run` does with them
    (hardrun/runtime/config.py), so rules judge what will really run."""
    changes: dict[str, object] = {}
    if spec.no_new_privileges is None:
        changes["no_new_privileges"] = True
    if spec.read_only_root is None:
        changes["read_only_root"] = True
    if not spec.cap_drop and not spec.privileged:
        changes["cap_drop"] = ("ALL",)
    if spec.seccomp is None:
        # --privileged without a profile runs unconfined, as in Docker
        changes["seccomp"] = "unconfined" if spec.privileged else "default"
    if "user" not in spec.namespaces:
        # --privileged keeps the user namespace: its capabilities are the namespace's
        changes["namespaces"] = {**spec.namespaces, "user": "private"}
    if spec.network is None:
        changes["network"] = "none"
    return spec.evolve(**changes) if changes else spec


def merge_flags(config: RunSpec, flags: RunSpec) -> RunSpec:
    """The run config with every setting the command line gave explicitly laid over it
    (flags win; list settings given on the command line replace the config's)."""
    from ..spec.record import fields   # the run models are records, not dataclasses
    defaults = RunSpec()
    changes = {}
    for item in fields(RunSpec):
        if item.name in ("kind", "path", "line", "subject", "lines"):
            continue
        value = getattr(flags, item.name)
        if value != getattr(defaults, item.name):
            changes[item.name] = value
    if "namespaces" in changes:
        changes["namespaces"] = {**config.namespaces, **flags.namespaces}
    lines = {key: line for key, line in config.lines.items()
             if key.split(":", 1)[0] not in changes and key not in changes}
    return config.evolve(**changes, lines=lines)


def _spec(document, path: str) -> RunSpec:
    data = document.data
    lines: dict[str, int | None] = {}

    def line(*keys) -> int:
        return document.where(tuple(keys), at_key=True)[0]

    def note(field: str, *keys) -> None:
        if _has(data, keys):
            lines[field] = line(*keys)

    security = data.get("security", {})
    capabilities = data.get("capabilities", {})
    limits = data.get("limits", {})
    for field, keys in (("image", ("image",)), ("user", ("user",)), ("workdir", ("workdir",)),
                        ("cap_add", ("capabilities", "add")), ("cap_drop", ("capabilities", "drop")),
                        ("privileged", ("security", "privileged")),
                        ("no_new_privileges", ("security", "no-new-privileges")),
                        ("read_only_root", ("security", "read-only-root")),
                        ("seccomp", ("security", "seccomp")), ("apparmor", ("security", "apparmor")),
                        ("selinux_options", ("security", "selinux")),
                        ("selinux_disabled", ("security", "selinux")),
                        ("system_paths_unconfined", ("security", "unmasked-proc")),
                        ("network", ("network",)),
                        ("memory", ("limits", "memory")), ("pids_limit", ("limits", "pids")),
                        ("cpus", ("limits", "cpus")), ("hostname", ("hostname",)),
                        ("name", ("name",)), ("devices", ("devices",)), ("sysctls", ("sysctls",)),
                        ("group_add", ("group-add",)), ("oom_score_adj", ("oom-score-adj",))):
        note(field, *keys)
    namespaces = dict(data.get("namespaces", {}))
    for name in namespaces:
        lines[f"namespace:{name}"] = line("namespaces", name)
    remap = None
    if "userns" in security:
        lines["namespace:user"] = line("security", "userns")
        userns = security["userns"]
        namespaces["user"] = "host" if userns == "host" else "private"
        if ":" in userns:
            start, count = userns.split(":")
            remap = (int(start), int(count))
    selinux = security.get("selinux")
    user = data.get("user")
    spec = RunSpec(
        kind=KIND, path=path, line=1, subject=data.get("name") or "run config",
        image=data.get("image"), command=tuple(data.get("command", ())),
        user=str(user) if user is not None else None,
        privileged=security.get("privileged", False),
        cap_add=tuple(normalize_capability(c) for c in capabilities.get("add", ())),
        cap_drop=tuple(normalize_capability(c) for c in capabilities.get("drop", ())),
        no_new_privileges=security.get("no-new-privileges"),
        seccomp=security.get("seccomp"), apparmor=security.get("apparmor"),
        selinux_disabled=selinux == "disabled",
        selinux_options=dict(selinux) if isinstance(selinux, dict) else {},
        system_paths_unconfined=bool(security.get("unmasked-proc", False)),
        read_only_root=security.get("read-only-root"), rootfs=data.get("rootfs"),
        mounts=_mounts(data, document, path, lines), devices=tuple(data.get("devices", ())),
        workdir=data.get("workdir"), namespaces=namespaces, userns_remap=remap,
        hostname=data.get("hostname"), env=_env(data, document, lines), init=data.get("init", False),
        group_add=tuple(str(group) for group in data.get("group-add", ())),
        oom_score_adj=data.get("oom-score-adj"),
        memory=parse_size(limits["memory"]) if "memory" in limits else None,
        pids_limit=limits.get("pids"), cpus=limits.get("cpus"),
        sysctls={name: str(value) for name, value in data.get("sysctls", {}).items()},
        network=data.get("network"), ports=_ports(data, document, lines), name=data.get("name"),
        lines=lines,
    )
    for name in spec.sysctls:
        lines[f"sysctl:{name}"] = line("sysctls", name)
    for index, device in enumerate(spec.devices):
        lines[f"device:{index}"] = document.where(("devices", index))[0]
    for index, group in enumerate(spec.group_add):
        lines[f"group_add:{group}"] = document.where(("group-add", index))[0]
    return apply_hardrun_defaults(spec)


def _has(data, keys) -> bool:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def _mounts(data, document, path, lines) -> tuple[Mount, ...]:
    mounts = []
    for index, item in enumerate(data.get("mounts", ())):
        line, column = document.where(("mounts", index))
        if item["type"] in ("bind", "volume") and "source" not in item:
            raise ParseError(f"mounts[{index}]: a {item['type']} mount needs a source",
                             path=path, line=line, column=column)
        lines[f"mount:{index}"] = line
        mounts.append(Mount(type=item["type"], target=item["target"], source=item.get("source"),
                            read_only=item.get("read-only", False),
                            options=tuple(item.get("options", ())), line=line))
    return tuple(mounts)


def _ports(data, document, lines) -> tuple[Port, ...]:
    ports = []
    for index, item in enumerate(data.get("ports", ())):
        line = document.where(("ports", index))[0]
        lines[f"port:{index}"] = line
        host_port = item.get("host-port")
        ports.append(Port(container_port=str(item["container-port"]),
                          host_port=str(host_port) if host_port is not None else None,
                          host_ip=item.get("host-ip"), protocol=item.get("protocol", "tcp"), line=line))
    return tuple(ports)


def _env(data, document, lines) -> tuple[EnvVar, ...]:
    env = data.get("env", {})
    out = []
    if isinstance(env, dict):
        for name, value in env.items():
            line = document.where(("env", name), at_key=True)[0]
            lines[f"env:{name}"] = line
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            out.append(EnvVar(name, text, line))
    else:
        for index, item in enumerate(env):
            name, sep, value = item.partition("=")
            line = document.where(("env", index))[0]
            lines[f"env:{name}"] = line
            out.append(EnvVar(name, value if sep else None, line))
    return tuple(out)


def read_run_config(path: str) -> RunSpec:
    """The RunSpec of the run config file at `path` (`hardrun run --config`, `hardrun export`);
    a relative `rootfs` is resolved from the file's directory."""
    import os
    from ..errors import HardrunError
    from ..userfiles import read_text
    try:
        text = read_text(path)
    except HardrunError as error:
        raise ParseError(error.message, path=path, line=error.line) from None
    spec = parse_run_config(text, path)[0]
    if spec.rootfs and not os.path.isabs(spec.rootfs):
        spec = spec.evolve(rootfs=os.path.join(os.path.dirname(os.path.abspath(path)), spec.rootfs))
    return spec
