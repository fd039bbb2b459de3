"""Kubernetes manifests (YAML or JSON, many documents, `List`s) -> one RunSpec per container.

Conventions: `kind="kubernetes"`; `subject` = `<Kind>/<name> container <c>` (or
`initContainer`, `ephemeralContainer`); `line` = the line of the container's list item
(`- name: app`). Pod-level security settings are inherited unless the container
overrides them; `lines[field]` is the line of whichever key decided the field.
Objects that hold no pod spec (Service, ConfigMap, CRDs…) are skipped quietly.
"""
from __future__ import annotations

from ..errors import ParseError
from ..spec.run import EnvVar, Mount, Port, RunSpec
from ..parsing import runvalues as rv
from ..parsing.yamlsafe import MarkedList, MarkedMap, load_all

# kind -> keys leading from the object to its pod spec.
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = (("initContainers", "initContainer"), ("containers", "container"),
                   ("ephemeralContainers", "ephemeralContainer"))
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"
# SELinux types that run a container unconfined.
UNCONFINED_SELINUX_TYPES = {"spc_t", "unconfined_t"}
MAX_LIST_DEPTH = 8


def parse_kubernetes(text: str, path: str) -> list[RunSpec]:
    """One RunSpec per container of every workload in the manifest `text`."""
    if path.endswith(".json") or text.lstrip().startswith("{"):
        # JSON allows tabs as whitespace anywhere; YAML does not in block context.
        # A raw tab cannot occur inside a JSON string, so this keeps every position.
        text = text.replace("\t", " ")
    specs: list[RunSpec] = []
    for document in load_all(text, path):
        _collect(document, path, specs, 0)
    return specs


def _collect(obj, path: str, specs: list[RunSpec], depth: int) -> None:
    if not isinstance(obj, MarkedMap):
        return
    kind = obj.get("kind")
    if isinstance(kind, str) and (kind == "List" or kind.endswith("List")) and "items" in obj:
        items = obj["items"]
        if items is None:
            return
        if not isinstance(items, MarkedList) or depth >= MAX_LIST_DEPTH:
            raise ParseError(f"{kind}: `items` must be a list of objects", path=path,
                             line=obj.line_of("items"))
        for item in items:
            _collect(item, path, specs, depth + 1)
        return
    if not isinstance(kind, str) or kind not in POD_SPEC_PATHS:
        return
    specs.extend(_Workload(obj, kind, path).specs())


class _Workload:
    """One workload object: finds its pod spec and builds a RunSpec per container."""

    def __init__(self, obj: MarkedMap, kind: str, path: str):
        self.obj = obj
        self.kind = kind
        self.path = path
        metadata = obj.get("metadata")
        metadata = metadata if isinstance(metadata, MarkedMap) else MarkedMap()
        name = metadata.get("name") or metadata.get("generateName") or "<unnamed>"
        self.name = f"{kind}/{name}"

    def error(self, message: str, line: int | None) -> ParseError:
        return ParseError(f"{self.name}: {message}", path=self.path, line=line)

    def mapping(self, parent: MarkedMap, key: str, where: str) -> MarkedMap | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, MarkedMap):
            raise self.error(f"`{where}{key}` must be a mapping", parent.line_of(key, parent.line))
        return value

    def pod_template(self) -> tuple[MarkedMap | None, MarkedMap | None]:
        """(pod spec, pod metadata) following POD_SPEC_PATHS."""
        node: MarkedMap = self.obj
        metadata: MarkedMap | None = None
        where = ""
        for key in POD_SPEC_PATHS[self.kind]:
            child = self.mapping(node, key, where)
            if child is None:
                return None, None
            node = child
            if key == "template":
                metadata = self.mapping(node, "metadata", where + "template.")
            where += key + "."
        if self.kind == "Pod":
            metadata = self.mapping(self.obj, "metadata", "")
        return node, metadata

    def specs(self) -> list[RunSpec]:
        pod, metadata = self.pod_template()
        if pod is None:
            return []
        annotations = self.mapping(metadata, "annotations", "metadata.") if metadata else None
        context = _PodContext(self, pod, annotations or MarkedMap())
        out, containers = [], []
        for key, word in CONTAINER_LISTS:
            listed = pod.get(key)
            if listed is None:
                continue
            if not isinstance(listed, MarkedList):
                raise self.error(f"`{key}` must be a list of containers", pod.line_of(key))
            for index, container in enumerate(listed):
                line = listed.line_at(index)
                if not isinstance(container, MarkedMap):
                    raise self.error(f"`{key}` items must be containers (mappings)", line)
                out.append(context.container_spec(container, word, line))
                containers.append(container)
        pod_level, lines = context.unseen_pod_settings(containers)
        if out and pod_level:
            out[0] = out[0].evolve(pod_level=pod_level, lines={**out[0].lines, **lines})
        return out


