#!/bin/bash
# Bring up the Nexus COS sandbox: the real services the deployer runs against.
#
#   dockerd          (start-stop-daemon, pidfile /var/run/docker-ssd.pid)
#   nexus-postgres   PostgreSQL 15 container, 127.0.0.1:55432 (docker-compose)
#   gateway          sandbox/gateway.py, http://127.0.0.1:8081
#   nginx            TLS front of the gateway, https://127.0.0.1:8443
#   plus the platform git repo, TLS files, pgpass, backup and audit dirs
#   under /var/lib/nexus-sandbox.
#
# Idempotent: every step first looks whether its piece is already there, so a
# run with everything up takes a few seconds. Run as root. Everything binds
# 127.0.0.1 only. Exits non-zero naming the piece that did not come up.
#
# Usage: up.sh [--hosts N]
#   --hosts N  then also a fleet of N API nodes (1..32), each a container
#              reached over ssh like a host: `sandbox/fleet.sh up N` (see there).
#              Without it, no fleet is started or changed.
#
# Env: NEXUS_PYTHON  python with psycopg 3 for the gateway
#                    (default: <repo>/.venv/bin/python)
set -euo pipefail
set -E  # the ERR trap below also fires inside functions
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SANDBOX_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$SANDBOX_DIR")"
PYTHON="${NEXUS_PYTHON:-$REPO_DIR/.venv/bin/python}"

STATE_DIR=/var/lib/nexus-sandbox
PGPASS_FILE=$STATE_DIR/pgpass
SECRET_FILE=$STATE_DIR/secrets/db-password
TLS_DIR=$STATE_DIR/tls
TLS_CERT=$TLS_DIR/nexus.crt
TLS_KEY=$TLS_DIR/nexus.key
PLATFORM_REPO=$STATE_DIR/nexus-cos
BACKUP_DIR=$STATE_DIR/backups
AUDIT_DIR=$STATE_DIR/audit

DOCKER_SSD_PIDFILE=/var/run/docker-ssd.pid  # the name /etc/init.d/docker checks
DOCKER_LOG=/var/log/docker.log
DAEMON_JSON=/etc/docker/daemon.json
COMPOSE=(docker-compose --project-name nexus-sandbox --file "$SANDBOX_DIR/docker-compose.yml")
PG_CONTAINER=nexus-postgres
PG_HOST=127.0.0.1
PG_PORT=55432

GATEWAY_PIDFILE=/var/run/nexus-gateway.pid
GATEWAY_LOG=/var/log/nexus-gateway.log
GATEWAY_ADDR=127.0.0.1:8081
NGINX_SITE=/etc/nginx/sites-enabled/nexus-sandbox
NGINX_CONF=/etc/nginx/nginx.conf
HTTPS_PORT=8443

# dockerd here is docker.io 20.10; its own CLI matches it. A newer CLI found
# first on PATH (e.g. /usr/local/bin/docker) is only used when it is missing.
if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

STEP="start"
started_at=$(date +%s.%N)
log() { echo "[up] $*"; }
die() { echo "[up] FAILED: $STEP: $*" >&2; exit 1; }
trap 'echo "[up] FAILED: $STEP (command at line $LINENO exited non-zero)" >&2' ERR

# --hosts N: the fleet, started after the single-host sandbox is up.
HOSTS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) [ $# -ge 2 ] || { STEP="arguments"; die "--hosts needs a number"; }
                 HOSTS=$2; shift 2 ;;
        --hosts=*) HOSTS=${1#--hosts=}; shift ;;
        *) STEP="arguments"; die "unknown argument '$1' (usage: $0 [--hosts N])" ;;
    esac
