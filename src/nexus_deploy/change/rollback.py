"""Write-ahead rollback: before the first write, the prior rows and a script that restores them.

``rollback-<id>.sh`` needs only bash, psql, flock and sha256sum: no virtualenv, no password (libpq
reads $PGPASSWORD, $NEXUS_DB_PASSWORD or the pgpass file). It takes the deployment lock, restores
every key this run changed in one transaction, is idempotent, audits itself in a hash-chained
``rollback-<id>.log``, and refuses, naming the keys, if someone changed those flags since,
unless ``--force``.

With an audit key in the profile, the script's lines are keyed as the deployer's are
(``nexus_deploy.audit``): it reads the key file itself when it runs (never from its own text,
nor from a command line, where ``ps`` would show it) and computes HMAC-SHA256 in bash, with
printf and sha256sum. Each closing line is anchored, as the deployer anchors a closed log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from nexus_deploy.audit import genesis
from nexus_deploy.change.flags import literal, quote_identifier, restore_statements
from nexus_deploy.change.lock import ADVISORY_KEY
from nexus_deploy.config.profile import AuditSpec, DatabaseSpec
from nexus_deploy.values import FlagRow, JsonValue, to_json

STATUS_LINE = re.compile(r"^STATUS=\S+", re.MULTILINE)


@dataclass(frozen=True)
class RollbackFiles:
    script: Path
    sql: Path
    state: Path
    log: Path

    @classmethod
    def for_run(cls, audit_dir: Path, run_id: str) -> RollbackFiles:
        stem = audit_dir / f"rollback-{run_id}"
        return cls(*(stem.with_suffix(s) for s in (".sh", ".sql", ".json", ".log")))


def write_durably(path: Path, text: str, mode: int) -> str:
    """Write, fsync the file and its directory, and return the sha256 of the text."""
    temporary = path.with_name(f".{path.name}.tmp")
    # Made anew, never through a symlink someone left in the directory, and with its final
    # mode from the start (not 0644 until a chmod).
    temporary.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(temporary, flags, mode & 0o700), "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.chmod(mode)
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Restore:
    """What a rollback puts back: the prior row of every key the run changes (None: absent)."""

    run_id: str
    database: DatabaseSpec
    lock_file: Path
    prior: dict[str, FlagRow | None]
    expected: dict[str, JsonValue]  # what the run writes; anything else later is drift
    written_by: str
    # The profile's audit section: its key_file and anchor_file key the script's own log.
    audit: AuditSpec | None = None


def write_ahead(files: RollbackFiles, restore: Restore) -> str:
    """Write the state and the script; return the script's sha256 for the audit."""
    state = {
        "run_id": restore.run_id,
        "table": restore.database.flag_table,
        "written_by": restore.written_by,
        "keys": {
            key: {
                "prior": None if row is None else row.__dict__,
                "expected": to_json(restore.expected[key]),
            }
            for key, row in sorted(restore.prior.items())
        },
    }
    write_durably(files.state, json.dumps(state, indent=2) + "\n", 0o640)
    sql_sha = write_durably(files.sql, render_sql(restore), 0o640)
    return write_durably(files.script, render_script(files, restore, sql_sha), 0o750)


def set_status(files: RollbackFiles, status: str) -> str:
    """Record how the activation ended in the script's STATUS line; return the new sha256."""
    text = STATUS_LINE.sub(f"STATUS={status}", files.script.read_text(encoding="utf-8"), count=1)
    return write_durably(files.script, text, 0o750)


def render_sql(restore: Restore) -> str:
    """The psql script: lock, drift check, restore, all in one transaction.

    Kept in its own file and run with ``psql -f``: the values it carries come from the
    database, and nothing in them can reach the shell.
    """
    database, prior = restore.database, restore.prior
    if not prior:  # a restore point of an empty table: no row to put back (VALUES needs one)
        return f"-- run {restore.run_id} saved no flag: nothing to restore\n" + (
            "\\echo NEXUS_RESULT=already-restored\n"
        )
    rows = ",\n    ".join(
        "({key}, {pv}, {pa}, {pb}, {exp}::jsonb)".format(
            key=literal(key),
            pv="NULL::jsonb" if row is None else f"{literal(row.value)}::jsonb",
            pa="NULL::timestamptz" if row is None else f"{literal(row.updated_at)}::timestamptz",
            pb="NULL::text" if row is None else literal(row.updated_by),
            exp=literal(to_json(restore.expected[key])),
        )
        for key, row in sorted(prior.items())
    )
    return _SQL.format(
        run_id=restore.run_id,
        lock_key=ADVISORY_KEY,
        table=quote_identifier(database.flag_table),
        rows=rows,
        written_by=literal(restore.written_by),
        restore="\n".join(restore_statements(database.flag_table, prior)),
    )


