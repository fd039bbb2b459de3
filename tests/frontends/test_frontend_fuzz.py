"""Property tests: whatever text reaches a run front end, only hardrun errors come out."""
import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardrun.errors import HardrunError
from hardrun.frontends import detect_kind
from hardrun.frontends.compose import parse_compose
from hardrun.frontends.kubernetes import parse_kubernetes
from hardrun.frontends.oci import parse_oci
from hardrun.parsing.yamlsafe import load_all
from hardrun.spec.run import RunSpec

FRONT_ENDS = {"compose": parse_compose, "kubernetes": parse_kubernetes, "oci": parse_oci}
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Words the front ends look for, so random structures reach deep code paths.
KEYS = st.sampled_from([
    "services", "image", "user", "privileged", "cap_add", "cap_drop", "security_opt",
    "read_only", "volumes", "ports", "devices", "tmpfs", "network_mode", "net", "pid", "ipc",
    "userns_mode", "mem_limit", "memswap_limit", "pids_limit", "cpus", "deploy", "resources",
    "limits", "memory", "environment", "env_file", "extends", "service", "file", "ulimits",
    "command", "init", "type", "source", "target", "read_only", "bind", "propagation",
    "published", "host_ip", "protocol", "kind", "apiVersion", "metadata", "name", "spec",
    "template", "jobTemplate", "containers", "initContainers", "ephemeralContainers",
    "securityContext", "capabilities", "add", "drop", "runAsUser", "runAsGroup",
    "runAsNonRoot", "allowPrivilegeEscalation", "readOnlyRootFilesystem", "seccompProfile",
    "appArmorProfile", "localhostProfile", "seLinuxOptions", "hostNetwork", "hostPID",
    "hostIPC", "hostUsers", "hostPath", "path", "volumeMounts", "mountPath", "readOnly",
    "subPath", "hostPort", "hostIP", "containerPort", "env", "value", "valueFrom", "items",
    "annotations", "ociVersion", "process", "root", "readonly", "linux", "namespaces",
    "mounts", "destination", "options", "seccomp", "defaultAction", "syscalls",
    "maskedPaths", "readonlyPaths", "noNewPrivileges", "apparmorProfile", "uid", "gid",
    "bounding", "effective", "permitted", "ambient", "rlimits", "soft", "hard", "pids",
    "limit", "cpu", "quota", "period", "shares", "args", "cwd", "x-base",
])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 40, 2 ** 40), st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["Deployment", "Pod", "CronJob", "List", "PodList", "host", "ALL",
                     "SYS_ADMIN", "unconfined", "Unconfined", "Localhost", "RuntimeDefault",
                     "/var/run/docker.sock:/var/run/docker.sock:ro", "80:80", "[::1]:80:80",
                     "127.0.0.1::80/udp", "512m", "1.5G", "128Mi", "500m", "${A:-1}", "$$",
                     "${B}", "no-new-privileges", "seccomp=unconfined", "service:x",
                     "bind", "rbind", "ro", "network", "pid", "/proc/1/ns/net", "x", "1.0.2"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(KEYS, children, max_size=6)),
    max_leaves=40,
)


YAML_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _check(kind, text):
    """Only hardrun's errors come out, each with a line inside the text when it has one;
    a parsed spec is of the front end's kind, from this file, its lines inside the text."""
    # YAML also breaks lines at a lone CR, NEL and the Unicode line and paragraph separators
    last_line = len(YAML_LINE_BREAK.findall(text)) + 1
    try:
        result = FRONT_ENDS[kind](text, "fuzz.yaml")
    except HardrunError as error:
        assert error.message
        # an error at the end of the input may name the line after the last one
        assert getattr(error, "line", None) is None or 1 <= error.line <= last_line + 1, (error.line, last_line)
        return
    assert isinstance(result, list) and all(isinstance(spec, RunSpec) for spec in result)
    for spec in result:
        assert spec.kind == kind and spec.path == "fuzz.yaml", (spec.kind, spec.path)
        lines = [spec.line] + list(spec.lines.values()) + [m.line for m in spec.mounts]
        assert all(line is None or 1 <= line <= last_line for line in lines), (lines, last_line)


