"""Semantics of the run rules (HR2xxx) and their false positives.

Most cases go through real `docker run` text and the whole engine; cases only other
front ends can express (Kubernetes runAsNonRoot, hardrun's hardened defaults) are
built as RunSpecs directly, since the checks read nothing but the model.
"""
import pytest

from hardrun.audit.engine import AuditContext, AuditOptions, audit_text
from hardrun.audit.rules import all_rules, checks
from hardrun.spec.run import EnvVar, Mount, Port, RunSpec

RULE_OF = {rule.practice: rule.id for rule in all_rules().values() if rule.id.startswith("HR2")}
RUN_PRACTICES = ("privileged", "socket-mount", "cap-add-dangerous", "no-cap-drop", "no-nnp",
                 "writable-root", "host-namespace", "seccomp-unconfined", "apparmor-unconfined",
                 "sensitive-host-mount", "rw-volume", "run-as-root", "publish-all-interfaces",
                 "no-resource-limits", "device-access")


def findings(text, practice=None, options=None):
    found = audit_text(text, "docker-run", "run.sh", options or AuditOptions())
    return [f for f in found if practice is None or f.practice == practice]


def fires(text, practice):
    return bool(findings(text, practice))


def hits(spec, practice):
    context = AuditContext("x", spec.kind)
    return list(checks()[RULE_OF[practice]](spec, context) or ())


def test_every_run_practice_has_a_rule():
    for practice in RUN_PRACTICES + ("secret", "untrusted-base", "unpinned-digest",
                                     "expose-sensitive"):
        assert practice in RULE_OF, practice


def test_a_hardened_command_is_clean():
    text = ("docker run --cap-drop ALL --security-opt no-new-privileges --read-only "
            "-u 10001:10001 -m 256m --pids-limit 100 -p 127.0.0.1:8080:8080 "
            "-v /srv/conf:/conf:ro --tmpfs /tmp "
            "app:1.0@sha256:" + "a" * 64 + "\n")
    assert findings(text) == []


def test_findings_carry_subject_and_flag_lines():
    text = "docker run \\\n  --privileged \\\n  -v /:/host \\\n  alpine:3.20\n"
    by_practice = {f.practice: f for f in findings(text)}
    assert by_practice["privileged"].line == 2
    assert by_practice["sensitive-host-mount"].line == 3
    assert by_practice["no-nnp"].line == 1           # missing: the command's line
    assert by_practice["unpinned-digest"].line == 4
    assert {f.subject for f in by_practice.values()} == {"docker run alpine:3.20"}


def test_suppression_comment_before_a_command():
    text = ("# hardrun ignore=HR2001 reason=\"CI runner needs it\"\n"
            "docker run --privileged alpine:3.20\n")
    (finding,) = findings(text, "privileged")
    assert finding.suppressed


def test_suppression_before_a_multi_line_command_covers_its_flags():
    text = ("# hardrun ignore=HR2001,HR2010 reason=\"node agent\"\n"
            "docker run \\\n  --privileged \\\n  -v /:/host \\\n  alpine:3.20\n"
            "docker run --privileged alpine:3.20\n")
    found = [(f.rule, f.line, f.suppressed) for f in findings(text)
             if f.rule in ("HR2001", "HR2010", "HR0001")]
    assert sorted(found) == [("HR2001", 3, True), ("HR2001", 6, False), ("HR2010", 4, True)]


# --------------------------------------------------------------------------- privileges

def test_privileged():
    assert fires("docker run --privileged alpine:3.20\n", "privileged")
    assert not fires("docker run --privileged=false alpine:3.20\n", "privileged")
    assert not fires("docker run alpine:3.20 --privileged\n", "privileged")   # the command's arg


@pytest.mark.parametrize("source", [
    "/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock", "/run/podman/podman.sock", "/run/user/1000/podman/podman.sock",
    "$XDG_RUNTIME_DIR/docker.sock", "/home/me/.docker/run/docker.sock", "/var/run", "/run",
    "/run/containerd", "/run/user/1000", "/var/run/docker.sock/",
])
def test_socket_mount_is_socket_not_sensitive(source):
    text = f"docker run -v {source}:/sock:ro alpine:3.20\n"
    assert fires(text, "socket-mount")
    assert not fires(text, "sensitive-host-mount")


@pytest.mark.parametrize("volume", ["docker.sock:/x", "/srv/docker.socket:/x", "/run/secrets:/s",
                                    "/var/run/app:/app"])
def test_not_a_socket_mount(volume):
    assert not fires(f"docker run -v {volume} alpine:3.20\n", "socket-mount")


