"""Semantics of the build rules beyond their examples: the tricky cases and the false
positives a security reviewer would reject."""
import textwrap

import pytest
from hypothesis import given, settings, strategies as st

from hardrun.audit.engine import AuditOptions, audit, audit_text
from hardrun.errors import HardrunError

ROOT_FROM = "FROM debian:12\n"


def findings(text, rule=None, options=None):
    found = audit_text(textwrap.dedent(text), "dockerfile", "Dockerfile", options or AuditOptions())
    return [f for f in found if rule is None or f.rule == rule]


def lines(text, rule, options=None):
    return [f.line for f in findings(text, rule, options)]


# --- root-user (HR1001) ---------------------------------------------------------------

def test_missing_user_points_at_the_final_from():
    text = """\
        FROM golang:1.22 AS build
        USER 1000
        FROM debian:12
        CMD ["app"]
        """
    assert lines(text, "HR1001") == [3]


def test_user_carries_over_through_a_chain_of_stages():
    text = """\
        FROM debian:12 AS base
        USER 10001
        FROM base AS middle
        RUN true
        FROM middle
        CMD ["app"]
        """
    assert lines(text, "HR1001") == []


def test_a_child_stage_can_switch_back_to_root():
    text = """\
        FROM debian:12 AS base
        USER 10001
        FROM base
        USER root:root
        """
    assert lines(text, "HR1001") == [4]


def test_last_user_of_the_final_stage_wins():
    assert lines(ROOT_FROM + "USER root\nRUN true\nUSER 1000\n", "HR1001") == []
    assert lines(ROOT_FROM + "USER 1000\nUSER 0\n", "HR1001") == [3]


@pytest.mark.parametrize("user", ["root", "0", "root:root", "0:0", "0:1000", "root:staff"])
def test_root_spellings(user):
    assert lines(ROOT_FROM + f"USER {user}\n", "HR1001") == [2]


@pytest.mark.parametrize("user", ["app", "1000", "1000:0", "nobody:nogroup", "rootless", "10"])
def test_non_root_spellings(user):
    assert lines(ROOT_FROM + f"USER {user}\n", "HR1001") == []


def test_user_from_arg_default_is_resolved():
    assert lines(ROOT_FROM + "ARG UID=0\nUSER ${UID}:${UID}\n", "HR1001") == [3]
    assert lines(ROOT_FROM + "ARG UID=1000\nUSER ${UID}\n", "HR1001") == []


def test_user_from_arg_without_default_is_left_to_the_build_argument():
    assert lines(ROOT_FROM + "ARG APP_UID\nUSER ${APP_UID}\n", "HR1001") == []


def test_nonroot_tag_of_the_base_image():
    assert lines("FROM gcr.io/distroless/base-debian12:debug-nonroot\n", "HR1001") == []
    assert lines("FROM gcr.io/distroless/base-debian12:debug\n", "HR1001") == [1]


# --- copy-all (HR1002) -----------------------------------------------------------------

@pytest.mark.parametrize("source", [".", "./", "*", "./*"])
def test_whole_context_sources(source):
    assert lines(ROOT_FROM + f"COPY {source} /app/\n", "HR1002") == [2]


@pytest.mark.parametrize("instruction", ["COPY src/ /app/", "COPY --from=build . /app/",
                                         "COPY --from=node:20 . /x", "COPY ./src ./src",
                                         "COPY .env.example ."])
def test_not_the_whole_context(instruction):
    assert lines(ROOT_FROM + instruction + "\n", "HR1002") == []


def write_project(tmp_path, ignore=None, dockerfile="FROM debian:12\nCOPY . /app\n"):
    (tmp_path / "Dockerfile").write_text(dockerfile)
    if ignore is not None:
        (tmp_path / ".dockerignore").write_text(ignore)
    report = audit([str(tmp_path)])
    return [f for f in report.findings if f.rule == "HR1002"]


