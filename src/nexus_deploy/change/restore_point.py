"""Restore points: the whole flag table, saved into the backup directory before a deployment
changes anything (the BACKUP precheck's "rollback preparation"), with a script beside it.

``<backup>/restore-<id>.json`` holds every row as stored; ``restore-<id>.sh`` (bash and psql,
like a rollback script) puts those rows back, refusing if any changed since unless ``--force``.
``restore_table`` puts the whole table back to a restore point (keys added since are removed),
in one transaction under the deployment lock, after taking a restore point of the table as it
was: so that a restore can be undone the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from nexus_deploy.audit import AuditLog
from nexus_deploy.change import rollback
from nexus_deploy.change.flags import read_rows, restore_statements
from nexus_deploy.change.plan import ABSENT
from nexus_deploy.change.refusal import Refused
from nexus_deploy.config.profile import AuditSpec, DatabaseSpec
from nexus_deploy.runid import is_run_id
from nexus_deploy.values import FlagRow, to_json

STATUS = "restore-point"  # the STATUS line of its scripts: no deployment's change to undo


@dataclass(frozen=True)
class RestorePoint:
    """A run's snapshot of the whole flag table and the script that restores it."""

    run_id: str
    files: rollback.RollbackFiles
    keys: int
    sha256: str  # of the script, for the audit

    @property
    def snapshot(self) -> Path:
        return self.files.state


def files_of(backup_dir: Path, run_id: str) -> rollback.RollbackFiles:
    """Where run ``run_id``'s restore point is (restore-<id>.json, .sh, .sql, .log)."""
    if not is_run_id(run_id):
        # Not repeated: what is not a run id may hold anything (../, escapes).
        raise Refused("the run id given is not a run id (YYYYMMDDTHHMMSSZ-xxxx)")
    stem = backup_dir / f"restore-{run_id}"
    return rollback.RollbackFiles(*(stem.with_suffix(s) for s in (".sh", ".sql", ".json", ".log")))


def write(
    files: rollback.RollbackFiles,
    rows: dict[str, FlagRow],
    run_id: str,
    database: DatabaseSpec,
    lock_file: Path,
    written_by: str,
    keyed_by: AuditSpec | None = None,
) -> str:
    """Save ``rows`` (the whole table) and the script that puts them back; the script's sha256."""
    restore = rollback.Restore(
        run_id,
        database,
        lock_file,
        dict[str, FlagRow | None](rows),
        {key: row.decoded for key, row in rows.items()},
        written_by,
        keyed_by,
    )
    rollback.write_ahead(files, restore)
    return rollback.set_status(files, STATUS)


def restore_table(
    connection: psycopg.Connection[Any],
    point: rollback.RollbackFiles,
    backup_dir: Path,
    new_run_id: str,
    database: DatabaseSpec,
    lock_file: Path,
    audit: AuditLog,
    written_by: str,
    keyed_by: AuditSpec | None = None,
) -> tuple[RestorePoint, int]:
    """Put the whole table back to the restore point ``point``, in one transaction (the caller
    holds the deployment lock); first save the table as it is as restore point
    ``new_run_id``. Returns that restore point and how many rows changed."""
    try:
        wanted = rollback.load_prior(point.state)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Refused(f"restore point {point.state} cannot be read: {type(exc).__name__}") from None
    table = database.flag_table
    with connection.transaction():
        rows = read_rows(connection, table, for_update=True)
        saved = take_rows(rows, backup_dir, new_run_id, database, lock_file, written_by, keyed_by)
        audit.write(
            "RESTORE_POINT", snapshot=str(saved.snapshot), keys=saved.keys, sha256=saved.sha256
        )
        changes = {
            key: wanted.get(key)
            for key in sorted(set(wanted) | set(rows))
            if rows.get(key) != wanted.get(key)
        }
        for statement in restore_statements(table, changes):
            connection.execute(statement.encode())
    # Audited once committed, as an activation's FLAG_SET lines are.
    for key, row in changes.items():
        now = rows.get(key)
        audit.write(
            "FLAG_SET",
            key=key,
            old=to_json(now.decoded) if now else ABSENT,
            new=to_json(row.decoded) if row else ABSENT,
        )
    return saved, len(changes)


def take_rows(
    rows: dict[str, FlagRow],
    backup_dir: Path,
    run_id: str,
    database: DatabaseSpec,
    lock_file: Path,
    written_by: str,
    keyed_by: AuditSpec | None = None,
) -> RestorePoint:
    """Save ``rows``, the whole table as just read, as run ``run_id``'s restore point; its
    script keys its log with ``keyed_by`` (the profile's audit section)."""
    files = files_of(backup_dir, run_id)
    sha = write(files, rows, run_id, database, lock_file, written_by, keyed_by)
    return RestorePoint(run_id, files, len(rows), sha)