def test_dangerous_capabilities():
    found = findings("docker run --cap-add cap_sys_admin --cap-add NET_ADMIN --cap-add CHOWN "
                     "--cap-add=all alpine:3.20\n", "cap-add-dangerous")
    assert [(f.message.split()[2], f.severity) for f in found] == [
        ("SYS_ADMIN", "error"), ("NET_ADMIN", "warning"), ("ALL", "error")]
    assert not fires("docker run --cap-add NET_BIND_SERVICE alpine:3.20\n", "cap-add-dangerous")


def test_no_cap_drop():
    assert fires("docker run alpine:3.20\n", "no-cap-drop")
    assert fires("docker run --cap-drop NET_RAW alpine:3.20\n", "no-cap-drop")
    assert not fires("docker run --cap-drop all alpine:3.20\n", "no-cap-drop")
    assert not fires("docker run --cap-drop $CAPS alpine:3.20\n", "no-cap-drop")


def test_no_new_privileges():
    (missing,) = findings("docker run alpine:3.20\n", "no-nnp")
    assert missing.line == 1
    (off,) = findings("docker run \\\n --security-opt no-new-privileges=false alpine:3.20\n", "no-nnp")
    assert off.line == 2 and "explicitly" in off.message
    assert not fires("docker run --security-opt no-new-privileges alpine:3.20\n", "no-nnp")


def test_hardrun_specs_are_hardened_by_default():
    spec = RunSpec(kind="hardrun", line=1)
    for practice in ("no-cap-drop", "no-nnp", "writable-root"):
        assert hits(spec, practice) == [], practice
    loosened = RunSpec(kind="hardrun", line=1, no_new_privileges=False, read_only_root=False)
    assert hits(loosened, "no-nnp") and hits(loosened, "writable-root")


def test_writable_root():
    assert fires("docker run alpine:3.20\n", "writable-root")
    assert fires("docker run --read-only=false alpine:3.20\n", "writable-root")
    assert not fires("docker run --read-only alpine:3.20\n", "writable-root")


@pytest.mark.parametrize("flag,severity", [("--network host", "error"), ("--net=host", "error"),
                                           ("--pid host", "error"), ("--ipc=host", "error"),
                                           ("--uts host", "warning")])
def test_host_namespaces(flag, severity):
    (finding,) = findings(f"docker run {flag} alpine:3.20\n", "host-namespace")
    assert finding.severity == severity


@pytest.mark.parametrize("flag", ["--network none", "--network mynet", "--pid container:web",
                                  "--ipc private", "--userns host", "--cgroupns host"])
def test_not_a_host_namespace_practice(flag):
    assert not fires(f"docker run {flag} alpine:3.20\n", "host-namespace")


def test_seccomp_and_apparmor():
    assert fires("docker run --security-opt seccomp=unconfined alpine:3.20\n", "seccomp-unconfined")
    assert not fires("docker run --security-opt seccomp=p.json alpine:3.20\n", "seccomp-unconfined")
    assert fires("docker run --security-opt apparmor:unconfined alpine:3.20\n", "apparmor-unconfined")
    assert fires("podman run --security-opt label=disable alpine:3.20\n", "apparmor-unconfined")
    assert not fires("docker run --security-opt apparmor=custom alpine:3.20\n",
                     "apparmor-unconfined")


# --------------------------------------------------------------------------- mounts, devices

@pytest.mark.parametrize("source", ["/", "/etc", "/etc/nginx", "/proc", "/sys/fs/cgroup", "/root",
                                    "/boot", "/dev", "/var/lib/docker/volumes", "/var/lib/kubelet",
                                    "/var/lib/etcd", "/run/secrets", "/var/run/app", "//etc/",
                                    "/srv/../etc"])
def test_sensitive_host_mount(source):
    assert fires(f"docker run -v {source}:/mnt alpine:3.20\n", "sensitive-host-mount")


@pytest.mark.parametrize("source", ["/home/me/app", "/etcetera", "/srv", "/var/lib/app", "./etc",
                                    "$PWD", "data", "/var", "/devices"])
def test_not_a_sensitive_host_mount(source):
    assert not fires(f"docker run -v {source}:/mnt alpine:3.20\n", "sensitive-host-mount")


def test_sensitive_read_only_mount_is_a_warning():
    (finding,) = findings("docker run -v /etc:/etc:ro alpine:3.20\n", "sensitive-host-mount")
    assert finding.severity == "warning"
    (finding,) = findings("docker run -v /etc:/etc alpine:3.20\n", "sensitive-host-mount")
    assert finding.severity == "error"