def test_no_dockerignore_keeps_the_warning(tmp_path):
    (finding,) = write_project(tmp_path)
    assert finding.severity == "warning" and "no .dockerignore" in finding.message


def test_protective_dockerignore_lowers_the_severity_but_keeps_the_finding(tmp_path):
    (finding,) = write_project(tmp_path, ".git\n.env\n*.pem\n*.key\nid_rsa\n")
    assert finding.severity == "info"


def test_allow_list_dockerignore_is_protective(tmp_path):
    (finding,) = write_project(tmp_path, "*\n!src\n!package.json\n")
    assert finding.severity == "info"


def test_recursive_patterns_count(tmp_path):
    (finding,) = write_project(tmp_path, "**/.git\n**/.env*\n**/*.pem\n**/*.key\n**/id_*\n")
    assert finding.severity == "info"


def test_dockerignore_missing_secret_files_names_them(tmp_path):
    (finding,) = write_project(tmp_path, ".git\nnode_modules\n")
    assert finding.severity == "warning"
    assert ".env" in finding.message and "private keys" in finding.message
    assert ".git," not in finding.message


def test_negation_re_includes_a_secret(tmp_path):
    (finding,) = write_project(tmp_path, ".git\n.env\n*.pem\n*.key\nid_rsa\n!.env\n")
    assert finding.severity == "warning" and ".env" in finding.message


def test_dockerfile_specific_ignore_file_wins(tmp_path):
    (tmp_path / "app.Dockerfile").write_text("FROM debian:12\nCOPY . /app\n")
    (tmp_path / "app.Dockerfile.dockerignore").write_text(".git\n.env\n*.pem\n*.key\nid_rsa\n")
    (tmp_path / ".dockerignore").write_text("node_modules\n")
    report = audit([str(tmp_path / "app.Dockerfile")])
    (finding,) = [f for f in report.findings if f.rule == "HR1002"]
    assert finding.severity == "info"


# --- secret (HR1003, HR1004, HR1005, HR1006, HR1019) -------------------------------------

def test_gpg_fingerprints_are_not_secrets():
    text = ROOT_FROM + textwrap.dedent("""\
        ENV GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D
        ENV GPG_KEYS 4ED778F539E3634C779C87C6D7062848A1AB005C B9E2F5981AA6E0CD28160D9FF13993A75599653C
        ARG SIGNING_KEY_FINGERPRINT=A035C8C19219BA821ECEA86B64E628F8D684696D
        RUN gpg --batch --keyserver hkps://keys.openpgp.org --recv-keys "$GPG_KEY"
        """)
    assert [f.rule for f in findings(text) if f.practice == "secret"] == []


def test_variable_references_and_secret_files_are_not_literals():
    text = ROOT_FROM + textwrap.dedent("""\
        ENV DB_PASSWORD=${DB_PASSWORD} API_TOKEN=$API_TOKEN
        ENV POSTGRES_PASSWORD_FILE=/run/secrets/pg MYSQL_ROOT_PASSWORD_FILE=/run/secrets/root
        ENV SECRET_NAME=app-credentials TOKEN_URL=https://auth.example.com/token
        """)
    assert lines(text, "HR1003") == []


def test_env_assigned_from_an_arg_with_a_literal_default_is_baked_in():
    text = ROOT_FROM + "ARG DEFAULT_PASSWORD=admin\nENV ADMIN_PASSWORD=$DEFAULT_PASSWORD\n"
    assert lines(text, "HR1003") == [3]
    assert lines(text, "HR1005") == []          # the name carries it: no second finding


def test_placeholder_passwords_are_reported():
    assert lines(ROOT_FROM + "ENV ADMIN_PASSWORD=changeme\n", "HR1003") == [2]


def test_template_markers_are_not_reported():
    assert lines(ROOT_FROM + "ENV API_KEY=<your-api-key>\n", "HR1003") == []