@SETTINGS
@given(st.text(max_size=300))
def test_random_text_never_escapes(text):
    for kind in FRONT_ENDS:
        _check(kind, text)
    try:
        load_all(text)
    except HardrunError:
        pass


@SETTINGS
@given(VALUES)
def test_structured_json_never_escapes(value):
    text = json.dumps(value, indent=1)
    for kind in FRONT_ENDS:
        _check(kind, text)


@SETTINGS
@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_structured_compose_services_never_escape(service):
    text = json.dumps({"services": {"svc": service, "other": {"extends": "svc"}}})
    _check("compose", text)


@SETTINGS
@given(st.sampled_from(["Pod", "Deployment", "CronJob", "List"]), VALUES, VALUES)
def test_structured_kubernetes_never_escapes(kind, pod_spec, container):
    manifest = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "f"},
                "spec": {"template": {"spec": pod_spec}, "containers": [container],
                         "jobTemplate": {"spec": {"template": {"spec": {"containers": [container]}}}}},
                "items": [{"kind": "Pod", "spec": pod_spec}]}
    _check("kubernetes", json.dumps(manifest))


@SETTINGS
@given(VALUES, VALUES, VALUES)
def test_structured_oci_never_escapes(process, linux, mounts):
    config = {"ociVersion": "1.0.2", "process": process, "linux": linux, "mounts": mounts,
              "root": {"path": "rootfs"}}
    _check("oci", json.dumps(config, indent="\t"))


YAML_PIECES = st.lists(st.sampled_from([
    "services:\n", "  web:\n", "    image: a\n", "    <<: *base\n", "x-base: &base\n",
    "  user: root\n", "    ports:\n", "      - 80:80\n", "      - '[::1]:1:2'\n", "---\n",
    "kind: Pod\n", "spec:\n", "  containers:\n", "  - name: a\n", "    securityContext:\n",
    "      privileged: true\n", "\t", "- ", ": ", "&a ", "*a ", "!!binary ", "? ", "{", "}",
    "[", "]", "'", '"', "#", "%YAML 1.1\n", "    extends: web\n", "    volumes: [./a:/b]\n",
]), max_size=25)


@SETTINGS
@given(YAML_PIECES)
def test_yaml_fragments_never_escape(pieces):
    text = "".join(pieces)
    for kind in FRONT_ENDS:
        _check(kind, text)


@SETTINGS
@given(st.text(max_size=200), st.sampled_from(["compose.yaml", "x.yml", "a.json", "config.json",
                                                "docker-compose.prod.yml", "README.md"]))
def test_detection_never_raises(head, name):
    """Whatever the head, a compose file name stays compose and a JSON or YAML name is never
    read as a Dockerfile or a shell script."""
    kind = detect_kind(name, head)
    assert kind in (None, "compose", "kubernetes", "oci", "docker-run", "hardrun", "dockerfile")
    if name.startswith(("compose.", "docker-compose.")):
        assert kind == "compose", (name, kind)
    if name.endswith((".json", ".yml", ".yaml")):
        assert kind not in ("dockerfile", "docker-run"), (name, kind)


@SETTINGS
@given(st.text(max_size=200))
def test_interpolation_properties(text):
    """Without `$` interpolation is the identity; `$$` is a literal `$`, so any text with
    every `$` doubled comes back unchanged."""
    from hardrun.parsing.interpolate import _Interpolator, interpolate
    plain = text.replace("$", "")
    assert _Interpolator({}).run(plain) == plain          # past the shortcut for text without `$`
    assert interpolate(text.replace("$", "$$"), {"A": "x"}) == text
