"""The docker run flag table and parser (shared by the docker-run front end and `hardrun run`)."""
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from hardrun.errors import HardrunError, UsageError
from hardrun.frontends.docker_argv import hardrun_options, parse_hardrun_args, parse_run_args
from hardrun.frontends.docker_flags import BOOL, FLAGS, LIST, VALUE, flags_for, run_help
from hardrun.frontends.docker_runspec import parse_mount, read_env_file, runspec_from_args
from hardrun.parsing.runvalues import parse_publish, parse_volume
from hardrun.parsing.runvalues import parse_size as ram_in_bytes
from hardrun.spec.capabilities import NAMES as CAPABILITIES
from hardrun.spec.capabilities import normalize_capability
from hardrun.spec.run import EnvVar, Mount, Port, Ulimit
from tests.helpers import ROOT


def spec_of(*argv, **kwargs):
    parsed = parse_run_args(list(argv), hardrun_mode=kwargs.get("hardrun_mode", False))
    return runspec_from_args(parsed, kind=kwargs.pop("kind", "docker-run"), **kwargs)


def hardrun_spec(*argv):
    return spec_of(*argv, kind="hardrun", hardrun_mode=True)


# --------------------------------------------------------------------------- the table

def test_arities_of_common_flags():
    longs, shorts = flags_for("docker")
    assert longs["privileged"].arity == BOOL
    assert longs["read-only"].arity == BOOL
    assert longs["rm"].arity == BOOL and longs["init"].arity == BOOL
    assert longs["user"].arity == VALUE and longs["entrypoint"].arity == VALUE
    assert longs["volume"].arity == LIST and longs["env"].arity == LIST
    assert longs["net"] is longs["network"]
    assert {k: shorts[k].name for k in "deiptvuwhmlaPc"} == {
        "d": "detach", "e": "env", "i": "interactive", "p": "publish", "t": "tty",
        "v": "volume", "u": "user", "w": "workdir", "h": "hostname", "m": "memory",
        "l": "label", "a": "attach", "P": "publish-all", "c": "cpu-shares"}


def test_flag_names_are_unique():
    seen = {}
    for flag in FLAGS:
        for name in (flag.name, *flag.aliases):
            assert name not in seen or name == "rootfs", name
            seen[name] = flag


def test_hardrun_only_flags_are_unknown_to_docker():
    parsed = parse_run_args(["--rootfs", "/srv/root", "alpine"])
    assert [u.spelled for u in parsed.unknown] == ["--rootfs"]
    assert "read-write" not in flags_for("docker")[0]


def test_the_table_cannot_be_changed():
    """The indexes of every engine share the table's flags: none may be altered."""
    flag = flags_for("hardrun")[0]["volume"]
    with pytest.raises(AttributeError):
        flag.runtime = False
    with pytest.raises(AttributeError):
        flag.other = 1
    assert (flag.name, flag.arity, flag.short, flag.runtime) == ("volume", LIST, "v", True)
    assert repr(flag).startswith("Flag(name='volume', arity='list', short='v', aliases=()")


def test_value_syntaxes_load_only_for_the_flags_that_need_them():
    """`hardrun run` with only path and name flags skips the value-syntax module (start-up
    time); a -v loads it (the check itself can fail)."""
    code = ("import sys; from hardrun.frontends.docker_argv import parse_hardrun_args; "
            "parse_hardrun_args(sys.argv[1:]); print('hardrun.parsing.runvalues' in sys.modules)")
    def loads_runvalues(*argv):
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip() == "True"
    assert not loads_runvalues("--rootfs", "/srv/root", "--user", "1000", "--name", "web", "--", "true")
    assert loads_runvalues("--rootfs", "/srv/root", "-v", "/a:/b", "--", "true")


def test_podman_rootfs_is_a_switch():
    parsed = parse_run_args(["--rootfs", "/srv/root", "sh"], engine="podman")
    assert parsed.flag_on("rootfs")
    assert parsed.args == ("/srv/root", "sh")


# --------------------------------------------------------------------------- parsing

def test_flag_value_forms():
    parsed = parse_run_args(["--name=web", "--user", "1000", "-w/app", "-e=A=1", "-eB=2",
                             "-e", "C", "alpine"])
    assert parsed.value("name") == "web"
    assert parsed.value("user") == "1000"
    assert parsed.value("workdir") == "/app"
    assert parsed.values("env") == ["A=1", "B=2", "C"]
    assert parsed.image == "alpine"


