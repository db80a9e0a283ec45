# shellcheck shell=bash
# Sourced by build-postgres-image.sh and build-node-image.sh, not run: what building an image
# from Debian packages takes, with no image registry reachable here. The caller sets
#   NAME (for messages), IMAGE, LABEL_KEY, MIRROR, DOCKER
# then, in order:
#   skip_if_current "$@" FILE...      parses [--force]; sets BUILD_HASH from the FILEs (the
#                                     script, what it bakes in, and this file); exits 0 when
#                                     $IMAGE already carries that hash in its label
#   bootstrap_rootfs PREFIX PACKAGES  debootstraps bookworm (minbase + PACKAGES) into $ROOT,
#                                     which is unmounted and removed at exit, whatever happens
#   (the caller's own changes to $ROOT)
#   import_rootfs IMPORT_OPTIONS...   `docker import` of $ROOT as $IMAGE, labelled $BUILD_HASH
LIB_FILE="${BASH_SOURCE[0]}"

log() { echo "$NAME: $*"; }
die() { echo "$NAME: ERROR: $*" >&2; exit 1; }

skip_if_current() {
    local force=0 current
    case "${1:-}" in
        --force) force=1; shift ;;
        -*) die "unknown argument '$1' (usage: $NAME [--force])" ;;
    esac
    "$DOCKER" info >/dev/null 2>&1 || die "dockerd does not answer; start it first (sandbox/up.sh does)"
    BUILD_HASH="$(cat "$@" "$LIB_FILE" | sha256sum | cut -c1-16)"
    current="$("$DOCKER" image inspect -f "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$IMAGE" 2>/dev/null || true)"
    if [ "$force" -eq 0 ] && [ "$current" = "$BUILD_HASH" ]; then
        log "$IMAGE is up to date (build $BUILD_HASH), skipping"
        exit 0
    fi
    if [ -n "$current" ]; then
        log "$IMAGE exists with build '$current', want '$BUILD_HASH': rebuilding"
    fi
}

cleanup_rootfs() {
    # debootstrap mounts proc/sys (and may bind /dev) inside ROOT; unmount
    # everything below ROOT first, deepest first, so that the rm below can
    # never reach into a host filesystem.
    awk -v r="$ROOT" 'index($2, r"/") == 1 {print $2}' /proc/mounts | sort -r \
        | while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    rm -rf --one-file-system "$ROOT"
    [ "$KEEP_LOG" -eq 1 ] || rm -f "$ROOT.log"
}

bootstrap_rootfs() {
    local prefix=$1 packages=$2
    ROOT="$(mktemp -d "/var/tmp/$prefix.XXXXXX")"
    KEEP_LOG=0  # the debootstrap log outlives the run only when debootstrap failed
    trap cleanup_rootfs EXIT
    # Turn INT/TERM into a normal exit so the EXIT trap cleans up on Ctrl-C or a
    # CI timeout as well.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    log "debootstrap bookworm (minbase + ${packages//,/ }) into $ROOT from $MIRROR"
    STARTED=$SECONDS
    # debootstrap installs a policy-rc.d that forbids starting services: no
    # postinst starts a daemon on this (host) network.
    if ! debootstrap --variant=minbase --include="$packages" bookworm "$ROOT" "$MIRROR" \
            >"$ROOT.log" 2>&1; then
        tail -n 30 "$ROOT.log" >&2
        KEEP_LOG=1
        die "debootstrap failed (full log: $ROOT.log)"
    fi
    log "debootstrap done in $((SECONDS - STARTED)) s"
    # Smaller image, faster import: package caches, lists, docs and man pages are
    # of no use at run time.
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
        "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/*
}

import_rootfs() {
    log "importing into docker as $IMAGE"
    tar --numeric-owner -C "$ROOT" -c . \
        | "$DOCKER" import "$@" -c "LABEL $LABEL_KEY=$BUILD_HASH" - "$IMAGE" >/dev/null
    log "built $IMAGE (build $BUILD_HASH) in $((SECONDS - STARTED)) s"
}
