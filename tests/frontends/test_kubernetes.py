"""Kubernetes manifests -> one RunSpec per container, pod settings inherited, lines kept."""
import json
import textwrap

import pytest

from hardrun.errors import ParseError
from hardrun.frontends import detect_kind
from hardrun.frontends.kubernetes import parse_kubernetes
from hardrun.spec.run import EnvVar, Mount, Port

from tests.helpers import DATA

K8S = DATA / "kubernetes"


def containers(text, path="manifest.yaml"):
    return {spec.subject: spec for spec in parse_kubernetes(textwrap.dedent(text), path)}


def fixture(name):
    return {spec.subject: spec for spec in parse_kubernetes((K8S / name).read_text(), name)}


def pod(spec_yaml, kind="Pod", annotations=""):
    """A Pod manifest whose spec is `spec_yaml` (indented as under `spec:`)."""
    body = textwrap.indent(textwrap.dedent(spec_yaml), "  ")
    meta = f"  annotations:\n{textwrap.indent(textwrap.dedent(annotations), '    ')}" if annotations else ""
    return f"apiVersion: v1\nkind: {kind}\nmetadata:\n  name: p\n{meta}spec:\n{body}"


def test_deployment_fixture_subjects_lines_and_inheritance():
    specs = fixture("web.yaml")
    assert list(specs) == ["Deployment/web initContainer migrate", "Deployment/web container app",
                           "Deployment/web container sidecar"]
    migrate, app, sidecar = specs.values()
    assert (migrate.line, app.line, sidecar.line) == (45, 53, 80)
    assert app.kind == "kubernetes" and app.name == "app"
    # inherited from the pod securityContext, with the pod's lines
    assert app.user == "10001:10001" and app.lines["user"] == 40
    assert app.run_as_non_root is True and app.lines["run_as_non_root"] == 39
    assert app.seccomp == "runtime/default" and app.lines["seccomp"] == 42
    # container settings
    assert app.no_new_privileges is True and app.lines["no_new_privileges"] == 66
    assert app.read_only_root is True and app.cap_drop == ("ALL",)
    assert app.memory == 256 * 2 ** 20 and app.cpus == 0.5 and app.lines["memory"] == 72
    assert app.env == (EnvVar("LOG_LEVEL", None, 58),
                       EnvVar("API_KEY", "sk_live_51HqLyjWDarjtT1zdp7dc", 63))
    assert app.mounts == (Mount("tmpfs", "/var/cache/web", "cache", False, ("emptyDir",), 75),
                          Mount("volume", "/etc/web", "config", True, ("configMap",), 77))
    assert app.ports == ()        # a containerPort alone is not published on the node
    # the container overrides runAsUser; the annotation names this container only
    assert sidecar.user == "0:10001" and sidecar.lines["user"] == 83
    assert sidecar.cap_add == ("NET_ADMIN", "SYS_TIME") and sidecar.lines["cap_add:SYS_TIME"] == 85
    assert sidecar.apparmor == "unconfined" and sidecar.lines["apparmor"] == 36
    assert app.apparmor is None and sidecar.no_new_privileges is None


def test_daemonset_fixture_host_access():
    (agent,) = fixture("node-agent.yaml").values()
    assert agent.subject == "DaemonSet/node-agent container agent" and agent.line == 19
    assert agent.namespaces == {"network": "host", "pid": "host"} and agent.network == "host"
    assert agent.lines["namespace:network"] == 15 and agent.lines["namespace:pid"] == 16
    assert agent.privileged and agent.no_new_privileges is False   # privileged wins
    assert agent.lines["no_new_privileges"] == agent.lines["privileged"] == 22
    assert agent.seccomp == "unconfined" and agent.selinux_disabled
    sock, proc, root = agent.mounts
    assert sock == Mount("bind", "/var/run/docker.sock", "/var/run/docker.sock", False,
                         ("hostPathType=Socket",), 35)
    assert proc.read_only and proc.source == "/proc" and proc.line == 37
    assert root.source == "/var/log" and root.target == "/rootfs"     # subPath joined
    assert agent.ports == (Port("9100", "9100", None, "tcp", 29),
                           Port("9101", "9101", "127.0.0.1", "tcp", 31))


def test_cronjob_fixture():
    (backup,) = fixture("backup-cronjob.yaml").values()
    assert backup.subject == "CronJob/backup container backup" and backup.line == 13
    assert backup.command == ("--target", "s3://backups") and backup.memory == 2 ** 30