def test_short_clusters():
    parsed = parse_run_args(["-itd", "-p80:80", "-itp", "443:443", "nginx"])
    names = [o.flag.name for o in parsed.options]
    assert names == ["interactive", "tty", "detach", "publish", "interactive", "tty", "publish"]
    assert parsed.values("publish") == ["80:80", "443:443"]
    assert parsed.image == "nginx"


def test_boolean_equals_forms():
    parsed = parse_run_args(["--privileged=false", "--read-only=true", "--rm=false", "--init",
                             "-d=false", "alpine"])
    assert not parsed.flag_on("privileged")
    assert parsed.flag_on("read-only")
    assert not parsed.flag_on("rm")
    assert parsed.flag_on("init")
    assert not parsed.flag_on("detach")


def test_boolean_does_not_take_the_next_word():
    # `--privileged false` in Docker: `false` is the image.
    parsed = parse_run_args(["--privileged", "false"])
    assert parsed.flag_on("privileged") and parsed.image == "false"


def test_stops_at_the_image():
    parsed = parse_run_args(["--rm", "alpine:3.20", "ls", "-l", "--privileged", "-v", "/:/x"])
    assert parsed.image == "alpine:3.20"
    assert parsed.command == ("ls", "-l", "--privileged", "-v", "/:/x")
    assert not parsed.has("privileged") and not parsed.has("volume")
    assert parsed.args_index == 1


def test_value_is_never_the_image():
    parsed = parse_run_args(["-v", "data:/data", "--network", "host", "-u", "-1", "nginx", "x"])
    assert parsed.image == "nginx" and parsed.command == ("x",)
    assert parsed.value("user") == "-1"    # pflag takes the next word whatever it is


def test_double_dash_ends_options():
    parsed = parse_run_args(["--rm", "--", "--weird-image"])
    assert parsed.image == "--weird-image"


def test_no_image():
    parsed = parse_run_args(["--rm", "-it"])
    assert parsed.image is None and parsed.command == () and parsed.args_index is None


def test_unknown_flags_in_audit_mode_are_recorded():
    parsed = parse_run_args(["--frob=1", "-X", "--rm", "--quux", "word", "alpine"])
    spelled = [(u.spelled, u.value, u.ambiguous) for u in parsed.unknown]
    assert spelled == [("--frob", "1", False), ("-X", None, False), ("--quux", None, True)]
    assert parsed.flag_on("rm")
    # an unknown flag followed by a word: that word might be its value, not the image
    assert parsed.image == "word" and parsed.image_uncertain
    assert not parse_run_args(["--frob=1", "alpine"]).image_uncertain


def test_strict_mode_errors():
    with pytest.raises(UsageError, match="unknown flag: --frob"):
        parse_run_args(["--frob", "x"], strict=True)
    with pytest.raises(UsageError, match="needs an argument: --user"):
        parse_run_args(["--user"], strict=True)
    with pytest.raises(UsageError, match="needs an argument: -e"):
        parse_run_args(["-e"], strict=True)
    with pytest.raises(UsageError, match="expected true or false"):
        parse_run_args(["--read-only=maybe", "x"], strict=True)
    with pytest.raises(UsageError, match="unknown flag: -Z"):
        parse_run_args(["-Z"], strict=True)


def test_missing_value_in_audit_mode():
    parsed = parse_run_args(["--rm", "-v"])
    assert parsed.missing_value == ("-v",) and parsed.image is None


def test_option_indexes():
    parsed = parse_run_args(["-it", "-v", "/a:/b", "--name=x", "img"])
    assert [(o.flag.name, o.index) for o in parsed.options] == [
        ("interactive", 0), ("tty", 0), ("volume", 1), ("name", 3)]


# --------------------------------------------------------------------------- hardrun mode

def test_hardrun_mode_first_positional_is_the_command():
    parsed = parse_run_args(["--rootfs", "/srv/r", "-u", "1000", "/bin/sh", "-c", "id"],
                            hardrun_mode=True)
    assert parsed.image is None
    assert parsed.command == ("/bin/sh", "-c", "id")
    spec = runspec_from_args(parsed, kind="hardrun", hardrun_mode=True)
    assert spec.rootfs == "/srv/r" and spec.user == "1000" and spec.image is None
    assert spec.command == ("/bin/sh", "-c", "id")


