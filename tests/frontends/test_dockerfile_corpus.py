"""The corpus under tests/data/dockerfiles/ (realistic files in the style of official
images, multi-stage Go/Rust/Java builds, heredoc-heavy BuildKit files, Windows and
ONBUILD images) parses without error and yields the facts rules rely on."""
from pathlib import Path

import pytest

from hardrun.frontends.dockerfile import parse_dockerfile

CORPUS = Path(__file__).resolve().parent.parent / "data" / "dockerfiles"
FILES = sorted(CORPUS.glob("*.Dockerfile"))

# file: (stage count, final stage base, final stage parent index)
FACTS = {
    "alpine-apk": (1, "alpine:3.20", None),
    "base-image-arg": (2, "docker.io/library/eclipse-temurin:21-jre", None),
    "buildkit-heredocs": (2, "base", 0),
    "debian-buildpack": (1, "debian:bookworm", None),
    "dotnet-multistage": (2, "mcr.microsoft.com/dotnet/aspnet:8.0-jammy-chiseled", None),
    "golang-multistage": (3, "alpine:3.20", None),
    "java-gradle-heredoc": (2, "eclipse-temurin:21-jre-alpine", None),
    "legacy-ssh": (1, "ubuntu", None),
    "nginx-official": (1, "debian:bookworm-slim", None),
    "node-official": (1, "debian:bookworm-slim", None),
    "onbuild": (1, "node:20-bookworm-slim", None),
    "php-apache": (1, "php:8.3-apache", None),
    "postgres-gosu": (1, "debian:bookworm-slim", None),
    "redis-style": (1, "alpine:3.20", None),
    "ruby-rails": (3, "base", 0),
    "rust-cargo-chef": (4, "gcr.io/distroless/cc-debian12@sha256:"
                           "3b75fdd33932d16e53a461277becf57c4f815c6cee5f6bc8f52457c095e004c8", None),
    "ubuntu-python-build": (1, "ubuntu:22.04", None),
    "windows-servercore": (1, "mcr.microsoft.com/windows/servercore:ltsc2022", None),
}


def load(name):
    path = CORPUS / f"{name}.Dockerfile"
    return parse_dockerfile(path.read_text(encoding="utf-8"), str(path))


def all_commands(dockerfile):
    return [c.words for i in dockerfile.instructions() for c in i.commands()]


def test_corpus_is_large_enough_and_every_file_has_facts():
    assert len(FILES) >= 15
    assert {path.stem for path in FILES} == set(FACTS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_corpus_file_parses_with_its_key_facts(path):
    dockerfile = parse_dockerfile(path.read_text(encoding="utf-8"), str(path))
    stages, base, parent = FACTS[path.stem]
    assert len(dockerfile.stages) == stages
    assert dockerfile.final_stage.base == base
    assert dockerfile.final_stage.parent == parent
    assert dockerfile.line_count == len(path.read_text(encoding="utf-8").splitlines())


def test_heredoc_file_bodies_and_commands():
    dockerfile = load("buildkit-heredocs")
    assert dockerfile.directives == (("syntax", "docker/dockerfile:1.7"), ("check", "error=true"))
    settings = next(i for i in dockerfile.instructions() if i.keyword == "COPY" and i.heredocs)
    assert settings.heredocs[0].body == '[server]\nhost = "0.0.0.0"\nport = 8000\n'
    static = [i for i in dockerfile.instructions() if len(i.heredocs) == 2][0]
    assert [h.delimiter for h in static.heredocs] == ["robots.txt", "humans.txt"]
    commands = all_commands(dockerfile)
    assert ("python", "-m", "venv", "/opt/venv") in commands       # `<<EOF bash -e`
    assert ("useradd", "--system", "--gid", "app", "--home", "/srv", "app") in commands
    assert not any(words and words[0] == "compileall.compile_dir(" for words in commands)


def test_official_style_chains_expose_inner_commands_with_lines():
    dockerfile = load("debian-buildpack")
    lines = {c.words[0]: c.line for i in dockerfile.instructions() for c in i.commands()}
    assert lines["apt-cache"] == 52 and lines["rm"] == 59
    nginx = all_commands(load("nginx-official"))
    assert ("gpg1", "--export", "$NGINX_GPGKEYS") in nginx


def test_legacy_file_shows_the_risky_commands():
    commands = all_commands(load("legacy-ssh"))
    assert ("sudo", "bash", "-") in commands
    assert ("curl", "-k", "-sSL", "https://get.example.com/agent.sh") in commands
    env = [i for i in load("legacy-ssh").instructions() if i.keyword == "ENV"]
    assert env[1].pairs == (("ADMIN_PASSWORD", "s3cr3t-Passw0rd"),)


def test_global_arg_bases_resolve_and_stage_references_are_not_images():
    golang = load("golang-multistage")
    assert golang.stages[0].base == "golang:1.22-alpine3.20"
    assert golang.stages[1].parent == 0 and golang.stages[1].base == "build"
    assert golang.stages[0].platform == "$BUILDPLATFORM"
    chef = load("rust-cargo-chef")
    assert [s.parent for s in chef.stages] == [None, 0, 0, None]


def test_windows_file_keeps_backslashes_and_does_not_split_powershell():
    dockerfile = load("windows-servercore")
    assert dockerfile.escape == "`"
    run = next(i for i in dockerfile.instructions() if i.keyword == "RUN")
    assert run.pipelines == () and "Expand-Archive -Path git.zip" in run.args
    env = [i for i in dockerfile.instructions() if i.keyword == "ENV"][1]
    assert env.pairs[0][1].startswith("https://github.com/git-for-windows/git/releases/download/v2.45.2")


def test_onbuild_triggers():
    triggers = [i.trigger for i in load("onbuild").instructions() if i.keyword == "ONBUILD"]
    assert [t.keyword for t in triggers] == ["ARG", "ENV", "COPY", "RUN", "COPY"]
    assert triggers[-1].flag("chown") == "node:node" and triggers[-1].words == (".", "/usr/src/app")
