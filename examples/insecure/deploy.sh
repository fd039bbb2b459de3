#!/bin/sh
# Starts the build agent the way many CI scripts do.
set -e
docker run -d --name agent \
  --privileged \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -e REGISTRY_PASSWORD=s3cr3t-passw0rd \
  -p 2375:2375 \
  example/ci-agent:latest
