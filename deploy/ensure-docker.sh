#!/usr/bin/env bash
# ensure-docker.sh - make Docker usable for the docker test (tests/docker/, marker docker):
# install the engine and docker-compose with apt when they are missing, start dockerd when
# it does not answer, and wait (at most 60 s) until `docker info` works.
#
# Exit 0 when Docker and a compose command are usable, else 1 with the reason on stderr.
# Never reads stdin. Installing and starting need root. A dockerd started here keeps
# running after the script ends (its log: /var/log/pairns-dockerd.log).
set -uo pipefail
log() { printf '[ensure-docker] %s\n' "$*" >&2; }
compose_ok() { docker compose version >/dev/null 2>&1 || docker-compose version >/dev/null 2>&1; }
daemon_ok() { timeout 20 docker info >/dev/null 2>&1; }

if command -v docker >/dev/null && daemon_ok && compose_ok; then
    log "Docker is running"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    log "Docker is not usable and this is not root: cannot install or start it"
    exit 1
fi

# ---- install what is missing -----------------------------------------------------
pkgs=()
command -v dockerd >/dev/null && command -v docker >/dev/null || pkgs+=(docker.io)
compose_ok || command -v docker-compose >/dev/null || pkgs+=(docker-compose)
if [ "${#pkgs[@]}" -gt 0 ]; then
    log "installing ${pkgs[*]} with apt"
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 600 apt-get install -y -q "${pkgs[@]}" </dev/null >/tmp/pairns-apt-docker.log 2>&1; then
        log "apt-get install failed; updating the package lists and trying again"
        timeout 300 apt-get update -q </dev/null >>/tmp/pairns-apt-docker.log 2>&1
        if ! timeout 600 apt-get install -y -q "${pkgs[@]}" </dev/null >>/tmp/pairns-apt-docker.log 2>&1; then
            tail -n 20 /tmp/pairns-apt-docker.log >&2
            log "cannot install ${pkgs[*]}"
            exit 1
        fi
    fi
fi
command -v docker >/dev/null || { log "no docker command after installing"; exit 1; }
compose_ok || { log "no docker-compose nor 'docker compose' after installing"; exit 1; }

# ---- start the daemon ------------------------------------------------------------
if ! daemon_ok; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        log "starting docker with systemctl"
        timeout 120 systemctl start docker </dev/null || log "systemctl start docker failed"
    else
        pidfile=/var/run/docker.pid
        if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            log "dockerd (pid $(cat "$pidfile")) runs but does not answer yet; waiting"
        else
            log "starting dockerd in the background (log: /var/log/pairns-dockerd.log)"
            setsid dockerd </dev/null >/var/log/pairns-dockerd.log 2>&1 &
            log "dockerd pid $!"
        fi
    fi
    for _ in $(seq 1 60); do
        daemon_ok && break
        sleep 1
    done
fi
if ! daemon_ok; then
    tail -n 20 /var/log/pairns-dockerd.log >&2 2>/dev/null
    log "dockerd does not answer after 60 s"
    exit 1
fi
log "Docker is running: server $(docker version -f '{{.Server.Version}}' 2>/dev/null)"
