"""One activation, step by step: plan, guard, write-ahead rollback, apply, verify.

The activation tests call these steps in order; each step audits what it did and raises
``Refused`` with an operator's message when the deployment must stop.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from nexus_deploy import crash, db, phases
from nexus_deploy.audit import AuditLog
from nexus_deploy.change import guard, restore_point, rollback
from nexus_deploy.change.flags import decoded, read_rows, restore_statements, write_values
from nexus_deploy.change.lock import DeploymentLock, LockDenied
from nexus_deploy.change.plan import Change, desired_flags, diff
from nexus_deploy.change.refusal import Refused
from nexus_deploy.change.request import ActivationRequest
from nexus_deploy.change.verify import Seen, Visibility, wait_until_visible
from nexus_deploy.config.profile import TargetProfile
from nexus_deploy.phases import PhaseConfigs, load_phase_configs
from nexus_deploy.phases.base import ConfigError
from nexus_deploy.values import FlagRow


@dataclass
class Progress:
    """Where the activation got to, for the terminal summary and the rollback script's status."""

    changes: list[Change] = field(default_factory=list)
    planned: bool = False
    cleared: bool = False  # the progressive guard let this request through
    refusal: str = ""
    committed: bool = False
    rolled_back: bool = False
    unconfirmed: str = ""  # a move down the gateway could not confirm: left as written
    verification: str = ""  # what verification concluded, in a line
    seen: tuple[Seen, ...] = ()  # what each endpoint showed at the last look
    rollback: rollback.RollbackFiles | None = None
    restore_point: restore_point.RestorePoint | None = None