def render_script(files: RollbackFiles, restore: Restore, sql_sha256: str) -> str:
    database, prior = restore.database, restore.prior
    passfile = shlex.quote(str(database.passfile)) if database.passfile else "''"
    key_file, anchor_file = (
        shlex.quote(str(path)) if path is not None else "''"
        for path in (
            restore.audit.key_file if restore.audit else None,
            restore.audit.anchor_file if restore.audit else None,
        )
    )
    return _TEMPLATE.format(
        run_id=restore.run_id,
        count=len(prior),
        keys=", ".join(sorted(prior)),
        host=shlex.quote(database.host),
        port=database.port,
        dbname=shlex.quote(database.dbname),
        user=shlex.quote(database.user),
        timeout=database.connect_timeout_s,
        passfile=passfile,
        password_env=database.password_env,
        log=shlex.quote(str(files.log)),
        sql=shlex.quote(str(files.sql)),
        sql_sha256=sql_sha256,
        lock_file=shlex.quote(str(restore.lock_file)),
        key_file=key_file,
        anchor_file=anchor_file,
        genesis=genesis(files.log.name),
    )


_TEMPLATE = r"""#!/usr/bin/env bash
# Rollback of nexus-deploy run {run_id}: puts back the {count} flags that run changed
# ({keys}) exactly as they were before it, in one transaction.
#
#   bash rollback-{run_id}.sh          restore; refuses if someone changed these flags since
#   bash rollback-{run_id}.sh --force  restore even so
#
# Needs bash, psql, flock, sha256sum. Holds no password: libpq uses $PGPASSWORD, else
# ${password_env}, else the pgpass file below. Holds no audit key either: it reads the key
# file below when it runs. Exit codes: 0 restored or already restored, 2 usage, 3 lock held,
# 4 flags changed since the run, 1 any other failure.
set -euo pipefail
STATUS=pending  # set by the deployer: pending, committed, not-committed, auto-rolled-back
RUN_ID={run_id}
AUDIT_LOG={log}
SQL_FILE={sql}
LOCK_FILE={lock_file}
AUDIT_KEY_FILE={key_file}  # '' : the log is chained, not keyed
ANCHOR_FILE={anchor_file}
export PGHOST={host} PGPORT={port} PGDATABASE={dbname} PGUSER={user} PGCONNECT_TIMEOUT={timeout}
export PGAPPNAME="nexus-rollback run=$RUN_ID" PGCLIENTENCODING=UTF8
if [ -z "${{PGPASSWORD:-}}" ] && [ -n "${{{password_env}:-}}" ]; then
  export PGPASSWORD="${{{password_env}}}"
fi
if [ -z "${{PGPASSWORD:-}}" ] && [ -n {passfile} ]; then export PGPASSFILE={passfile}; fi

# Root appends to these: never through a symlink someone left in the audit directory.
for path in "$AUDIT_LOG" "$LOCK_FILE" ${{ANCHOR_FILE:+"$ANCHOR_FILE"}}; do
  if [ -L "$path" ]; then echo "rollback refused: $path is a symlink" >&2; exit 1; fi
done

# The audit key, trusted on the deployer's terms: a regular file of ours that no one else may
# read or change, holding 64 hex digits. Kept only as HMAC pads in this shell's variables.
ipad="" opad=""
if [ -n "$AUDIT_KEY_FILE" ]; then
  key_problem=""
  if [ -L "$AUDIT_KEY_FILE" ] || [ ! -f "$AUDIT_KEY_FILE" ]; then
    key_problem="no audit key (or not a regular file)"
  else
    read -r key_owner key_mode < <(stat -c '%u %a' -- "$AUDIT_KEY_FILE")
    if [ "$key_owner" != "$EUID" ]; then
      key_problem="the audit key belongs to uid $key_owner, not us"
    elif (( (8#$key_mode & 8#077) != 0 )); then
      key_problem="the audit key has mode $key_mode; it must be 0600"
    else
      key_hex=$(head -c 256 -- "$AUDIT_KEY_FILE" | tr -d '[:space:]')
      [[ $key_hex =~ ^[0-9a-f]{{64}}$ ]] || key_problem="not an audit key (64 hex digits expected)"
    fi
  fi
  if [ -n "$key_problem" ]; then
    echo "rollback refused: $AUDIT_KEY_FILE: $key_problem" >&2
    exit 1
  fi
  for ((i = 0; i < 64; i++)); do
    byte=0
    if (( i < 32 )); then byte=$(( 16#${{key_hex:i*2:2}} )); fi
    printf -v ipad '%s\\x%02x' "$ipad" $(( byte ^ 0x36 ))
    printf -v opad '%s\\x%02x' "$opad" $(( byte ^ 0x5c ))
  done
  unset key_hex
fi

# HMAC-SHA256(key, $1), its first 16 hex digits: sha256(opad + sha256(ipad + message)). The
# pads are printf escapes, so the key's bytes reach sha256sum through a pipe, never argv.
hmac16() {{
  local inner
  inner=$( {{ printf "$ipad"; printf '%s' "$1"; }} | sha256sum | cut -c1-64)
  {{ printf "$opad"; printf "$(sed 's/../\\x&/g' <<< "$inner")"; }} | sha256sum | cut -c1-16
}}

force=false
case "${{1:-}}" in
  "") ;;
  --force) force=true ;;
  *) echo "usage: bash $0 [--force]" >&2; exit 2 ;;
esac

# The same hash chain as the deployer's audit lines: sha = sha256(previous sha + "\n" + body);
# with the key, hmac = HMAC(key, previous hmac + "\n" + body) before it, and a closing line's
# hmac is anchored outside the audit directory.
audit() {{
  local body previous sha previous_hmac="" mac=""
  body="[AUDIT] $(date -u '+%Y-%m-%d %H:%M:%S') $*"
  previous=""
  # One writer at a time, whoever holds the deployment lock or not (a refusal is written
  # without it): two scripts chaining onto the same last line would break the chain.
  flock -x 8
  # A last line without its newline (a writer died mid-line) is not chained onto.
  if [ -s "$AUDIT_LOG" ] && [ -n "$(tail -c 1 "$AUDIT_LOG")" ]; then
    echo "rollback refused: $AUDIT_LOG ends in a torn line; move it aside first" >&2
    exit 1
  fi
  if [ -s "$AUDIT_LOG" ]; then
    previous=$(tail -n 1 "$AUDIT_LOG" | sed -n 's/.* sha=\([0-9a-f]\{{16\}}\)$/\1/p')
    previous_hmac=$(tail -n 1 "$AUDIT_LOG" | sed -n 's/.* hmac=\([0-9a-f]\{{16\}}\) sha=.*/\1/p')
  fi
  if [ -n "$AUDIT_KEY_FILE" ]; then
    mac=$(hmac16 "$(printf '%s\n%s' "${{previous_hmac:-{genesis}}}" "$body")")
    body="$body hmac=$mac"
  fi
  sha=$(printf '%s\n%s' "${{previous:-{genesis}}}" "$body" | sha256sum | cut -c1-16)
  printf '%s sha=%s\n' "$body" "$sha" >> "$AUDIT_LOG"
  sync "$AUDIT_LOG"
  case "$1" in
    ROLLBACK_COMPLETE|ROLLBACK_REFUSED|ROLLBACK_FAILED)
      if [ -n "$mac" ] && [ -n "$ANCHOR_FILE" ]; then
        mkdir -p -- "$(dirname -- "$ANCHOR_FILE")"
        (umask 077; printf '%s %s\n' "$(basename -- "$AUDIT_LOG")" "$mac" >> "$ANCHOR_FILE")
        sync "$ANCHOR_FILE"
      fi ;;
  esac
  flock -u 8
}}
now_ms() {{ date +%s%3N; }}

started=$(now_ms)
exec 8>>"$AUDIT_LOG"
exec 9>>"$LOCK_FILE"
if ! flock -n 9; then
  audit ROLLBACK_REFUSED run_id="$RUN_ID" reason="\"host deployment lock $LOCK_FILE is held\""
  echo "rollback refused: another deployment holds $LOCK_FILE" >&2
  exit 3
fi
audit ROLLBACK_START run_id="$RUN_ID" force="$force" keys={count} deployment_status="$STATUS"

if ! sha256sum --status --check <<< "{sql_sha256}  $SQL_FILE"; then
  audit ROLLBACK_REFUSED run_id="$RUN_ID" reason="\"$SQL_FILE is not the file the deployer wrote\""
  echo "rollback refused: $SQL_FILE was changed since run $RUN_ID wrote it" >&2
  exit 1
fi
if ! output=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -v force="$force" -f "$SQL_FILE" 2>&1); then
  audit ROLLBACK_FAILED run_id="$RUN_ID" reason="\"psql failed\""
  printf 'rollback failed: %s\n' "$output" >&2
  exit 1
fi

result=$(printf '%s\n' "$output" | sed -n 's/^NEXUS_RESULT=//p')
duration_ms=$(( $(now_ms) - started ))
case "$result" in
  restored|already-restored)
    audit ROLLBACK_COMPLETE run_id="$RUN_ID" result="$result" duration_ms="$duration_ms"
    echo "rollback of run $RUN_ID: $result ({count} flags) in $duration_ms ms" ;;
  locked)
    audit ROLLBACK_REFUSED run_id="$RUN_ID" reason="\"a deployment holds the database lock\""
    echo "rollback refused: a deployment holds the nexus-deploy database lock" >&2
    exit 3 ;;
  drift\ *)
    keys=${{result#drift }}
    audit ROLLBACK_REFUSED run_id="$RUN_ID" reason="\"changed since the run\"" keys="$keys"
    echo "rollback refused: flags changed by someone else since run $RUN_ID: $keys" >&2
    echo "rerun with --force to restore them anyway" >&2
    exit 4 ;;
  *)
    audit ROLLBACK_FAILED run_id="$RUN_ID" reason="\"unexpected psql output\""
    printf 'rollback failed: unexpected psql output: %s\n' "$output" >&2
    exit 1 ;;
esac
"""