def test_rw_volume():
    assert fires("docker run -v /srv/data:/data alpine:3.20\n", "rw-volume")
    assert fires("docker run -v \"$PWD\":/src alpine:3.20\n", "rw-volume")
    assert fires("docker run --mount type=bind,src=/a,dst=/b,readonly=false alpine:3.20\n",
                 "rw-volume")
    for safe in ("-v /srv/data:/data:ro", "-v data:/data", "-v /data", "--tmpfs /tmp",
                 "--mount type=bind,src=/a,dst=/b,ro", "--mount type=volume,src=v,dst=/v",
                 "--mount type=tmpfs,dst=/t"):
        assert not fires(f"docker run {safe} alpine:3.20\n", "rw-volume"), safe


def test_device_access():
    found = findings("docker run --device /dev/sda --device=/dev/fuse:/dev/fuse:rwm "
                     "--device /dev/mem alpine:3.20\n", "device-access")
    assert [f.severity for f in found] == ["error", "warning", "error"]
    assert not fires("docker run alpine:3.20\n", "device-access")


# --------------------------------------------------------------------------- identity

@pytest.mark.parametrize("flags,root", [
    ("", True), ("-u 0", True), ("--user root", True), ("-u 0:1000", True), ("-u root:wheel", True),
    ("-u ContainerAdministrator", True), ("-u 1000", False), ("-u 1000:0", False), ("-u app", False),
    ("-u \"$(id -u):$(id -g)\"", False),
    ("--user=$UID", False),
])
def test_run_as_root(flags, root):
    assert fires(f"docker run {flags} alpine:3.20\n", "run-as-root") == root


def test_root_in_a_user_namespace_is_informational():
    (finding,) = findings("podman run --userns=auto alpine:3.20\n", "run-as-root")
    assert finding.severity == "info" and "user namespace" in finding.message
    (finding,) = findings("docker run --userns host alpine:3.20\n", "run-as-root")
    assert finding.severity == "warning"
    (hit,) = hits(RunSpec(kind="hardrun", line=1), "run-as-root")
    assert hit.severity == "info"
    (hit,) = hits(RunSpec(kind="hardrun", line=1, namespaces={"user": "host"}), "run-as-root")
    assert hit.severity is None   # the rule's own severity


def test_run_as_non_root_without_a_uid_is_not_root():
    assert hits(RunSpec(kind="kubernetes", line=3, run_as_non_root=True), "run-as-root") == []
    assert hits(RunSpec(kind="kubernetes", line=3, run_as_non_root=False), "run-as-root")


# --------------------------------------------------------------------------- network

@pytest.mark.parametrize("flag,fires_", [
    ("-p 8080:80", True), ("-p 80", True), ("-P", True), ("-p 0.0.0.0:80:80", True),
    ("-p [::]:80:80", True), ("-p 127.0.0.1:8080:80", False), ("-p [::1]:80:80", False),
    ("-p 10.0.0.5::80", False), ("-p $BIND:80:80", False), ("--expose 80", False),
    ("--publish-all=false", False),
])
def test_publish_all_interfaces(flag, fires_):
    assert fires(f"docker run {flag} nginx:1.27\n", "publish-all-interfaces") == fires_


def test_kubernetes_host_port_without_host_ip():
    spec = RunSpec(kind="kubernetes", line=1, ports=(Port("80", "8080", None, "tcp", 9),))
    (hit,) = hits(spec, "publish-all-interfaces")
    assert hit.line == 9


@pytest.mark.parametrize("flag,expected", [
    ("-p 2222:22", ["warning"]), ("-p 127.0.0.1:2375:2375", ["error"]), ("-p 3389:3389", ["warning"]),
    ("-p 5900-5905:5900-5905", ["warning"]), ("-p 22:8080", ["warning"]), ("-p 8022:8022", []),
    ("-p 1-1024:1-1024", ["warning"]), ("-p 2000-3000:2000-3000", ["error"]), ("--expose 22", []),
])
def test_expose_sensitive(flag, expected):
    found = findings(f"docker run {flag} img:1\n", "expose-sensitive")
    assert [f.severity for f in found] == expected


# --------------------------------------------------------------------------- resources

@pytest.mark.parametrize("flags,message", [
    ("", "no memory or pids limit"), ("-m 512m", "no pids limit"),
    ("--pids-limit 100", "no memory limit"), ("-m 0 --pids-limit 0", "no memory or pids limit"),
    ("--memory=1g --pids-limit=-1", "no pids limit"),
])
def test_resource_limits_missing(flags, message):
    (finding,) = findings(f"docker run {flags} alpine:3.20\n", "no-resource-limits")
    assert finding.message.startswith(message) and finding.line == 1


