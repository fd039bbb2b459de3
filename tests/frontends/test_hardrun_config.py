"""The hardrun run-config front end: detection, the RunSpec with its lines, hardrun's
defaults made explicit, errors with line and column, and fuzzing."""
import pytest
from hypothesis import given, settings, strategies as st

from hardrun.errors import HardrunError, ParseError
from hardrun.frontends import detect_kind, parse
from hardrun.frontends.hardrun_config import parse_run_config

FULL = """apiVersion: hardrun/v1
kind: Run
name: web
image: nginx:1.27
rootfs: ./rootfs
command: [nginx, -g, daemon off;]
user: 101
workdir: /srv
hostname: web
init: true
env:
  MODE: production
  DEBUG: false
capabilities:
  add: [cap_net_bind_service]
  drop: [ALL]
security:
  no-new-privileges: true
  read-only-root: false
  seccomp: unconfined
  apparmor: docker-default
  selinux: {type: container_t, level: "s0:c1,c2"}
  unmasked-proc: true
  userns: "200000:65536"
namespaces: {pid: host}
network: bridge
ports:
  - {container-port: 80, host-port: 8080, host-ip: 127.0.0.1}
mounts:
  - {type: bind, source: /srv/www, target: /www, read-only: true}
  - {type: tmpfs, target: /tmp, options: [size=64m]}
devices: [/dev/fuse]
sysctls: {net.ipv4.ip_unprivileged_port_start: 80}
limits: {memory: 256m, pids: 128, cpus: 1.5}
"""


def test_every_setting_reaches_the_runspec_with_its_line():
    (spec,) = parse_run_config(FULL, "web.yaml")
    assert (spec.kind, spec.subject, spec.image) == ("hardrun", "web", "nginx:1.27")
    assert spec.command == ("nginx", "-g", "daemon off;") and spec.user == "101"
    assert spec.cap_add == ("NET_BIND_SERVICE",) and spec.cap_drop == ("ALL",)
    assert spec.no_new_privileges is True and spec.read_only_root is False
    assert spec.seccomp == "unconfined" and spec.apparmor == "docker-default"
    assert spec.selinux_options == {"type": "container_t", "level": "s0:c1,c2"}
    assert spec.system_paths_unconfined and spec.userns_remap == (200000, 65536)
    assert spec.namespaces == {"pid": "host", "user": "private"} and spec.network == "bridge"
    assert [(p.container_port, p.host_port, p.host_ip, p.line) for p in spec.ports] == [("80", "8080", "127.0.0.1", 28)]
    assert [(m.type, m.source, m.target, m.read_only, m.line) for m in spec.mounts] == [
        ("bind", "/srv/www", "/www", True, 30), ("tmpfs", None, "/tmp", False, 31)]
    assert spec.devices == ("/dev/fuse",) and spec.sysctls == {"net.ipv4.ip_unprivileged_port_start": "80"}
    assert (spec.memory, spec.pids_limit, spec.cpus) == (256 * 1024 ** 2, 128, 1.5)
    assert [(e.name, e.value, e.line) for e in spec.env] == [("MODE", "production", 12), ("DEBUG", "false", 13)]
    assert spec.init and spec.workdir == "/srv" and spec.hostname == "web"
    assert {k: spec.lines[k] for k in ("user", "cap_add", "seccomp", "read_only_root", "memory",
                                       "sysctl:net.ipv4.ip_unprivileged_port_start")} == {
        "user": 7, "cap_add": 15, "seccomp": 20, "read_only_root": 19, "memory": 34,
        "sysctl:net.ipv4.ip_unprivileged_port_start": 33}


def test_unspecified_settings_are_hardruns_defaults():
    (spec,) = parse_run_config("apiVersion: hardrun/v1\nkind: Run\n", "r.yaml")
    assert spec.no_new_privileges is True and spec.read_only_root is True
    assert spec.cap_drop == ("ALL",) and spec.seccomp == "default" and spec.network == "none"
    assert spec.namespaces == {"user": "private"}
    (privileged,) = parse_run_config("apiVersion: hardrun/v1\nkind: Run\nsecurity: {privileged: true}\n", "r.yaml")
    # --privileged keeps the user namespace: its capabilities are the namespace's
    assert privileged.seccomp == "unconfined" and privileged.namespaces["user"] == "private"