class _PodContext:
    """Pod-level settings every container inherits."""

    def __init__(self, workload: _Workload, pod: MarkedMap, annotations: MarkedMap):
        self.workload = workload
        self.pod = pod
        self.annotations = annotations
        self.security = workload.mapping(pod, "securityContext", "spec.") or MarkedMap()
        self.volumes = self._volumes()
        for key in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
            if pod.get(key) is not None and not isinstance(pod[key], bool):
                raise workload.error(f"`{key}` must be true or false", pod.line_of(key))

    def _volumes(self) -> dict[str, tuple[MarkedMap, int | None]]:
        volumes = self.pod.get("volumes")
        if volumes is None:
            return {}
        if not isinstance(volumes, MarkedList):
            raise self.workload.error("`volumes` must be a list", self.pod.line_of("volumes"))
        out = {}
        for index, volume in enumerate(volumes):
            if not isinstance(volume, MarkedMap) or not isinstance(volume.get("name"), str):
                raise self.workload.error("each volume needs a `name`", volumes.line_at(index))
            out[volume["name"]] = (volume, volumes.line_at(index))
        return out

    def unseen_pod_settings(self, containers: list[MarkedMap]) -> tuple[dict, dict]:
        """The pod-level values no container's RunSpec shows (every container overrides
        them; hostPath volumes no container mounts), as RunSpec.pod_level and its lines."""
        values: dict[str, str] = {}
        lines: dict[str, int | None] = {}
        found = [c.get("securityContext") for c in containers]
        contexts = [c if isinstance(c, MarkedMap) else MarkedMap() for c in found]

        def unseen(key: str) -> bool:
            return key in self.security and self.security[key] is not None and \
                all(context.get(key) is not None for context in contexts)

        def put(key: str, value, line: int | None) -> None:
            values[key] = str(value)
            if line is not None:
                lines[f"pod:{key}"] = line

        security = self.security
        if unseen("runAsUser"):
            put("user", security["runAsUser"], security.line_of("runAsUser"))
        if unseen("runAsNonRoot"):
            put("run_as_non_root", security["runAsNonRoot"], security.line_of("runAsNonRoot"))
        for key, field in (("seccompProfile", "seccomp"), ("appArmorProfile", "apparmor")):
            if unseen(key) and isinstance(security[key], MarkedMap):
                put(field, security[key].get("type"), security.line_of(key))
        options = security.get("seLinuxOptions")
        if unseen("seLinuxOptions") and isinstance(options, MarkedMap):
            for key in ("type", "user", "role"):
                if options.get(key):
                    put(f"selinux:{key}", options[key], security.line_of("seLinuxOptions"))
        windows = security.get("windowsOptions")
        if isinstance(windows, MarkedMap) and windows.get("hostProcess") is True and all(
                isinstance(c.get("windowsOptions"), MarkedMap) and
                c["windowsOptions"].get("hostProcess") is not None for c in contexts):
            put("host_process", "true", windows.line_of("hostProcess"))
        mounted = {str(item.get("name")) for container in containers
                   for item in (container.get("volumeMounts") or ()) if isinstance(item, MarkedMap)}
        for name, (volume, line) in self.volumes.items():
            host_path = volume.get("hostPath")
            if isinstance(host_path, MarkedMap) and str(name) not in mounted:
                put(f"hostPath:{name}", host_path.get("path") or "", line)
        return values, lines

    def container_spec(self, container: MarkedMap, word: str, line: int | None) -> RunSpec:
        name = container.get("name")
        name = str(name) if name is not None else "<unnamed>"
        builder = _ContainerBuilder(self, container, name, line)
        return builder.build(f"{self.workload.name} {word} {name}")


