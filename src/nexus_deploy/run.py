"""One deployment run: its id, where its files go, and the audit trail of its prechecks."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from nexus_deploy import __version__
from nexus_deploy.audit import AuditLog
from nexus_deploy.bounded_host import BoundedHost, bounded_host, interrupt_commands
from nexus_deploy.deployment import Deployment
from nexus_deploy.gate import runtime_problems
from nexus_deploy.prechecks import WARNINGS_KEY, Outcome, Status, Tally, precheck_name
from nexus_deploy.prefetch import Prefetch
from nexus_deploy.probes import start_probes
from nexus_deploy.profile import TargetProfile
from nexus_deploy.request import ActivationRequest


def new_run_id(now: dt.datetime | None = None) -> str:
    """UTC ``YYYYMMDDTHHMMSSZ`` plus a short suffix, so two runs in one second stay apart."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunFiles:
    """Every file a run writes, known before it writes any."""

    run_dir: Path
    html: Path
    junit: Path
    latest: Path

    @classmethod
    def under(cls, reports_dir: Path, run_id: str) -> RunFiles:
        run_dir = reports_dir / run_id
        return cls(run_dir, run_dir / "report.html", run_dir / "junit.xml", reports_dir / "latest")

    def point_latest_here(self) -> None:
        # Build the new link beside the old one and rename over it: never a moment without one.
        temporary = self.latest.with_name(f".latest-{os.getpid()}")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(self.run_dir.name)
        temporary.replace(self.latest)


def operator() -> str:
    """Who runs the deployment, as the audit should name them (the sudo caller if any)."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def open_audit(directory: Path, fallback: Path, name: str) -> tuple[AuditLog, str | None]:
    """The audit log in the profile's directory, or in the run folder if that cannot be written."""
    try:
        return AuditLog(directory / name), None
    except OSError as exc:
        note = f"audit directory {directory} not writable ({exc.strerror}); audit in {fallback}"
        return AuditLog(fallback / name), note


def outcome_of(item: pytest.Item, report: pytest.TestReport) -> Outcome | None:
    """The precheck outcome a report settles, or None if the item is not finished yet."""
    name = precheck_name(item)
    if name is None:
        return None
    measured = {str(key): scalar(value) for key, value in report.user_properties}
    if report.failed:
        phase = "" if report.when == "call" else f"error in {report.when}: "
        return Outcome(name, Status.FAIL, measured, phase + failure_reason(report))
    if report.skipped:
        return Outcome(name, Status.FAIL, measured, "skipped: " + failure_reason(report))
    if report.when != "call":
        return None
    warnings = item.stash.get(WARNINGS_KEY, [])
    status = Status.WARNING if warnings else Status.PASS
    return Outcome(name, status, measured, "; ".join(warnings))


def scalar(value: object) -> str | int | float | bool:
    return value if isinstance(value, str | int | float | bool) else str(value)