class Deployment:
    """The activation of one run, holding the database session that holds the lock."""

    def __init__(
        self,
        request: ActivationRequest,
        profile: TargetProfile,
        config_dir: Path,
        audit: AuditLog,
        run_id: str,
        operator: str,
    ) -> None:
        self.request = request
        self.profile = profile
        self.config_dir = config_dir
        self.audit = audit
        self.run_id = run_id
        self.operator = operator
        self.written_by = f"nexus-deploy run={run_id} operator={operator}"
        self.progress = Progress()
        self._connection: psycopg.Connection[Any] | None = None
        self._lock: DeploymentLock | None = None
        self._configs: PhaseConfigs | None = None
        self._planned_changes: list[Change] = []  # what the transaction writes, once planned

    @property
    def lock_file(self) -> Path:
        return self.profile.audit.dir / ".deploy.lock"

    @property
    def connection(self) -> psycopg.Connection[Any]:
        if self._connection is None:
            self._connection = db.connect(
                self.profile.database,
                autocommit=True,
                application_name=f"nexus-deploy run={self.run_id} op={self.operator}"[:63],
            )
        return self._connection

    def acquire_lock(self) -> str | None:
        """Take the deployment lock; return why not (LOCK_DENIED is audited) or None."""
        holder = {
            "run_id": self.run_id,
            "operator": self.operator,
            "host": socket.gethostname(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        try:
            self._lock = DeploymentLock(self.connection, self.lock_file, holder)
            self._lock.acquire(self.request.lock_timeout_s)
        except LockDenied as denied:
            self._lock = None
            self.audit.write(
                "LOCK_DENIED", holder=str(denied), waited_s=self.request.lock_timeout_s
            )
            return f"another deployment holds the lock: {denied}"
        except (psycopg.Error, OSError) as exc:
            self._lock = None
            reason = " ".join(str(exc).split())[:200]
            self.audit.write("LOCK_DENIED", reason=reason)
            return f"cannot take the deployment lock: {reason}"
        # pid= and timestamp= as the platform's runbook shows the line.
        self.audit.write(
            "LOCK_ACQUIRED",
            pid=os.getpid(),
            timestamp=int(time.time()),
            **holder,
            lock_file=str(self.lock_file),
        )
        crash.point("after-lock")
        return None

    def release_lock(self) -> None:
        """Let go of both locks and the session; safe to call twice, or on a dead connection."""
        try:
            if self._lock is not None:
                self._lock.release()
                self.audit.write("LOCK_RELEASED", run_id=self.run_id)
        finally:
            self._lock = None
            if self._connection is not None:
                self._connection.close()  # the server drops the session's advisory lock
                self._connection = None

    def configs(self) -> PhaseConfigs:
        """The phase configs, read once: what is applied is what was planned and guarded."""
        if self._configs is None:
            try:
                self._configs = load_phase_configs(self.config_dir)
            except ConfigError as exc:  # CONFIG said so too, unless an emergency overrode it
                raise Refused(f"the phase configs are not valid: {exc}") from None
        return self._configs

    @property
    def moving_down(self) -> bool:
        """Whether the move only turns features off (verification then never turns them on)."""
        move = self.request.wanted
        return phases.phase_named(move.phase).turns_off(move)

    def current_rows(self) -> dict[str, FlagRow]:
        return read_rows(self.connection, self.profile.database.flag_table)

    def take_restore_point(self) -> None:
        """Before anything changes: the whole flag table into the backup directory, with the
        script that restores it. A deployment that activates nothing (--prepare) also leaves
        its rollback script in the audit directory, returning the table to this point."""
        if self._lock is None:
            raise Refused("the deployment lock is not held")
        database, backup_dir = self.profile.database, self.profile.backup.dir
        rows = read_rows(self.connection, database.flag_table)
        point = restore_point.take_rows(
            rows, backup_dir, self.run_id, database, self.lock_file, self.written_by,
            self.profile.audit,
        )  # fmt: skip
        self.progress.restore_point = point
        self.audit.write(
            "RESTORE_POINT",
            snapshot=str(point.snapshot),
            script=str(point.files.script),
            keys=point.keys,
            sha256=point.sha256,
        )
        if self.request.move is None:
            files = rollback.RollbackFiles.for_run(self.profile.audit.dir, self.run_id)
            sha = restore_point.write(
                files, rows, self.run_id, database, self.lock_file, self.written_by,
                self.profile.audit,
            )  # fmt: skip
            self.progress.rollback = files
            self.audit.write(
                "ROLLBACK_WRITTEN", script=str(files.script), sha256=sha, keys=len(rows),
                restores="the restore point",
            )  # fmt: skip
        crash.point("after-restore-point")

    def make_plan(self) -> list[Change]:
        """Desired flags against current rows; audited line by line, changes nothing."""
        desired = desired_flags(self.request, self.configs())
        changes = diff(decoded(self.current_rows()), desired)
        self.audit.write(
            "PLAN",
            request=self.request.summary,
            changes=len(changes),
            unchanged=len(desired) - len(changes),
        )
        for change in changes:
            self.audit.write(
                "PLAN_CHANGE", key=change.key, old=change.old_text, new=change.new_text
            )
        self.progress.changes, self.progress.planned = changes, True
        return changes

    def check_progression(self) -> None:
        """The progressive guard; a refusal is audited and stops the activation."""
        refusals, overridden = self._guard(self.current_rows())
        if overridden:
            self.audit.write("SOAK_OVERRIDDEN", operator=self.operator, detail=overridden)
        if refusals:
            self.progress.refusal = refusals
            self.audit.write("GUARD", status="REFUSED", reason=refusals)
            raise Refused(refusals)
        self.audit.write("GUARD", status="PASS", request=self.request.summary)
        self.progress.cleared = True

    def _guard(self, rows: dict[str, FlagRow]) -> tuple[str, str | None]:
        result = guard.check(self.request, rows, self.configs(), dt.datetime.now(dt.UTC))
        return "; ".join(result.refusals), result.soak_overridden

    def apply(self) -> None:
        """Write-ahead rollback, then every change in one transaction, re-planned under the lock."""
        if not self.progress.cleared:
            raise Refused("the progressive guard did not clear this activation: nothing applied")
        if self._lock is None:
            raise Refused("the deployment lock is not held")
        try:
            changes = self._apply_in_one_transaction()
        except psycopg.OperationalError as lost:
            # The connection died, perhaps with COMMIT sent and its answer lost: whether the
            # change is live is settled by the database itself, never guessed.
            try:
                live = self.rows_written_by_this_run()
            except psycopg.Error:
                raise Refused(
                    "the database connection was lost during the change and the database "
                    "cannot be asked now: whether it is live is unknown; check `nexusctl "
                    "status`, and if it is, the rollback script restores it"
                ) from None
            if not live:
                raise Refused(
                    f"the database connection was lost ({' '.join(str(lost).split())[:200]}); "
                    "nothing was committed (no row carries this run's name)"
                ) from None
            changes = self._planned_changes
            self.audit.write("COMMIT_CONFIRMED", reason="the answer to COMMIT was lost")
        if not changes:
            return
        crash.point("after-commit")
        # Audited once committed, not before: a log must not claim a change that a crash
        # before COMMIT undid. A run killed right here leaves no FLAG_SET line, and its
        # changes are found live in the database (nexusctl rollback, history) by their author.
        for change in changes:
            self.audit.write("FLAG_SET", key=change.key, old=change.old_text, new=change.new_text)
        self.progress.changes, self.progress.committed = changes, True
        self.audit.write("ACTIVATION_COMMITTED", changes=len(changes), request=self.request.summary)

    def rows_written_by_this_run(self) -> bool:
        """Whether any flag row is, right now, as this run wrote it (on a fresh connection)."""
        table = self.profile.database.flag_table
        with db.connect(self.profile.database, autocommit=True) as connection:
            rows = read_rows(connection, table)
        return any(row.updated_by == self.written_by for row in rows.values())

    def _apply_in_one_transaction(self) -> list[Change]:
        table = self.profile.database.flag_table
        self._planned_changes = []
        with self.connection.transaction():
            # Read again inside the transaction, locking the existing rows until commit (the
            # advisory lock keeps deployers out; this keeps a platform write from slipping in).
            rows = read_rows(self.connection, table, for_update=True)
            refusals, _ = self._guard(rows)
            if refusals:
                raise Refused(f"the flags changed since the plan: {refusals}")
            changes = diff(decoded(rows), desired_flags(self.request, self.configs()))
            if not changes:
                self.audit.write("ACTIVATION_SKIPPED", reason="nothing to change")
                return []
            self._planned_changes = changes
            self._write_ahead(changes, rows)
            crash.point("after-write-ahead")
            write_values(self.connection, table, {c.key: c.new for c in changes}, self.written_by)
            crash.point("inside-transaction")
        return changes

    def _write_ahead(self, changes: list[Change], rows: dict[str, FlagRow]) -> None:
        """The rollback script and the prior rows, on disk before the first write."""
        files = rollback.RollbackFiles.for_run(self.profile.audit.dir, self.run_id)
        restore = rollback.Restore(
            self.run_id,
            self.profile.database,
            self.lock_file,
            {c.key: rows.get(c.key) for c in changes},
            {c.key: c.new for c in changes},
            self.written_by,
            self.profile.audit,
        )
        sha = rollback.write_ahead(files, restore)
        self.progress.rollback = files
        self.audit.write(
            "ROLLBACK_WRITTEN", script=str(files.script), sha256=sha, keys=len(changes)
        )

    def verify(self) -> None:
        """The new values must show through every endpoint; otherwise roll back and fail."""
        if not self.progress.committed:
            return
        expected = {c.key: c.new for c in self.progress.changes}
        spec = self.profile.gateway
        # An emergency looks once: the gateway may be what is down, and the flags stay as
        # written whatever it shows (see below); waiting would only delay the kill switch.
        timeout_s = 0.0 if self.request.emergency is not None else spec.verify_timeout_s
        crash.point("during-verification")
        try:
            seen = wait_until_visible(spec, expected, timeout_s)
        except Exception as exc:
            seen = Visibility(False, 0.0, f"verification failed: {type(exc).__name__}: {exc}")
        self.progress.seen = seen.seen
        self.progress.verification = (
            f"seen through every endpoint in {seen.elapsed_s:.2f} s" if seen.ok else seen.problem
        )
        if seen.ok:
            self.audit.write(
                "VERIFY", status="PASS", elapsed_s=round(seen.elapsed_s, 3),
                endpoints=",".join(s.name for s in seen.seen),
            )  # fmt: skip
            return
        if self.moving_down:
            # Rolling back a move down would turn features on again, maybe during the very
            # incident that turned them off: the flags stay off, and the run says so.
            self.progress.unconfirmed = seen.problem
            self.audit.write(
                "VERIFY", status="UNCONFIRMED", elapsed_s=round(seen.elapsed_s, 3),
                reason=seen.problem, kept="the flags as written (a move down is never undone)",
            )  # fmt: skip
            return
        self.audit.write(
            "VERIFY", status="FAIL", elapsed_s=round(seen.elapsed_s, 3), reason=seen.problem
        )
        self.auto_rollback()
        raise Refused(
            f"the new flags did not show within {spec.verify_timeout_s:g} s ({seen.problem}); "
            "the activation was rolled back"
        )

    def auto_rollback(self) -> None:
        """Restore the prior rows on the locked session, refusing (like the script) to
        overwrite a flag someone else changed since the commit."""
        files = self.progress.rollback
        assert files is not None
        prior = rollback.load_prior(files.state)
        expected = {c.key: c.new for c in self.progress.changes}
        table = self.profile.database.flag_table
        try:
            with self.connection.transaction():
                rows = read_rows(self.connection, table, for_update=True)
                drifted = rollback.drifted_keys(rows, prior, expected, self.written_by)
                if drifted:
                    raise Refused(f"flags changed by someone else since the commit: {drifted}")
                for statement in restore_statements(table, prior):
                    self.connection.execute(statement.encode())
                crash.point("during-auto-rollback")
        except (Refused, psycopg.Error) as exc:
            reason = " ".join(str(exc).split())[:300]
            self.audit.write("AUTO_ROLLBACK_FAILED", reason=reason, script=str(files.script))
            raise Refused(
                f"verification failed and the automatic rollback did not happen ({reason}); "
                f"check the flags, then run: bash {files.script}"
            ) from None
        self.progress.rolled_back = True
        self.audit.write("AUTO_ROLLBACK", keys=len(prior), script=str(files.script))

    def finish(self) -> None:
        """Mark the rollback script with how the activation ended, then let go of the lock."""
        files = self.progress.rollback
        try:
            if files is not None and self.request.move is not None:
                status = (
                    "auto-rolled-back" if self.progress.rolled_back
                    else "committed" if self.progress.committed
                    else "not-committed"
                )  # fmt: skip
                sha = rollback.set_status(files, status)
                self.audit.write(
                    "ROLLBACK_FINAL", script=str(files.script), status=status, sha256=sha
                )
        finally:
            self.release_lock()