done
if [ -n "$HOSTS" ] && ! [[ "$HOSTS" =~ ^[0-9]+$ && $((10#$HOSTS)) -ge 1 && $((10#$HOSTS)) -le 32 ]]; then
    STEP="arguments"; die "--hosts wants a number of nodes from 1 to 32, not '$HOSTS'"
fi

[ "$(id -u)" -eq 0 ] || { STEP="preflight"; die "must run as root"; }

# --- apt packages -----------------------------------------------------------
# CI starts from a fresh machine; install only what is missing, so that a run
# on a prepared machine never touches the network.
ensure_packages() {
    STEP="apt packages"
    local -A needs=(
        [dockerd]=docker.io [docker-compose]=docker-compose [nginx]=nginx
        [psql]=postgresql-client [openssl]=openssl [debootstrap]=debootstrap
        [git]=git [curl]=curl
    )
    local cmd missing=()
    for cmd in "${!needs[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing missing packages: ${missing[*]}"
    # noninteractive: CI has no stdin; needrestart would otherwise try to ask.
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # docker.io may have put its CLI in /usr/bin just now.
    if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; fi
}

ensure_python() {
    STEP="gateway python"
    [ -x "$PYTHON" ] || die "$PYTHON not found; create the venv first (python3 -m venv .venv && .venv/bin/pip install -e .) or set NEXUS_PYTHON"
    "$PYTHON" -c 'import psycopg' 2>/dev/null \
        || die "$PYTHON cannot import psycopg (pip install 'psycopg[binary]')"
}

# --- files under /var/lib/nexus-sandbox -------------------------------------
ensure_state_dirs() {
    STEP="state directories"
    install -d -m 0755 "$STATE_DIR" "$TLS_DIR"
    install -d -m 0700 "$(dirname "$SECRET_FILE")"
    install -d -m 0750 "$BACKUP_DIR" "$AUDIT_DIR"
}

# The database password: random once, then reused from the pgpass file.
ensure_pgpass() {
    STEP="pgpass"
    local password=""
    if [ -f "$PGPASS_FILE" ]; then
        password=$(awk -F: -v h="$PG_HOST" -v p="$PG_PORT" \
            '$1 == h && $2 == p && $3 == "nexus" && $4 == "nexus" { print $5; exit }' "$PGPASS_FILE")
    fi
    if [ -z "$password" ]; then
        log "generating the database password into $PGPASS_FILE"
        # hex: no ':' or '\' that pgpass would need escaped
        password=$(openssl rand -hex 24)
    fi
    local want
    want=$(printf '%s:%s:nexus:nexus:%s\nlocalhost:%s:nexus:nexus:%s\n' \
        "$PG_HOST" "$PG_PORT" "$password" "$PG_PORT" "$password")
    if [ "$(cat "$PGPASS_FILE" 2>/dev/null)" != "$want" ]; then
        (umask 077 && printf '%s\n' "$want" >"$PGPASS_FILE.tmp")
        mv -f "$PGPASS_FILE.tmp" "$PGPASS_FILE"
    fi
    chmod 0600 "$PGPASS_FILE"  # libpq ignores a pgpass readable by others
    # The copy the container reads at its first start. It sits in a 0700
    # directory; 0644 so that the container's postgres user can read the
    # bind-mounted file.
    if [ "$(cat "$SECRET_FILE" 2>/dev/null)" != "$password" ]; then
        printf '%s' "$password" >"$SECRET_FILE.tmp"
        chmod 0644 "$SECRET_FILE.tmp"
        mv -f "$SECRET_FILE.tmp" "$SECRET_FILE"
    fi
}

# Self-signed certificate for nginx; renewed when it expires within 30 days.
tls_changed=0
ensure_tls() {
    STEP="TLS certificate"
    if [ -s "$TLS_KEY" ] && [ -s "$TLS_CERT" ] \
        && openssl x509 -checkend $((30 * 24 * 3600)) -noout -in "$TLS_CERT" >/dev/null 2>&1; then
        return 0
    fi
    log "creating the self-signed certificate $TLS_CERT"
    (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
        -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
        -keyout "$TLS_KEY.tmp" -out "$TLS_CERT.tmp" 2>/dev/null)
    chmod 0600 "$TLS_KEY.tmp"
    chmod 0644 "$TLS_CERT.tmp"
    mv -f "$TLS_KEY.tmp" "$TLS_KEY"
    mv -f "$TLS_CERT.tmp" "$TLS_CERT"
    tls_changed=1
}

# The platform's own git repository with its phase reports. Built in a temp
# dir and moved in place, so a half-made repo never looks finished; an
# existing repo is left exactly as it is.
ensure_platform_repo() {
    STEP="platform git repo"
    [ -d "$PLATFORM_REPO/.git" ] && return 0
    log "creating the platform repository $PLATFORM_REPO"
    local tmp="$STATE_DIR/.nexus-cos.tmp.$$"
    rm -rf "$tmp"
    git init -q -b main "$tmp"
    git -C "$tmp" config user.name "Nexus COS Sandbox"
    git -C "$tmp" config user.email "sandbox@nexus-cos.invalid"
    cat >"$tmp/README.md" <<'EOF'
# Nexus COS

The Nexus COS platform (sandbox copy, created by nexus-deploy's sandbox/up.sh).
Phases 1 and 2 are audited; their reports are in this repository.
EOF
    local phase
    for phase in 1 2; do
        cat >"$tmp/PHASE_${phase}_AUDIT_REPORT.md" <<EOF
# Phase ${phase} audit report

Status: COMPLETE

All phase ${phase} deliverables were reviewed and accepted; no open findings.
EOF
    done
    git -C "$tmp" add README.md PHASE_1_AUDIT_REPORT.md PHASE_2_AUDIT_REPORT.md
    git -C "$tmp" commit -q --no-gpg-sign -m "Nexus COS platform with phase 1 and 2 audit reports"
    mv "$tmp" "$PLATFORM_REPO"
}

# --- dockerd ------------------------------------------------------------------
docker_ok() { "$DOCKER" info >/dev/null 2>&1; }

ensure_dockerd() {
    STEP="dockerd"
    docker_ok && return 0
    # No docker0 bridge, no iptables: containers use the host network and
    # bind 127.0.0.1 themselves.
    local want='{"storage-driver":"overlay2","iptables":false,"ip-forward":false,"bridge":"none"}'
    if [ "$(cat "$DAEMON_JSON" 2>/dev/null)" != "$want" ]; then
        install -d /etc/docker
        printf '%s\n' "$want" >"$DAEMON_JSON"
    fi
    # `service docker start` fails here (its ulimit -n is above the hard
    # limit); start-stop-daemon with the init script's pidfile instead, so
    # `service docker status` still reports it.
    log "starting dockerd (log $DOCKER_LOG)"
    start-stop-daemon --start --background --no-close --make-pidfile --oknodo \
        --pidfile "$DOCKER_SSD_PIDFILE" --exec /usr/sbin/dockerd -- -p /var/run/docker.pid \
        >>"$DOCKER_LOG" 2>&1
    local i
    for i in $(seq 1 60); do
        docker_ok && return 0
        sleep 0.5
    done
    tail -n 20 "$DOCKER_LOG" >&2
    die "dockerd did not answer 'docker info' within 30 s (see $DOCKER_LOG)"
}

# --- PostgreSQL ---------------------------------------------------------------
ensure_postgres_image() {
    STEP="postgres image"
    bash "$SANDBOX_DIR/build-postgres-image.sh"
}

pg_health() { "$DOCKER" inspect -f '{{.State.Health.Status}}' "$PG_CONTAINER" 2>/dev/null || true; }

ensure_postgres() {
    STEP="nexus-postgres container"
    # `up -d` is itself idempotent ("up-to-date") and recreates the container
    # when the compose file or the image changed.
    local out
    if ! out=$("${COMPOSE[@]}" up -d --no-build 2>&1); then
        echo "$out" >&2
        die "docker-compose up failed"
    fi
    grep -v -e 'is up-to-date' <<<"$out" | sed 's/^/[up]   compose: /' || true
    local i status=""
    for i in $(seq 1 90); do
        status=$(pg_health)
        [ "$status" = healthy ] && return 0
        if [ "$("$DOCKER" inspect -f '{{.State.Running}}' "$PG_CONTAINER" 2>/dev/null)" != true ] && [ "$i" -gt 4 ]; then
            "$DOCKER" logs --tail 20 "$PG_CONTAINER" >&2 || true
            die "container $PG_CONTAINER is not running"
        fi
        sleep 0.5
    done
    "$DOCKER" logs --tail 20 "$PG_CONTAINER" >&2 || true
    die "container $PG_CONTAINER not healthy within 45 s (health: ${status:-none})"
}

# After a rebuild the previous image is left dangling once compose has
# recreated the container; drop it (only images this sandbox built).
prune_old_images() {
    STEP="prune old postgres images"
    "$DOCKER" image prune --force --filter label=org.nexus-sandbox.build >/dev/null
}

psql_nexus() {
    # client_min_messages: keep "already exists, skipping" notices quiet.
    PGPASSFILE="$PGPASS_FILE" PGCONNECT_TIMEOUT=5 PGOPTIONS='-c client_min_messages=warning' psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 \
        -h "$PG_HOST" -p "$PG_PORT" -U nexus -d nexus "$@"
}

ensure_schema() {
    STEP="database login"
    local out
    if ! out=$(psql_nexus -tAc 'SELECT 1' 2>&1); then
        if ! grep -q 'password authentication failed' <<<"$out"; then
            echo "$out" >&2
            die "cannot log in as nexus on $PG_HOST:$PG_PORT"
        fi
        # The data volume outlived an old pgpass (e.g. pgpass deleted by
        # hand): set the role's password to the current one, over the
        # container's local socket (peer auth as postgres).
        log "database password differs from $PGPASS_FILE: resetting it"
        "$DOCKER" exec -i "$PG_CONTAINER" psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 \
            --host=/var/run/postgresql --port="$PG_PORT" --username=postgres --dbname=postgres <<'SQL'
\set pw `cat /run/secrets/nexus-db-password`
ALTER ROLE nexus PASSWORD :'pw';
SQL
        psql_nexus -tAc 'SELECT 1' >/dev/null || die "still cannot log in as nexus"
    fi
    STEP="database schema"
    psql_nexus -f "$SANDBOX_DIR/schema.sql"
}

# --- gateway ------------------------------------------------------------------
gateway_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$GATEWAY_ADDR/health" || true
}

ensure_gateway() {
    STEP="gateway"
    if start-stop-daemon --status --pidfile "$GATEWAY_PIDFILE"; then
        # Running, answering, and not older than its code: nothing to do.
        if [ ! "$SANDBOX_DIR/gateway.py" -nt "$GATEWAY_PIDFILE" ] && [ "$(gateway_code)" = 200 ]; then
            return 0
        fi
        log "restarting the gateway"
        start-stop-daemon --stop --pidfile "$GATEWAY_PIDFILE" --remove-pidfile \
            --retry TERM/5/KILL/2 --oknodo >/dev/null
    fi
    log "starting the gateway on http://$GATEWAY_ADDR (log $GATEWAY_LOG)"
    start-stop-daemon --start --background --no-close --make-pidfile \
        --pidfile "$GATEWAY_PIDFILE" --chdir "$SANDBOX_DIR" \
        --startas /usr/bin/env -- \
        PGHOST="$PG_HOST" PGPORT="$PG_PORT" PGDATABASE=nexus PGUSER=nexus \
        PGPASSFILE="$PGPASS_FILE" NEXUS_GATEWAY_HOST="${GATEWAY_ADDR%:*}" \
        NEXUS_GATEWAY_PORT="${GATEWAY_ADDR#*:}" PYTHONUNBUFFERED=1 \
        "$PYTHON" "$SANDBOX_DIR/gateway.py" >>"$GATEWAY_LOG" 2>&1
    local i code=""
    for i in $(seq 1 40); do
        code=$(gateway_code)
        [ "$code" = 200 ] && return 0
        start-stop-daemon --status --pidfile "$GATEWAY_PIDFILE" || break
        sleep 0.25
    done
    tail -n 20 "$GATEWAY_LOG" >&2
    die "gateway /health did not answer 200 within 10 s (last: ${code:-no answer}; see $GATEWAY_LOG)"
}

# --- nginx --------------------------------------------------------------------
ensure_nginx() {
    STEP="nginx"
    local changed=$tls_changed
    # Debian's default enables TLSv1 and TLSv1.1 globally; the SECURITY
    # precheck requires them off everywhere.
    if grep -Eq '^[[:space:]]*ssl_protocols[^;]*TLSv1(\.1)?[[:space:];]' "$NGINX_CONF"; then
        log "turning TLS 1.0/1.1 off in $NGINX_CONF"
        sed -i -E 's/^([[:space:]]*)ssl_protocols[^;]*;/\1ssl_protocols TLSv1.2 TLSv1.3;/' "$NGINX_CONF"
        changed=1
    fi
    local rendered
    rendered=$(sed -e "s|@TLS_CERT@|$TLS_CERT|g" -e "s|@TLS_KEY@|$TLS_KEY|g" \
        -e "s|@GATEWAY@|$GATEWAY_ADDR|g" "$SANDBOX_DIR/nginx-site.conf")
    if [ "$(cat "$NGINX_SITE" 2>/dev/null)" != "$rendered" ]; then
        log "installing the nginx site $NGINX_SITE"
        printf '%s\n' "$rendered" >"$NGINX_SITE"
        changed=1
    fi
    local out
    out=$(nginx -t 2>&1) || { echo "$out" >&2; die "nginx -t rejects the configuration"; }
    if ! service nginx status >/dev/null 2>&1; then
        log "starting nginx"
        service nginx start >/dev/null || die "service nginx start failed"
    elif [ "$changed" -eq 1 ]; then
        log "reloading nginx"
        service nginx reload >/dev/null || die "service nginx reload failed"
    fi
    local i code=""
    for i in $(seq 1 20); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 --cacert "$TLS_CERT" \
            "https://127.0.0.1:$HTTPS_PORT/health" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.25
    done
    die "https://127.0.0.1:$HTTPS_PORT/health did not answer 200 through nginx (last: ${code:-no answer})"
}

# --- main ---------------------------------------------------------------------
ensure_packages
ensure_python
ensure_state_dirs
ensure_pgpass
ensure_tls
ensure_platform_repo
ensure_dockerd
ensure_postgres_image
ensure_postgres
prune_old_images
ensure_schema
ensure_gateway
ensure_nginx

STEP="summary"
elapsed=$(awk -v s="$started_at" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
cat <<EOF
[up] Nexus COS sandbox is up (${elapsed} s)
  dockerd         running           pid $(cat "$DOCKER_SSD_PIDFILE" 2>/dev/null || echo '?'), log $DOCKER_LOG
  nexus-postgres  $(pg_health)           postgresql://nexus@$PG_HOST:$PG_PORT/nexus (PGPASSFILE=$PGPASS_FILE)
  gateway         http://$GATEWAY_ADDR   pid $(cat "$GATEWAY_PIDFILE"), log $GATEWAY_LOG
  nginx (TLS)     https://127.0.0.1:$HTTPS_PORT  site $NGINX_SITE, CA $TLS_CERT
  platform repo   $PLATFORM_REPO (branch main)
  backups/audit   $BACKUP_DIR  $AUDIT_DIR
EOF

# --- the fleet (--hosts N) ----------------------------------------------------
if [ -n "$HOSTS" ]; then
    STEP="fleet"
    bash "$SANDBOX_DIR/fleet.sh" up "$HOSTS" || die "sandbox/fleet.sh up $HOSTS failed (see above)"
fi
