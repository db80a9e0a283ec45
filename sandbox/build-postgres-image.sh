#!/bin/bash
# Build the PostgreSQL 15 image local/nexus-postgres:15 from Debian packages.
#
# No image registry is reachable here, so the image is a debootstrap'ed
# Debian bookworm (minbase + postgresql-15) imported with `docker import`.
# The image carries a label with a hash of this script and the entrypoint:
# when the label matches, the build is skipped (a warm `up.sh` stays fast);
# when either file changed, the image is rebuilt.
#
# Usage: build-postgres-image.sh [--force]
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SANDBOX_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE=local/nexus-postgres:15
LABEL_KEY=org.nexus-sandbox.build
MIRROR="${NEXUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ENTRYPOINT_SRC="$SANDBOX_DIR/postgres-entrypoint.sh"
# The daemon is docker.io 20.10; its own CLI is the safest match for it.
if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

log() { echo "build-postgres-image: $*"; }
die() { echo "build-postgres-image: ERROR: $*" >&2; exit 1; }

force=0
case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    *) die "unknown argument '$1' (usage: $0 [--force])" ;;
esac

"$DOCKER" info >/dev/null 2>&1 || die "dockerd does not answer; start it first (sandbox/up.sh does)"

build_hash="$(cat "${BASH_SOURCE[0]}" "$ENTRYPOINT_SRC" | sha256sum | cut -c1-16)"
current="$("$DOCKER" image inspect -f "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$IMAGE" 2>/dev/null || true)"
if [ "$force" -eq 0 ] && [ "$current" = "$build_hash" ]; then
    log "$IMAGE is up to date (build $build_hash), skipping"
    exit 0
fi
if [ -n "$current" ]; then
    log "$IMAGE exists with build '$current', want '$build_hash': rebuilding"
fi

ROOT="$(mktemp -d /var/tmp/nexus-pg-rootfs.XXXXXX)"
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

log "debootstrap bookworm (minbase + postgresql-15) into $ROOT from $MIRROR"
started=$SECONDS
if ! debootstrap --variant=minbase --include=postgresql-15 bookworm "$ROOT" "$MIRROR" \
        >"$ROOT.log" 2>&1; then
    tail -n 30 "$ROOT.log" >&2
    keep_log=1
    die "debootstrap failed (full log: $ROOT.log)"
fi
log "debootstrap done in $((SECONDS - started)) s"

# The postgresql-15 postinst may have created a default 'main' cluster; the
# container makes its own in the volume on first start, so drop it.
rm -rf "$ROOT/var/lib/postgresql/15/main" "$ROOT/etc/postgresql/15/main"
# Smaller image, faster import: package caches, lists, docs and man pages are
# of no use at run time.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
    "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/*

install -m 0755 "$ENTRYPOINT_SRC" "$ROOT/usr/local/bin/nexus-postgres-entrypoint"
# Ownership must be set through the image's own user database (chroot): the
# postgres uid inside the image need not match any uid on the host.
# /var/lib/postgresql/data is the mount point of the data volume; docker
# copies its owner and mode into a fresh named volume.
chroot "$ROOT" install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
chroot "$ROOT" install -d -o postgres -g postgres -m 2775 /var/run/postgresql

log "importing into docker as $IMAGE"
tar --numeric-owner -C "$ROOT" -c . | "$DOCKER" import \
    -c 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'ENV PGDATA=/var/lib/postgresql/data' \
    -c 'ENV PGPORT=55432' \
    -c 'USER postgres' \
    -c 'WORKDIR /var/lib/postgresql' \
    -c 'ENTRYPOINT ["/usr/local/bin/nexus-postgres-entrypoint"]' \
    -c "LABEL $LABEL_KEY=$build_hash" \
    - "$IMAGE" >/dev/null
log "built $IMAGE (build $build_hash) in $((SECONDS - started)) s"
