#!/usr/bin/env bash
# make-base-image.sh - build a local Debian base image with Python 3 for deploy/Dockerfile,
# for machines that cannot pull the official python image (no Docker Hub).
#
# debootstrap a minimal Debian rootfs, python3 and python3-venv included, from the Debian
# mirror this machine's apt uses (asked from `apt-get indextargets`), then `docker import`
# it. The image it makes has the interpreter the official image would give the node
# image: `python3 -m venv` works and no network is needed after this.
#
# Idempotent: an existing IMAGE is kept (FORCE=1 rebuilds); concurrent runs wait on a lock.
# Needs root, a running dockerd and apt; installs debootstrap with apt if it is missing.
#
# Environment (all optional):
#   IMAGE    tag to create          (default: pairns-base/<codename>:python3)
#   SUITE    Debian codename        (default: this host's VERSION_CODENAME, else bookworm)
#   INCLUDE  packages debootstrap adds (default: "python3 python3-venv")
#   FORCE    1 = rebuild even when IMAGE exists
#   WORKDIR  where the temporary rootfs goes (default: ${TMPDIR:-/var/tmp})
set -euo pipefail

log() { printf '[make-base-image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap needs it)"
command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "cannot talk to dockerd (is it running?)"

. /etc/os-release
SUITE="${SUITE:-${VERSION_CODENAME:-bookworm}}"
IMAGE="${IMAGE:-pairns-base/${SUITE}:python3}"
INCLUDE="$(printf '%s' "${INCLUDE:-python3 python3-venv}" | tr ' ' ',' | tr -s ',' | sed 's/^,//; s/,$//')"
ARCH="$(dpkg --print-architecture)"

image_exists() { docker image inspect "$IMAGE" >/dev/null 2>&1; }

if [ "${FORCE:-0}" != 1 ] && image_exists; then
    log "image $IMAGE already exists; nothing to do"
    exit 0
fi

# Serialize concurrent runs (two test runs at once); re-check after taking the lock.
mkdir -p /run/lock
exec 9>"/run/lock/pairns-make-base-image.$(printf '%s' "$IMAGE" | tr '/:' '__').lock"
flock -w 600 9 || die "another build of $IMAGE holds the lock for over 10 minutes"
if [ "${FORCE:-0}" != 1 ] && image_exists; then
    log "image $IMAGE appeared while waiting for the lock; nothing to do"
    exit 0
fi

# ---- which mirror does apt use here? ----------------------------------------------
# Lines "REPO_URI RELEASE COMPONENT CODENAME" for Debian binary Packages targets of our arch.
HOST_SUITE="${VERSION_CODENAME:-$SUITE}"
targets() {
    apt-get indextargets --format '$(TARGET_OF)|$(IDENTIFIER)|$(ARCHITECTURE)|$(ORIGIN)|$(REPO_URI)|$(RELEASE)|$(COMPONENT)|$(CODENAME)' 2>/dev/null \
      | awk -F'|' -v arch="$ARCH" '$1=="deb" && $2=="Packages" && $3==arch && ($4=="Debian" || $4=="") {print $5" "$6" "$7" "$8}' \
      | sort -u
}
repo_for() {  # the first repository apt uses for suite $1, component main
    printf '%s\n' "$TARGETS" | awk -v s="$1" '($2==s || $4==s) && $3=="main" {print $1; exit}'
}
TARGETS="$(targets)"
if [ -z "$(repo_for "$HOST_SUITE")$(repo_for "$SUITE")" ]; then
    log "apt knows no Debian index for $HOST_SUITE yet; running apt-get update"
    apt-get update -qq
    TARGETS="$(targets)"
fi
MIRROR="$(repo_for "$SUITE")"; MIRROR="${MIRROR:-$(repo_for "$HOST_SUITE")}"
[ -n "$MIRROR" ] || die "apt has no Debian '$HOST_SUITE main' source; cannot pick a mirror"
MIRROR="${MIRROR%/}"
log "suite=$SUITE arch=$ARCH mirror=$MIRROR image=$IMAGE include=$INCLUDE"

# ---- debootstrap -----------------------------------------------------------------
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null </dev/null \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null </dev/null; }
fi

TMP="$(mktemp -d "${WORKDIR:-${TMPDIR:-/var/tmp}}/pairns-base-rootfs.XXXXXX")"
ROOTFS="$TMP/rootfs"
mounts_below() { awk -v r="$ROOTFS/" 'index($5, r) == 1 {print $5}' /proc/self/mountinfo | sort -r; }
cleanup() {
    set +e
    # never rm -rf through a still-mounted /proc or /sys of the chroot
    for m in $(mounts_below); do umount -l "$m" 2>/dev/null; done
    if [ -n "$(mounts_below)" ]; then
        log "WARNING: mounts remain under $ROOTFS; leaving $TMP in place"
    else
        rm -rf --one-file-system "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

t0=$(date +%s)
if ! timeout 900 debootstrap --variant=minbase --arch="$ARCH" --include="$INCLUDE" \
        "$SUITE" "$ROOTFS" "$MIRROR" >"$TMP/debootstrap.out" 2>&1; then
    tail -n 30 "$TMP/debootstrap.out" >&2
    [ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
    die "debootstrap failed"
fi
log "debootstrap done in $(( $(date +%s) - t0 ))s"

# ---- make it container-shaped -----------------------------------------------------
echo "deb $MIRROR $SUITE main" >"$ROOTFS/etc/apt/sources.list"
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"   # no daemons from maintainer scripts
chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
printf 'APT::Install-Recommends "false";\n' >"$ROOTFS/etc/apt/apt.conf.d/90-no-recommends"
# strip caches and host-specific files (docker provides resolv.conf, hostname, hosts)
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS/debootstrap"
: >"$ROOTFS/etc/resolv.conf"
rm -f "$ROOTFS/etc/hostname"
[ -f "$ROOTFS/etc/machine-id" ] && : >"$ROOTFS/etc/machine-id"

# ---- import ----------------------------------------------------------------------
t1=$(date +%s)
tar --numeric-owner --xattrs -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "pairns base: debootstrap --variant=minbase --include=$INCLUDE $SUITE $MIRROR" \
    - "$IMAGE" >/dev/null
log "imported $IMAGE in $(( $(date +%s) - t1 ))s"
docker run --rm --network none "$IMAGE" python3 -c 'import sys, venv; print("smoke test: python", sys.version.split()[0])' >&2