def test_json_list_fixture_with_tabs():
    specs = fixture("list.json")
    assert list(specs) == ["Pod/debug container shell", "Pod/debug ephemeralContainer probe"]
    shell = specs["Pod/debug container shell"]
    assert shell.line == 11 and shell.cap_add == ("SYS_ADMIN",)
    assert shell.no_new_privileges is False      # CAP_SYS_ADMIN always allows escalation


@pytest.mark.parametrize("kind,path", [
    ("Deployment", "spec.template.spec"), ("StatefulSet", "spec.template.spec"),
    ("DaemonSet", "spec.template.spec"), ("ReplicaSet", "spec.template.spec"),
    ("ReplicationController", "spec.template.spec"), ("Job", "spec.template.spec"),
    ("CronJob", "spec.jobTemplate.spec.template.spec"), ("Pod", "spec"),
    ("PodTemplate", "template.spec"),
])
def test_every_workload_kind(kind, path):
    manifest = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "w"}}
    node = manifest
    for key in path.split("."):
        node = node.setdefault(key, {})
    node["containers"] = [{"name": "c", "image": "a:1"}]
    (spec,) = parse_kubernetes(json.dumps(manifest, indent=2), "w.json")
    assert spec.subject == f"{kind}/w container c" and spec.image == "a:1"


def test_non_workloads_and_kindless_objects_are_skipped():
    text = """
        apiVersion: v1
        kind: Service
        metadata: {name: s}
        spec: {containers: "not checked"}
        ---
        apiVersion: example.com/v1
        kind: Widget
        spec: {template: {spec: {containers: [{name: x}]}}}
        ---
        just: a mapping
        ---
        - a list
        ---
        plain text
        ---
    """
    assert containers(text) == {}


def test_nested_lists_and_documents():
    text = """
        apiVersion: v1
        kind: DeploymentList
        items:
          - kind: Deployment
            metadata: {name: a}
            spec:
              template:
                spec:
                  containers: [{name: one, image: x:1}]
        ---
        kind: Pod
        metadata: {generateName: job-}
        spec:
          containers: [{name: two, image: y:1}]
    """
    assert list(containers(text)) == ["Deployment/a container one", "Pod/job- container two"]


def test_container_overrides_pod_security_context():
    specs = containers(pod("""
        securityContext:
          runAsUser: 1000
          runAsNonRoot: true
          seccompProfile: {type: Unconfined}
          appArmorProfile: {type: RuntimeDefault}
        containers:
          - name: a
            image: x:1
            securityContext:
              runAsUser: 2000
              runAsNonRoot: false
              seccompProfile:
                type: Localhost
                localhostProfile: profiles/audit.json
              appArmorProfile: {type: Unconfined}
          - name: b
            image: x:1
    """))
    a, b = specs.values()
    assert (a.user, a.run_as_non_root, a.seccomp, a.apparmor) == (
        "2000", False, "localhost/profiles/audit.json", "unconfined")
    assert (b.user, b.run_as_non_root, b.seccomp, b.apparmor) == (
        "1000", True, "unconfined", "runtime/default")
    assert a.lines["user"] == 16 and b.lines["user"] == 8


def test_allow_privilege_escalation_mapping():
    specs = containers(pod("""
        containers:
          - {name: off, image: x, securityContext: {allowPrivilegeEscalation: false}}
          - {name: on, image: x, securityContext: {allowPrivilegeEscalation: true}}
          - {name: unset, image: x}
          - name: sysadmin
            image: x
            securityContext:
              allowPrivilegeEscalation: false
              capabilities: {add: [CAP_SYS_ADMIN]}
    """))
    assert [s.no_new_privileges for s in specs.values()] == [True, False, None, False]


def test_legacy_seccomp_and_apparmor_annotations():
    specs = containers(pod("""
        containers:
          - {name: a, image: x}
          - {name: b, image: x}
    """, annotations="""
        seccomp.security.alpha.kubernetes.io/pod: docker/default
        container.seccomp.security.alpha.kubernetes.io/b: unconfined
        container.apparmor.security.beta.kubernetes.io/a: unconfined
    """))
    a, b = specs.values()
    assert (a.seccomp, b.seccomp) == ("runtime/default", "unconfined")
    assert (a.apparmor, b.apparmor) == ("unconfined", None)
    assert a.lines["apparmor"] == 9


def test_host_namespaces_false_and_host_users():
    (spec,) = containers(pod("""
        hostNetwork: false
        hostPID: false
        hostUsers: false
        containers: [{name: a, image: x}]
    """)).values()
    assert spec.namespaces == {"user": "private"} and spec.network is None