def test_global_arg_secret_default():
    assert lines("ARG GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345\nFROM debian:12\n",
                 "HR1004") == [1]


def test_build_arg_secret_without_default_is_a_warning():
    (finding,) = findings(ROOT_FROM + "ARG NPM_TOKEN\n", "HR1019")
    assert finding.severity == "warning" and "NPM_TOKEN" in finding.message
    assert lines(ROOT_FROM + "ARG NPM_REGISTRY\nARG GPG_KEY\n", "HR1019") == []


def test_curl_user_with_variables_is_not_a_literal():
    assert lines(ROOT_FROM + 'RUN curl -fsSL -u "$USER:$TOKEN" https://x/a\n', "HR1005") == []
    assert lines(ROOT_FROM + 'RUN curl -fsSL -u admin:pass https://x/a\n', "HR1005") == [2]


def test_credential_line_inside_a_continued_run():
    text = ROOT_FROM + "RUN apt-get update \\\n && echo 'admin:pw' | chpasswd\n"
    assert lines(text, "HR1005") == [3]


def test_credential_in_a_heredoc_script_points_at_its_line():
    text = ROOT_FROM + "RUN <<EOF\nset -e\nmysql -uroot -pHunter2 -e 'select 1'\nEOF\n"
    assert lines(text, "HR1005") == [4]


def test_credentials_in_labels_and_urls():
    assert lines(ROOT_FROM + 'LABEL repo="https://ci:t0ken@git.example.com/app.git"\n', "HR1005") == [2]
    assert lines(ROOT_FROM + "RUN git clone git@github.com:acme/app.git\n", "HR1005") == []


def test_messages_do_not_repeat_the_secret():
    text = ROOT_FROM + "RUN docker login -u bot -p Tr0ub4dor registry.example.com\n"
    (finding,) = findings(text, "HR1005")
    assert "Tr0ub4dor" not in finding.message


def test_secret_file_in_a_build_stage_is_a_warning():
    text = """\
        FROM alpine/git:2.45.2 AS fetch
        COPY id_ed25519 /root/.ssh/id_ed25519
        FROM debian:12
        COPY --from=fetch /src /src
        """
    (finding,) = findings(text, "HR1006")
    assert finding.severity == "warning" and finding.line == 2


@pytest.mark.parametrize("source", ["id_rsa", "./.env", "config/.env.production", ".aws/",
                                    "deploy/.ssh", "secrets/tls.key", "certs/privkey.pem",
                                    "store.p12", ".git-credentials"])
def test_secret_files(source):
    assert lines(ROOT_FROM + f"COPY {source} /dst\n", "HR1006") == [2]


@pytest.mark.parametrize("source", ["id_rsa.pub", ".env.example", ".env.sample", "certs/ca.pem",
                                    "fullchain.pem", "keys.txt", "monkey.py", "${SECRET_FILE}"])
def test_not_secret_files(source):
    assert lines(ROOT_FROM + f"COPY {source} /dst\n", "HR1006") == []


# --- untrusted-base, unpinned-digest (HR1007, HR1008) ---------------------------------------

def test_stage_references_are_never_images():
    text = """\
        FROM golang:1.22 AS Build
        FROM build AS test
        FROM BUILD
        """
    assert lines(text, "HR1007") == [] and lines(text, "HR1008") == [1]


def test_scratch_is_not_an_image():
    assert lines("FROM scratch\n", "HR1007") == [] and lines("FROM scratch\n", "HR1008") == []


def test_arg_defaults_resolve_the_base():
    assert lines("ARG TAG=latest\nFROM alpine:${TAG}\n", "HR1007") == [2]
    assert lines("ARG IMAGE=alpine\nFROM ${IMAGE}\n", "HR1007") == [2]
    assert lines("ARG IMAGE=alpine:3.20\nFROM ${IMAGE}\n", "HR1007") == []
    assert lines("FROM alpine:${TAG:-3.20}\n", "HR1007") == []
    assert lines("ARG TAG\nFROM alpine:${TAG:-latest}\n", "HR1007") == [2]


