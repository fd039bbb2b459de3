"""The value syntaxes every run front end shares: where the docker-run and compose
parsers used to disagree, both now follow Docker."""
import re

import pytest
from hypothesis import given, settings, strategies as st

from hardrun.errors import ParseError
from hardrun.frontends.compose import parse_compose
from hardrun.frontends.docker_argv import parse_run_args
from hardrun.frontends.docker_runspec import runspec_from_args
from hardrun.parsing.runvalues import (
    is_host_path, parse_size, parse_tmpfs, parse_volume, security_opt_settings,
)
from hardrun.spec.run import Mount


def docker_spec(*argv):
    return runspec_from_args(parse_run_args(list(argv)), kind="docker-run")


def compose_spec(service_body: str):
    text = "services:\n  s:\n    image: a:1\n" + service_body
    return parse_compose(text, "compose.yml")[0]


@pytest.mark.parametrize("text", [".5g", "5.g", "1bb", "512 m b"])
def test_sizes_follow_docker(text):
    """Docker's RAMInBytes rejects these; compose hands mem_limit to the same parser."""
    with pytest.raises(ValueError):
        parse_size(text)
    with pytest.raises(ParseError, match="mem_limit"):
        compose_spec(f"    mem_limit: {text!r}\n")
    assert "memory" in docker_spec("-m", text, "alpine").unresolved


def test_size_accepts_yaml_numbers_and_docker_units():
    assert parse_size(1024) == 1024 and parse_size("1.5GB") == int(1.5 * (1 << 30))
    assert compose_spec("    mem_limit: 1gib\n").memory == 1 << 30


# Docker's RAMInBytes syntax as a regular expression (parse_size reads it by hand).
DOCKER_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp]?)i?b?", re.IGNORECASE)
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="0123456789\u0663.  \tkKmMgGtTpPiIbBx", max_size=9))
def test_sizes_are_read_as_docker_reads_them(text):
    match = DOCKER_SIZE.fullmatch(text.strip())
    if match is None:
        with pytest.raises(ValueError):
            parse_size(text)
    else:
        number, unit = match.groups()
        assert parse_size(text) == int(float(number) * SIZE_UNITS[unit.lower()])


def test_a_relative_name_with_a_slash_is_no_host_path():
    """Docker and compose bind only absolute, ./, ../, ~ (and $VAR) sources."""
    assert not is_host_path("data/sub")
    assert compose_spec("    volumes: ['data/sub:/x']\n").mounts[0].type == "volume"
    assert docker_spec("-v", "data/sub:/x", "alpine").mounts[0].type == "volume"


def test_volume_destination_with_only_modes_is_anonymous_in_both():
    assert parse_volume("/data:ro") == Mount("volume", "/data", None, True, ("ro",))
    mount = compose_spec("    volumes: ['/data:ro']\n").mounts[0]
    assert (mount.type, mount.target, mount.source, mount.read_only) == ("volume", "/data", None, True)


def test_compose_keeps_unknown_volume_modes_docker_rejects_them():
    assert compose_spec("    volumes: ['/a:/b:ro,frob']\n").mounts[0].options == ("ro", "frob")
    assert "mounts" in docker_spec("-v", "/a:/b:ro,frob", "alpine").unresolved


def test_windows_drive_is_one_source():
    assert parse_volume("C:\\data:/data").source == "C:\\data"


def test_read_only_tmpfs_in_compose():
    """`ro` makes a tmpfs read-only for Docker and compose alike."""
    assert parse_tmpfs("/run:ro,size=1m") == Mount("tmpfs", "/run", None, True, ("ro", "size=1m"))
    assert compose_spec("    tmpfs: ['/run:ro']\n").mounts[0].read_only is True


@pytest.mark.parametrize("port", ["70000:80", "80/frob", "8010-8000:80"])
def test_compose_ports_are_validated_as_docker_does(port):
    with pytest.raises(ParseError, match="ports"):
        compose_spec(f"    ports: [{port!r}]\n")


@pytest.mark.parametrize("option", ["no-new-privileges:yes", "no-new-privileges=on"])
def test_no_new_privileges_needs_a_go_boolean(option):
    """Docker's daemon rejects `yes`/`on`: the setting is unknown, not true."""
    assert security_opt_settings(option) == [("no_new_privileges", None)]
    spec = compose_spec(f"    security_opt: [{option!r}]\n")
    assert spec.no_new_privileges is None and "no_new_privileges" in spec.unresolved
    spec = docker_spec("--security-opt", option, "alpine")
    assert spec.no_new_privileges is None and "no_new_privileges" in spec.unresolved


def test_security_opt_splits_at_equals_first():
    """`apparmor:x=y` is the option `apparmor:x` set to y for Docker: nothing judged."""
    assert security_opt_settings("apparmor:x=y") == []
    assert security_opt_settings("label=type:spc_t") == [
        ("selinux_disabled", True), ("selinux_options", {"type": "spc_t"})]


def test_unconfined_selinux_type_disables_labelling_in_compose_too():
    assert compose_spec("    security_opt: ['label=type:spc_t']\n").selinux_disabled is True


def test_systempaths_unconfined_is_the_same_field_for_both():
    assert docker_spec("--security-opt", "systempaths=unconfined", "alpine").system_paths_unconfined
    assert compose_spec("    security_opt: ['systempaths=unconfined']\n").system_paths_unconfined
