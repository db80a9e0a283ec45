#!/bin/bash
# Build the API node image local/nexus-node:12 from Debian packages.
#
# One image for every node of the sandbox fleet (sandbox/fleet.sh): a
# debootstrap'ed Debian 12 bookworm (minbase) with openssh-server, nginx,
# python3 + python3-psycopg (for sandbox/gateway.py), git, openssl, curl,
# procps and iproute2, imported with `docker import` (no image registry is
# reachable here). Baked in: node-entrypoint.sh (PID 1), the SysV init script
# /etc/init.d/nexus-gateway (nexus-gateway.init) and the nginx site template
# (node-nginx-site.conf). The image holds no key, certificate or password:
# the entrypoint installs the ones fleet.sh mounts at run time.
#
# The image carries a label with a hash of this script and those three files:
# when the label matches, the build is skipped (a warm `fleet.sh up` stays
# fast); when any of them changed, the image is rebuilt.
#
# Usage: build-node-image.sh [--force]
# Env:   NEXUS_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SANDBOX_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE=local/nexus-node:12
LABEL_KEY=org.nexus-sandbox.build
MIRROR="${NEXUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ENTRYPOINT_SRC="$SANDBOX_DIR/node-entrypoint.sh"
INIT_SRC="$SANDBOX_DIR/nexus-gateway.init"
SITE_SRC="$SANDBOX_DIR/node-nginx-site.conf"
PACKAGES=openssh-server,nginx,python3,python3-psycopg,git,openssl,procps,coreutils,ca-certificates,curl,iproute2,netbase
# The daemon is docker.io 20.10; its own CLI is the safest match for it.
if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

log() { echo "build-node-image: $*"; }
die() { echo "build-node-image: ERROR: $*" >&2; exit 1; }

force=0
case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    *) die "unknown argument '$1' (usage: $0 [--force])" ;;
esac

"$DOCKER" info >/dev/null 2>&1 || die "dockerd does not answer; start it first (sandbox/up.sh does)"

build_hash="$(cat "${BASH_SOURCE[0]}" "$ENTRYPOINT_SRC" "$INIT_SRC" "$SITE_SRC" | sha256sum | cut -c1-16)"
current="$("$DOCKER" image inspect -f "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$IMAGE" 2>/dev/null || true)"
if [ "$force" -eq 0 ] && [ "$current" = "$build_hash" ]; then
    log "$IMAGE is up to date (build $build_hash), skipping"
    exit 0
fi
if [ -n "$current" ]; then
    log "$IMAGE exists with build '$current', want '$build_hash': rebuilding"
fi

ROOT="$(mktemp -d /var/tmp/nexus-node-rootfs.XXXXXX)"
keep_log=0  # the debootstrap log outlives the run only when debootstrap failed
cleanup() {
    # debootstrap mounts proc/sys (and may bind /dev) inside ROOT; unmount
    # everything below ROOT first, deepest first, so that the rm below can
    # never reach into a host filesystem.
    awk -v r="$ROOT" 'index($2, r"/") == 1 {print $2}' /proc/mounts | sort -r \
        | while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    rm -rf --one-file-system "$ROOT"
    [ "$keep_log" -eq 1 ] || rm -f "$ROOT.log"
}
trap cleanup EXIT
# Turn INT/TERM into a normal exit so the EXIT trap cleans up on Ctrl-C or a
# CI timeout as well.
trap 'exit 130' INT
trap 'exit 143' TERM

log "debootstrap bookworm (minbase + ${PACKAGES//,/ }) into $ROOT from $MIRROR"
started=$SECONDS
# debootstrap installs a policy-rc.d that forbids starting services, so the
# nginx and openssh postinsts start nothing on this (host) network.
if ! debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOT" "$MIRROR" \
        >"$ROOT.log" 2>&1; then
    tail -n 30 "$ROOT.log" >&2
    keep_log=1
    die "debootstrap failed (full log: $ROOT.log)"
fi
log "debootstrap done in $((SECONDS - started)) s"

# No secret in the image: the openssh postinst generated host keys, but every
# node gets its own, made and kept by fleet.sh (so known_hosts stays valid).
rm -f "$ROOT"/etc/ssh/ssh_host_*
# No port 80: the node's only site is its TLS front (rendered at start).
rm -f "$ROOT/etc/nginx/sites-enabled/default"
# Debian's nginx.conf enables TLSv1 and TLSv1.1 globally; the deployer's
# SECURITY precheck requires them off everywhere (up.sh does the same on the
# host).
sed -i -E 's/^([[:space:]]*)ssl_protocols[^;]*;/\1ssl_protocols TLSv1.2 TLSv1.3;/' \
    "$ROOT/etc/nginx/nginx.conf"
grep -Eq '^[[:space:]]*ssl_protocols TLSv1\.2 TLSv1\.3;' "$ROOT/etc/nginx/nginx.conf" \
    || die "could not set ssl_protocols in the image's nginx.conf"
# Smaller image, faster import: package caches, lists, docs and man pages are
# of no use at run time.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
    "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/*

install -m 0755 "$ENTRYPOINT_SRC" "$ROOT/usr/local/bin/nexus-node-entrypoint"
install -m 0755 "$INIT_SRC" "$ROOT/etc/init.d/nexus-gateway"
install -d -m 0755 "$ROOT/usr/local/share/nexus-node"
install -m 0644 "$SITE_SRC" "$ROOT/usr/local/share/nexus-node/nginx-site.conf"
install -d -m 0755 "$ROOT/etc/nexus" "$ROOT/etc/nexus/tls" "$ROOT/opt"
install -d -m 0700 "$ROOT/root/.ssh"
install -d -m 0750 "$ROOT/var/backups/nexus"

log "importing into docker as $IMAGE"
tar --numeric-owner -C "$ROOT" -c . | "$DOCKER" import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'WORKDIR /root' \
    -c 'ENTRYPOINT ["/usr/local/bin/nexus-node-entrypoint"]' \
    -c "LABEL $LABEL_KEY=$build_hash" \
    - "$IMAGE" >/dev/null
log "built $IMAGE (build $build_hash) in $((SECONDS - started)) s"
