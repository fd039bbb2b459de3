# syntax=docker/dockerfile:1.7
# check=error=true

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN <<EOF
set -eux
apt-get update
apt-get install -y --no-install-recommends build-essential libpq-dev
rm -rf /var/lib/apt/lists/*
EOF
# the terminator above is followed by a comment

RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,source=requirements.txt,target=requirements.txt <<EOF bash -e
python -m venv /opt/venv
/opt/venv/bin/pip install -r requirements.txt
EOF

COPY <<-"EOT" /etc/app/settings.toml
	[server]
	host = "0.0.0.0"
	port = 8000
	EOT

COPY --chmod=0755 <<EOF /usr/local/bin/entrypoint.sh
#!/bin/sh
set -e
exec "\$@"
EOF

RUN python3 <<EOF
import compileall
compileall.compile_dir("/opt/venv", quiet=1)
EOF

RUN <<SETUP cat >/etc/motd && chmod 0644 /etc/motd
Welcome to ${PYTHON_VERSION}
SETUP

FROM base AS final
COPY <<robots.txt <<humans.txt /srv/static/
User-agent: *
Disallow: /admin
robots.txt
/* TEAM */
Maintainer: web team
humans.txt
RUN <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
groupadd --system app
useradd --system --gid app --home /srv app
EOF
USER app
WORKDIR /srv
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD ["/opt/venv/bin/gunicorn", "app:app"]
