#!/usr/bin/env bash
# Deploys the app, its database and a metrics agent on one host.
set -euo pipefail

IMAGE="${IMAGE:-registry.example.com/shop/web:2.4.1}"
DB_IMAGE=postgres:16.4
NETWORK=shop

log() { printf '%s %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }

docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create "$NETWORK"

log "starting the database"
docker run -d --name shop-db \
  --network "$NETWORK" \
  --restart unless-stopped \
  -e POSTGRES_PASSWORD_FILE=/run/secrets/db \
  -v shop-db:/var/lib/postgresql/data \
  -v "$PWD/secrets/db:/run/secrets/db:ro" \
  --memory 1g --pids-limit 200 \
  "$DB_IMAGE"

log "waiting for the database"
until docker exec shop-db pg_isready -q; do sleep 1; done

log "starting the web application"
WEB_ID=$(docker run -d --name shop-web \
  --network "$NETWORK" \
  --read-only --tmpfs /tmp \
  --cap-drop ALL \
  --security-opt no-new-privileges \
  -u 10001:10001 \
  -p 127.0.0.1:8080:8080 \
  -e DATABASE_URL="postgres://shop@shop-db/shop" \
  -e SESSION_SECRET \
  -m 512m --pids-limit 100 \
  "$IMAGE" serve --port 8080)
log "web is $WEB_ID"

if [[ "${WITH_AGENT:-0}" == 1 ]]; then
  log "starting the metrics agent"
  sudo docker run -d --name node-agent \
    --privileged \
    --pid=host --network host \
    -v /:/host:ro \
    -v /var/run/docker.sock:/var/run/docker.sock \
    -e AGENT_API_KEY=4f9c2e7a1b8d \
    monitoring/agent:latest --collect-all
fi

for job in migrate warm-cache; do
  docker run --rm --network "$NETWORK" "$IMAGE" "$job" || log "$job failed"
done

cat <<NOTE
To reset: docker run --rm -v shop-db:/data alpine:3.20 rm -rf /data/*
NOTE
