"""A run finding's fix names the flag or key of the kind of file it is in; what is
wrong is said the same way for every kind."""
import json

import pytest

from hardrun.audit.engine import AuditOptions, audit_text
from tests.helpers import run_hardrun

DOCKER = "docker run -v /srv:/srv nginx:1.27\n"
COMPOSE = "services:\n  web:\n    image: nginx:1.27\n    volumes: ['/srv:/srv']\n"
KUBERNETES = """\
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
    - name: app
      image: nginx:1.27
      volumeMounts: [{name: srv, mountPath: /srv}]
  volumes: [{name: srv, hostPath: {path: /srv}}]
"""
OCI = json.dumps({
    "ociVersion": "1.0.2",
    "process": {"user": {"uid": 0, "gid": 0}, "args": ["/app"], "cwd": "/",
                "capabilities": {"bounding": [], "effective": [], "permitted": []}},
    "root": {"path": "rootfs"},
    "mounts": [{"destination": "/srv", "type": "bind", "source": "/srv", "options": ["rbind"]}],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}]},
})
TEXTS = {"docker-run": DOCKER, "compose": COMPOSE, "kubernetes": KUBERNETES, "oci": OCI}
NAMES = {"docker-run": "run.sh", "compose": "compose.yml", "kubernetes": "pod.yaml",
         "oci": "config.json"}


def messages(kind):
    found = audit_text(TEXTS[kind], kind, NAMES[kind], AuditOptions())
    return {f.practice: f.message for f in found}


# practice -> {kind: the flag or key its fix must name}
EXPECTED = {
    "no-cap-drop": {"docker-run": "--cap-drop ALL", "compose": "cap_drop: [ALL]",
                    "kubernetes": 'securityContext.capabilities.drop: ["ALL"]'},
    "no-nnp": {"docker-run": "--security-opt no-new-privileges",
               "compose": "security_opt: [no-new-privileges:true]",
               "kubernetes": "allowPrivilegeEscalation: false",
               "oci": "process.noNewPrivileges: true"},
    "writable-root": {"docker-run": "--read-only", "compose": "read_only: true",
                      "kubernetes": "readOnlyRootFilesystem: true", "oci": "root.readonly: true"},
    "run-as-root": {"docker-run": "-u with a non-zero uid", "compose": "user:",
                    "kubernetes": "runAsNonRoot: true", "oci": "process.user.uid"},
    "rw-volume": {"docker-run": ":ro", "compose": "read_only: true",
                  "kubernetes": "readOnly: true", "oci": '"ro"'},
    "no-resource-limits": {"docker-run": "--memory and --pids-limit",
                           "compose": "mem_limit and pids_limit",
                           "kubernetes": "resources.limits.memory",
                           "oci": "linux.resources.memory.limit"},
}
CASES = [(practice, kind, key) for practice, by_kind in EXPECTED.items()
         for kind, key in by_kind.items()]


@pytest.mark.parametrize("practice,kind,key", CASES)
def test_fix_names_the_key_of_the_file_kind(practice, kind, key):
    message = messages(kind)[practice]
    assert key in message, message


@pytest.mark.parametrize("practice", ["no-cap-drop", "no-nnp", "writable-root", "run-as-root"])
def test_yaml_kinds_are_not_told_docker_flags(practice):
    for kind in ("compose", "kubernetes", "oci"):
        if practice == "no-cap-drop" and kind == "oci":
            continue   # an OCI config lists the capabilities it keeps: nothing to drop
        message = messages(kind)[practice]
        assert message and "--" not in message and " -u " not in message, (kind, message)


# The OCI sample names uid 0 and Kubernetes has no pids limit: other situations.
DIFFERENT_SITUATION = {("run-as-root", "oci"), ("no-resource-limits", "kubernetes")}


@pytest.mark.parametrize("practice", sorted(EXPECTED))
def test_what_is_wrong_reads_the_same_for_every_kind(practice):
    firsts = {messages(kind)[practice].split(": ")[0]
              for kind in EXPECTED[practice] if (practice, kind) not in DIFFERENT_SITUATION}
    assert len(firsts) == 1, firsts


def test_hardrun_policy_refusal_speaks_hardrun_run_flags():
    result = run_hardrun("run", "--policy", "strict", "--userns", "host", "--user", "0",
                         "--read-write", "--dry-run", "--", "true")
    assert result.returncode != 0
    assert "HR2012 error the container runs as root (user 0): add -u with a non-zero uid" \
        in result.stderr, result.stderr
    assert "the root filesystem is writable: add --read-only" in result.stderr, result.stderr
