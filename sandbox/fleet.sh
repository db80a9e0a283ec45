#!/bin/bash
# A fleet of Nexus COS API nodes next to the sandbox, each a container reached
# over ssh like a real host.
#
#   fleet.sh up N    N nodes (1..32): api-1..api-N, containers nexus-node-1..N;
#                    nodes above N are removed
#   fleet.sh down    remove every node container (keeps the image and the keys)
#   fleet.sh status  the table of `up`, probed now; non-zero if a node is down
#
# Node i, a container of local/nexus-node:12 (build-node-image.sh) on the host
# network (no docker0 here), binding 127.0.0.1 only:
#   sshd     127.0.0.1:(2200+i)          root, key login only
#   gateway  http://127.0.0.1:(8100+i)   sandbox/gateway.py -> PostgreSQL 127.0.0.1:55432
#   nginx    https://127.0.0.1:(9400+i)  TLS front of that gateway
# plus /opt/nexus-cos (a clone of the platform repo) and /var/backups/nexus.
# Files under /var/lib/nexus-sandbox/fleet: id_ed25519(.pub) (the deployer's
# key), api-i/ssh_host_ed25519_key(.pub) (node i's host key, made once),
# known_hosts and inventory.ini (Ansible).
#
# Idempotent: `up` keeps a running node whose container is current and that
# answers; it (re)creates the others, in parallel, and waits until each
# answers ssh and https://127.0.0.1:(9400+i)/health with 200. Exits non-zero
# naming the nodes that did not come up. Needs the sandbox up (sandbox/up.sh,
# or `up.sh --hosts N`, which runs this script). Run as root.
set -euo pipefail
set -E  # the ERR trap below also fires inside functions
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SANDBOX_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR=/var/lib/nexus-sandbox
FLEET_DIR=$STATE_DIR/fleet
CLIENT_KEY=$FLEET_DIR/id_ed25519
KNOWN_HOSTS=$FLEET_DIR/known_hosts
INVENTORY=$FLEET_DIR/inventory.ini
PGPASS_FILE=$STATE_DIR/pgpass
TLS_DIR=$STATE_DIR/tls
TLS_CERT=$TLS_DIR/nexus.crt
PLATFORM_REPO=$STATE_DIR/nexus-cos
PG_CONTAINER=nexus-postgres

IMAGE=local/nexus-node:12
LABEL_NODE=org.nexus-sandbox.fleet-node  # the node's number
LABEL_SPEC=org.nexus-sandbox.fleet-spec  # hash of what the container was made from
MAX_NODES=32
SSH_BASE=2200 GATEWAY_BASE=8100 HTTPS_BASE=9400
PARALLEL=8        # concurrent `docker run`/`docker rm` (2 cores; dockerd does the work)
READY_TIMEOUT=90  # seconds for a new node to answer ssh and https

if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

STEP="start"
started_at=$(date +%s.%N)
log() { echo "[fleet] $*"; }
die() { echo "[fleet] FAILED: $STEP: $*" >&2; exit 1; }
trap 'echo "[fleet] FAILED: $STEP (command at line $LINENO exited non-zero)" >&2' ERR

usage() {
    echo "usage: $0 up N (1..$MAX_NODES) | down | status" >&2
    exit 2
}

