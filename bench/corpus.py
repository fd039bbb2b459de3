"""A reproducible corpus of varied Dockerfiles for the audit benchmark.

Every file is generated from a fixed seed by combining real-world shapes: official
image style apt/apk chains with long continuations, language images, multi-stage
Go/Node/Java builds with cache mounts, BuildKit heredocs, ARG-parameterised bases,
ONBUILD images, Windows-escape files. The files under tests/data/dockerfiles/ are
added as they are.
"""
from __future__ import annotations

import random
from pathlib import Path

BASES = ["debian:bookworm-slim", "ubuntu:24.04", "alpine:3.20", "python:3.12-slim",
         "node:22-alpine", "golang:1.23", "eclipse-temurin:21-jre", "nginx:1.27",
         "registry.example.com/base/runtime:2.4", "gcr.io/distroless/static-debian12:nonroot",
         "ubuntu", "centos:7", "redis:latest", "postgres:16@sha256:" + "b" * 64]
APT = ["curl", "ca-certificates", "git", "gnupg", "build-essential", "libssl-dev", "jq",
       "unzip", "tini", "locales", "tzdata", "openssh-client", "python3-pip"]
APK = ["curl", "bash", "git", "openssl", "su-exec", "tzdata", "ca-certificates", "make"]
PIP = ["flask==3.0.3", "gunicorn", "requests>=2.32", "uvicorn[standard]", "numpy", "boto3"]


def _apt_block(rng):
    packages = " \\\n        ".join(rng.sample(APT, rng.randint(3, 8)))
    recommends = "--no-install-recommends " if rng.random() < 0.6 else ""
    clean = " \\\n    && rm -rf /var/lib/apt/lists/*" if rng.random() < 0.7 else ""
    return (f"RUN set -eux; \\\n    apt-get update \\\n"
            f"    && apt-get install -y {recommends}\\\n        {packages}{clean}\n")


def _apk_block(rng):
    no_cache = "--no-cache " if rng.random() < 0.7 else ""
    return f"RUN apk add {no_cache}{' '.join(rng.sample(APK, rng.randint(2, 6)))}\n"


def _heredoc_block(rng):
    lines = [f"    echo step {i}" for i in range(rng.randint(2, 6))]
    quoted = rng.choice(["EOF", "'EOF'", '"SCRIPT"'])
    name = quoted.strip("'\"")
    return "RUN <<" + quoted + "\nset -e\n" + "\n".join(lines) + f"\n{name}\n"


def _download_block(rng):
    choice = rng.random()
    if choice < 0.25:
        return "RUN curl -fsSL https://get.example.com/install.sh | sh\n"
    if choice < 0.4:
        return ("RUN wget --no-check-certificate -qO /tmp/tool.tgz https://example.com/tool.tgz"
                " && tar -xzf /tmp/tool.tgz -C /usr/local\n")
    gpg = "".join(rng.choice("0123456789ABCDEF") for _ in range(40))
    return (f"ENV GPG_KEY {gpg}\n"
            "RUN set -eux; \\\n    for key in $GPG_KEY; do \\\n"
            "        gpg --batch --keyserver hkps://keys.openpgp.org --recv-keys \"$key\"; \\\n"
            "    done\n")


def _stage(rng, index, final):
    base = rng.choice(BASES)
    lines = [f"FROM {base}{'' if final else f' AS build{index}'}\n"]
    if rng.random() < 0.3:
        lines.append("ARG VERSION=1.2.3\nENV APP_VERSION=${VERSION:-0.0.0}\n")
    lines.append(_apk_block(rng) if "alpine" in base else _apt_block(rng))
    for _ in range(rng.randint(0, 4)):
        lines.append(rng.choice([_heredoc_block, _download_block, _pip_block, _misc_block])(rng))
    if final:
        if index > 0:
            lines.append(f"COPY --from=build{index - 1} /out/app /usr/local/bin/app\n")
        if rng.random() < 0.6:
            lines.append(f"USER {rng.choice(['10001', 'app', 'nobody:nogroup', 'root'])}\n")
        if rng.random() < 0.5:
            lines.append('HEALTHCHECK --interval=30s CMD ["/usr/local/bin/app", "health"]\n')
        lines.append(f"EXPOSE {rng.choice(['8080', '80 443', '22', '3000/tcp'])}\n")
        lines.append('ENTRYPOINT ["/usr/local/bin/app"]\n')
    else:
        lines.append("WORKDIR /src\nCOPY . .\n"
                     "RUN --mount=type=cache,target=/root/.cache make build && mkdir -p /out && cp app /out/app\n")
    return "".join(lines)


def _pip_block(rng):
    cache = "--no-cache-dir " if rng.random() < 0.5 else ""
    return f"RUN pip install {cache}{' '.join(rng.sample(PIP, rng.randint(1, 4)))}\n"


def _misc_block(rng):
    return rng.choice([
        "COPY --chown=10001:10001 --chmod=0755 entrypoint.sh /usr/local/bin/\n",
        "ADD https://example.com/archive.tar.gz /opt/\n",
        "ENV DB_PASSWORD=hunter2\n",
        "RUN sudo chmod 0755 /opt\n",
        "WORKDIR /app\nCOPY package*.json ./\nRUN npm ci --omit=dev\n",
        "LABEL org.opencontainers.image.source=\"https://example.com/repo\"\n",
        "RUN useradd --system --uid 10001 --create-home app\n",
    ])


def generate(directory: Path, count: int, seed: int = 20261128) -> list[Path]:
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for number in range(count):
        stages = rng.choice([1, 1, 2, 2, 3])
        text = "# syntax=docker/dockerfile:1.7\n" if rng.random() < 0.4 else ""
        if rng.random() < 0.2:
            text += "ARG BASE=debian:bookworm-slim\n"
        text += "\n".join(_stage(rng, i, i == stages - 1) for i in range(stages))
        path = directory / f"{number:05d}" / "Dockerfile"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
