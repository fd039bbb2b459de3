"""The run rules over compose files, Kubernetes manifests and OCI configs: the same
checks as for `docker run`, read through each front end's semantics."""
import json
import textwrap

import pytest

from hardrun.audit.engine import AuditOptions, audit_text


def practices(text, kind, path=None):
    found = audit_text(textwrap.dedent(text), kind, path or f"x.{kind}", AuditOptions())
    return {(f.practice, f.line, f.subject) for f in found if not f.suppressed}


def names(text, kind):
    return {practice for practice, _, _ in practices(text, kind)}


# --------------------------------------------------------------------------- compose

COMPOSE = """\
    services:
      web:
        image: ${IMAGE}
        user: "${UID}"
        read_only: true
        cap_drop: [ALL]
        security_opt: [no-new-privileges:true]
        mem_limit: 256m
        pids_limit: 100
        ports:
          - "127.0.0.1:8080:80"
        expose: ["22"]
        environment:
          DB_PASSWORD: ${DB_PASSWORD}
          DB_PASSWORD_FILE: /run/secrets/db
        volumes:
          - cache:/cache
          - ./conf:/conf:ro
        tmpfs: [/tmp]
    volumes:
      cache: {}
    """


def test_a_hardened_compose_service_is_clean():
    assert names(COMPOSE, "compose") == set()


def test_compose_image_default_is_judged():
    assert "untrusted-base" in names(COMPOSE.replace("${IMAGE}", "${IMAGE:-nginx}"), "compose")


def test_compose_findings_name_the_service_and_key_lines():
    found = practices("""\
        services:
          agent:
            image: agent:1.0@sha256:%s
            privileged: true
            volumes:
              - type: bind
                source: /var/run/docker.sock
                target: /var/run/docker.sock
              - /etc:/host/etc
            ports: ["2375:2375"]
        """ % ("a" * 64), "compose")
    by_practice = {practice: (line, subject) for practice, line, subject in found}
    assert by_practice["privileged"] == (4, "agent")
    assert by_practice["socket-mount"][0] == 6
    assert by_practice["sensitive-host-mount"][0] == 9
    assert by_practice["expose-sensitive"][0] == 10
    assert by_practice["publish-all-interfaces"][0] == 10
    # the socket is not also a sensitive-host-mount
    assert [p for p, line, _ in found if p == "sensitive-host-mount"] == ["sensitive-host-mount"]


# --------------------------------------------------------------------------- Kubernetes

POD = """\
    apiVersion: v1
    kind: Pod
    metadata:
      name: web
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: app
          image: nginx:1.27@sha256:%s
          ports:
            - containerPort: 22
            - containerPort: 80
              hostPort: 8080
              hostIP: 127.0.0.1
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: ["ALL"]}
          resources:
            limits: {memory: 128Mi}
          volumeMounts:
            - {name: static, mountPath: /static, readOnly: true}
            - {name: scratch, mountPath: /tmp}
      volumes:
        - name: static
          hostPath: {path: /srv/static}
        - name: scratch
          emptyDir: {}
    """ % ("b" * 64)


def test_a_hardened_pod_is_clean():
    assert names(POD, "kubernetes") == set()


def test_pod_level_run_as_non_root_is_inherited_and_overridable():
    overridden = POD.replace("allowPrivilegeEscalation: false",
                             "allowPrivilegeEscalation: false\n            runAsUser: 0")
    found = practices(overridden, "kubernetes")
    assert ("run-as-root", 19, "Pod/web container app") in found


def test_privileged_pod_allows_escalation():
    privileged = POD.replace("allowPrivilegeEscalation: false", "privileged: true")
    assert {"privileged", "no-nnp"} <= names(privileged, "kubernetes")


def test_kubernetes_host_namespaces_and_host_paths():
    found = names("""\
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: agent}
        spec:
          selector: {matchLabels: {app: agent}}
          template:
            metadata: {labels: {app: agent}}
            spec:
              hostPID: true
              hostNetwork: true
              containers:
                - name: agent
                  image: agent:2
                  volumeMounts:
                    - {name: root, mountPath: /host}
                    - {name: sock, mountPath: /run/containerd}
              volumes:
                - {name: root, hostPath: {path: /}}
                - {name: sock, hostPath: {path: /run/containerd}}
        """, "kubernetes")
    assert {"host-namespace", "sensitive-host-mount", "socket-mount", "rw-volume",
            "run-as-root", "no-resource-limits"} <= found


# --------------------------------------------------------------------------- OCI

def oci_config(**changes):
    config = {
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 1000, "gid": 1000}, "args": ["/app"], "cwd": "/",
                    "noNewPrivileges": True,
                    "capabilities": {"bounding": ["CAP_NET_BIND_SERVICE"],
                                     "effective": ["CAP_NET_BIND_SERVICE"],
                                     "permitted": ["CAP_NET_BIND_SERVICE"]}},
        "root": {"path": "rootfs", "readonly": True},
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
                  "resources": {"memory": {"limit": 1 << 28}, "pids": {"limit": 64}},
                  "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        config[section][field] = value
    return json.dumps(config, indent=2)


def test_a_hardened_oci_config_is_clean():
    assert names(oci_config(), "oci") == set()


def test_oci_capabilities_are_an_allowlist():
    # no `--cap-drop ALL` to ask for: an OCI process has only the capabilities it lists
    assert "no-cap-drop" not in names(oci_config(), "oci")


@pytest.mark.parametrize("change,practice", [
    ({"linux__namespaces": [{"type": "pid"}, {"type": "mount"}]}, "host-namespace"),
    ({"root__readonly": False}, "writable-root"),
    ({"process__user": {"uid": 0, "gid": 0}}, "run-as-root"),
    ({"process__noNewPrivileges": False}, "no-nnp"),
    ({"linux__resources": {}}, "no-resource-limits"),
])
def test_oci_loosenings(change, practice):
    assert practice in names(oci_config(**change), "oci")
