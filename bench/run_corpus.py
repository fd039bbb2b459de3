"""A reproducible corpus of compose files, Kubernetes manifests and scripts with
`docker run` lines for benchmarks.

Each file combines real-world shapes from a fixed seed: multi-service compose files
with anchors, merge keys, interpolation, long and short volume/port syntax and
deploy limits; multi-document manifests with Deployments, StatefulSets, CronJobs,
Services and ConfigMaps, pod and container securityContexts, hostPath volumes; shell
scripts and GitHub workflows starting containers with continuation lines, quoting,
variables and command substitutions.
"""
from __future__ import annotations

import random
from pathlib import Path

IMAGES = ["nginx:1.27", "postgres:16.4", "redis:7.4-alpine", "registry.example.com/app/api:3.2.1",
          "traefik:v3.1", "grafana/grafana:11.2.0", "busybox", "python:3.12-slim",
          "ghcr.io/example/worker@sha256:" + "a" * 64]


def _compose_service(rng: random.Random, name: str) -> str:
    lines = [f"  {name}:", f"    image: {rng.choice(IMAGES)}"]
    if rng.random() < 0.4:
        lines.append("    <<: *hardening")
    if rng.random() < 0.5:
        lines.append(f"    user: \"{rng.choice(['1000', '10001:10001', 'root', '${UID:-1000}'])}\"")
    if rng.random() < 0.6:
        lines.append("    ports:")
        for _ in range(rng.randint(1, 3)):
            port = rng.randint(1000, 9999)
            lines.append(f"      - \"{rng.choice(['', '127.0.0.1:'])}{port}:{port}\"")
    if rng.random() < 0.6:
        lines.append("    volumes:")
        lines.append(f"      - {rng.choice(['./data', '/srv/data', 'data'])}:/data{rng.choice(['', ':ro'])}")
        if rng.random() < 0.3:
            lines += ["      - type: bind", "        source: /var/run/docker.sock",
                      "        target: /var/run/docker.sock", "        read_only: true"]
    if rng.random() < 0.5:
        lines.append("    environment:")
        for key in rng.sample(["LOG_LEVEL", "DATABASE_URL", "API_TOKEN", "PORT", "MODE"], 3):
            lines.append(f"      {key}: ${{{key}:-value}}")
    if rng.random() < 0.3:
        lines += ["    cap_add:", f"      - {rng.choice(['NET_ADMIN', 'SYS_PTRACE', 'NET_BIND_SERVICE'])}"]
    if rng.random() < 0.4:
        lines += ["    deploy:", "      resources:", "        limits:",
                  f"          memory: {rng.choice(['256M', '1G', '512m'])}", "          pids: 200"]
    if rng.random() < 0.2:
        lines.append(f"    network_mode: {rng.choice(['host', 'bridge'])}")
    lines.append("    restart: unless-stopped")
    return "\n".join(lines)


def compose_file(rng: random.Random) -> str:
    head = ("x-hardening: &hardening\n  read_only: true\n  cap_drop: [ALL]\n"
            "  security_opt: [\"no-new-privileges:true\"]\n\nservices:\n")
    names = rng.sample(["web", "api", "db", "cache", "proxy", "worker", "metrics", "cron"],
                       rng.randint(2, 5))
    body = "\n".join(_compose_service(rng, name) for name in names)
    return head + body + "\n\nvolumes:\n  data: {}\n"


def _container(rng: random.Random, name: str, indent: str) -> str:
    lines = [f"- name: {name}", f"  image: {rng.choice(IMAGES)}",
             "  ports:", f"    - containerPort: {rng.randint(1000, 9999)}"]
    if rng.random() < 0.6:
        lines += ["  securityContext:", "    allowPrivilegeEscalation: false",
                  f"    readOnlyRootFilesystem: {rng.choice(['true', 'false'])}",
                  "    capabilities:", "      drop: [\"ALL\"]"]
    if rng.random() < 0.6:
        lines += ["  resources:", "    limits:", f"      memory: {rng.choice(['128Mi', '1Gi', '512M'])}",
                  "      cpu: 500m"]
    lines += ["  env:", "    - name: LOG_LEVEL", "      value: info",
              "  volumeMounts:", "    - name: data", "      mountPath: /data"]
    return "\n".join(indent + line for line in lines)