def test_host_users_true_is_the_hosts_user_namespace():
    (spec,) = containers(pod("""
        hostUsers: true
        containers: [{name: a, image: x}]
    """)).values()
    assert spec.namespaces == {"user": "host"} and "namespace:user" in spec.lines


@pytest.mark.parametrize("memory,expected", [
    ("128Mi", 128 * 2 ** 20), ("1Gi", 2 ** 30), ("512Ki", 512 * 1024), ("1G", 10 ** 9),
    ("500M", 500 * 10 ** 6), ("1048576", 2 ** 20), (268435456, 268435456), ("129e6", 129 * 10 ** 6),
])
def test_memory_quantities(memory, expected):
    (spec,) = containers(pod(f"""
        containers:
          - name: a
            resources:
              limits: {{memory: "{memory}", cpu: 250m}}
    """)).values()
    assert spec.memory == expected and spec.cpus == 0.25


def test_env_values():
    (spec,) = containers(pod("""
        containers:
          - name: a
            env:
              - {name: A, value: "1"}
              - {name: B, value: 2}
              - {name: C}
              - {name: D, valueFrom: {secretKeyRef: {name: s, key: k}}}
    """)).values()
    assert [(e.name, e.value) for e in spec.env] == [("A", "1"), ("B", "2"), ("C", ""), ("D", None)]


@pytest.mark.parametrize("body,message,line", [
    ("containers: {a: 1}\n", "`containers` must be a list", 6),
    ("containers: [5]\n", "must be containers", 6),
    ("containers:\n  - name: a\n    securityContext: [x]\n", "securityContext", 8),
    ("containers:\n  - name: a\n    securityContext:\n      runAsUser: root\n", "runAsUser", 9),
    ("containers:\n  - name: a\n    securityContext:\n      privileged: yes please\n", "privileged", 9),
    ("hostNetwork: yes please\ncontainers: []\n", "hostNetwork", 6),
    ("containers:\n  - name: a\n    resources: {limits: {memory: lots}}\n", "memory", 8),
    ("containers:\n  - name: a\n    volumeMounts: [{name: v}]\n", "mountPath", 8),
    ("volumes: [{hostPath: {path: /}}]\ncontainers: []\n", "volume needs a `name`", 6),
    ("containers:\n  - name: a\n    securityContext:\n      seccompProfile: {type: Bogus}\n",
     "seccompProfile.type", 9),
])
def test_malformed_workloads_are_parse_errors(body, message, line):
    with pytest.raises(ParseError, match=message) as caught:
        parse_kubernetes(pod(body), "pod.yaml")
    assert caught.value.line == line and "Pod/p" in caught.value.message


def test_malformed_spec_path():
    with pytest.raises(ParseError, match="spec.template") as caught:
        parse_kubernetes("kind: Deployment\nmetadata: {name: d}\nspec:\n  template: [1]\n", "d.yaml")
    assert caught.value.line == 4


@pytest.mark.parametrize("name,head,kind", [
    ("deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\n", "kubernetes"),
    ("all.yml", "# comment\n---\napiVersion: v1\nkind: List\nitems: []\n", "kubernetes"),
    ("pod.json", '{\n  "apiVersion": "v1",\n  "kind": "Pod"\n}\n', "kubernetes"),
    ("chart/templates/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
     "  name: {{ .Release.Name }}\n", None),
    ("values.yaml", "image:\n  kind: x\n  apiVersion: y\n", None),
    ("package.json", '{"name": "x", "version": "1.0.0"}', None),
])
def test_detection_of_kubernetes_files(name, head, kind, tmp_path):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head)
    # other kinds (docker-run for CI files and Markdown…) may claim what this one leaves
    for found in (detect_kind(str(path), head), detect_kind(str(path))):
        assert found == kind if kind else found != "kubernetes"


def test_volume_sources_other_than_host_paths():
    (spec,) = containers(pod("""
        containers:
          - name: a
            volumeMounts:
              - {name: creds, mountPath: /run/secrets/app, readOnly: true}
              - {name: data, mountPath: /data}
              - {name: scratch, mountPath: /tmp}
              - {name: undeclared, mountPath: /x}
        volumes:
          - {name: creds, secret: {secretName: app}}
          - {name: data, persistentVolumeClaim: {claimName: data}}
          - {name: scratch, emptyDir: {}}
    """)).values()
    assert [(m.type, m.source, m.options, m.read_only) for m in spec.mounts] == [
        ("volume", "creds", ("secret",), True), ("volume", "data", ("persistentVolumeClaim",), False),
        ("volume", "scratch", ("emptyDir",), False), ("volume", "undeclared", (), False)]
    assert not any(m.type == "bind" for m in spec.mounts)
