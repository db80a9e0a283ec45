"""One activation, step by step: plan, guard, write-ahead rollback, apply, verify.

The activation tests call these steps in order; each step audits what it did and raises
``Refused`` with an operator's message when the deployment must stop.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from nexus_deploy import guard, rollback
from nexus_deploy.audit import AuditLog
from nexus_deploy.facts import database
from nexus_deploy.flags import (
    FlagRow,
    decoded,
    read_rows,
    restore_statements,
    to_json,
    write_values,
)
from nexus_deploy.lock import DeploymentLock, LockDenied
from nexus_deploy.phase_config import PhaseConfigs, load_phase_configs
from nexus_deploy.plan import Change, desired_flags, diff
from nexus_deploy.profile import TargetProfile
from nexus_deploy.request import ActivationRequest
from nexus_deploy.verify import wait_until_visible


class Refused(Exception):
    """The deployment stops here; the message says why and what to do."""


@dataclass
class Outcome:
    """Where the activation got to, for the terminal summary and the rollback script's status."""

    changes: list[Change] = field(default_factory=list)
    planned: bool = False
    cleared: bool = False  # the progressive guard let this request through
    refusal: str = ""
    committed: bool = False
    rolled_back: bool = False
    rollback: rollback.RollbackFiles | None = None


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
        self.outcome = Outcome()
        self._connection: psycopg.Connection[Any] | None = None
        self._lock: DeploymentLock | None = None

    @property
    def lock_file(self) -> Path:
        return self.profile.audit.dir / ".deploy.lock"

    @property
    def connection(self) -> psycopg.Connection[Any]:
        if self._connection is None:
            self._connection = database.connect(
                self.profile.database,
                autocommit=True,
                application_name=f"nexus-deploy run={self.run_id} op={self.operator}"[:63],
                options="-c TimeZone=UTC",
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
        self.audit.write("LOCK_ACQUIRED", **holder, lock_file=str(self.lock_file))
        return None

    def release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            self.audit.write("LOCK_RELEASED", run_id=self.run_id)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def configs(self) -> PhaseConfigs:
        return load_phase_configs(self.config_dir)

    def current_rows(self) -> dict[str, FlagRow]:
        return read_rows(self.connection, self.profile.database.flag_table)

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
            old = to_json(change.old) if change.existed else "(absent)"
            self.audit.write("PLAN_CHANGE", key=change.key, old=old, new=to_json(change.new))
        self.outcome.changes, self.outcome.planned = changes, True
        return changes

    def check_progression(self) -> None:
        """The progressive guard; a refusal is audited and stops the activation."""
        result = guard.check(
            self.request, self.current_rows(), self.configs(), dt.datetime.now(dt.UTC)
        )
        if result.soak_overridden:
            self.audit.write(
                "SOAK_OVERRIDDEN", operator=self.operator, detail=result.soak_overridden
            )
        if result.refusals:
            self.outcome.refusal = "; ".join(result.refusals)
            self.audit.write("GUARD", status="REFUSED", reason=self.outcome.refusal)
            raise Refused(self.outcome.refusal)
        self.audit.write("GUARD", status="PASS", request=self.request.summary)
        self.outcome.cleared = True

    def apply(self) -> None:
        """Write-ahead rollback, then every change in one transaction, re-planned under the lock."""
        if not self.outcome.cleared:
            raise Refused("the progressive guard did not clear this activation: nothing applied")
        if self._lock is None:
            raise Refused("the deployment lock is not held")
        table = self.profile.database.flag_table
        with self.connection.transaction():
            # Lock the rows (and read them) inside the transaction that changes them.
            rows = read_rows(self.connection, table)
            changes = diff(decoded(rows), desired_flags(self.request, self.configs()))
            if not changes:
                self.audit.write("ACTIVATION_SKIPPED", reason="nothing to change")
                return
            prior = {c.key: rows.get(c.key) for c in changes}
            files = rollback.RollbackFiles.for_run(self.profile.audit.dir, self.run_id)
            restore = rollback.Restore(
                self.run_id,
                self.profile.database,
                self.lock_file,
                prior,
                {c.key: c.new for c in changes},
                self.written_by,
            )
            sha = rollback.write_ahead(files, restore)
            self.outcome.rollback = files
            self.audit.write(
                "ROLLBACK_WRITTEN", script=str(files.script), sha256=sha, keys=len(prior)
            )
            write_values(self.connection, table, {c.key: c.new for c in changes}, self.written_by)
            for change in changes:
                old = to_json(change.old) if change.existed else "(absent)"
                self.audit.write("FLAG_SET", key=change.key, old=old, new=to_json(change.new))
        self.outcome.changes, self.outcome.committed = changes, True
        self.audit.write("ACTIVATION_COMMITTED", changes=len(changes), request=self.request.summary)

    def verify(self) -> None:
        """The new values must show through every endpoint; otherwise roll back and fail."""
        if not self.outcome.committed:
            return
        expected = {c.key: c.new for c in self.outcome.changes}
        spec = self.profile.gateway
        seen = wait_until_visible(spec, expected, spec.verify_timeout_s)
        if seen.ok:
            self.audit.write("VERIFY", status="PASS", elapsed_s=round(seen.elapsed_s, 3))
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
        """Restore the prior rows on the locked session, the same SQL the script runs."""
        assert self.outcome.rollback is not None
        state = rollback.load_prior(self.outcome.rollback.state)
        with self.connection.transaction():
            for statement in restore_statements(self.profile.database.flag_table, state):
                self.connection.execute(statement.encode())
        self.outcome.rolled_back = True
        self.audit.write("AUTO_ROLLBACK", keys=len(state), script=str(self.outcome.rollback.script))

    def finish(self) -> None:
        """Mark the rollback script with how the activation ended, then let go of the lock."""
        files = self.outcome.rollback
        if files is not None:
            status = (
                "auto-rolled-back"
                if self.outcome.rolled_back
                else ("committed" if self.outcome.committed else "not-committed")
            )
            sha = rollback.set_status(files, status)
            self.audit.write("ROLLBACK_FINAL", script=str(files.script), status=status, sha256=sha)
        self.release_lock()
