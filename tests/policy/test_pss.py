"""The built-in `baseline` and `restricted` policies agree with the Kubernetes Pod
Security Standards: a table of pods, each allowed or forbidden per level, read by the
Kubernetes front end and judged by the policy exactly as `hardrun audit --policy` does.

Every control of both levels has forbidden cases and allowed cases; docs/pss.md lists
the controls, their fields and the rules that check them.
"""
import copy

import pytest
import yaml

from hardrun.audit.engine import audit_text
from hardrun.policy import audit_options, load_policy
from hardrun.policy.evaluate import failing

# Compliant with restricted (and so with baseline).
RESTRICTED_POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
    "spec": {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "app", "image": "nginx:1.27",
            "securityContext": {"allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}},
        }],
    },
}


def pod(change=None, **spec_changes):
    """RESTRICTED_POD with `spec_changes` at spec level and `change(container, spec)` applied."""
    document = copy.deepcopy(RESTRICTED_POD)
    document["spec"].update(spec_changes)
    if change:
        change(document["spec"]["containers"][0], document["spec"])
    return document


def container(**settings):
    return lambda c, s: c.update(settings)


def context(**settings):
    return lambda c, s: c["securityContext"].update(settings)


def pod_context(**settings):
    return lambda c, s: s["securityContext"].update(settings)


def both(*changes):
    def apply(c, s):
        for change in changes:
            change(c, s)
    return apply


def without(key, level="container"):
    def apply(c, s):
        (c["securityContext"] if level == "container" else s["securityContext"]).pop(key, None)
    return apply


def volume(definition):
    def apply(c, s):
        s["volumes"] = [{"name": "v", **definition}]
        c["volumeMounts"] = [{"name": "v", "mountPath": "/v"}]
    return apply


def init_container(**security):
    def apply(c, s):
        init = copy.deepcopy(c)
        init["name"] = "init"
        init["securityContext"].update(security)
        s["initContainers"] = [init]
    return apply


BASELINE_ONLY = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"},
                 "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}

