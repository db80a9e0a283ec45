#!/bin/bash
# Entrypoint of the local/nexus-postgres:15 image (copied into the image by
# build-postgres-image.sh as /usr/local/bin/nexus-postgres-entrypoint).
#
# First start (empty data directory): initdb with scram-sha-256 for TCP
# logins, then create the role `nexus` owning the database `nexus`, with the
# password read from a file mounted into the container at run time. The
# password is never part of the image.
# Every start: exec postgres listening on 127.0.0.1:55432 only.
set -euo pipefail

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
# The image sets PGPORT=55432, so `docker exec ... psql` finds the socket too.
PGPORT="${PGPORT:-55432}"
PASSWORD_FILE="${NEXUS_DB_PASSWORD_FILE:-/run/secrets/nexus-db-password}"
# The in-container unix socket is only for the bootstrap below and for
# `docker exec ... psql` maintenance; clients use TCP on 127.0.0.1.
SOCKET_DIR=/var/run/postgresql

log() { echo "nexus-postgres-entrypoint: $*" >&2; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ ! -r "$PASSWORD_FILE" ] || [ ! -s "$PASSWORD_FILE" ]; then
        log "first start needs the nexus password in $PASSWORD_FILE (mount it read-only)"
        exit 1
    fi
    log "empty data directory $PGDATA: running initdb"
    # peer auth on the local socket (only the postgres OS user inside the
    # container can use it), scram-sha-256 for every TCP login.
    initdb --pgdata="$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 >/dev/null

    # A private, socket-only server for the bootstrap: nothing can log in over
    # TCP before the role and its password exist.
    pg_ctl --pgdata="$PGDATA" --silent --wait \
        -o "-c listen_addresses='' -c unix_socket_directories=$SOCKET_DIR" start
    # \set with backticks reads the password inside psql, so it never shows
    # up in a process list; :'pw' quotes it as an SQL literal.
    psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 --host="$SOCKET_DIR" \
        --username=postgres --dbname=postgres <<SQL
\\set pw \`cat $PASSWORD_FILE\`
CREATE ROLE nexus LOGIN PASSWORD :'pw';
CREATE DATABASE nexus OWNER nexus;
SQL
    pg_ctl --pgdata="$PGDATA" --silent --wait --mode=fast stop
    log "created role nexus and database nexus"
fi

exec postgres -D "$PGDATA" \
    -c listen_addresses=127.0.0.1 \
    -c port="$PGPORT" \
    -c unix_socket_directories="$SOCKET_DIR" \
    -c password_encryption=scram-sha-256