@pytest.mark.parametrize("name,head,kind", [
    ("web.yaml", "apiVersion: hardrun/v1\nkind: Run\n", "hardrun"),
    ("run.yml", "kind: Run\napiVersion: 'hardrun/v1'\n", "hardrun"),
    ("pod.yaml", "apiVersion: v1\nkind: Pod\n", "kubernetes"),
    (".hardrun.yaml", "version: 1\nextends: baseline\n", None),         # a policy, not a run
])
def test_detection(tmp_path, name, head, kind):
    path = tmp_path / name
    path.write_text(head)
    assert detect_kind(str(path)) == kind


def test_audit_judges_run_configs_with_the_run_rules():
    from hardrun.audit.engine import AuditOptions, audit_text
    findings = audit_text(FULL, "hardrun", "web.yaml", AuditOptions())
    found = {(f.rule, f.line) for f in findings}
    assert ("HR2008", 20) in found              # seccomp unconfined, at its key
    assert ("HR2006", 19) in found              # read-only-root: false
    assert ("HR2007", 25) in found              # pid: host


@pytest.mark.parametrize("text,line,column,expected", [
    ("apiVersion: hardrun/v2\nkind: Run\n", 1, 13, "expected 'hardrun/v1'"),
    ("apiVersion: hardrun/v1\nkind: Run\nusr: root\n", 3, 1, "unknown key 'usr'"),
    ("apiVersion: hardrun/v1\nkind: Run\nsecurity: {seccomp: 1}\n", 3, 21, "expected a string"),
    ("apiVersion: hardrun/v1\nkind: Run\nmounts:\n  - {type: bind, target: relative}\n", 4, 26,
     "an absolute path"),
    ("apiVersion: hardrun/v1\nkind: Run\nmounts:\n  - {type: bind, target: /x}\n", 4, 5,
     "a bind mount needs a source"),
    ("apiVersion: hardrun/v1\nkind: Run\nports: [{container-port: 0}]\n", 3, 26, "at least 1"),
    ("apiVersion: hardrun/v1\nkind: Run\nlimits: {memory: lots}\n", 3, 18, "a size such as 512m"),
    ("apiVersion: hardrun/v1\n", 1, 1, "missing required key 'kind'"),
    ("", 1, 1, "empty run config"),
])
def test_errors_name_line_column_and_what_was_expected(text, line, column, expected):
    with pytest.raises(ParseError) as caught:
        parse_run_config(text, "r.yaml")
    error = caught.value
    assert (error.path, error.line, error.column) == ("r.yaml", line, column), str(error)
    assert expected in error.message


values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=6),
              st.sampled_from(["bind", "tmpfs", "/x", "host", "ALL", "512m", "hardrun/v1", "Run"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(
        st.sampled_from(["type", "source", "target", "add", "drop", "seccomp", "userns", "pid",
                         "memory", "container-port", "host-port", "selinux", "x"]), inner, max_size=4)),
    max_leaves=10)
top = st.fixed_dictionaries({"apiVersion": st.just("hardrun/v1"), "kind": st.just("Run")},
                            optional={key: values for key in (
                                "user", "command", "capabilities", "security", "mounts", "ports",
                                "limits", "env", "sysctls", "namespaces", "network", "devices")})


@settings(max_examples=300, deadline=None)
@given(top)
def test_fuzz_documents_only_raise_hardrun_errors(document):
    import yaml
    try:
        parse("hardrun", yaml.safe_dump(document), "fuzz.yaml")
    except HardrunError as error:
        assert error.path == "fuzz.yaml" and error.line is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_text_only_raises_hardrun_errors(text):
    try:
        parse("hardrun", "apiVersion: hardrun/v1\nkind: Run\n" + text, "fuzz.yaml")
    except HardrunError:
        pass
