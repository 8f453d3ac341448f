#!/usr/bin/env bash
# base-image.sh - print the base image to build deploy/Dockerfile on (stdout, one line).
#
#   1. PAIRNS_BASE_IMAGE when it is set, as it is;
#   2. the official image (PAIRNS_OFFICIAL_BASE, default python:3.11-slim) when it is here;
#   3. the local Debian image of deploy/make-base-image.sh when it is here (built before);
#   4. the official image when `docker pull` gets it (bounded: 120 s);
#   5. else the local Debian image, built now from the Debian mirror (needs root, ~1.5 min).
#
# So a machine that reaches Docker Hub uses the official image, and one that cannot
# (such as CI here) builds the local one once and reuses it. Progress goes to stderr.
set -euo pipefail
log() { printf '[base-image] %s\n' "$*" >&2; }

if [ -n "${PAIRNS_BASE_IMAGE:-}" ]; then
    echo "$PAIRNS_BASE_IMAGE"
    exit 0
fi
OFFICIAL="${PAIRNS_OFFICIAL_BASE:-python:3.11-slim}"
. /etc/os-release
LOCAL="pairns-base/${VERSION_CODENAME:-bookworm}:python3"
have() { docker image inspect "$1" >/dev/null 2>&1; }

if have "$OFFICIAL"; then
    echo "$OFFICIAL"
elif have "$LOCAL"; then
    log "$OFFICIAL is not here; using $LOCAL (deploy/make-base-image.sh)"
    echo "$LOCAL"
elif out="$(timeout 120 docker pull -q "$OFFICIAL" 2>&1)"; then
    echo "$OFFICIAL"
else
    log "cannot pull $OFFICIAL ($(printf '%s' "$out" | tail -n 1)); building $LOCAL instead"
    IMAGE="$LOCAL" "$(dirname "$0")/make-base-image.sh"
    echo "$LOCAL"
fi