def test_variables_without_a_value_are_not_untagged():
    for text in ("ARG BASE\nFROM ${BASE}\n", "ARG V\nFROM python:${V}-slim\n",
                 "FROM ${REGISTRY}/base:${TAG}\n", "ARG V\nFROM alpine${V}\n"):
        assert lines(text, "HR1007") == [], text
        assert lines(text, "HR1008") == [], text


def test_trusted_registries():
    options = AuditOptions(trusted_registries=("registry.example.com", "docker.io/library"))
    text = "FROM registry.example.com/base/debian:12\nFROM ghcr.io/acme/tool:1.0\nFROM debian:12\n"
    found = findings(text, "HR1007", options)
    assert [(f.line, f.severity) for f in found] == [(2, "error")]
    assert "ghcr.io" in found[0].message


def test_without_a_trusted_list_any_registry_is_accepted():
    assert lines("FROM ghcr.io/acme/tool:1.0\n", "HR1007") == []


def test_unpinned_digest_for_every_external_stage():
    text = "FROM golang:1.22 AS build\nFROM alpine@sha256:" + "a" * 64 + "\n"
    assert lines(text, "HR1008") == [1]


# --- ADD (HR1009, HR1011) ----------------------------------------------------------------

@pytest.mark.parametrize("source", ["archive.tar", "a.tar.gz", "a.tgz", "a.tar.xz", "a.txz",
                                    "a.tar.bz2", "a.tbz2", "a.tar.zst", "ROOTFS.TAR.GZ"])
def test_add_of_local_archives_has_a_purpose(source):
    assert lines(ROOT_FROM + f"ADD {source} /opt/\n", "HR1011") == []


def test_add_of_a_compressed_non_tar_is_local():
    assert lines(ROOT_FROM + "ADD data.gz /opt/\n", "HR1011") == [2]


def test_add_remote_is_not_add_local():
    text = ROOT_FROM + "ADD https://example.com/a.txt /opt/\n"
    assert lines(text, "HR1011") == [] and lines(text, "HR1009") == [2]


def test_add_remote_with_checksum_is_informational():
    text = ROOT_FROM + "ADD --checksum=sha256:" + "b" * 64 + " https://example.com/a.tgz /opt/\n"
    (finding,) = findings(text, "HR1009")
    assert finding.severity == "info"


def test_add_git_repository():
    assert lines(ROOT_FROM + "ADD https://github.com/acme/app.git#v1.2.0 /src\n", "HR1009") == [2]


# --- curl-pipe-shell (HR1010) ----------------------------------------------------------

@pytest.mark.parametrize("run", [
    "curl -fsSL https://x/i.sh | sh",
    "curl -fsSL https://x/i.sh | sh -s -- --yes",
    "wget -O- https://x/i.sh | bash",
    "wget -qO - https://x/i.sh | sudo -E bash -",
    "curl -sL https://x | tee /tmp/log | bash",
    "/usr/bin/curl -sL https://x | /bin/bash",
    'bash -c "$(curl -fsSL https://x/i.sh)"',
    "bash <(curl -fsSL https://x/i.sh)",
    'eval "$(curl -fsSL https://x/env)"',
    "curl -sSL https://x/get-poetry.py | python3 -",
    "curl -sSL https://x/i.pl | perl",
    "set -e; if true; then curl -fsSL https://x | sh; fi",
    "sh -c 'curl -fsSL https://x | sh'",
])
def test_download_run_by_a_shell(run):
    assert lines(ROOT_FROM + f"RUN {run}\n", "HR1010") == [2]