@pytest.mark.parametrize("flags", ["-m 512m --pids-limit 100", "-m $MEM --pids-limit ${PIDS}",
                                   "--memory 1GB --pids-limit=64"])
def test_resource_limits_set(flags):
    assert not fires(f"docker run {flags} alpine:3.20\n", "no-resource-limits")


def test_kubernetes_needs_only_a_memory_limit():
    assert hits(RunSpec(kind="kubernetes", line=2, memory=1 << 28), "no-resource-limits") == []
    (hit,) = hits(RunSpec(kind="kubernetes", line=2), "no-resource-limits")
    assert hit.message.startswith("no memory limit")
    assert hits(RunSpec(kind="compose", line=2, memory=1 << 28), "no-resource-limits")


# --------------------------------------------------------------------------- secrets, images

@pytest.mark.parametrize("env", ["DB_PASSWORD=s3cret", "GITHUB_TOKEN=ghp_" + "a" * 36,
                                 "DATABASE_URL=postgres://app:pw@db/app",
                                 "ANYTHING=AKIAQWERTYUIOPASDFGH"])
def test_secret_in_environment(env):
    (finding,) = findings(f"docker run \\\n  -e {env} alpine:3.20\n", "secret")
    assert finding.line == 2
    assert "s3cret" not in finding.message and "a" * 36 not in finding.message


@pytest.mark.parametrize("env", ["DB_PASSWORD", "DB_PASSWORD=$DB_PASSWORD", "TOKEN=${TOKEN}",
                                 "DB_PASSWORD_FILE=/run/secrets/db", "GPG_KEY=ABCDEF0123456789",
                                 "PASSWORD_LENGTH=12", "AUTH_ENABLED=true", "API_TOKEN=\"$(cat t)\"",
                                 "ANYTHING=AKIAIOSFODNN7EXAMPLE"])
def test_not_a_secret(env):
    assert not fires(f"docker run -e {env} alpine:3.20\n", "secret")


def test_image_rules():
    assert fires("docker run nginx\n", "untrusted-base")
    assert fires("docker run nginx:latest\n", "untrusted-base")
    assert not fires("docker run nginx:1.27\n", "untrusted-base")
    assert fires("docker run nginx:1.27\n", "unpinned-digest")
    pinned = "docker run nginx@sha256:" + "0" * 64 + "\n"
    assert not fires(pinned, "untrusted-base") and not fires(pinned, "unpinned-digest")


@pytest.mark.parametrize("text", ["docker run \"$IMAGE\"\n", "docker run ${REGISTRY}/app\n",
                                  "docker run --future-flag x nginx\n", "docker run -d\n"])
def test_unresolved_or_uncertain_images_are_not_judged(text):
    assert not fires(text, "untrusted-base") and not fires(text, "unpinned-digest")


def test_trusted_registries_from_options():
    options = AuditOptions(trusted_registries=("ghcr.io/acme",))
    assert fires("docker run docker.io/nginx:1.27\n", "untrusted-base", ) is False
    found = findings("docker run docker.io/nginx:1.27\n", "untrusted-base", options)
    assert found and "trusted" in found[0].message
    assert not findings("docker run ghcr.io/acme/app:1\n", "untrusted-base", options)


def test_rules_read_only_the_model():
    spec = RunSpec(kind="compose", line=4, subject="web", privileged=True,
                   mounts=(Mount("bind", "/x", "/var/run/docker.sock", line=7),),
                   env=(EnvVar("API_KEY", "abcdef123456", 9),))
    assert [h.line for h in hits(spec, "privileged")] == [4]
    assert [h.line for h in hits(spec, "socket-mount")] == [7]
    assert [h.line for h in hits(spec, "secret")] == [9]


def test_a_hardrun_run_config_has_the_default_pids_limit():
    """`hardrun run` applies 1024 processes unless told otherwise: no finding says "no pids limit"."""
    (hit,) = hits(RunSpec(kind="hardrun", line=2), "no-resource-limits")
    assert hit.message.startswith("no memory limit")
    assert hits(RunSpec(kind="hardrun", line=2, memory=1 << 28), "no-resource-limits") == []
    # control: the same settings from a compose file, where no default applies
    (hit,) = hits(RunSpec(kind="compose", line=2, memory=1 << 28), "no-resource-limits")
    assert hit.message.startswith("no pids limit")
    # 0 and -1 ask hardrun run for no limit at all
    (hit,) = hits(RunSpec(kind="hardrun", line=2, memory=1 << 28, pids_limit=-1), "no-resource-limits")
    assert hit.message.startswith("no pids limit")
