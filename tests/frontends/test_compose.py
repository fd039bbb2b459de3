"""Compose files -> RunSpecs: every field the run rules read, with its line."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from hardrun.errors import ParseError
from hardrun.frontends import detect_kind, parse
from hardrun.frontends.compose import parse_compose
from hardrun.parsing.interpolate import interpolate
from hardrun.spec.run import EnvVar, Mount, Port, Ulimit

from tests.helpers import DATA, ROOT

COMPOSE = DATA / "compose"


def services(text, path="compose.yaml", **kwargs):
    return {spec.subject: spec for spec in parse_compose(textwrap.dedent(text), path, **kwargs)}


def one(text, **kwargs):
    (spec,) = services(text, **kwargs).values()
    return spec


def test_fixture_services_and_lines():
    specs = {s.subject: s for s in parse_compose((COMPOSE / "docker-compose.yml").read_text(),
                                                 "docker-compose.yml")}
    assert list(specs) == ["proxy", "web", "db", "debug"]
    proxy, web, db, debug = specs.values()
    assert proxy.kind == "compose" and proxy.line == 17 and proxy.image == "traefik:v3.1"
    assert proxy.mounts == (Mount("bind", "/var/run/docker.sock", "/var/run/docker.sock", True,
                                  ("ro",), 24),)
    assert proxy.ports[0] == Port("80", "80", None, "tcp", 21)
    assert proxy.ports[1].host_ip == "127.0.0.1"
    # merged from the x-hardening anchor: the line is the anchor's key
    assert web.read_only_root is True and web.lines["read_only_root"] == 10
    assert web.cap_drop == ("ALL",) and web.no_new_privileges is True
    assert web.lines["no_new_privileges"] == 14
    assert web.user == "10001:10001" and web.lines["user"] == 31
    assert EnvVar("LOG_LEVEL", "info", 35) in web.env
    assert web.env_files == ("./web.env",)
    assert web.mounts == (Mount("tmpfs", "/tmp", None, False, ("size=64m", "mode=1777"), 39),)
    assert (web.memory, web.pids_limit) == (512 * 2 ** 20, 200)
    assert db.memory == 2 ** 30 and db.pids_limit == 300 and db.cpus == 1.5
    assert db.lines["memory"] == 61
    assert db.mounts[0] == Mount("volume", "/var/lib/postgresql/data", "pgdata", False, (), 51)
    assert db.mounts[1].type == "bind" and db.mounts[1].read_only
    assert EnvVar("POSTGRES_PASSWORD", "hunter2", 49) in db.env
    assert debug.privileged and debug.lines["privileged"] == 76
    assert debug.cap_add == ("NET_ADMIN", "SYS_PTRACE")
    assert debug.lines["cap_add:SYS_PTRACE"] == 72
    assert (debug.seccomp, debug.apparmor) == ("unconfined", "unconfined")
    assert debug.lines["seccomp"] == 74 and debug.lines["apparmor"] == 75
    assert debug.namespaces == {"network": "container:web", "pid": "host"}
    assert debug.lines["namespace:pid"] == 69
    assert debug.devices == ("/dev/net/tun:/dev/net/tun",) and debug.lines["device:0"] == 78


def test_legacy_v1_file():
    specs = parse_compose((COMPOSE / "v1" / "docker-compose.yml").read_text(), "v1.yml")
    web, redis = specs
    assert (web.subject, web.line, redis.subject) == ("web", 2, "redis")
    assert web.shares_host("network") and web.lines["namespace:network"] == 4
    assert web.mounts[0].type == "bind" and not web.mounts[0].read_only


def test_extends_same_file_and_other_file():
    path = str(COMPOSE / "extends" / "compose.yaml")
    api, worker = parse_compose((COMPOSE / "extends" / "compose.yaml").read_text(), path)
    assert api.user == "1000" and api.read_only_root and api.no_new_privileges
    assert api.cap_drop == ("ALL",) and api.cap_add == ("NET_BIND_SERVICE",)
    assert api.memory == 256 * 2 ** 20 and api.env == (EnvVar("MODE", "production", 3),)
    # settings from the other file point at the `extends:` key of this file
    assert api.lines["user"] == 3 and api.lines["cap_add"] == 7
    assert worker.privileged and worker.image == "example/api:1.0"
    assert worker.command == ("worker", "--queue", "default") and worker.user == "1000"


def test_extends_concatenates_lists_and_merges_environment():
    specs = services("""
        services:
          base:
            image: a:1
            cap_add: [CHOWN]
            environment: [A=1, B=2]
            ports: ["80:80"]
          child:
            extends: {service: base}
            cap_add: [KILL]
            environment: {B: "3"}
            image: b:1
    """)
    child = specs["child"]
    assert child.cap_add == ("CHOWN", "KILL") and child.image == "b:1"
    assert [(e.name, e.value) for e in child.env] == [("A", "1"), ("B", "3")]
    assert len(child.ports) == 1


@pytest.mark.parametrize("text,message,line", [
    ("services:\n  a:\n    extends: a\n", "loop", 3),
    ("services:\n  a:\n    extends: b\n  b:\n    extends: a\n", "loop", 5),
    ("services:\n  a:\n    extends: nope\n", "does not exist", 3),
    ("services:\n  a:\n    extends:\n      file: missing.yml\n      service: x\n", "not a file", 3),
    ("services:\n  a:\n    extends: [x]\n", "needs a service name", 3),
    ("services:\n  a:\n    extends: {file: /proc/self/environ, service: x}\n", "not a compose", 3),
    ("services:\n  a:\n    extends: {file: /dev/zero, service: x}\n", "not a compose", 3),
])
def test_extends_errors_name_the_line(text, message, line, tmp_path):
    with pytest.raises(ParseError, match=message) as caught:
        parse_compose(text, str(tmp_path / "compose.yaml"))
    assert caught.value.line == line


def test_extends_loop_across_files(tmp_path):
    (tmp_path / "a.yml").write_text("services:\n  x:\n    extends: {file: b.yml, service: y}\n")
    (tmp_path / "b.yml").write_text("services:\n  y:\n    extends: {file: a.yml, service: x}\n")
    with pytest.raises(ParseError, match="loop"):
        parse_compose((tmp_path / "a.yml").read_text(), str(tmp_path / "a.yml"))


def test_short_volume_syntax():
    spec = one("""
        services:
          s:
            image: a:1
            volumes:
              - /srv/data:/data:ro,z
              - ./conf:/conf
              - ~/cache:/cache:rw
              - named:/named:ro
              - /anonymous
              - ${HOME}/x:/x
              - C:\\data:/data2
    """)
    kinds = [(m.type, m.source, m.target, m.read_only) for m in spec.mounts]
    assert kinds == [
        ("bind", "/srv/data", "/data", True), ("bind", "./conf", "/conf", False),
        ("bind", "~/cache", "/cache", False), ("volume", "named", "/named", True),
        ("volume", None, "/anonymous", False), ("bind", "${HOME}/x", "/x", False),
        ("bind", "C:\\data", "/data2", False),
    ]
    assert spec.mounts[0].options == ("ro", "z") and spec.mounts[0].line == 6
    assert spec.lines["mount:6"] == 12


def test_long_volume_syntax():
    spec = one("""
        services:
          s:
            image: a:1
            volumes:
              - type: bind
                source: /var/run/docker.sock
                target: /var/run/docker.sock
                bind:
                  propagation: rshared
              - type: tmpfs
                target: /cache
                tmpfs: {size: 1000000, mode: 1777}
              - type: volume
                source: v
                target: /v
                read_only: true
    """)
    sock, tmp, vol = spec.mounts
    assert (sock.type, sock.source, sock.read_only, sock.options) == (
        "bind", "/var/run/docker.sock", False, ("rshared",))
    assert tmp.type == "tmpfs" and tmp.options == ("size=1000000", "mode=1777")
    assert vol.read_only and vol.line == 14


@pytest.mark.parametrize("item,expected", [
    ('"3000"', Port("3000", None, None, "tcp")),
    ("3000", Port("3000", None, None, "tcp")),
    ('"3000-3005"', Port("3000-3005", None, None, "tcp")),
    ("8000:8000", Port("8000", "8000", None, "tcp")),
    ("22:22", Port("22", "22", None, "tcp")),                  # not YAML 1.1 sexagesimal
    ('"9090-9091:8080-8081"', Port("8080-8081", "9090-9091", None, "tcp")),
    ('"127.0.0.1:8001:8001"', Port("8001", "8001", "127.0.0.1", "tcp")),
    ('"127.0.0.1::5000"', Port("5000", None, "127.0.0.1", "tcp")),
    ('"6060:6060/udp"', Port("6060", "6060", None, "udp")),
    ('"[::1]:6001:6001"', Port("6001", "6001", "::1", "tcp")),
    ('"::1:6001:6001/SCTP"', Port("6001", "6001", "::1", "sctp")),
    ('"0.0.0.0:80:80"', Port("80", "80", "0.0.0.0", "tcp")),
])
def test_short_port_syntax(item, expected):
    spec = one(f"services:\n  s:\n    image: a:1\n    ports:\n      - {item}\n")
    port = spec.ports[0]
    assert (port.container_port, port.host_port, port.host_ip, port.protocol) == (
        expected.container_port, expected.host_port, expected.host_ip, expected.protocol)
    assert port.line == 5 and spec.lines["port:0"] == 5


def test_long_port_syntax():
    spec = one("""
        services:
          s:
            ports:
              - target: 80
                published: 8080
                host_ip: 127.0.0.1
                protocol: TCP
              - target: 443
                published: "8443-8444"
    """)
    assert spec.ports == (Port("80", "8080", "127.0.0.1", "tcp", 5), Port("443", "8443-8444", None, "tcp", 9))


@pytest.mark.parametrize("option,field,value", [
    ("no-new-privileges", "no_new_privileges", True),
    ("no-new-privileges:true", "no_new_privileges", True),
    ("no-new-privileges=true", "no_new_privileges", True),
    ("no-new-privileges:false", "no_new_privileges", False),
    ("seccomp:unconfined", "seccomp", "unconfined"),
    ("seccomp=unconfined", "seccomp", "unconfined"),
    ("seccomp=./profile.json", "seccomp", "./profile.json"),
    ("apparmor:unconfined", "apparmor", "unconfined"),
    ("apparmor=docker-default", "apparmor", "docker-default"),
    ("label:disable", "selinux_disabled", True),
    ("label=disable", "selinux_disabled", True),
    ("systempaths=unconfined", "system_paths_unconfined", True),
])
def test_security_opt(option, field, value):
    spec = one(f"services:\n  s:\n    image: a:1\n    security_opt:\n      - {option}\n")
    assert getattr(spec, field) == value and spec.lines[field] == 5


def test_security_opt_unset_means_none():
    spec = one("services:\n  s:\n    image: a:1\n")
    assert (spec.no_new_privileges, spec.seccomp, spec.apparmor, spec.read_only_root,
            spec.user, spec.memory) == (None,) * 6
    assert spec.line == 2 and spec.line_of("user") == 2


def test_capabilities_are_normalised():
    spec = one("services:\n  s:\n    cap_add: [cap_sys_admin, Net_Raw]\n    cap_drop: all\n")
    assert spec.cap_add == ("SYS_ADMIN", "NET_RAW") and spec.cap_drop == ("ALL",)
    assert spec.lines["cap_add:SYS_ADMIN"] == 3


@pytest.mark.parametrize("key,value,namespace,expected", [
    ("network_mode", "host", "network", "host"),
    ("network_mode", "none", "network", "none"),
    ("network_mode", "service:db", "network", "container:db"),
    ("network_mode", "container:abc", "network", "container:abc"),
    ("net", "host", "network", "host"),
    ("pid", "host", "pid", "host"),
    ("ipc", "host", "ipc", "host"),
    ("uts", "host", "uts", "host"),
    ("userns_mode", "host", "user", "host"),
    ("cgroup", "host", "cgroup", "host"),
])
def test_namespace_modes(key, value, namespace, expected):
    spec = one(f"services:\n  s:\n    image: a:1\n    {key}: {value}\n")
    assert spec.namespaces[namespace] == expected
    assert spec.lines[f"namespace:{namespace}"] == 4


@pytest.mark.parametrize("text,field,value", [
    ("mem_limit: 512m", "memory", 512 * 2 ** 20),
    ("mem_limit: 1g", "memory", 2 ** 30),
    ("mem_limit: 1.5G", "memory", int(1.5 * 2 ** 30)),
    ("mem_limit: 1048576", "memory", 2 ** 20),
    ("mem_limit: 64kb", "memory", 64 * 1024),
    ("memswap_limit: -1", "memory_swap", -1),
    ("pids_limit: 100", "pids_limit", 100),
    ("cpus: '0.5'", "cpus", 0.5),
    ("cpu_shares: 512", "cpu_shares", 512),
])
def test_limits(text, field, value):
    spec = one(f"services:\n  s:\n    image: a:1\n    {text}\n")
    assert getattr(spec, field) == value and spec.lines[field] == 4


def test_bad_limit_is_a_parse_error_with_line():
    with pytest.raises(ParseError, match="mem_limit") as caught:
        one("services:\n  s:\n    image: a:1\n    mem_limit: lots\n")
    assert caught.value.line == 4


def test_unset_variable_in_a_limit_is_unknown_not_an_error():
    spec = one("services:\n  s:\n    mem_limit: ${MEM}\n    user: ${UID}\n"
               "    ports: ['${PORT}:80', '127.0.0.1:${P2:-81}:81']\n")
    assert spec.memory is None and {"memory", "user", "ports"} <= spec.unresolved
    assert spec.user == "${UID}"
    assert [(p.host_ip, p.host_port) for p in spec.ports] == [("127.0.0.1", "81")]


def test_environment_forms():
    listed = one("services:\n  s:\n    environment:\n      - A=1\n      - B\n      - C=\n")
    assert listed.env == (EnvVar("A", "1", 4), EnvVar("B", None, 5), EnvVar("C", "", 6))
    mapped = one("services:\n  s:\n    environment:\n      A: 1\n      B:\n      C: true\n")
    assert mapped.env == (EnvVar("A", "1", 4), EnvVar("B", None, 5), EnvVar("C", "true", 6))
    assert mapped.lines["env:C"] == 6


def test_other_fields():
    spec = one("""
        services:
          s:
            image: a:1
            hostname: box
            working_dir: /srv
            init: true
            container_name: the-box
            command: sh -c 'echo "hi there"'
            ulimits:
              nproc: 65535
              nofile: {soft: 20000, hard: 40000}
            x-notes: ignored
    """)
    assert (spec.hostname, spec.workdir, spec.init, spec.name) == ("box", "/srv", True, "the-box")
    assert spec.command == ("sh", "-c", 'echo "hi there"')
    assert spec.ulimits == (Ulimit("nproc", 65535, 65535), Ulimit("nofile", 20000, 40000))


def test_extension_fields_and_non_services_are_ignored():
    specs = services("""
        version: "3.8"
        x-defaults: {image: ignored}
        services:
          web: {image: a:1}
        networks: {front: {}}
        volumes: {data: {}}
    """)
    assert list(specs) == ["web"]


def test_interpolation_rules():
    env = {"SET": "v", "EMPTY": ""}
    cases = {
        "${SET}": "v", "$SET": "v", "${UNSET}": "${UNSET}", "$UNSET": "$UNSET",
        "${UNSET:-d}": "d", "${EMPTY:-d}": "d", "${EMPTY-d}": "", "${UNSET-d}": "d",
        "${UNSET:?need it}": "${UNSET:?need it}", "${SET:?x}": "v",
        "${SET:+alt}": "alt", "${UNSET:+alt}": "", "$$SET": "$SET", "$${UNSET}": "${UNSET}",
        "${UNSET:-${SET}}": "v", "${UNSET:-${OTHER:-deep}}": "deep", "a${SET}b": "avb",
        "${": "${", "cost $5": "cost $5",
    }
    for text, expected in cases.items():
        assert interpolate(text, env) == expected, text


def test_interpolation_in_compose_values():
    spec = one("""
        services:
          s:
            image: "nginx:${TAG:-1.27}"
            ports: ["${BIND:-127.0.0.1}:80:80"]
            environment:
              TOKEN: ${TOKEN}
              PRICE: "$$5"
    """, env={"TAG": "1.25"})
    assert spec.image == "nginx:1.25" and spec.ports[0].host_ip == "127.0.0.1"
    assert spec.env == (EnvVar("TOKEN", "${TOKEN}", 7), EnvVar("PRICE", "$5", 8))
    assert "env" in spec.unresolved and "image" not in spec.unresolved


def test_the_auditing_machines_environment_never_leaks():
    """A variable set in the auditor's own environment must not change the result."""
    code = textwrap.dedent("""
        from hardrun.frontends.compose import parse_compose
        (spec,) = parse_compose(
            "services:\\n  s:\\n    image: app:${HR_LEAK_TAG:-safe}\\n"
            "    environment:\\n      - PASSWORD=${HR_LEAK_SECRET}\\n", "compose.yaml")
        print(spec.image, spec.env[0].value)
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), HR_LEAK_TAG="leaked", HR_LEAK_SECRET="s3cret")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["app:safe", "${HR_LEAK_SECRET}"]


@pytest.mark.parametrize("text,message,line", [
    ("services: [a, b]\n", "`services` must be a mapping", 1),
    ("- a\n- b\n", "must be a mapping", 1),
    ("services:\n  s: 5\n", "must be a mapping", 2),
    ("services:\n  s:\n    privileged: maybe\n", "true or false", 3),
    ("services:\n  s:\n    cap_add: {a: 1}\n", "must be a list", 3),
    ("services:\n  s:\n    ports: ['abc']\n", "ports", 3),
    ("services:\n  s:\n    volumes: ['a:b:c:d']\n", "volumes", 3),
    ("services:\n  s:\n    image: a\n    image: b\n", "duplicate key", 4),
    ("services:\n  s:\n    environment: 5\n", "environment", 3),
])
def test_malformed_services_are_parse_errors(text, message, line):
    with pytest.raises(ParseError, match=message) as caught:
        parse_compose(text, "compose.yaml")
    assert caught.value.line == line


def test_empty_and_service_less_files():
    assert parse_compose("", "compose.yaml") == []
    assert parse_compose("# nothing\n", "compose.yaml") == []
    assert parse_compose("services:\n", "compose.yaml") == []
    assert parse_compose("version: '3'\nvolumes: {}\n", "compose.yaml") == []


@pytest.mark.parametrize("name,head,kind", [
    ("compose.yaml", "", "compose"),
    ("compose.yml", "", "compose"),
    ("docker-compose.yml", "", "compose"),
    ("docker-compose.prod.yaml", "", "compose"),
    ("compose.override.yml", "", "compose"),
    ("docker-stack.yml", "version: '3'\nservices:\n  web:\n    image: nginx\n", "compose"),
    ("app.yaml", "services:\n  web:\n    build: .\n", "compose"),
    (".gitlab-ci.yml", "services:\n  web:\n    image: x\n", None),
    ("ci.yml", "services:\n  - docker:dind\nbuild:\n  image: x\n", None),
    ("config.yaml", "services:\n  enabled: true\n", None),
    ("random.yaml", "name: x\nitems: [1, 2]\n", None),
    ("notes.md", "services:\n  web:\n    image: x\n", None),
    # by content: Windows line endings, a blank or comment first line, Compose v1
    ("stack.yml", "services:\r\n  web:\r\n    image: nginx\r\n", "compose"),
    ("stack.yml", "\n# the stack\n\nservices:\n  web:\n    image: nginx\n", "compose"),
    ("legacy.yml", "web:\n  image: nginx\n  links: [db]\ndb:\n  build: ./db\n", "compose"),
    ("legacy.yml", "# v1\r\nweb:\r\n  image: nginx\r\n  ports:\r\n    - '80:80'\r\n", "compose"),
    ("legacy.yml", "x-common: &c\n  restart: always\nweb:\n  <<: *c\n  image: nginx\n", "compose"),
    # controls: the word `services`, or a top-level mapping that is no service
    ("config.yaml", "# services: none\nname: x\nitems:\n  image: 1\n", None),
    ("config.yaml", "services:\r\n  enabled: true\r\n", None),
    ("app.yaml", "app:\n  image: x\n  replicas: 3\n", None),
    ("app.yaml", "app:\n  restart: always\n", None),
    ("app.yaml", "web:\n  image: x\nport: 80\n", None),
    ("play.yaml", "- hosts: all\n  image: x\n", None),
])
def test_detection_of_compose_files(name, head, kind, tmp_path):
    path = tmp_path / name
    path.write_text(head)
    # other kinds (docker-run for CI files and Markdown…) may claim what this one leaves
    for found in (detect_kind(str(path), head), detect_kind(str(path))):
        assert found == kind if kind else found != "compose"            # peeks the file itself when not given


def test_compose_recognised_by_content_is_audited(tmp_path):
    from hardrun.audit.engine import audit
    (tmp_path / "legacy.yml").write_bytes(b"web:\r\n  image: nginx:1\r\n  privileged: true\r\n")
    (tmp_path / "stack.yml").write_bytes(b"\n\nservices:\r\n  api:\r\n    image: a:1\r\n"
                                         b"    privileged: true\r\n")
    report = audit([str(tmp_path)])
    assert sorted((f.path.rsplit("/", 1)[-1], f.subject, f.line) for f in report.findings
                  if f.practice == "privileged") == [("legacy.yml", "web", 3), ("stack.yml", "api", 6)]


def test_parse_dispatch():
    (spec,) = parse("compose", "services:\n  s:\n    image: a:1\n", "compose.yaml")
    assert spec.subject == "s"


def test_devices_short_and_long_and_env_file_forms():
    spec = one("""
        services:
          s:
            image: a:1
            devices:
              - /dev/ttyUSB0:/dev/ttyUSB0:rwm
              - source: /dev/kvm
                target: /dev/kvm
                permissions: rw
              - /dev/fuse
            env_file:
              - ./common.env
              - path: ./local.env
                required: false
    """)
    assert spec.devices == ("/dev/ttyUSB0:/dev/ttyUSB0:rwm", "/dev/kvm:/dev/kvm:rw", "/dev/fuse")
    assert [spec.lines[f"device:{i}"] for i in range(3)] == [6, 7, 10]
    assert spec.env_files == ("./common.env", "./local.env") and spec.lines["env_files"] == 11


def _nested_defaults(depth, inner="deep"):
    text = inner
    for _ in range(depth):
        text = "${A:-" + text + "}"
    return text


def test_nested_defaults_up_to_the_cap_interpolate():
    from hardrun.parsing.interpolate import MAX_NESTING
    assert interpolate(_nested_defaults(MAX_NESTING)) == "deep"


def test_nested_defaults_beyond_the_cap_are_a_parse_error_with_the_line(monkeypatch):
    from hardrun.parsing import interpolate as module
    text = "services:\n  web:\n    image: alpine\n    environment:\n      X: \"" + _nested_defaults(400) + "\"\n"
    with pytest.raises(ParseError) as caught:
        parse_compose(text, "compose.yaml")
    assert (caught.value.path, caught.value.line) == ("compose.yaml", 5)
    assert "variable defaults nested deeper than 50 levels" in caught.value.message
    # control: without the cap, the same file exhausts the recursion limit
    monkeypatch.setattr(module, "MAX_NESTING", 10**9)
    with pytest.raises(RecursionError):
        parse_compose(text, "compose.yaml")


def test_nested_defaults_lose_only_their_file(hardrun, tmp_path):
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: \"" + _nested_defaults(400, "alpine") + "\"\n")
    (tmp_path / "Dockerfile").write_text("FROM alpine:3.20\n")
    result = hardrun("audit", "-f", "json", ".", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    document = json.loads(result.stdout)
    assert document["errors"] == [{"path": "compose.yaml", "message": (
        "line 3: variable defaults nested deeper than 50 levels (${A:-${B:-…}})")}]
    assert any(f["path"] == "Dockerfile" for f in document["findings"])