def manifest_file(rng: random.Random) -> str:
    kind = rng.choice(["Deployment", "StatefulSet", "DaemonSet", "CronJob"])
    pad = " " * (10 if kind == "CronJob" else 6)      # pod spec keys
    items = pad + "  "                                 # list items below them
    pod = [f"{pad}securityContext:", f"{pad}  runAsNonRoot: true", f"{pad}  runAsUser: 10001",
           f"{pad}  seccompProfile:", f"{pad}    type: RuntimeDefault"]
    if rng.random() < 0.2:
        pod.insert(0, f"{pad}hostNetwork: true")
    pod.append(f"{pad}containers:")
    pod += [_container(rng, name, items)
            for name in rng.sample(["app", "sidecar", "proxy"], rng.randint(1, 2))]
    volume = rng.choice(["emptyDir: {}", f"hostPath:\n{items}    path: /var/lib/app"])
    pod += [f"{pad}volumes:", f"{items}- name: data", f"{items}  {volume}"]
    spec = "\n".join(pod)
    if kind == "CronJob":
        workload = (f"apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: job\nspec:\n"
                    f"  schedule: \"0 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n"
                    f"        spec:\n{spec}\n")
    else:
        workload = (f"apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: app\n  labels: {{app: app}}\n"
                    f"spec:\n  selector:\n    matchLabels: {{app: app}}\n  template:\n"
                    f"    metadata:\n      labels: {{app: app}}\n    spec:\n{spec}\n")
    service = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: app\nspec:\n"
               "  selector: {app: app}\n  ports:\n    - port: 80\n      targetPort: 8080\n")
    config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  MODE: production\n"
    return "---\n".join(rng.sample([workload, service, config], 3))


_RUN_FLAGS = ["--rm", "-d", "-it", "--read-only", "--cap-drop ALL", "--cap-add NET_BIND_SERVICE",
              "--security-opt no-new-privileges", "-u 10001:10001", "-m 512m", "--pids-limit 200",
              "-p 127.0.0.1:8080:8080", "-p 9090:9090", "-v \"$PWD\":/src:ro", "-v data:/data",
              "--tmpfs /tmp", "-e MODE=production", "-e API_TOKEN=\"$API_TOKEN\"", "--network app",
              "--name web-$RANDOM", "--privileged", "-v /var/run/docker.sock:/var/run/docker.sock",
              "--restart unless-stopped", "-w /src", "--env-file app.env"]


def _docker_run(rng: random.Random, indent: str) -> list[str]:
    flags = rng.sample(_RUN_FLAGS, rng.randint(3, 9))
    image = rng.choice(IMAGES + ['"$IMAGE"'])
    command = rng.choice(["", " sh -c 'echo ready && sleep 1'", " serve --port 8080", " pytest -q"])
    if rng.random() < 0.5:
        return [f"{indent}docker run {' '.join(flags)} {image}{command}"]
    lines = [f"{indent}docker run \\"] + [f"{indent}  {flag} \\" for flag in flags]
    return lines + [f"{indent}  {image}{command}"]


def script_file(rng: random.Random) -> str:
    lines = ["#!/usr/bin/env bash", "set -euo pipefail", f'IMAGE="${{IMAGE:-{rng.choice(IMAGES)}}}"',
             'log() { printf "%s\\n" "$*" >&2; }', ""]
    for step in range(rng.randint(2, 5)):
        lines.append(f'log "step {step}"')
        if rng.random() < 0.3:
            lines.append('ID=$(docker run -d --rm "$IMAGE" sleep 60)')
            lines.append('docker logs "$ID" | tail -n 5 || true')
        lines += _docker_run(rng, "")
        lines.append(f'[ -f "done-{step}" ] && echo "skip {step}" || touch "done-{step}"')
        lines.append("")
    return "\n".join(lines) + "\n"


def workflow_file(rng: random.Random) -> str:
    lines = ["name: ci", "on: [push, pull_request]", "jobs:", "  test:", "    runs-on: ubuntu-24.04",
             "    steps:", "      - uses: actions/checkout@v4"]
    for step in range(rng.randint(2, 4)):
        lines.append(f"      - name: step {step}")
        lines.append("        run: |")
        lines += _docker_run(rng, "          ")
    return "\n".join(lines) + "\n"


def generate(directory: Path, count: int, kind: str, seed: int = 20261128) -> list[Path]:
    """`count` files of `kind` ("compose", "kubernetes" or "docker-run") under `directory`."""
    rng = random.Random(seed)
    written = []
    for number in range(count):
        folder = directory / f"{number:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "compose":
            path, text = folder / "compose.yaml", compose_file(rng)
        elif kind == "docker-run" and number % 4 == 3:
            (folder / ".github" / "workflows").mkdir(parents=True, exist_ok=True)
            path, text = folder / ".github" / "workflows" / "ci.yml", workflow_file(rng)
        elif kind == "docker-run":
            path, text = folder / "deploy.sh", script_file(rng)
        else:
            path, text = folder / "app.yaml", manifest_file(rng)
        path.write_text(text)
        written.append(path)
    return written