def test_hardrun_mode_refuses_unsupported_docker_flags():
    with pytest.raises(UsageError, match="unknown flag: --privileged"):
        parse_run_args(["--privileged", "true"], hardrun_mode=True)
    with pytest.raises(UsageError, match="unknown flag: --oom-kill-disable"):
        parse_run_args(["--oom-kill-disable", "true"], hardrun_mode=True)


def test_hardrun_only_flags():
    spec = hardrun_spec("--read-write", "--userns-remap", "200000:65536", "--userns", "host",
                        "--no-new-privileges", "true")
    assert spec.read_only_root is False
    assert spec.userns_remap == (200000, 65536)
    assert spec.namespaces["user"] == "host"
    assert spec.no_new_privileges is True
    options = hardrun_options(parse_run_args(
        ["--dry-run", "--policy", "strict", "--config", "c.yaml", "--limits", "strict", "x"],
        hardrun_mode=True))
    assert (options.dry_run, options.policy, options.config, options.limits) == (
        True, "strict", "c.yaml", "strict")
    # a limit that cannot be applied is an error unless asked otherwise
    assert hardrun_options(parse_run_args(["x"], hardrun_mode=True)).limits == "strict"


def test_expose_and_publish_all_for_hardrun_run():
    spec = hardrun_spec("--expose", "80", "--expose", "53/udp", "--expose", "9000-9001", "-P",
                        "--name", "web", "x")
    assert spec.exposed_ports == ("80/tcp", "53/udp", "9000-9001/tcp")
    assert spec.publish_all is True and spec.name == "web"
    with pytest.raises(UsageError, match="invalid container name"):
        hardrun_spec("--name", "two words", "x")


WORD_CHARS = "aZ09_.- \u00e9\u0663\n!"


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=WORD_CHARS, max_size=8), st.integers(min_value=0, max_value=70))
def test_names_and_host_names_follow_docker(text, padding):
    """Container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; host names: letters, digits, '.'
    and '-', starting with a letter or digit, at most 64 characters."""
    name_ok = re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", text) is not None
    host = text + "a" * padding
    host_ok = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}", host) is not None
    for argv, ok, message in ((["--name", text], name_ok, "invalid container name"),
                              (["-h", host], host_ok, "invalid host name")):
        if ok:
            hardrun_spec(*argv, "x")
        else:
            with pytest.raises(UsageError, match=message):
                hardrun_spec(*argv, "x")