class _ContainerBuilder:
    def __init__(self, pod: _PodContext, container: MarkedMap, name: str, line: int | None):
        self.pod = pod
        self.container = container
        self.name = name
        self.line = line
        self.lines: dict[str, int | None] = {}
        self.workload = pod.workload
        self.security = self.workload.mapping(container, "securityContext", "") or MarkedMap()

    def error(self, message: str, line: int | None) -> ParseError:
        return self.workload.error(f"container {self.name!r}: {message}", line)

    def setting(self, key: str, field: str, kinds: tuple[type, ...]):
        """A securityContext value: the container's, else the pod's; records its line."""
        for context in (self.security, self.pod.security):
            if key in context and context[key] is not None:
                value = context[key]
                if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                    raise self.error(f"securityContext.{key} has the wrong type",
                                     context.line_of(key))
                self.lines[field] = context.line_of(key)
                return value
        return None

    def build(self, subject: str) -> RunSpec:
        fields: dict = {"kind": "kubernetes", "path": self.workload.path, "line": self.line,
                        "subject": subject, "name": self.name}
        image = self.container.get("image")
        if image is not None:
            fields["image"] = str(image)
            self.lines["image"] = self.container.line_of("image")
        fields["command"] = self.command()
        fields.update(self.identity())
        fields.update(self.privileges())
        fields.update(self.confinement())
        fields["namespaces"], fields["network"] = self.namespaces()
        fields["mounts"] = self.mounts()
        fields["ports"] = self.ports()
        fields.update(self.limits())
        fields["env"] = self.env()
        fields.update(self.pod_security_fields())
        working_dir = self.container.get("workingDir")
        if working_dir is not None:
            fields["workdir"] = str(working_dir)
        hostname = self.pod.pod.get("hostname")
        if hostname is not None:
            fields["hostname"] = str(hostname)
        fields["lines"] = self.lines
        return RunSpec(**fields)

    def items(self, key: str) -> MarkedList | None:
        """The container's list under `key` (None when absent)."""
        value = self.container.get(key)
        if value is not None and not isinstance(value, MarkedList):
            raise self.error(f"`{key}` must be a list", self.container.line_of(key))
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        return tuple(str(item) for item in self.items(key) or ())

    def command(self) -> tuple[str, ...]:
        return self.strings("command") + self.strings("args")

    def identity(self) -> dict:
        out: dict = {}
        uid = self.setting("runAsUser", "user", (int,))
        gid = self.setting("runAsGroup", "user_group", (int,))
        if uid is not None:
            out["user"] = f"{uid}:{gid}" if gid is not None else str(uid)
        self.lines.pop("user_group", None)
        non_root = self.setting("runAsNonRoot", "run_as_non_root", (bool,))
        if non_root is not None:
            out["run_as_non_root"] = non_root
        read_only = self.container_setting("readOnlyRootFilesystem", "read_only_root", bool)
        if read_only is not None:
            out["read_only_root"] = read_only
        return out

    def container_setting(self, key: str, field: str, kind: type):
        """A container-only securityContext value (the pod level has no such key)."""
        if self.security.get(key) is None:
            return None
        value = self.security[key]
        if not isinstance(value, kind):
            raise self.error(f"securityContext.{key} has the wrong type", self.security.line_of(key))
        self.lines[field] = self.security.line_of(key)
        return value

    def privileges(self) -> dict:
        out: dict = {}
        privileged = self.container_setting("privileged", "privileged", bool)
        out["privileged"] = bool(privileged)
        capabilities = self.workload.mapping(self.security, "capabilities", "securityContext.")
        if capabilities is not None:
            for key, field in (("add", "cap_add"), ("drop", "cap_drop")):
                out[field] = self.caps(capabilities, key, field)
        escalation = self.container_setting("allowPrivilegeEscalation", "no_new_privileges", bool)
        if escalation is not None:
            out["no_new_privileges"] = not escalation
        # Kubernetes always allows escalation for privileged or CAP_SYS_ADMIN containers.
        forcing = "privileged" if privileged else (
            "cap_add:SYS_ADMIN" if "SYS_ADMIN" in out.get("cap_add", ()) else None)
        if forcing is not None:
            out["no_new_privileges"] = False
            self.lines["no_new_privileges"] = self.lines[forcing]
        return out

    def caps(self, capabilities: MarkedMap, key: str, field: str) -> tuple[str, ...]:
        values = capabilities.get(key)
        if values is None:
            return ()
        if not isinstance(values, MarkedList):
            raise self.error(f"capabilities.{key} must be a list", capabilities.line_of(key))
        self.lines[field] = capabilities.line_of(key)
        caps = []
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise self.error(f"capabilities.{key} must list names", values.line_at(index))
            cap = rv.normalize_capability(value)
            caps.append(cap)
            self.lines.setdefault(f"{field}:{cap}", values.line_at(index))
        return tuple(caps)

    def confinement(self) -> dict:
        out: dict = {}
        seccomp = self.profile("seccompProfile", "seccomp")
        if seccomp is None:
            seccomp = self.seccomp_annotation()
        if seccomp is not None:
            out["seccomp"] = seccomp
        apparmor = self.profile("appArmorProfile", "apparmor")
        if apparmor is None:
            apparmor = self.annotation(APPARMOR_ANNOTATION + self.name, "apparmor")
        if apparmor is not None:
            out["apparmor"] = apparmor
        host_process = self.windows_host_process()
        if host_process:
            out["host_process"] = True
        selinux = self.setting("seLinuxOptions", "selinux_disabled", (MarkedMap,))
        if selinux is not None:
            out["selinux_options"] = {k: str(v) for k, v in selinux.items()
                                      if k in rv.SELINUX_OPTION_KEYS and v is not None}
            self.lines["selinux_options"] = self.lines["selinux_disabled"]
            if selinux.get("type") in UNCONFINED_SELINUX_TYPES:
                out["selinux_disabled"] = True
            else:
                self.lines.pop("selinux_disabled", None)
        return out

    def windows_host_process(self) -> bool:
        """windowsOptions.hostProcess, the container's else the pod's; records its line."""
        for context in (self.security, self.pod.security):
            windows = context.get("windowsOptions")
            if isinstance(windows, MarkedMap) and windows.get("hostProcess") is not None:
                self.lines["host_process"] = windows.line_of("hostProcess")
                return windows["hostProcess"] is True
        return False

    def pod_security_fields(self) -> dict:
        """procMount, pod sysctls and the type of every pod volume (Pod Security Standards)."""
        out: dict = {}
        if self.security.get("procMount") == "Unmasked":
            out["system_paths_unconfined"] = True
            self.lines["system_paths_unconfined"] = self.security.line_of("procMount")
        sysctls = self.pod.security.get("sysctls")
        if isinstance(sysctls, MarkedList):
            out["sysctls"] = {}
            for index, item in enumerate(sysctls):
                if isinstance(item, MarkedMap) and item.get("name") is not None:
                    out["sysctls"][str(item["name"])] = str(item.get("value", ""))
                    self.lines[f"sysctl:{item['name']}"] = sysctls.line_at(index)
        volume_types = {}
        for name, (volume, line) in self.pod.volumes.items():
            types = [key for key in volume if key != "name"]
            volume_types[str(name)] = types[0] if types else "emptyDir"
            self.lines[f"volume:{name}"] = line
        if volume_types:
            out["volume_types"] = volume_types
        return out

    def profile(self, key: str, field: str) -> str | None:
        """seccompProfile/appArmorProfile -> `unconfined`, `runtime/default`, `localhost/x`."""
        profile = self.setting(key, field, (MarkedMap,))
        if profile is None:
            return None
        kind = profile.get("type")
        if kind == "Unconfined":
            return "unconfined"
        if kind == "RuntimeDefault":
            return "runtime/default"
        if kind == "Localhost":
            return f"localhost/{profile.get('localhostProfile') or ''}"
        raise self.error(f"{key}.type must be Unconfined, RuntimeDefault or Localhost",
                         profile.line_of("type", profile.line))

    def annotation(self, name: str, field: str) -> str | None:
        value = self.pod.annotations.get(name)
        if value is None:
            return None
        self.lines[field] = self.pod.annotations.line_of(name)
        return str(value)

    def seccomp_annotation(self) -> str | None:
        value = self.annotation(SECCOMP_CONTAINER_ANNOTATION + self.name, "seccomp")
        if value is None:
            value = self.annotation(SECCOMP_POD_ANNOTATION, "seccomp")
        if value == "docker/default":
            return "runtime/default"
        return value

    def namespaces(self) -> tuple[dict[str, str], str | None]:
        namespaces: dict[str, str] = {}
        network = None
        for key, namespace in (("hostNetwork", "network"), ("hostPID", "pid"),
                               ("hostIPC", "ipc")):
            value = self.pod.pod.get(key)
            if value:
                namespaces[namespace] = "host"
                self.lines[f"namespace:{namespace}"] = self.pod.pod.line_of(key)
        if namespaces.get("network") == "host":
            network = "host"
            self.lines["network"] = self.lines["namespace:network"]
        host_users = self.pod.pod.get("hostUsers")
        if host_users is not None:
            # hostUsers: true asks for the host's user namespace (HR3010), false for a private one.
            namespaces["user"] = "host" if host_users else "private"
            self.lines["namespace:user"] = self.pod.pod.line_of("hostUsers")
        return namespaces, network

    def mounts(self) -> tuple[Mount, ...]:
        values = self.items("volumeMounts")
        if values is None:
            return ()
        mounts = []
        for index, item in enumerate(values):
            line = values.line_at(index)
            if not isinstance(item, MarkedMap) or not isinstance(item.get("mountPath"), str):
                raise self.error("each volumeMount needs a `mountPath`", line)
            mounts.append(self.mount(item, line))
            self.lines[f"mount:{index}"] = line
        if mounts:
            self.lines["mounts"] = self.container.line_of("volumeMounts")
        return tuple(mounts)

    def mount(self, item: MarkedMap, line: int | None) -> Mount:
        name = str(item.get("name"))
        read_only = item.get("readOnly") is True
        volume, _ = self.pod.volumes.get(name, (MarkedMap(), None))
        options: list[str] = []
        if isinstance(item.get("mountPropagation"), str):
            options.append(item["mountPropagation"])
        host_path = volume.get("hostPath")
        if isinstance(host_path, MarkedMap):
            source = str(host_path.get("path") or "")
            sub_path = item.get("subPath")
            if sub_path:
                source = source.rstrip("/") + "/" + str(sub_path)
            if host_path.get("type"):
                options.append(f"hostPathType={host_path['type']}")
            return Mount("bind", item["mountPath"], source, read_only, tuple(options), line)
        source_kind = next((key for key in volume if key != "name"), None)
        empty_dir = volume.get("emptyDir")
        kind = "tmpfs" if isinstance(empty_dir, MarkedMap) and empty_dir.get("medium") == "Memory" \
            else "volume"
        if source_kind:
            options.insert(0, source_kind)
        return Mount(kind, item["mountPath"], name, read_only, tuple(options), line)

    def ports(self) -> tuple[Port, ...]:
        values = self.items("ports")
        if values is None:
            return ()
        ports = []
        for index, item in enumerate(values):
            if not isinstance(item, MarkedMap):
                raise self.error("each port must be a mapping", values.line_at(index))
            if item.get("hostPort") is None:
                continue   # a containerPort alone is not published on the node
            host_ip = item.get("hostIP")
            ports.append(Port(str(item.get("containerPort") or ""), str(item["hostPort"]),
                              str(host_ip) if host_ip else None,
                              str(item.get("protocol") or "TCP").lower(), values.line_at(index)))
            self.lines[f"port:{len(ports) - 1}"] = values.line_at(index)
        return tuple(ports)

    def limits(self) -> dict:
        resources = self.workload.mapping(self.container, "resources", "")
        if resources is None:
            return {}
        limits = self.workload.mapping(resources, "limits", "resources.")
        if limits is None:
            return {}
        out: dict = {}
        for key, field in (("memory", "memory"), ("cpu", "cpus")):
            if limits.get(key) is None:
                continue
            try:
                amount = rv.parse_quantity(limits[key])
            except ValueError as error:
                raise self.error(f"resources.limits.{key}: {error}", limits.line_of(key)) from None
            out[field] = int(amount) if field == "memory" else amount
            self.lines[field] = limits.line_of(key)
        return out

    def env(self) -> tuple[EnvVar, ...]:
        values = self.items("env")
        if values is None:
            return ()
        out = []
        for index, item in enumerate(values):
            line = values.line_at(index)
            if not isinstance(item, MarkedMap) or item.get("name") is None:
                raise self.error("each env item needs a `name`", line)
            value = item.get("value")
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif value is not None:
                value = str(value)
            elif "valueFrom" not in item:
                value = ""
            out.append(EnvVar(str(item["name"]), value, line))
            self.lines[f"env:{item['name']}"] = line
        return tuple(out)
