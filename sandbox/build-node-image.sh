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
# The image carries a label with a hash of this script, those three files and
# debootstrap-image.sh (the steps both sandbox images share):
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

NAME=build-node-image
# shellcheck source=sandbox/debootstrap-image.sh
source "$SANDBOX_DIR/debootstrap-image.sh"

skip_if_current "$@" "${BASH_SOURCE[0]}" "$ENTRYPOINT_SRC" "$INIT_SRC" "$SITE_SRC"
bootstrap_rootfs nexus-node-rootfs "$PACKAGES"

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
install -m 0755 "$ENTRYPOINT_SRC" "$ROOT/usr/local/bin/nexus-node-entrypoint"
install -m 0755 "$INIT_SRC" "$ROOT/etc/init.d/nexus-gateway"
install -d -m 0755 "$ROOT/usr/local/share/nexus-node"
install -m 0644 "$SITE_SRC" "$ROOT/usr/local/share/nexus-node/nginx-site.conf"
install -d -m 0755 "$ROOT/etc/nexus" "$ROOT/etc/nexus/tls" "$ROOT/opt"
install -d -m 0700 "$ROOT/root/.ssh"
install -d -m 0750 "$ROOT/var/backups/nexus"

import_rootfs \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'WORKDIR /root' \
    -c 'ENTRYPOINT ["/usr/local/bin/nexus-node-entrypoint"]'