@pytest.mark.parametrize("run", [
    "curl -fsSL https://x/a.tgz | tar -xz -C /opt",
    "curl -fsSL https://x/key.asc | gpg --dearmor -o /usr/share/keyrings/x.gpg",
    "curl -fsSL https://x/a | sha256sum",
    "curl -fsSLo /tmp/i.sh https://x/i.sh && sh /tmp/i.sh",
    "curl -fsSL https://x/data.json | python3 -m json.tool",
    "curl -fsSL https://x/data.json | python3 parse.py",
    "echo 'curl is not run | sh'",
    "sh ./configure && make",
])
def test_not_a_download_run_by_a_shell(run):
    assert lines(ROOT_FROM + f"RUN {run}\n", "HR1010") == []


def test_heredoc_curl_pipe_shell_points_at_its_line():
    text = ROOT_FROM + "RUN <<EOF\nset -eux\napt-get update\ncurl -fsSL https://x | bash\nEOF\n"
    assert lines(text, "HR1010") == [5]


def test_exec_form_sh_c():
    assert lines(ROOT_FROM + 'RUN ["/bin/sh", "-c", "curl -fsSL https://x | sh"]\n', "HR1010") == [2]


# --- sudo (HR1012) -----------------------------------------------------------------------

def test_installing_sudo_and_editing_sudoers_is_not_using_it():
    text = ROOT_FROM + textwrap.dedent("""\
        RUN apt-get update && apt-get install -y --no-install-recommends sudo \\
         && echo 'app ALL=(ALL) NOPASSWD:ALL' >> /etc/sudoers \\
         && sed -i 's/^%sudo.*/%sudo ALL=(ALL) ALL/' /etc/sudoers && usermod -aG sudo app
        """)
    assert lines(text, "HR1012") == []


def test_sudo_inside_a_heredoc_and_a_pipeline():
    assert lines(ROOT_FROM + "RUN <<EOF\nsudo make install\nEOF\n", "HR1012") == [3]
    assert lines(ROOT_FROM + "RUN echo x | sudo tee /etc/x\n", "HR1012") == [2]


# --- tls-disabled (HR1013, HR1014) -------------------------------------------------------

@pytest.mark.parametrize("run", [
    "curl --insecure -o /x https://x",
    "curl -sSkL https://x -o /x",
    "python3 -m pip install --trusted-host=pypi.example.com x",
    "pip config set global.trusted-host pypi.example.com",
    "yarn config set strict-ssl false",
    "npm install --strict-ssl=false",
    "git config --global http.sslVerify false",
    "git config --global http.https://git.example.com/.sslVerify false",
    "apt-get -o Acquire::https::Verify-Peer=false update",
    "apt-get install -y --allow-insecure-repositories x",
    "echo 'Acquire::https::Verify-Peer \"false\";' > /etc/apt/apt.conf.d/99insecure",
    "yum install -y --nogpgcheck x",
    "microdnf install --setopt=sslverify=0 x",
    "printf '[x]\\nbaseurl=https://r\\ngpgcheck=0\\n' > /etc/yum.repos.d/x.repo",
    "zypper --no-gpg-checks install -y x",
    "rpm -ivh --nosignature x.rpm",
    "export GIT_SSL_NO_VERIFY=1 && git clone https://x/r.git",
    "PYTHONHTTPSVERIFY=0 python3 fetch.py",
    "echo insecure >> ~/.curlrc",
    "helm repo add x https://x --insecure-skip-tls-verify",
    "skopeo copy --src-tls-verify=false docker://a docker://b",
    "conda config --set ssl_verify false",
])
def test_tls_disabled_in_run(run):
    assert lines(ROOT_FROM + f"RUN {run}\n", "HR1013") == [2]


@pytest.mark.parametrize("run", [
    "curl -fsSL -A -k https://x -o /x",          # -k is the user agent here
    "curl -fsSL --cacert /etc/ssl/certs/corp.pem https://x -o /x",
    "git -c http.sslVerify=true clone https://x/r.git",
    "npm config set strict-ssl true",
    "yum install -y x && sed -i 's/repo_gpgcheck=1/repo_gpgcheck=1/' /etc/yum.conf",
    "pip install --index-url https://pypi.example.com/simple x",
    "apk add --no-cache ca-certificates",
])
def test_tls_kept(run):
    assert lines(ROOT_FROM + f"RUN {run}\n", "HR1013") == []


