#!/bin/bash
# Entrypoint (PID 1) of the local/nexus-node:12 image: one API node of the
# sandbox fleet. Copied into the image by build-node-image.sh as
# /usr/local/bin/nexus-node-entrypoint; fleet.sh starts the containers.
#
# Every start: install the node's ssh host key, the deployer's public key and
# the database pgpass from the read-only mounts under /srv/nexus-seed, write
# the sshd, gateway and nginx settings for this node's ports, then start
#   sshd      127.0.0.1:$NEXUS_SSH_PORT      (service ssh)
#   gateway   127.0.0.1:$NEXUS_GATEWAY_PORT  (service nexus-gateway)
#   nginx     127.0.0.1:$NEXUS_HTTPS_PORT    (service nginx, TLS front of the gateway)
# and wait. A service that fails or is stopped later does not end the
# container; SIGTERM (docker stop) stops the three and exits.
#
# First start only (the container's own copies, kept across restarts):
#   /etc/nexus/tls/nexus.crt, nexus.key  copies of the sandbox certificate, so a
#                                        test can replace one node's certificate
#   /opt/nexus-cos                       git clone (branch main) of the platform
#                                        repo mounted at /srv/nexus-cos.git
#
# Env (set by fleet.sh): NEXUS_NODE (api-N), NEXUS_SSH_PORT, NEXUS_GATEWAY_PORT,
# NEXUS_HTTPS_PORT.
set -euo pipefail

: "${NEXUS_NODE:?NEXUS_NODE is not set}"
: "${NEXUS_SSH_PORT:?NEXUS_SSH_PORT is not set}"
: "${NEXUS_GATEWAY_PORT:?NEXUS_GATEWAY_PORT is not set}"
: "${NEXUS_HTTPS_PORT:?NEXUS_HTTPS_PORT is not set}"

SEED=/srv/nexus-seed
PLATFORM_ORIGIN=/srv/nexus-cos.git
CHECKOUT=/opt/nexus-cos
TLS_DIR=/etc/nexus/tls
SITE_TEMPLATE=/usr/local/share/nexus-node/nginx-site.conf

log() { echo "nexus-node-entrypoint[$NEXUS_NODE]: $*" >&2; }

# --- ssh: key login as root only, on loopback ---------------------------------
# The host key is the node's identity in the sandbox's known_hosts: always the
# one fleet.sh keeps for this node.
install -m 0600 "$SEED/node/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 0644 "$SEED/node/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 0700 /root/.ssh
install -m 0600 "$SEED/authorized_keys" /root/.ssh/authorized_keys
# sshd_config includes sshd_config.d/*.conf first, and for sshd the first
# value of an option wins, so these override Debian's defaults.
# UsePAM no: pam_loginuid cannot work in a container; key logins need no PAM.
cat >/etc/ssh/sshd_config.d/nexus-node.conf <<EOF
# Written by nexus-node-entrypoint at every start.
ListenAddress 127.0.0.1:$NEXUS_SSH_PORT
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
EOF

# --- gateway: sandbox/gateway.py with the container's python3 ------------------
install -d -m 0755 /etc/nexus
install -m 0600 "$SEED/pgpass" /etc/nexus/pgpass
cat >/etc/default/nexus-gateway <<EOF
# Written by nexus-node-entrypoint at every start; read by /etc/init.d/nexus-gateway.
NEXUS_GATEWAY_HOST=127.0.0.1
NEXUS_GATEWAY_PORT=$NEXUS_GATEWAY_PORT
PGHOST=127.0.0.1
PGPORT=55432
PGDATABASE=nexus
PGUSER=nexus
PGPASSFILE=/etc/nexus/pgpass
EOF

# --- nginx: TLS front of this node's gateway ----------------------------------
if [ ! -s "$TLS_DIR/nexus.crt" ] || [ ! -s "$TLS_DIR/nexus.key" ]; then
    install -d -m 0755 "$TLS_DIR"
    install -m 0644 "$SEED/tls/nexus.crt" "$TLS_DIR/nexus.crt"
    install -m 0600 "$SEED/tls/nexus.key" "$TLS_DIR/nexus.key"
fi
sed -e "s|@HTTPS_PORT@|$NEXUS_HTTPS_PORT|g" -e "s|@GATEWAY_PORT@|$NEXUS_GATEWAY_PORT|g" \
    -e "s|@TLS_DIR@|$TLS_DIR|g" "$SITE_TEMPLATE" >/etc/nginx/sites-enabled/nexus-node

# --- the platform checkout ----------------------------------------------------
# Cloned (not copied) so that `origin` is the real platform repo. Made in a
# temp dir and moved in place, so a half-made clone never looks finished.
if [ ! -d "$CHECKOUT/.git" ]; then
    rm -rf "$CHECKOUT.tmp"
    git clone --quiet --branch main --no-hardlinks "$PLATFORM_ORIGIN" "$CHECKOUT.tmp"
    mv "$CHECKOUT.tmp" "$CHECKOUT"
fi
install -d -m 0750 /var/backups/nexus

# --- services -----------------------------------------------------------------
stop_all() {
    log "stopping"
    service nginx stop >/dev/null 2>&1 || true
    service nexus-gateway stop >/dev/null 2>&1 || true
    service ssh stop >/dev/null 2>&1 || true
    exit 0
}
trap stop_all TERM INT

for svc in ssh nexus-gateway nginx; do
    service "$svc" start >/dev/null || log "service $svc start failed"
done
log "up: ssh 127.0.0.1:$NEXUS_SSH_PORT, gateway 127.0.0.1:$NEXUS_GATEWAY_PORT, https 127.0.0.1:$NEXUS_HTTPS_PORT"

# Stay PID 1. bash reaps the daemons that get re-parented to it (a stopped
# service leaves no zombie behind); `wait` returns at once on SIGTERM.
while :; do
    sleep infinity &
    wait $! || true
done