# (case, pod, allowed by baseline, allowed by restricted)
CASES = [
    ("compliant restricted pod", pod(), True, True),
    ("minimal pod: baseline only", BASELINE_ONLY, True, False),
    # Host namespaces
    ("hostNetwork true", pod(hostNetwork=True), False, False),
    ("hostNetwork false", pod(hostNetwork=False), True, True),
    ("hostPID true", pod(hostPID=True), False, False),
    ("hostPID false", pod(hostPID=False), True, True),
    ("hostIPC true", pod(hostIPC=True), False, False),
    ("hostIPC false", pod(hostIPC=False), True, True),
    # Privileged containers
    ("privileged true", pod(context(privileged=True)), False, False),
    ("privileged false", pod(context(privileged=False)), True, True),
    ("privileged initContainer", pod(init_container(privileged=True)), False, False),
    # Capabilities (baseline: the default set; restricted: NET_BIND_SERVICE only)
    ("add NET_BIND_SERVICE", pod(context(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})),
     True, True),
    ("add CHOWN (default set)", pod(context(capabilities={"drop": ["ALL"], "add": ["CHOWN"]})),
     True, False),
    ("add KILL, SETUID (default set)", pod(context(capabilities={"drop": ["ALL"], "add": ["KILL", "SETUID"]})),
     True, False),
    ("add NET_RAW", pod(context(capabilities={"drop": ["ALL"], "add": ["NET_RAW"]})), False, False),
    ("add SYS_ADMIN", pod(context(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]})), False, False),
    ("add CAP_SYS_PTRACE", pod(context(capabilities={"drop": ["ALL"], "add": ["CAP_SYS_PTRACE"]})),
     False, False),
    ("drop not ALL", pod(context(capabilities={"drop": ["NET_RAW"]})), True, False),
    ("no capabilities key", pod(without("capabilities")), True, False),
    # HostPath volumes
    ("hostPath volume", pod(volume({"hostPath": {"path": "/var/log"}})), False, False),
    ("hostPath volume read-only", pod(both(volume({"hostPath": {"path": "/data"}}),
                                           container(volumeMounts=[{"name": "v", "mountPath": "/v",
                                                                    "readOnly": True}]))),
     False, False),
    # Host ports
    ("hostPort 8080", pod(container(ports=[{"containerPort": 80, "hostPort": 8080}])), False, False),
    ("hostPort 0", pod(container(ports=[{"containerPort": 80, "hostPort": 0}])), True, True),
    ("containerPort only", pod(container(ports=[{"containerPort": 80}])), True, True),
    # AppArmor
    ("appArmorProfile Unconfined", pod(context(appArmorProfile={"type": "Unconfined"})), False, False),
    ("appArmorProfile RuntimeDefault", pod(context(appArmorProfile={"type": "RuntimeDefault"})), True, True),
    ("appArmorProfile Localhost", pod(context(appArmorProfile={"type": "Localhost",
                                                               "localhostProfile": "k8s-nginx"})),
     True, True),
    ("AppArmor annotation unconfined",
     {**pod(), "metadata": {"name": "web", "annotations": {
         "container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}}, False, False),
    ("AppArmor annotation runtime/default",
     {**pod(), "metadata": {"name": "web", "annotations": {
         "container.apparmor.security.beta.kubernetes.io/app": "runtime/default"}}}, True, True),
    # SELinux
    ("seLinuxOptions type container_t", pod(context(seLinuxOptions={"type": "container_t"})), True, True),
    ("seLinuxOptions type container_init_t", pod(context(seLinuxOptions={"type": "container_init_t"})),
     True, True),
    ("seLinuxOptions type container_kvm_t", pod(context(seLinuxOptions={"type": "container_kvm_t"})),
     True, True),
    ("seLinuxOptions level only", pod(context(seLinuxOptions={"level": "s0:c123,c456"})), True, True),
    ("seLinuxOptions type spc_t", pod(context(seLinuxOptions={"type": "spc_t"})), False, False),
    ("seLinuxOptions type unconfined_t (pod)", pod(pod_context(seLinuxOptions={"type": "unconfined_t"})),
     False, False),
    ("seLinuxOptions user", pod(context(seLinuxOptions={"user": "system_u"})), False, False),
    ("seLinuxOptions role", pod(context(seLinuxOptions={"role": "system_r"})), False, False),
    # /proc mount type
    ("procMount Default", pod(context(procMount="Default")), True, True),
    ("procMount Unmasked", pod(context(procMount="Unmasked")), False, False),
    # Seccomp (baseline: not Unconfined; restricted: RuntimeDefault or Localhost, explicitly)
    ("seccompProfile Unconfined (pod)", pod(pod_context(seccompProfile={"type": "Unconfined"})),
     False, False),
    ("seccompProfile Unconfined (container)", pod(context(seccompProfile={"type": "Unconfined"})),
     False, False),
    ("seccompProfile Localhost", pod(pod_context(seccompProfile={"type": "Localhost",
                                                                 "localhostProfile": "profiles/web.json"})),
     True, True),
    ("seccompProfile unset", pod(without("seccompProfile", "pod")), True, False),
    # Sysctls
    ("safe sysctl", pod(pod_context(sysctls=[{"name": "net.ipv4.ip_unprivileged_port_start",
                                               "value": "0"}])), True, True),
    ("safe sysctl ping_group_range", pod(pod_context(sysctls=[{"name": "net.ipv4.ping_group_range",
                                                                "value": "0 2147483647"}])), True, True),
    ("unsafe sysctl kernel.msgmax", pod(pod_context(sysctls=[{"name": "kernel.msgmax", "value": "65536"}])),
     False, False),
    ("unsafe sysctl net.core.somaxconn", pod(pod_context(sysctls=[{"name": "net.core.somaxconn",
                                                                    "value": "1024"}])), False, False),
    # Volume types (restricted)
    ("configMap volume", pod(volume({"configMap": {"name": "c"}})), True, True),
    ("secret volume", pod(volume({"secret": {"secretName": "s"}})), True, True),
    ("emptyDir volume", pod(volume({"emptyDir": {}})), True, True),
    ("projected volume", pod(volume({"projected": {"sources": []}})), True, True),
    ("downwardAPI volume", pod(volume({"downwardAPI": {"items": []}})), True, True),
    ("persistentVolumeClaim volume", pod(volume({"persistentVolumeClaim": {"claimName": "data"}})),
     True, True),
    ("csi volume", pod(volume({"csi": {"driver": "x.example"}})), True, True),
    ("ephemeral volume", pod(volume({"ephemeral": {"volumeClaimTemplate": {"spec": {}}}})), True, True),
    ("nfs volume", pod(volume({"nfs": {"server": "nfs.internal", "path": "/x"}})), True, False),
    ("gitRepo volume", pod(volume({"gitRepo": {"repository": "https://git.example/r"}})), True, False),
    ("iscsi volume", pod(volume({"iscsi": {"targetPortal": "t", "iqn": "i", "lun": 0}})), True, False),
    # Privilege escalation (restricted)
    ("allowPrivilegeEscalation true", pod(context(allowPrivilegeEscalation=True)), True, False),
    ("allowPrivilegeEscalation unset", pod(without("allowPrivilegeEscalation")), True, False),
    # Running as non-root (restricted)
    ("runAsNonRoot false", pod(pod_context(runAsNonRoot=False)), True, False),
    ("runAsNonRoot unset", pod(without("runAsNonRoot", "pod")), True, False),
    ("runAsNonRoot on container only", pod(both(without("runAsNonRoot", "pod"),
                                                context(runAsNonRoot=True))), True, True),
    # Running as non-root user (restricted)
    ("runAsUser 0 (pod)", pod(pod_context(runAsUser=0)), True, False),
    ("runAsUser 0 (container)", pod(context(runAsUser=0)), True, False),
    ("runAsUser unset with runAsNonRoot", pod(without("runAsUser", "pod")), True, True),
    # The pod level is checked on its own, as Pod Security admission does: a forbidden
    # pod-level value is refused even when every container overrides it.
    ("runAsUser 0 (pod), every container 1000", pod(both(pod_context(runAsUser=0), context(runAsUser=1000))),
     True, False),
    ("runAsUser 1000 (pod), container 2000", pod(context(runAsUser=2000)), True, True),
    ("runAsNonRoot false (pod), container true", pod(both(pod_context(runAsNonRoot=False),
                                                          context(runAsNonRoot=True))), True, False),
    ("seccompProfile Unconfined (pod), container RuntimeDefault",
     pod(both(pod_context(seccompProfile={"type": "Unconfined"}),
              context(seccompProfile={"type": "RuntimeDefault"}))), False, False),
    ("seccompProfile RuntimeDefault (pod), container Localhost",
     pod(context(seccompProfile={"type": "Localhost", "localhostProfile": "p.json"})), True, True),
    ("appArmorProfile Unconfined (pod), container RuntimeDefault",
     pod(both(pod_context(appArmorProfile={"type": "Unconfined"}),
              context(appArmorProfile={"type": "RuntimeDefault"}))), False, False),
    ("seLinuxOptions type spc_t (pod), container container_t",
     pod(both(pod_context(seLinuxOptions={"type": "spc_t"}),
              context(seLinuxOptions={"type": "container_t"}))), False, False),
    ("seLinuxOptions user (pod), container level only", pod(both(pod_context(seLinuxOptions={"user": "u"}),
                                                                 context(seLinuxOptions={"level": "s0"}))),
     False, False),
    ("hostPath volume declared, not mounted",
     pod(volumes=[{"name": "logs", "hostPath": {"path": "/var/log"}}]), False, False),
    ("emptyDir volume declared, not mounted", pod(volumes=[{"name": "scratch", "emptyDir": {}}]), True, True),
    # HostProcess (Windows): windowsOptions.hostProcess must be unset or false
    ("hostProcess true (container)", pod(context(windowsOptions={"hostProcess": True})), False, False),
    ("hostProcess true (pod)", pod(pod_context(windowsOptions={"hostProcess": True})), False, False),
    ("hostProcess true (pod), container false",
     pod(both(pod_context(windowsOptions={"hostProcess": True}), context(windowsOptions={"hostProcess": False}))),
     False, False),
    ("hostProcess false", pod(context(windowsOptions={"hostProcess": False})), True, True),
]


def verdict(document, policy_name):
    policy = load_policy(policy_name)
    text = yaml.safe_dump(document, sort_keys=False)
    findings = audit_text(text, "kubernetes", "pod.yaml", audit_options(policy))
    return not failing(findings, policy), findings


@pytest.mark.parametrize("case,document,baseline,restricted", CASES, ids=[c[0] for c in CASES])
def test_pod_security_standards(case, document, baseline, restricted):
    for level, expected in (("baseline", baseline), ("restricted", restricted)):
        allowed, findings = verdict(document, level)
        assert allowed == expected, (level, [(f.rule, f.message) for f in findings])


def test_a_pod_level_value_every_container_overrides_is_reported_once_about_the_pod():
    document = pod(both(pod_context(seccompProfile={"type": "Unconfined"}),
                        context(seccompProfile={"type": "RuntimeDefault"}),
                        init_container()))
    document["spec"]["volumes"] = [{"name": "logs", "hostPath": {"path": "/var/log"}}]
    allowed, findings = verdict(document, "baseline")
    refusing = failing(findings, load_policy("baseline"))
    text = yaml.safe_dump(document, sort_keys=False).splitlines()
    assert sorted((f.rule, f.subject, text[f.line - 1].strip()) for f in refusing) == [
        ("HR2008", "Pod/web", "seccompProfile:"), ("HR3002", "Pod/web", "- name: logs")]


def test_every_forbidden_case_is_refused_with_a_line():
    forbidden = [(case, document) for case, document, baseline, _ in CASES if not baseline]
    assert forbidden
    for case, document in forbidden:
        allowed, findings = verdict(document, "baseline")
        refusing = failing(findings, load_policy("baseline"))
        assert not allowed and refusing, case
        assert all(f.rule and f.message and f.line for f in refusing), (case, [(f.rule, f.line) for f in refusing])


# The same controls where docker run lines and compose files can express them.
OTHER_FRONT_ENDS = [
    ("docker-run", "docker run --sysctl kernel.msgmax=65536 nginx:1.27\n", "HR3006"),
    ("docker-run", "docker run --security-opt label=type:spc_t nginx:1.27\n", "HR3004"),
    ("docker-run", "docker run --security-opt label=role:system_r nginx:1.27\n", "HR3004"),
    ("docker-run", "docker run --security-opt systempaths=unconfined nginx:1.27\n", "HR3005"),
    ("docker-run", "docker run --cap-add NET_RAW nginx:1.27\n", "HR3001"),
    ("docker-run", "docker run -p 8080:80 nginx:1.27\n", "HR3003"),
    ("docker-run", "docker run -v /srv:/srv:ro nginx:1.27\n", "HR3002"),
    ("docker-run", "docker run --privileged nginx:1.27\n", "HR2001"),
    ("docker-run", "docker run --pid host nginx:1.27\n", "HR2007"),
    ("compose", "services:\n  web:\n    image: nginx:1.27\n    sysctls:\n      kernel.msgmax: 1\n", "HR3006"),
    ("compose", "services:\n  web:\n    image: nginx:1.27\n    sysctls: [kernel.sem=1]\n", "HR3006"),
    ("compose", "services:\n  web:\n    image: nginx:1.27\n    security_opt: ['label:user:system_u']\n",
     "HR3004"),
    ("compose", "services:\n  web:\n    image: nginx:1.27\n    security_opt: [systempaths=unconfined]\n",
     "HR3005"),
]
ALLOWED_ELSEWHERE = [
    ("docker-run", "docker run --sysctl net.ipv4.ip_unprivileged_port_start=0 nginx:1.27\n"),
    ("docker-run", "docker run --security-opt label=level:s0:c100,c200 --cap-add CHOWN nginx:1.27\n"),
    ("compose", "services:\n  web:\n    image: nginx:1.27\n    sysctls: {net.ipv4.tcp_syncookies: 1}\n"
                "    security_opt: ['label:type:container_t']\n"),
]


def _baseline(kind, text):
    policy = load_policy("baseline")
    findings = audit_text(text, kind, "x", audit_options(policy))
    return {f.rule for f in failing(findings, policy)}


@pytest.mark.parametrize("kind,text,rule", OTHER_FRONT_ENDS)
def test_baseline_controls_in_docker_run_and_compose(kind, text, rule):
    assert rule in _baseline(kind, text)


@pytest.mark.parametrize("kind,text", ALLOWED_ELSEWHERE)
def test_baseline_allows_the_safe_settings_in_docker_run_and_compose(kind, text):
    assert _baseline(kind, text) == set()