WORK=$(mktemp -d /tmp/nexus-fleet.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

ssh_port() { echo $((SSH_BASE + $1)); }
gateway_port() { echo $((GATEWAY_BASE + $1)); }
https_port() { echo $((HTTPS_BASE + $1)); }

# run_parallel MAX FUNC ARG...: FUNC ARG for every ARG, at most MAX at once.
# FUNC reports through files under $WORK, not through its exit status.
run_parallel() {
    local max=$1 fn=$2 arg running=0
    shift 2
    for arg in "$@"; do
        "$fn" "$arg" &
        running=$((running + 1))
        if [ "$running" -ge "$max" ]; then
            wait -n || true
            running=$((running - 1))
        fi
    done
    wait
}

# --- checks -------------------------------------------------------------------
preflight() {
    STEP="preflight"
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    local cmd
    for cmd in ssh ssh-keygen curl ss; do
        command -v "$cmd" >/dev/null 2>&1 \
            || die "$cmd not found (apt-get install openssh-client curl iproute2)"
    done
    "$DOCKER" info >/dev/null 2>&1 || die "dockerd does not answer: run sandbox/up.sh first"
    if [ ! -s "$PGPASS_FILE" ] || [ ! -s "$TLS_CERT" ] || [ ! -d "$PLATFORM_REPO/.git" ]; then
        die "the sandbox's files are missing under $STATE_DIR: run sandbox/up.sh first"
    fi
    [ "$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$PG_CONTAINER" 2>/dev/null)" = healthy ] \
        || die "$PG_CONTAINER is not up and healthy: run sandbox/up.sh first"
}

# --- keys, known_hosts, inventory ---------------------------------------------
ensure_keys() {
    STEP="ssh keys"
    local n=$1 i dir
    install -d -m 0755 "$FLEET_DIR"
    if [ ! -s "$CLIENT_KEY" ] || [ ! -s "$CLIENT_KEY.pub" ]; then
        log "generating the deployer's ssh key $CLIENT_KEY"
        rm -f "$CLIENT_KEY.tmp" "$CLIENT_KEY.tmp.pub"
        ssh-keygen -q -t ed25519 -N '' -C "nexus-deployer@sandbox" -f "$CLIENT_KEY.tmp"
        mv -f "$CLIENT_KEY.tmp.pub" "$CLIENT_KEY.pub"
        mv -f "$CLIENT_KEY.tmp" "$CLIENT_KEY"
    fi
    chmod 0600 "$CLIENT_KEY"
    chmod 0644 "$CLIENT_KEY.pub"
    # Host keys are made once and kept (also by `down`), so that known_hosts
    # stays valid across restarts and recreations of the containers.
    for i in $(seq 1 "$n"); do
        dir=$FLEET_DIR/api-$i
        [ -s "$dir/ssh_host_ed25519_key" ] && [ -s "$dir/ssh_host_ed25519_key.pub" ] && continue
        install -d -m 0700 "$dir"
        rm -f "$dir/ssh_host_ed25519_key" "$dir/ssh_host_ed25519_key.pub"
        ssh-keygen -q -t ed25519 -N '' -C "root@api-$i" -f "$dir/ssh_host_ed25519_key"
    done
}

# write_if_changed FILE MODE: stdin into FILE, atomically, only when it differs.
write_if_changed() {
    local file=$1 mode=$2
    cat >"$file.tmp"
    if cmp -s "$file.tmp" "$file"; then
        rm -f "$file.tmp"
    else
        chmod "$mode" "$file.tmp"
        mv -f "$file.tmp" "$file"
    fi
}

write_known_hosts() {
    STEP="known_hosts"
    local n=$1 i
    for i in $(seq 1 "$n"); do
        printf '[127.0.0.1]:%s %s\n' "$(ssh_port "$i")" \
            "$(cut -d' ' -f1,2 "$FLEET_DIR/api-$i/ssh_host_ed25519_key.pub")"
    done | write_if_changed "$KNOWN_HOSTS" 0644
}

write_inventory() {
    STEP="inventory"
    local n=$1 i
    {
        echo "# The sandbox fleet, written by sandbox/fleet.sh up $n (rewritten on every up)."
        echo "[api]"
        for i in $(seq 1 "$n"); do
            echo "api-$i ansible_host=127.0.0.1 ansible_port=$(ssh_port "$i") nexus_gateway_port=$(gateway_port "$i") nexus_https_port=$(https_port "$i")"
        done
        echo
        echo "[db]"
        # The controller's own python for the local connection: interpreter
        # discovery may find a python without the deployer's packages (or a
        # broken pyenv shim).
        echo "db-1 ansible_connection=local ansible_python_interpreter='{{ ansible_playbook_python }}'"
        echo
        echo "[all:vars]"
        echo "ansible_user=root"
        echo "ansible_ssh_private_key_file=$CLIENT_KEY"
        echo "ansible_ssh_common_args='-o UserKnownHostsFile=$KNOWN_HOSTS -o StrictHostKeyChecking=yes'"
    } | write_if_changed "$INVENTORY" 0644
}

# --- containers ---------------------------------------------------------------
# What every node's container is made from; a node whose label differs is
# recreated (a new image, gateway.py, certificate, password, key, or fleet.sh).
common_spec() {
    {
        "$DOCKER" image inspect -f '{{.Id}}' "$IMAGE"
        echo "$SANDBOX_DIR $PLATFORM_REPO"
        cat "${BASH_SOURCE[0]}" "$SANDBOX_DIR/gateway.py" "$TLS_CERT" "$TLS_DIR/nexus.key" \
            "$PGPASS_FILE" "$CLIENT_KEY.pub"
    } | sha256sum | cut -c1-16
}

node_spec() {
    { echo "$COMMON_SPEC $1"; cat "$FLEET_DIR/api-$1/ssh_host_ed25519_key.pub"; } \
        | sha256sum | cut -c1-16
}

# Fills NODE_STATE[i] (running, exited, ...) and NODE_SPEC[i] from docker.
declare -A NODE_STATE=() NODE_SPEC=()
read_containers() {
    local num state spec
    while read -r num state spec; do
        [[ "$num" =~ ^[0-9]+$ ]] || continue
        NODE_STATE[$num]=$state
        NODE_SPEC[$num]=$spec
    done < <("$DOCKER" ps -a --filter "label=$LABEL_NODE" \
        --format "{{.Label \"$LABEL_NODE\"}} {{.State}} {{.Label \"$LABEL_SPEC\"}}")
}

remove_node() {
    "$DOCKER" rm -f "nexus-node-$1" >/dev/null 2>&1 || true
}

create_node() {
    local i=$1
    remove_node "$i"  # also a leftover of that name without our labels
    if "$DOCKER" run -d --name "nexus-node-$i" --hostname "api-$i" --network host \
        --restart unless-stopped \
        --label "$LABEL_NODE=$i" --label "$LABEL_SPEC=$(node_spec "$i")" \
        -e "NEXUS_NODE=api-$i" -e "NEXUS_SSH_PORT=$(ssh_port "$i")" \
        -e "NEXUS_GATEWAY_PORT=$(gateway_port "$i")" -e "NEXUS_HTTPS_PORT=$(https_port "$i")" \
        -v "$FLEET_DIR/api-$i:/srv/nexus-seed/node:ro" \
        -v "$CLIENT_KEY.pub:/srv/nexus-seed/authorized_keys:ro" \
        -v "$TLS_DIR:/srv/nexus-seed/tls:ro" \
        -v "$PGPASS_FILE:/srv/nexus-seed/pgpass:ro" \
        -v "$PLATFORM_REPO:/srv/nexus-cos.git:ro" \
        -v "$SANDBOX_DIR:/opt/nexus-sandbox:ro" \
        "$IMAGE" >"$WORK/run.$i.log" 2>&1; then
        echo ok >"$WORK/run.$i"
    else
        echo "docker run failed: $(tail -n 1 "$WORK/run.$i.log")" >"$WORK/run.$i"
    fi
}

# --- probes -------------------------------------------------------------------
ssh_ok() {
    timeout 15 ssh -F none -i "$CLIENT_KEY" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o UserKnownHostsFile="$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null \
        -o StrictHostKeyChecking=yes -o ConnectTimeout=3 -o LogLevel=ERROR \
        -p "$(ssh_port "$1")" root@127.0.0.1 true
}

# https_code I: the HTTP status of /health through nginx (000: no answer; curl's
# error, e.g. an expired certificate, in $WORK/curl.I).
https_code() {
    curl -sS -o /dev/null -w '%{http_code}' --max-time 3 --cacert "$TLS_CERT" \
        "https://127.0.0.1:$(https_port "$1")/health" 2>"$WORK/curl.$1" || true
}

# probe_node I: one look; "ok" or the reason into $WORK/probe.I.
probe_node() {
    local i=$1 err code
    if ! err=$(ssh_ok "$i" 2>&1); then
        echo "ssh 127.0.0.1:$(ssh_port "$i") fails: $(tail -n 1 <<<"${err:-no output}")" >"$WORK/probe.$i"
        return 0
    fi
    code=$(https_code "$i")
    if [ "$code" = 000 ]; then
        echo "https://127.0.0.1:$(https_port "$i")/health fails: $(head -n 1 "$WORK/curl.$i")" >"$WORK/probe.$i"
        return 0
    elif [ "$code" != 200 ]; then
        echo "https://127.0.0.1:$(https_port "$i")/health answers $code" >"$WORK/probe.$i"
        return 0
    fi
    echo ok >"$WORK/probe.$i"
}

# wait_ready I: probe until ok, the deadline, or the container is gone.
wait_ready() {
    local i=$1 deadline=$((SECONDS + READY_TIMEOUT)) tries=0
    while :; do
        probe_node "$i"
        [ "$(cat "$WORK/probe.$i")" = ok ] && return 0
        [ "$SECONDS" -ge "$deadline" ] && break
        tries=$((tries + 1))
        if [ $((tries % 4)) -eq 0 ] \
            && [ "$("$DOCKER" inspect -f '{{.State.Running}}' "nexus-node-$i" 2>/dev/null)" != true ]; then
            echo "container nexus-node-$i is not running" >"$WORK/probe.$i"
            return 0
        fi
        sleep 0.5
    done
    echo "not ready within ${READY_TIMEOUT} s: $(cat "$WORK/probe.$i")" >"$WORK/probe.$i"
}

# --- output -------------------------------------------------------------------
print_table() {
    local n=$1 i
    printf '  %-7s %-14s %-16s %-23s %-24s %s\n' node container "ssh (root)" gateway "https (nginx)" state
    for i in $(seq 1 "$n"); do
        printf '  %-7s %-14s %-16s %-23s %-24s %s\n' "api-$i" "nexus-node-$i" \
            "127.0.0.1:$(ssh_port "$i")" "http://127.0.0.1:$(gateway_port "$i")" \
            "https://127.0.0.1:$(https_port "$i")" "${NODE_NOTE[$i]:-}"
    done
    echo "  inventory $INVENTORY"
    echo "  ssh -i $CLIENT_KEY -o UserKnownHostsFile=$KNOWN_HOSTS -p $((SSH_BASE + 1)) root@127.0.0.1"
}

elapsed() { awk -v s="$started_at" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

# One fleet.sh up/down at a time (two tests starting the fleet at once).
take_lock() {
    install -d -m 0755 "$FLEET_DIR"
    exec 9>"$FLEET_DIR/.lock"
    flock -w 300 9 || die "another fleet.sh still holds $FLEET_DIR/.lock after 300 s"
}

# --- commands -----------------------------------------------------------------
declare -A NODE_NOTE=()

cmd_up() {
    local n=$1 i reason
    preflight
    take_lock

    STEP="node image"
    bash "$SANDBOX_DIR/build-node-image.sh" | sed 's/^/[fleet]   /'

    ensure_keys "$n"
    write_known_hosts "$n"
    write_inventory "$n"

    STEP="containers"
    COMMON_SPEC=$(common_spec)
    read_containers
    local extra=() keep=() create=()
    for i in "${!NODE_STATE[@]}"; do
        [ "$i" -gt "$n" ] && extra+=("$i")
    done
    for i in $(seq 1 "$n"); do
        if [ "${NODE_STATE[$i]:-}" = running ] && [ "${NODE_SPEC[$i]:-}" = "$(node_spec "$i")" ]; then
            keep+=("$i")
        else
            create+=("$i")
            case "${NODE_STATE[$i]:-}" in
                "") NODE_NOTE[$i]=created ;;
                running) NODE_NOTE[$i]="recreated (container out of date)" ;;
                *) NODE_NOTE[$i]="recreated (container was ${NODE_STATE[$i]})" ;;
            esac
        fi
    done

    if [ "${#extra[@]}" -gt 0 ]; then
        log "removing ${#extra[@]} node(s) above api-$n"
        run_parallel "$PARALLEL" remove_node "${extra[@]}"
    fi

    # A running, current node is kept when it answers; otherwise recreated.
    if [ "${#keep[@]}" -gt 0 ]; then
        run_parallel "$MAX_NODES" probe_node "${keep[@]}"
        for i in "${keep[@]}"; do
            reason=$(cat "$WORK/probe.$i" 2>/dev/null || echo "probe failed")
            if [ "$reason" = ok ]; then
                NODE_NOTE[$i]=kept
            else
                log "api-$i: $reason: recreating it"
                NODE_NOTE[$i]="recreated (did not answer)"
                create+=("$i")
            fi
        done
    fi

    if [ "${#create[@]}" -gt 0 ]; then
        STEP="containers"
        log "starting ${#create[@]} node(s): ${create[*]/#/api-}"
        run_parallel "$PARALLEL" remove_node "${create[@]}"
        check_ports "${create[@]}"
        run_parallel "$PARALLEL" create_node "${create[@]}"
        STEP="readiness"
        local started=()
        for i in "${create[@]}"; do
            if [ "$(cat "$WORK/run.$i")" = ok ]; then
                started+=("$i")
            else
                cp "$WORK/run.$i" "$WORK/probe.$i"
            fi
        done
        [ "${#started[@]}" -eq 0 ] || run_parallel "$MAX_NODES" wait_ready "${started[@]}"
        # An old image left dangling by a rebuild (only images this sandbox built).
        "$DOCKER" image prune --force --filter label=org.nexus-sandbox.build >/dev/null
    fi

    local failed=()
    for i in $(seq 1 "$n"); do
        [ "$(cat "$WORK/probe.$i" 2>/dev/null)" = ok ] || failed+=("$i")
    done
    if [ "${#failed[@]}" -gt 0 ]; then
        for i in "${failed[@]}"; do
            echo "[fleet] FAILED: api-$i (nexus-node-$i): $(cat "$WORK/probe.$i" 2>/dev/null || echo 'no result')" >&2
            "$DOCKER" logs --tail 5 "nexus-node-$i" 2>&1 | sed "s/^/[fleet]   api-$i log: /" >&2 || true
        done
        exit 1
    fi
    echo "[fleet] $n API node(s) up ($(elapsed) s)"
    print_table "$n"
}

