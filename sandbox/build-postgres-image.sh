#!/bin/bash
# Build the PostgreSQL 15 image local/nexus-postgres:15 from Debian packages.
#
# No image registry is reachable here, so the image is a debootstrap'ed
# Debian bookworm (minbase + postgresql-15) imported with `docker import`.
# The image carries a label with a hash of this script, the entrypoint and
# debootstrap-image.sh (the steps both sandbox images share):
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

NAME=build-postgres-image
# shellcheck source=sandbox/debootstrap-image.sh
source "$SANDBOX_DIR/debootstrap-image.sh"

skip_if_current "$@" "${BASH_SOURCE[0]}" "$ENTRYPOINT_SRC"
bootstrap_rootfs nexus-pg-rootfs postgresql-15

# The postgresql-15 postinst may have created a default 'main' cluster; the
# container makes its own in the volume on first start, so drop it.
rm -rf "$ROOT/var/lib/postgresql/15/main" "$ROOT/etc/postgresql/15/main"

install -m 0755 "$ENTRYPOINT_SRC" "$ROOT/usr/local/bin/nexus-postgres-entrypoint"
# Ownership must be set through the image's own user database (chroot): the
# postgres uid inside the image need not match any uid on the host.
# /var/lib/postgresql/data is the mount point of the data volume; docker
# copies its owner and mode into a fresh named volume.
chroot "$ROOT" install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
chroot "$ROOT" install -d -o postgres -g postgres -m 2775 /var/run/postgresql

import_rootfs \
    -c 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'ENV PGDATA=/var/lib/postgresql/data' \
    -c 'ENV PGPORT=55432' \
    -c 'USER postgres' \
    -c 'WORKDIR /var/lib/postgresql' \
    -c 'ENTRYPOINT ["/usr/local/bin/nexus-postgres-entrypoint"]'