def drifted_keys(
    rows: dict[str, FlagRow],
    prior: dict[str, FlagRow | None],
    expected: dict[str, JsonValue],
    written_by: str,
) -> str:
    """Keys neither as before the run nor as the run wrote them (the script's SQL, in Python)."""
    drifted = []
    for key, before in sorted(prior.items()):
        now = rows.get(key)
        ours = (
            now is not None
            and now.updated_by == written_by
            and (to_json(now.decoded) == to_json(expected[key]))
        )
        if now != before and not ours:
            drifted.append(key)
    return ",".join(drifted)


def load_prior(state_file: Path) -> dict[str, FlagRow | None]:
    """The prior rows a state file holds, as ``write_ahead`` saved them."""
    state = json.loads(state_file.read_text(encoding="utf-8"))
    return {
        key: None if entry["prior"] is None else FlagRow(**entry["prior"])
        for key, entry in state["keys"].items()
    }


_SQL = r"""-- Rollback of nexus-deploy run {run_id}, run by rollback-{run_id}.sh through psql.
SET standard_conforming_strings = on;
BEGIN;
SELECT pg_try_advisory_xact_lock({lock_key}) AS locked \gset
\if :locked
\else
  \echo NEXUS_RESULT=locked
  \quit
\endif
-- Each key is either as before the run (restored), as the run wrote it (ours), or changed
-- by someone else since (drifted). NULL-safe throughout: a key absent before the run, or
-- deleted since, must never compare as "unknown" and slip past the drift check.
WITH run(key, prior_value, prior_at, prior_by, expected) AS (VALUES
    {rows}
), state AS (
  SELECT run.key,
    f.value IS NOT DISTINCT FROM run.prior_value
      AND f.updated_at IS NOT DISTINCT FROM run.prior_at
      AND f.updated_by IS NOT DISTINCT FROM run.prior_by AS restored,
    coalesce(f.value = run.expected AND f.updated_by = {written_by}, false) AS ours
  FROM run LEFT JOIN {table} f ON f.key = run.key
)
SELECT string_agg(key, ',' ORDER BY key) FILTER (WHERE NOT (restored OR ours)) AS drifted,
       bool_and(restored) AS restored
FROM state \gset
\if :restored
  \echo NEXUS_RESULT=already-restored
  \quit
\endif
\if :{{?drifted}}
  \if :force
  \else
    \echo NEXUS_RESULT=drift :drifted
    \quit
  \endif
\endif
{restore}
COMMIT;
\echo NEXUS_RESULT=restored
"""