cmd_down() {
    STEP="down"
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    take_lock
    rm -f "$INVENTORY"
    if ! "$DOCKER" info >/dev/null 2>&1; then
        log "dockerd is not running: no node is running either"
        return 0
    fi
    local nums
    mapfile -t nums < <("$DOCKER" ps -a --filter "label=$LABEL_NODE" --format "{{.Label \"$LABEL_NODE\"}}")
    if [ "${#nums[@]}" -gt 0 ]; then
        log "removing ${#nums[@]} node container(s)"
        run_parallel "$PARALLEL" remove_node "${nums[@]}"
    fi
    log "fleet is down (keys kept in $FLEET_DIR)"
}

check_ports() {
    STEP="ports"
    local listening i port
    listening=$(ss -Hltn | awk '{print $4}')
    for i in "$@"; do
        for port in "$(ssh_port "$i")" "$(gateway_port "$i")" "$(https_port "$i")"; do
            if grep -Eq "[:.]$port\$" <<<"$listening"; then
                die "port $port of api-$i is already in use: $(ss -Hltnp "sport = :$port" | head -n 1)"
            fi
        done
    done
}

cmd_status() {
    STEP="status"
    read_containers
    local n=0 i
    for i in "${!NODE_STATE[@]}"; do
        [ "$i" -gt "$n" ] && n=$i
    done
    if [ "$n" -eq 0 ]; then
        log "no node containers"
        return 0
    fi
    [ -s "$CLIENT_KEY" ] || die "no client key $CLIENT_KEY"
    run_parallel "$MAX_NODES" probe_node $(seq 1 "$n")
    local bad=0
    for i in $(seq 1 "$n"); do
        NODE_NOTE[$i]="${NODE_STATE[$i]:-absent}: $(cat "$WORK/probe.$i")"
        [ "$(cat "$WORK/probe.$i")" = ok ] || bad=1
    done
    echo "[fleet] $n node(s)"
    print_table "$n"
    return "$bad"
}

case "${1:-}" in
    up)
        if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]] || [ $((10#$2)) -lt 1 ] || [ $((10#$2)) -gt "$MAX_NODES" ]; then
            usage
        fi
        n=$((10#$2))
        cmd_up "$n"
        ;;
    down)
        [ $# -eq 1 ] || usage
        cmd_down
        ;;
    status)
        [ $# -eq 1 ] || usage
        cmd_status || exit 1
        ;;
    *) usage ;;
esac