def test_tls_disabled_env():
    assert lines(ROOT_FROM + "ENV GIT_SSL_NO_VERIFY=false\n", "HR1014") == [2]   # git only checks it is set
    assert lines(ROOT_FROM + "ENV GOINSECURE=git.example.com GOSUMDB=off\n", "HR1014") == [2, 2]
    assert lines(ROOT_FROM + "ENV PYTHONHTTPSVERIFY=1 NODE_TLS_REJECT_UNAUTHORIZED=1\n", "HR1014") == []


# --- expose-sensitive (HR1015) -----------------------------------------------------------

@pytest.mark.parametrize("spec", ["22", "22/tcp", "23", "2376", "3389", "3389/udp", "5901",
                                  "5985", "5986/tcp", "20-25", "5000-6000"])
def test_sensitive_ports(spec):
    assert lines(ROOT_FROM + f"EXPOSE {spec}\n", "HR1015") == [2]


@pytest.mark.parametrize("spec", ["80", "2222", "8022", "22/udp", "5902", "24-2374", "${PORT}"])
def test_not_sensitive_ports(spec):
    assert lines(ROOT_FROM + f"EXPOSE {spec}\n", "HR1015") == []


def test_docker_api_port_is_an_error_and_ports_are_named():
    (finding,) = findings(ROOT_FROM + "EXPOSE 2375\n", "HR1015")
    assert finding.severity == "error" and "2375" in finding.message
    (finding,) = findings(ROOT_FROM + "ARG SSH=22\nEXPOSE ${SSH}\n", "HR1015")
    assert "SSH" in finding.message


# --- many-layers (HR1016) --------------------------------------------------------------

def test_two_runs_are_fine_three_are_not():
    assert lines(ROOT_FROM + "RUN a\nRUN b\n", "HR1016") == []
    assert lines(ROOT_FROM + "RUN a\nRUN b\nRUN c\n", "HR1016") == [2]


def test_runs_separated_by_other_instructions_are_separate_streaks():
    text = ROOT_FROM + "RUN a\nRUN b\nENV X=1\nRUN c\nRUN d\nWORKDIR /x\nRUN e\nRUN f\nRUN g\n"
    assert lines(text, "HR1016") == [8]


# --- package-cache (HR1017) -----------------------------------------------------------

def test_apt_update_alone_leaves_lists():
    assert lines(ROOT_FROM + "RUN apt-get update\n", "HR1017") == [2]


def test_apt_clean_is_not_removing_lists():
    text = ROOT_FROM + "RUN apt-get update && apt-get install -y --no-install-recommends x && apt-get clean\n"
    assert lines(text, "HR1017") == [2]


def test_cache_mount_on_var_cache_apt_alone_does_not_cover_the_lists():
    text = ROOT_FROM + ("RUN --mount=type=cache,target=/var/cache/apt apt-get update "
                        "&& apt-get install -y --no-install-recommends x\n")
    assert lines(text, "HR1017") == [2]


def test_apk_cleanup_and_pip_variants():
    assert lines("FROM alpine:3.20\nRUN apk update && apk add x && rm -rf /var/cache/apk/*\n", "HR1017") == []
    assert lines("FROM python:3.12\nRUN PIP_NO_CACHE_DIR=1 pip install x\n", "HR1017") == []
    assert lines("FROM python:3.12\nRUN --mount=type=cache,target=/root/.cache/pip pip install x\n",
                 "HR1017") == []
    assert lines("FROM python:3.12\nRUN python3 -m pip install x\n", "HR1017") == [2]
    assert lines("FROM python:3.12\nRUN pip install --no-cache-dir x && pip3 list\n", "HR1017") == []