def failure_reason(report: pytest.TestReport) -> str:
    """The one line an operator needs: the failure message, not the traceback."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, reason)
        text = str(report.longrepr[2])
    text = text.removeprefix("Failed: ").removeprefix("AssertionError: ")
    return text.split("\nassert ")[0].strip().replace("\n", " ")[:400]


class DeploymentRun:
    """The plugin object of one run: its audit log, its gate, its activation if one was asked."""

    def __init__(
        self,
        run_id: str,
        profile: TargetProfile,
        profile_path: Path,
        files: RunFiles,
        request: ActivationRequest | None = None,
        config_dir: Path = Path("pfs"),
        prefetch: Prefetch | None = None,
    ) -> None:
        self.run_id = run_id
        self.profile = profile
        self.profile_path = profile_path
        self.files = files
        self.request = request
        self.config_dir = config_dir
        self.tally = Tally()
        self.notes: list[str] = []
        self.gate_problems: list[str] = []
        self.activation_started = False
        self.deployment: Deployment | None = None
        self._prechecks_ended = False
        self._gate_audited = False
        self._started = time.monotonic()
        self._audit: AuditLog | None = None
        self.prefetch = prefetch or Prefetch()

    @property
    def audit(self) -> AuditLog:
        assert self._audit is not None, "the audit log opens at session start"
        return self._audit

    @property
    def host(self) -> BoundedHost:
        """The target host; made on first use, so a backend that cannot start fails the checks
        that use it (each naming the cause) rather than the whole run."""
        return bounded_host(self.profile.host, self.profile.command_timeout_s)

    @property
    def kind(self) -> str:
        return "precheck" if self.request is None else "deployment"

    def start(self) -> None:
        self.files.run_dir.mkdir(parents=True, exist_ok=True)
        self.files.point_latest_here()
        self._audit, note = open_audit(
            self.profile.audit.dir, self.files.run_dir, f"{self.kind}-{self.run_id}.log"
        )
        if note:
            self.notes.append(note)
            self.gate_problems.append(note)  # no activation without its audit in place
        self.audit.write(
            "DEPLOYMENT_START",
            run_id=self.run_id,
            version=__version__,
            target=self.profile.name,
            request=self.request.summary if self.request else "precheck",
            plan_only=bool(self.request and self.request.plan_only),
            operator=operator(),
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        if self.request is None:
            return
        self.deployment = Deployment(
            self.request, self.profile, self.config_dir, self.audit, self.run_id, operator()
        )
        if not self.request.plan_only:
            denied = self.deployment.acquire_lock()
            if denied:
                self.gate_problems.append(denied)

    def collected(self, items: list[pytest.Item], tell: Callable[[str], None]) -> None:
        """The prechecks are known: audit them and gather their facts."""
        names = [name for name in map(precheck_name, items) if name]
        self.audit.write("PRECHECK_START", selected=len(names), order=",".join(names) or "none")
        start_probes(self.prefetch, names, self.profile, self.config_dir)
        # pytest sets and unsets PYTEST_CURRENT_TEST around every test. A thread that reads
        # os.environ meanwhile (requests does, for proxies) or starts a process (environ is
        # what it inherits) can fail with KeyError or EFAULT: seen here about once in 100
        # runs. So the background calls all end before the first test begins.
        self.prefetch.wait(tell)

    def record(self, outcome: Outcome) -> None:
        self.tally.record(outcome)
        fields: dict[str, str | int | float | bool | None] = {"status": outcome.status.value}
        fields.update(outcome.measured)
        if outcome.reason:
            fields["reason"] = outcome.reason
        self.audit.write(f"PRECHECK_{outcome.name}", **fields)

    def end_prechecks(self) -> None:
        if self._prechecks_ended:
            return
        self._prechecks_ended = True
        tally = self.tally
        self.audit.write(
            "PRECHECK_END",
            passed=tally.count(Status.PASS),
            warnings=tally.count(Status.WARNING),
            failed=tally.count(Status.FAIL),
            not_run=",".join(tally.not_run) or "none",
        )

    def close_gate(self, problems: list[str]) -> None:
        """Record why activation will not run (once in the audit, however often asked)."""
        self.gate_problems += [p for p in problems if p not in self.gate_problems]
        if self.gate_problems and not self._gate_audited and self._audit is not None:
            self._gate_audited = True
            self.audit.write("GATE_CLOSED", reason="; ".join(self.gate_problems))
            if self.deployment is not None:
                self.deployment.release_lock()  # nothing will be activated: let others deploy

    def gate_before_activation(self) -> list[str]:
        """At the first activation test: end the prechecks and decide; [] opens the gate."""
        self.end_prechecks()
        self.close_gate(runtime_problems(self.tally))
        if not self.gate_problems and not self.activation_started:
            self.audit.write("GATE_OPEN", prechecks=len(self.tally.outcomes))
        self.activation_started = True
        return self.gate_problems

    def settle(self, stopped_early: str | None, exitstatus: int) -> int:
        """Before the reports are written: why an asked-for activation did not run, and the
        exit status that follows (asked to activate and did not is not "done")."""
        if self.request is None:
            return exitstatus
        if not self.activation_started:  # audits GATE_CLOSED if nothing has yet
            self.close_gate([f"session stopped early: {stopped_early}"] if stopped_early else [])
        if self.gate_problems and exitstatus == 0:
            return pytest.ExitCode.TESTS_FAILED
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:  # -k or -m left nothing to run
            return pytest.ExitCode.TESTS_FAILED  # asked to activate, and it did not run
        return exitstatus

    def finish(self, exitstatus: int) -> None:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        if interrupted:
            interrupt_commands()  # they run out of the terminal's reach (see bounded_host)
        # Interrupted: write the closing lines now, whatever background call still runs.
        self.prefetch.close(wait=not interrupted)
        self.end_prechecks()
        if self.request is not None and not self.activation_started:
            reason = "; ".join(self.gate_problems) or "activation not selected"
            self.audit.write("ACTIVATION_NOT_RUN", reason=reason)
        if self.deployment is not None:
            self.deployment.finish()
        self.audit.write(
            "DEPLOYMENT_COMPLETE",
            duration=round(time.monotonic() - self._started, 2),
            status="success" if exitstatus == 0 else "failed",
        )
        self.audit.close()

    def identity(self) -> list[tuple[str, str]]:
        """Which run this is, for the JUnit file: its id, target and audit log."""
        return [
            ("run_id", self.run_id),
            ("target", f"{self.profile.name} ({self.profile_path})"),
            ("audit_log", str(self.audit.path)),
        ]

    def summary(self) -> list[tuple[str, str]]:
        """What the run decided, for the terminal, the JUnit properties and the HTML report."""
        if self.request is None:
            return []
        lines = [
            ("request", self.request.summary + (" (plan only)" if self.request.plan_only else ""))
        ]
        outcome = self.deployment.outcome if self.deployment else None
        if self.gate_problems:
            lines.append(("activation", "not run: " + "; ".join(self.gate_problems)))
        elif outcome is None or not outcome.planned:
            lines.append(("activation", "not run"))
        else:
            state = (
                "rolled back automatically" if outcome.rolled_back
                else "committed" if outcome.committed
                else f"refused by the guard ({outcome.refusal})" if outcome.refusal
                else "plan only, nothing changed" if self.request.plan_only
                else "nothing to change" if not outcome.changes
                else "refused, nothing changed"
            )  # fmt: skip
            lines.append(("activation", f"{state}: {len(outcome.changes)} flag changes"))
            lines += [("change", change.describe()) for change in outcome.changes]
        return lines

    def written(self) -> list[tuple[str, Path]]:
        """What this run left on disk, for the terminal summary."""
        paths = [("audit log", self.audit.path)]
        rollback = self.deployment.outcome.rollback if self.deployment else None
        if rollback is not None:
            paths += [("rollback", rollback.script), ("rollback sql", rollback.sql)]
            paths += [("rollback state", rollback.state)]
        paths += [("junit", self.files.junit), ("html report", self.files.html)]
        paths += [("latest", self.files.latest)]
        return [(label, path) for label, path in paths if path.exists()]
