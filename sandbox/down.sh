#!/bin/bash
# Stop the Nexus COS sandbox started by up.sh. Idempotent.
#
#   down.sh              stop the gateway, remove the fleet's node containers
#                        (fleet.sh down), the nexus-postgres container and the
#                        nginx site. Keeps dockerd, nginx, the images, the
#                        database volume, the platform repo, TLS files, pgpass
#                        and the fleet's keys, so that the next up.sh is fast.
#   down.sh --wipe-data  the same, and drop the database volume (next up.sh
#                        starts with an empty platform database).
#   down.sh --purge      the same, and also remove the images and everything
#                        under /var/lib/nexus-sandbox (next up.sh is a cold one).
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SANDBOX_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR=/var/lib/nexus-sandbox
IMAGE=local/nexus-postgres:15
NODE_IMAGE=local/nexus-node:12
GATEWAY_PIDFILE=/var/run/nexus-gateway.pid
NGINX_SITE=/etc/nginx/sites-enabled/nexus-sandbox
COMPOSE=(docker-compose --project-name nexus-sandbox --file "$SANDBOX_DIR/docker-compose.yml")
if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

log() { echo "[down] $*"; }
die() { echo "[down] FAILED: $*" >&2; exit 1; }

wipe_data=0 purge=0
for arg in "$@"; do
    case "$arg" in
        --wipe-data) wipe_data=1 ;;
        --purge) purge=1 wipe_data=1 ;;
        *) die "unknown argument '$arg' (usage: $0 [--wipe-data] [--purge])" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "must run as root"

# Gateway: --oknodo makes a gateway that is not running a success.
log "stopping the gateway"
start-stop-daemon --stop --pidfile "$GATEWAY_PIDFILE" --remove-pidfile \
    --retry TERM/5/KILL/2 --oknodo >/dev/null || die "could not stop the gateway"
rm -f "$GATEWAY_PIDFILE"

# nexus-postgres: needs dockerd. Without it the container is not running
# either; say so, because restart: unless-stopped would bring it back when
# dockerd starts again (up.sh wants it anyway).
if "$DOCKER" info >/dev/null 2>&1; then
    # The fleet first: its nodes' gateways use the database.
    bash "$SANDBOX_DIR/fleet.sh" down 2>&1 | sed 's/^/[down]   /'
    down_args=()
    [ "$wipe_data" -eq 1 ] && down_args+=(--volumes)
    log "docker-compose down${down_args[*]:+ ${down_args[*]}}"
    "${COMPOSE[@]}" down "${down_args[@]}" 2>&1 | sed 's/^/[down]   compose: /'
    if [ "$purge" -eq 1 ] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
        log "removing the image $IMAGE"
        "$DOCKER" image rm "$IMAGE" >/dev/null
    fi
    if [ "$purge" -eq 1 ] && "$DOCKER" image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
        log "removing the image $NODE_IMAGE"
        "$DOCKER" image rm "$NODE_IMAGE" >/dev/null
    fi
else
    log "dockerd is not running: nexus-postgres is not running either (nothing to do in docker)"
    [ "$wipe_data" -eq 1 ] && log "NOTE: could not drop the data volume / image without dockerd"
fi

# nginx site: remove, then reload a running nginx (after nginx -t, so a
# broken unrelated config is reported instead of taking nginx down).
if [ -e "$NGINX_SITE" ]; then
    log "removing the nginx site $NGINX_SITE"
    rm -f "$NGINX_SITE"
    if service nginx status >/dev/null 2>&1; then
        out=$(nginx -t 2>&1) || { echo "$out" >&2; die "nginx -t fails after removing the site"; }
        service nginx reload >/dev/null || die "service nginx reload failed"
    fi
fi

if [ "$purge" -eq 1 ] && [ -d "$STATE_DIR" ]; then
    log "removing $STATE_DIR"
    rm -rf --one-file-system "$STATE_DIR"
fi

log "sandbox is down (dockerd and nginx are left as they are)"
