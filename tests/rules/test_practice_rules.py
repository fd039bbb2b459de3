"""Semantics of the Dockerfile practice rules hadolint users know (HR1021-HR1032) and
BuildKit's sandbox escapes (HR1033), beyond their examples: the cases at the edges."""
from hardrun.audit.engine import AuditOptions, audit_text
from hardrun.policy import audit_options, load_policy_text

FROM = "FROM debian:12\n"
PINNING = audit_options(load_policy_text("version: 1\nrules: {HR1021: on}\n", "p.yaml"))


def hits(text, rule, options=None):
    return [(f.line, f.severity) for f in audit_text(text, "dockerfile", "Dockerfile",
                                                       options or AuditOptions())
            if f.rule == rule and not f.suppressed]


def test_version_pins_each_package_manager_understands():
    pinned = ("RUN apt-get install -y curl=7.88 'git=1:2.39*' && apk add musl~=1.2 \\\n"
              " && pip install 'a==1' 'b>=2' c@https://x/c.whl ./local -r req.txt -e . \\\n"
              " && npm install @scope/pkg@1.0.0 left-pad@1.3.0 && npm install \\\n"
              " && gem install rails:7.1.3 && dnf install -y httpd-2.4.62 && go install x.io/y@v1.2.3 \\\n"
              " && python3 -m pip install 'django==5.0' && yarn add react@18.3.1\n")
    assert hits(FROM + pinned, "HR1021", PINNING) == []
    loose = "RUN pip install -i https://pypi.example/simple flask && python3 -m pip install django\n"
    assert hits(FROM + loose, "HR1021", PINNING) == [(2, "warning"), (2, "warning")]
    # off unless a policy switches it on
    assert hits(FROM + loose, "HR1021") == []


def test_yes_flags_in_every_spelling():
    for spelled in ("-y", "--yes", "--assume-yes", "-qq", "-qy", "-yq", "-o APT::Get::Assume-Yes=true -q"):
        assert hits(FROM + f"RUN apt-get install {spelled} curl\n", "HR1022") == [], spelled
    assert hits(FROM + "RUN apt-get -q install curl\n", "HR1022") == [(2, "warning")]
    assert hits(FROM + "RUN sudo apt-get install curl\n", "HR1022") == [(2, "warning")]
    assert hits(FROM + "RUN apt-get update && apt-cache policy curl\n", "HR1022") == []


def test_microdnf_without_yes_asks_and_with_it_does_not():
    """UBI 9's microdnf asks "Is this ok [y/N]" as dnf does (the older one of UBI 8 never asks
    and takes -y too): reported without -y, not with it in any spelling or place."""
    ubi = "FROM registry.access.redhat.com/ubi9/ubi-minimal\n"
    for verb in ("install", "reinstall", "upgrade", "update", "remove"):
        assert hits(ubi + f"RUN microdnf {verb} curl\n", "HR1022") == [(2, "warning")], verb
    for spelled in ("microdnf install -y curl", "microdnf -y install curl", "microdnf --assumeyes install curl",
                    "microdnf install --nodocs -y curl"):
        assert hits(ubi + f"RUN {spelled} && microdnf clean all\n", "HR1022") == [], spelled
    assert hits(ubi + "RUN microdnf clean all && microdnf repolist\n", "HR1022") == []


def test_workdir_paths():
    for absolute in ("/app", "$HOME/app", "${APP_DIR}", "C:\\\\app", "\"/quoted dir\""):
        assert hits(FROM + f"WORKDIR {absolute}\n", "HR1025") == [], absolute
    assert hits(FROM + "WORKDIR ./app\n", "HR1025") == [(2, "warning")]


def test_repeated_instructions_are_per_stage_and_point_at_the_overridden_one():
    text = FROM + 'CMD ["a"]\nHEALTHCHECK NONE\nCMD ["b"]\nHEALTHCHECK CMD ["true"]\nCMD ["c"]\n'
    assert hits(text, "HR1027") == [(2, "warning"), (3, "warning"), (4, "warning")]
    assert hits(FROM + 'CMD ["a"]\n' + FROM + 'CMD ["b"]\n', "HR1027") == []


def test_copy_from_names_and_indexes():
    base = "FROM golang:1.22 AS build\nRUN true\n"
    assert hits(base + "FROM alpine:3.20\nCOPY --from=BUILD /a /a\n", "HR1030") == []
    assert hits(base + "FROM alpine:3.20\nCOPY --from=0 /a /a\n", "HR1030") == []
    assert hits(base + "FROM alpine:3.20\nCOPY --from=1 /a /a\n", "HR1030") == [(4, "error")]
    assert hits(base + "FROM alpine:3.20\nCOPY --from=later /a /a\nFROM alpine:3.20 AS later\n",
                "HR1030") == [(4, "warning")]
    assert hits(base + "FROM alpine:3.20\nCOPY --from=ghcr.io/o/img:1 /a /a\n", "HR1030") == []
    assert hits(base + "ARG SRC=build\nFROM alpine:3.20\nCOPY --from=$SRC /a /a\n", "HR1030") == []


def test_useradd_uid_spellings():
    assert hits(FROM + "RUN useradd --uid=200000 app\n", "HR1031") == [(2, "info")]
    assert hits(FROM + "RUN useradd -u200000 app\n", "HR1031") == [(2, "info")]
    assert hits(FROM + "RUN useradd --no-log-init -u 200000 app\n", "HR1031") == []
    assert hits(FROM + "RUN useradd -u 99999 app\n", "HR1031") == []


def test_pipefail_from_the_shell_of_a_parent_stage_or_the_run():
    download = "RUN curl -fsSL https://example.com/a.tgz | tar -xz\n"
    assert hits(FROM + download, "HR1032") == [(2, "warning")]                  # control
    parent = 'FROM debian:12 AS base\nSHELL ["/bin/bash", "-eo", "pipefail", "-c"]\nFROM base\n'
    assert hits(parent + download, "HR1032") == []
    assert hits(FROM + "RUN set -o pipefail && " + download[4:], "HR1032") == []
    # pipefail set after the pipe does not protect it
    assert hits(FROM + download.rstrip() + " && set -o pipefail\n", "HR1032") == [(2, "warning")]
    # another pipe is info; a download piped into a shell is HR1010's
    assert hits(FROM + "RUN dpkg -l | grep ssl\n", "HR1032") == [(2, "info")]
    assert hits(FROM + "RUN curl -fsSL https://example.com/i.sh | sh\n", "HR1032") == []


def test_buildkit_flags_that_escape_the_sandbox_and_those_that_do_not():
    assert hits(FROM + "RUN --security=insecure true\n", "HR1033") == [(2, "error")]
    assert hits(FROM + "RUN --security=sandbox true\n", "HR1033") == []
    assert hits(FROM + "RUN --network=host true\n", "HR1033") == [(2, "warning")]
    assert hits(FROM + "RUN --network=default --network=none true\n", "HR1033") == []
    socket = "RUN --mount=type=bind,source=/run/containerd/containerd.sock,target=/c.sock true\n"
    assert hits(FROM + socket, "HR1033") == [(2, "error")]
    harmless = ("RUN --mount=type=bind,source=/,target=/ctx --mount=type=cache,target=/root/.cache "
                "--mount=type=ssh --mount=type=tmpfs,target=/tmp true\n")
    assert hits(FROM + harmless, "HR1033") == []