def test_pip_no_cache_dir_env_inherited_from_a_parent_stage():
    text = "FROM python:3.12 AS base\nENV PIP_NO_CACHE_DIR=off\nFROM base\nRUN pip install x\n"
    assert lines(text, "HR1017") == []


def test_build_stage_caches_are_not_shipped():
    text = "FROM debian:12 AS build\nRUN apt-get update && apt-get install -y gcc\nFROM scratch\n"
    assert lines(text, "HR1017") == []


# --- no-healthcheck (HR1018) ---------------------------------------------------------

def test_healthcheck_inherited_then_disabled_then_restored():
    base = "FROM nginx:1.27 AS base\nHEALTHCHECK CMD true\n"
    assert lines(base + "FROM base\n", "HR1018") == []
    assert lines(base + "FROM base\nHEALTHCHECK NONE\n", "HR1018") == [4]
    assert lines(base + "FROM base\nHEALTHCHECK NONE\nHEALTHCHECK CMD curl -f http://l/\n", "HR1018") == []


def test_missing_healthcheck_points_at_the_final_from():
    assert lines("FROM nginx:1.27 AS a\nFROM nginx:1.27\n", "HR1018") == [2]


# --- the bundled examples -------------------------------------------------------------

def test_insecure_example_breaks_every_kind_of_practice():
    report = audit(["examples/insecure"])
    practices = {f.practice for f in report.findings}
    assert {"root-user", "copy-all", "secret", "untrusted-base", "unpinned-digest", "add-remote",
            "add-local", "curl-pipe-shell", "sudo", "tls-disabled", "expose-sensitive",
            "many-layers", "package-cache", "no-healthcheck"} <= practices


def test_hardened_example_is_clean():
    report = audit(["examples/hardened"])
    assert not report.errors and report.findings == []


def test_trusted_local_apt_repository_is_not_a_bypass():
    local = ROOT_FROM + 'RUN echo "deb [ trusted=yes ] file://$tempDir ./" > /etc/apt/sources.list.d/temp.list\n'
    remote = ROOT_FROM + 'RUN echo "deb [arch=amd64 trusted=yes] https://r.example.com/ stable main" > /x.list\n'
    assert lines(local, "HR1013") == []
    assert lines(remote, "HR1013") == [2]


def test_apk_without_network_leaves_no_index():
    assert lines("FROM alpine:3.20\nRUN apk add --no-network --virtual .rundeps $runDeps\n", "HR1017") == []


def test_windows_administrator_is_root():
    base = "FROM mcr.microsoft.com/windows/servercore:ltsc2022\n"
    assert lines(base + "USER ContainerAdministrator\n", "HR1001") == [2]
    assert lines(base + "USER ContainerUser\n", "HR1001") == []


# --- robustness: checks never fail on what the parser accepts ------------------------

_KEYWORDS = ["FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "USER", "EXPOSE", "HEALTHCHECK",
             "ONBUILD RUN", "ONBUILD COPY", "WORKDIR", "CMD", "LABEL"]
_WORDS = ["", ".", "*", "a", "$X", "${X:-latest}", "root", "0:0", "22-", "-1", "99999999999",
          "curl", "|", "sh", "-u", "a:b", "--mount=type=cache", "--from=x", "AS", "x", "sudo",
          "-k", "NONE", "=", "A=", "\"", "'", "<<EOF", "@sha256:", "https://u:p@h", "\\"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_KEYWORDS), st.lists(st.sampled_from(_WORDS), max_size=5)),
                max_size=8))
def test_checks_never_fail_on_parsed_input(instructions):
    text = "FROM alpine:3.20\n" + "".join(f"{keyword} {' '.join(words)}\n" for keyword, words in instructions)
    try:
        audit_text(text, "dockerfile", "Dockerfile", AuditOptions(trusted_registries=("ghcr.io",)))
    except HardrunError:
        pass