def test_names_sizes_and_host_names_need_no_regular_expressions():
    """`re` costs milliseconds of `hardrun run`'s start-up: these common flags do without."""
    code = ("import sys; from hardrun.frontends.docker_argv import parse_hardrun_args; "
            "parse_hardrun_args(sys.argv[1:]); print('re' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, "-m", "1g", "--memory-swap", "2g", "--name", "web",
                           "-h", "box", "--", "true"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert (done.returncode, done.stdout) == (0, "False\n"), done.stderr


def test_parse_hardrun_args():
    spec, options = parse_hardrun_args(["--dry-run", "-u", "1000", "--", "/bin/echo", "-n", "x"])
    assert spec.kind == "hardrun" and spec.user == "1000"
    assert spec.command == ("/bin/echo", "-n", "x") and options.dry_run
    spec, options = parse_hardrun_args(["--help"])
    assert options.help
    with pytest.raises(UsageError, match="missing COMMAND"):
        parse_hardrun_args(["-u", "1000"])


def test_hardrun_mode_leaves_defaults_to_the_runtime():
    spec = hardrun_spec("true")
    assert spec.read_only_root is None and spec.no_new_privileges is None and spec.cap_drop == ()


@pytest.mark.parametrize("argv,message", [
    (["--cap-add", "NET_FROB", "x"], "unknown capability"),
    (["--cap-drop", "", "x"], "empty capability"),
    (["--limits", "sometimes", "x"], None),
    (["--userns-remap", "100000", "x"], "START:COUNT"),
    (["--userns-remap", "5:0", "x"], "COUNT >= 1"),
    (["--userns", "keep-id", "x"], "user namespace mode"),
    (["--network", "overlay", "x"], "unsupported network"),
    (["-m", "lots", "x"], "512m"),
    (["--memory-swap", "-2", "x"], "512m"),
    (["--pids-limit", "ten", "x"], "integer"),
    (["--cpus", "fast", "x"], "decimal"),
    (["--cpus", "-1", "x"], "non-negative"),
    (["-c", "-5", "x"], "at least 0"),
    (["--ulimit", "nofile", "x"], "NAME=SOFT"),
    (["--ulimit", "frob=1", "x"], "NAME=SOFT"),
    (["--ulimit", "nofile=a:b", "x"], "integers"),
    (["--ulimit", "nofile=10:5", "x"], "above the hard"),
    (["-e", "=x", "x"], "NAME=VALUE"),
    (["-u", "", "x"], "invalid user"),
    (["-u", "a:b:c", "x"], "invalid user"),
    (["-w", "rel", "x"], "absolute"),
    (["-h", "bad host", "x"], "host name"),
    (["-v", "/a", "x"], "SRC:DST"),
    (["-v", "vol:/a", "x"], "host path"),
    (["-v", "/a:rel", "x"], "absolute"),
    (["-v", "/a:/b:bogus", "x"], "invalid mode"),
    (["-v", "/a:/b:ro:x", "x"], "expected"),
    (["--mount", "type=volume,src=v,dst=/v", "x"], "bind or tmpfs"),
    (["--mount", "type=bind,dst=/v", "x"], "needs source"),
    (["--mount", "type=bind,src=/a", "x"], "missing target"),
    (["--mount", "type=frob,dst=/a", "x"], "unknown mount type"),
    (["--mount", "type=bind,src=/a,dst=/b,readonly=maybe", "x"], "readonly"),
    (["--mount", "type=bind,src=/a,dst=rel", "x"], "absolute"),
    (["--tmpfs", ":size=1m", "x"], "DST"),
    (["--tmpfs", "rel", "x"], "absolute"),
    (["--tmpfs", "/t:size", "x"], "unknown tmpfs option"),
    (["--tmpfs", "/t:bogus=1", "x"], "unknown tmpfs option"),
    (["--memory-swap", "1g", "x"], "needs --memory"),
    (["-m", "1g", "--memory-swap", "512m", "x"], "at least --memory"),
    (["-h", "a" * 65, "x"], "host name"),
    (["--security-opt", "apparmor=unconfined", "x"], "unsupported security option"),
    (["--security-opt", "no-new-privileges=maybe", "x"], "true or false"),
    (["--read-only=maybe", "x"], "true or false"),
    (["--env-file", "", "x"], "empty file"),
])
def test_hardrun_mode_errors(argv, message):
    with pytest.raises(UsageError) as caught:
        parsed = parse_run_args(argv, hardrun_mode=True)
        runspec_from_args(parsed, kind="hardrun", hardrun_mode=True)
        hardrun_options(parsed)
    if message:
        assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_env_file_is_read_in_hardrun_mode(tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("# comment\n\nA=1\n  B=two words\nPASS\nA=override\n")
    spec = hardrun_spec("--env-file", str(env_file), "-e", "A=flag", "true")
    assert [(e.name, e.value) for e in spec.env] == [
        ("A", "1"), ("B", "two words"), ("PASS", None), ("A", "override"), ("A", "flag")]
    assert spec.env_files == (str(env_file),)


def test_env_file_only_recorded_when_auditing(tmp_path):
    spec = spec_of("--env-file", str(tmp_path / "missing.env"), "alpine")
    assert spec.env_files == (str(tmp_path / "missing.env"),) and spec.env == ()


def test_env_file_errors(tmp_path):
    with pytest.raises(UsageError, match="cannot read env file"):
        read_env_file(str(tmp_path / "nope"))
    bad = tmp_path / "bad.env"
    bad.write_text("OK=1\nBAD NAME=1\n")
    with pytest.raises(UsageError) as caught:
        read_env_file(str(bad))
    assert caught.value.line == 2 and caught.value.path == str(bad)
    binary = tmp_path / "bin.env"
    binary.write_bytes(b"A=\xff\n")
    with pytest.raises(UsageError, match="UTF-8"):
        read_env_file(str(binary))


def test_hardrun_mode_accepts_valid_limits_and_tmpfs():
    spec = hardrun_spec("-m", "1g", "--memory-swap", "-1", "--tmpfs", "/t:size=64m,mode=1777,noexec",
                        "-h", "a" * 64, "true")
    assert spec.memory == 1 << 30 and spec.memory_swap == -1
    assert spec.mounts[0].options == ("size=64m", "mode=1777", "noexec")
    assert hardrun_spec("-m", "1g", "--memory-swap", "2g", "true").memory_swap == 2 << 30


def test_relative_volume_source_made_absolute_in_hardrun_mode(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = hardrun_spec("-v", "./data:/data:ro", "true")
    assert spec.mounts == (Mount("bind", "/data", str(tmp_path / "data"), True, ("ro",)),)


def test_help_shows_only_runtime_flags():
    text = run_help()
    assert text.startswith("Usage: hardrun run [OPTIONS] IMAGE [COMMAND [ARG...]]\n"
                           "       hardrun run [OPTIONS] --rootfs DIR [--] COMMAND [ARG...]\n")
    for flag in FLAGS:
        shown = f"--{flag.name} " in text or f"--{flag.name}\n" in text or f"--{flag.name}," in text
        if flag.name == "rootfs":
            continue   # in the usage line as well
        assert shown == flag.runtime, flag.name
    # every flag the help shows is accepted by the hardrun parser
    longs, _ = flags_for("hardrun")
    assert {f.name for f in FLAGS if f.runtime} == {f.name for f in longs.values()}


# --------------------------------------------------------------------------- values

@pytest.mark.parametrize("text,expected", [
    ("1024", 1024), ("512m", 512 << 20), ("512M", 512 << 20), ("1g", 1 << 30),
    ("1GB", 1 << 30), ("1.5GB", int(1.5 * (1 << 30))), ("100k", 100 << 10), ("1kb", 1024),
    ("2t", 2 << 40), ("1p", 1 << 50), ("10b", 10), ("1 g", 1 << 30), ("1gib", 1 << 30),
])
def test_ram_in_bytes(text, expected):
    assert ram_in_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "m", "1x", "-1", "1.g", "1gg", "one"])
def test_ram_in_bytes_rejects(text):
    with pytest.raises(ValueError):
        ram_in_bytes(text)


def test_capabilities_normalised():
    assert normalize_capability("cap_net_admin") == "NET_ADMIN"
    assert normalize_capability("Sys_Admin") == "SYS_ADMIN"
    assert normalize_capability("all") == "ALL"
    spec = hardrun_spec("--cap-drop", "all", "--cap-add", "CAP_NET_BIND_SERVICE",
                        "--cap-add", "chown,kill", "true")
    assert spec.cap_drop == ("ALL",)
    assert spec.cap_add == ("NET_BIND_SERVICE", "CHOWN", "KILL")
    assert len(CAPABILITIES) == 41 and CAPABILITIES[21] == "SYS_ADMIN"


def test_unknown_capability_is_kept_when_auditing():
    assert spec_of("--cap-add", "NEW_CAP", "alpine").cap_add == ("NEW_CAP",)


@pytest.mark.parametrize("opt,field,value", [
    ("no-new-privileges", "no_new_privileges", True),
    ("no-new-privileges=true", "no_new_privileges", True),
    ("no-new-privileges=false", "no_new_privileges", False),
    ("no-new-privileges:true", "no_new_privileges", True),
    ("seccomp=unconfined", "seccomp", "unconfined"),
    ("seccomp:unconfined", "seccomp", "unconfined"),
    ("seccomp=/etc/profile.json", "seccomp", "/etc/profile.json"),
    ("apparmor=unconfined", "apparmor", "unconfined"),
    ("apparmor:docker-default", "apparmor", "docker-default"),
    ("label=disable", "selinux_disabled", True),
    ("label:disable", "selinux_disabled", True),
    ("label=type:spc_t", "selinux_disabled", True),
    ("label=level:s0:c100,c200", "selinux_disabled", False),
])
def test_security_opt(opt, field, value):
    assert getattr(spec_of("--security-opt", opt, "alpine"), field) == value


def test_security_opt_in_hardrun_mode():
    spec = hardrun_spec("--security-opt", "seccomp=/p.json", "--security-opt",
                        "no-new-privileges=false", "true")
    assert spec.seccomp == "/p.json" and spec.no_new_privileges is False


@pytest.mark.parametrize("text,mount", [
    ("/:/host", Mount("bind", "/host", "/", False, ())),
    ("/etc:/etc:ro", Mount("bind", "/etc", "/etc", True, ("ro",))),
    ("/data:/data:ro,Z", Mount("bind", "/data", "/data", True, ("ro", "Z"))),
    ("/data:/data:rw", Mount("bind", "/data", "/data", False, ("rw",))),
    ("data:/data", Mount("volume", "/data", "data", False, ())),
    ("data:/data:nocopy", Mount("volume", "/data", "data", False, ("nocopy",))),
    ("/data", Mount("volume", "/data", None, False, ())),
    ("/data:ro", Mount("volume", "/data", None, True, ("ro",))),
    ("./src:/src", Mount("bind", "/src", "./src", False, ())),
    ("$PWD:/work", Mount("bind", "/work", "$PWD", False, ())),
    ("~/.ssh:/root/.ssh:ro", Mount("bind", "/root/.ssh", "~/.ssh", True, ("ro",))),
])
def test_volume_syntax(text, mount):
    assert parse_volume(text) == mount


@pytest.mark.parametrize("text,mount", [
    ("type=bind,source=/,target=/host", Mount("bind", "/host", "/", False, ())),
    ("type=bind,src=/etc,dst=/etc,readonly", Mount("bind", "/etc", "/etc", True, ())),
    ("type=bind,src=/etc,destination=/etc,ro=true", Mount("bind", "/etc", "/etc", True, ())),
    ("type=bind,src=/etc,dst=/etc,readonly=false", Mount("bind", "/etc", "/etc", False, ())),
    ("src=vol,dst=/v", Mount("volume", "/v", "vol", False, ())),
    ("type=tmpfs,dst=/tmp,tmpfs-size=64m", Mount("tmpfs", "/tmp", None, False, ("tmpfs-size=64m",))),
    ('type=bind,"src=/a,b",dst=/x', Mount("bind", "/x", "/a,b", False, ())),
])
def test_mount_syntax(text, mount):
    assert parse_mount(text) == mount


@pytest.mark.parametrize("text,port", [
    ("80", Port("80")),
    ("8080:80", Port("80", "8080")),
    ("127.0.0.1:8080:80", Port("80", "8080", "127.0.0.1")),
    ("127.0.0.1::80", Port("80", None, "127.0.0.1")),
    ("0.0.0.0:80:80/udp", Port("80", "80", "0.0.0.0", "udp")),
    ("[::1]:80:80", Port("80", "80", "::1")),
    ("::1:80:80", Port("80", "80", "::1")),
    ("8000-8010:8000-8010/tcp", Port("8000-8010", "8000-8010")),
    ("53:53/SCTP", Port("53", "53", None, "sctp")),
])
def test_publish_syntax(text, port):
    assert parse_publish(text) == [port]


@pytest.mark.parametrize("text", ["", "80/frob", "http", "0", "70000:80", "8010-8000:80", "a:b:c:d"])
def test_publish_rejects(text):
    with pytest.raises(ValueError):
        parse_publish(text)


def test_full_docker_conversion_with_lines():
    argv = ["--privileged", "-v", "/var/run/docker.sock:/var/run/docker.sock", "-p", "2375:2375",
            "--pid=host", "--ipc", "host", "--uts=host", "--net", "host", "--cgroupns", "host",
            "-u", "0", "-m", "512m", "--memory-swap", "-1", "--pids-limit", "100", "--cpus", "1.5",
            "-c", "512", "--ulimit", "nofile=1024:2048", "--device", "/dev/kvm",
            "--tmpfs", "/run:size=64m,noexec", "--read-only", "-h", "box", "--name", "n",
            "--init", "--entrypoint", "/bin/sh", "-w", "/app", "-P", "-e", "TOKEN=abc",
            "--env-file", "x.env", "docker:27", "-c", "echo"]
    word_lines = list(range(10, 10 + len(argv)))
    parsed = parse_run_args(argv)
    spec = runspec_from_args(parsed, kind="docker-run", path="run.sh", line=9,
                             subject="docker run docker:27", word_lines=word_lines)
    assert spec.privileged and spec.read_only_root and spec.init and spec.publish_all
    assert spec.mounts[0] == Mount("bind", "/var/run/docker.sock", "/var/run/docker.sock",
                                   False, (), 11)
    assert spec.mounts[1] == Mount("tmpfs", "/run", None, False, ("size=64m", "noexec"),
                                   argv.index("--tmpfs") + 10)
    assert spec.ports == (Port("2375", "2375", None, "tcp", 13),)
    assert spec.namespaces == {"pid": "host", "ipc": "host", "uts": "host", "network": "host",
                               "cgroup": "host"}
    assert spec.network == "host" and spec.shares_host("network")
    assert (spec.user, spec.memory, spec.memory_swap, spec.pids_limit, spec.cpus,
            spec.cpu_shares) == ("0", 512 << 20, -1, 100, 1.5, 512)
    assert spec.ulimits == (Ulimit("nofile", 1024, 2048),)
    assert spec.devices == ("/dev/kvm",)
    assert (spec.hostname, spec.name, spec.entrypoint, spec.workdir) == ("box", "n", "/bin/sh", "/app")
    assert spec.env == (EnvVar("TOKEN", "abc", argv.index("-e") + 10),)
    assert spec.env_files == ("x.env",)
    assert spec.image == "docker:27" and spec.command == ("-c", "echo")
    assert (spec.path, spec.line, spec.subject) == ("run.sh", 9, "docker run docker:27")
    assert spec.lines["privileged"] == 10
    assert spec.lines["namespace:pid"] == argv.index("--pid=host") + 10
    assert spec.lines["image"] == argv.index("docker:27") + 10
    assert spec.lines["device:0"] == argv.index("--device") + 10
    assert spec.line_of("read_only_root") == argv.index("--read-only") + 10
    assert spec.line_of("no_new_privileges") == 9   # not set: the declaration


def test_later_boolean_wins():
    assert spec_of("--privileged", "--privileged=false", "alpine").privileged is False
    assert spec_of("--read-only=false", "alpine").read_only_root is False


def test_unresolved_values_are_set_but_unknown():
    spec = spec_of("-m", "$MEM", "--pids-limit", "${PIDS}", "-u", "$(id -u)", "--cap-add", "$CAP",
                   "alpine")
    assert spec.memory is None and spec.pids_limit is None
    assert {"memory", "pids_limit", "user", "cap_add"} <= spec.unresolved
    assert spec.user == "$(id -u)"


def test_malformed_values_are_unknown_when_auditing():
    spec = spec_of("-m", "lots", "-p", "http", "-v", "/a:/b:bogus", "--ulimit", "x", "alpine")
    assert {"memory", "ports", "mounts", "ulimits"} <= spec.unresolved
    assert spec.memory is None and spec.ports == () and spec.mounts == ()


def test_podman_and_docker_only_flags_parse_in_their_engine():
    parsed = parse_run_args(["--pod", "p1", "--userns", "keep-id", "img"], engine="podman")
    assert parsed.image == "img" and not parsed.unknown
    spec = runspec_from_args(parsed, kind="docker-run")
    assert spec.namespaces["user"] == "keep-id"


# --------------------------------------------------------------------------- fuzz

WORDS = st.sampled_from([
    "-", "--", "-itd", "-p", "-p80:80", "-e", "-eA=b", "-v", "/:/x", "--privileged=maybe",
    "--read-only", "--mount", "type=bind,src=/a,dst=/b", "--security-opt", "seccomp=unconfined",
    "-m", "1g", "$X", "--frob", "--cap-add", "all", "--ulimit", "nofile=1:2", "--tmpfs", "/t",
    "--userns-remap", "1:2", "--network", "host", "-u", "0", "alpine", "--env-file", "=", ":",
    "--cpus", "nan", "--limits", "strict",
]) | st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(WORDS, max_size=12), st.booleans())
def test_fuzz_parser_raises_only_hardrun_errors(argv, hardrun_mode):
    try:
        parsed = parse_run_args(argv, hardrun_mode=hardrun_mode)
        runspec_from_args(parsed, kind="hardrun" if hardrun_mode else "docker-run",
                          hardrun_mode=hardrun_mode and "--env-file" not in argv)
        if hardrun_mode:
            hardrun_options(parsed)
    except HardrunError as error:
        assert "\n" not in str(error)
