"""One deployment run's lifecycle: its audit trail, its prechecks, its gate, its activation."""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from nexus_deploy import __version__
from nexus_deploy.audit import AuditLog, anchor
from nexus_deploy.change.request import ActivationRequest
from nexus_deploy.config.profile import TargetProfile
from nexus_deploy.facts.bounded_host import BoundedHost, bounded_host, interrupt_commands
from nexus_deploy.runid import operator
from nexus_deploy.suite import record
from nexus_deploy.suite.decision import Decision, decide
from nexus_deploy.suite.files import RunFiles, open_audit, untrusted_directory
from nexus_deploy.suite.fleet import FleetRun
from nexus_deploy.suite.gate import runtime_problems
from nexus_deploy.suite.prechecks import Outcome, Status, Tally, base_name, host_of, precheck_label
from nexus_deploy.suite.prefetch import Declaration, Prefetch, concurrent_host, start_wanted

if TYPE_CHECKING:  # a precheck run never loads the activation stack
    from nexus_deploy.change.deployment import Deployment


EMERGENCY = "EMERGENCY"  # the summary line of an emergency move, first wherever it is shown


class DeploymentRun:
    """The plugin object of one run: its audit log, its gate, its activation if one was asked."""

    def __init__(
        self,
        run_id: str,
        profile: TargetProfile,
        profile_path: Path,
        files: RunFiles,
        prechecks: tuple[str, ...],
        request: ActivationRequest | None = None,
        config_dir: Path = Path("pfs"),
        prefetch: Prefetch | None = None,
        audit_key: bytes | None = None,
        fleet: FleetRun | None = None,
        expected: tuple[str, ...] | None = None,
    ) -> None:
        self.run_id = run_id
        self.prechecks = prechecks  # the catalogue: their names, in order
        self.fleet = fleet
        # What the gate wants: a label per precheck, per host of its role on a fleet.
        self.expected = expected or prechecks
        self.profile = profile
        self.profile_path = profile_path
        self.files = files
        self.request = request
        self.config_dir = config_dir
        self.tally = Tally(self.expected)
        self.notes: list[str] = []
        self.gate_problems: list[str] = []
        # Failed or not run, yet overridden by an emergency.
        self.red_prechecks: list[str] = []
        self.finished = False  # the closing audit lines are written
        self.activation_started = False
        self.deployment: Deployment | None = None
        self._prechecks_ended = False
        self._gate_audited = False
        self._started = time.monotonic()
        self.started_at = dt.datetime.now(dt.UTC)
        self.decision: Decision | None = None  # once the run is over (conclude)
        self._audit: AuditLog | None = None
        self.prefetch = prefetch or Prefetch()
        self.audit_key = audit_key

    @property
    def audit(self) -> AuditLog:
        assert self._audit is not None, "the audit log opens at session start"
        return self._audit

    @property
    def host(self) -> BoundedHost:
        """The target host; made on first use, so a backend that cannot start fails the checks
        that use it (each naming the cause) rather than the whole run."""
        return bounded_host(self.profile.host, self.profile.command_timeout_s)

    def host_for(self, node: str | None) -> BoundedHost:
        """The host a precheck runs on: a fleet's node, or the profile's own host."""
        return self.host if node is None or self.fleet is None else self.fleet.host(node)

    def profile_for(self, node: str | None) -> TargetProfile:
        """The profile as a precheck on ``node`` sees it (see nexus_deploy.config.fleet)."""
        return self.profile if node is None or self.fleet is None else self.fleet.profiles[node]

    def numbered_prechecks(self) -> list[tuple[int, str]]:
        """Every precheck label the run owes, with its precheck's number."""
        return [(self.prechecks.index(base_name(label)) + 1, label) for label in self.expected]

    @property
    def kind(self) -> str:
        return "precheck" if self.request is None else "deployment"

    @property
    def started(self) -> bool:
        return self._audit is not None

    def start(self) -> None:
        self.files.run_dir.mkdir(parents=True, exist_ok=True)
        self.files.point_latest_here()
        self._audit, note = open_audit(
            self.profile.audit.dir,
            self.files.run_dir,
            f"{self.kind}-{self.run_id}.log",
            self.audit_key,
        )
        untrusted = untrusted_directory(self.profile.audit.dir)
        for problem in filter(None, (note, untrusted)):
            self.notes.append(problem)
            self.gate_problems.append(problem)  # no activation without a trusted audit
        self.audit.write(
            "DEPLOYMENT_START",
            timestamp=int(time.time()),  # the runbook's field: seconds since the epoch
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
        from nexus_deploy.change.deployment import Deployment

        # On a fleet the activation is verified through every API node too.
        profile = self.fleet.verified_profile() if self.fleet else self.profile
        self.deployment = Deployment(
            self.request, profile, self.config_dir, self.audit, self.run_id, operator()
        )
        if not self.request.plan_only:
            denied = self.deployment.acquire_lock()
            if denied:
                self.gate_problems.append(denied)

    def collected(self, items: list[pytest.Item], tell: Callable[[str], None]) -> None:
        """The prechecks are known: audit them and gather their facts."""
        checks = [item for item in items if precheck_label(item)]
        labels = [precheck_label(item) or "" for item in checks]
        self.audit.write(
            "PRECHECK_START",
            timestamp=int(time.time()),
            selected=len(labels),
            order=",".join(labels) or "none",
            **({"hosts": len(self.fleet.fleet.nodes)} if self.fleet else {}),
        )
        if self.fleet is not None:
            # First in the queue: each node's questions about its make-up, in one round trip.
            for node in self.fleet.fleet.nodes:
                self.prefetch.start(BoundedHost.warm_probes, self.fleet.host(node.name))
        start_wanted(self.prefetch, self.declarations(checks), self.config_dir)
        # pytest sets and unsets PYTEST_CURRENT_TEST around every test. A thread that reads
        # os.environ meanwhile (requests does, for proxies) or starts a process (environ is
        # what it inherits) can fail with KeyError or EFAULT: seen here about once in 100
        # runs. So the background calls all end before the first test begins.
        self.prefetch.wait(tell)

    def declarations(self, checks: list[pytest.Item]) -> list[Declaration]:
        """Each collected precheck module with the profile it sees and the host its facts may
        be read on side by side (None: one by one, by the precheck itself)."""
        declared: dict[tuple[int, str | None], Declaration] = {}
        for item in checks:
            module, node = getattr(item, "module", None), host_of(item)
            if module is None or (id(module), node) in declared:
                continue
            profile = self.profile_for(node)
            # A fleet's hosts take commands from several threads (ssh never prompts there).
            host = (
                self.fleet.host(node)
                if self.fleet and node
                else concurrent_host(profile.host, profile.command_timeout_s)
            )
            declared[id(module), node] = Declaration(module, profile, host)
        return list(declared.values())

    def record(self, outcome: Outcome) -> None:
        self.tally.record(outcome)
        fields: dict[str, str | int | float | bool | None] = {}
        if outcome.host:
            fields["host"] = outcome.host
        fields["status"] = outcome.status.value
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
        emergency = self.request.emergency if self.request else None
        if emergency is None:
            self.close_gate(runtime_problems(self.tally))
        elif not self.activation_started and not self.gate_problems:
            # Red prechecks do not stop an emergency move down: what its write needs (valid
            # configs, the database, the lock) the write itself proves or refuses.
            self.red_prechecks = [*self.tally.failed, *self.tally.not_run]
            self.audit.write(
                "EMERGENCY_OVERRIDE",
                reason=emergency,
                operator=operator(),
                red=",".join(self.red_prechecks) or "none",
                request=self.request.summary if self.request else "",
            )
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
        if self.emergency_applied and exitstatus == pytest.ExitCode.TESTS_FAILED:
            # The move down took effect: what an emergency is for. Its red prechecks are in
            # every report and the audit, first.
            return pytest.ExitCode.OK
        return exitstatus

    @property
    def emergency_applied(self) -> bool:
        """An emergency move down that committed (and so was not refused by anything)."""
        progress = self.deployment.progress if self.deployment else None
        emergency = self.request is not None and self.request.emergency is not None
        return emergency and progress is not None and progress.committed

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def conclude(self, exitstatus: int) -> Decision:
        """The run is over: close its audit log, decide its verdict, and write what machines
        and the run history read (summary.json, reports/index.html)."""
        self.finish(exitstatus)
        self.decision = decide(self, exitstatus)
        data = record.summary_data(self, self.decision, exitstatus)
        self.files.run_dir.mkdir(parents=True, exist_ok=True)
        record.write_summary(self.files.run_dir, data)
        record.rebuild_index(self.files.run_dir.parent)
        return self.decision

    def finish(self, exitstatus: int) -> None:
        if self.finished:
            return
        self.finished = True
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
            duration=round(self.elapsed_s, 2),
            status="failed" if exitstatus else "emergency" if self.emergency_applied else "success",
        )
        self.audit.close()
        anchors, final = self.profile.audit.anchor_file, self.audit.final_hmac
        if anchors is not None and final is not None:
            try:
                anchor(anchors, self.audit.path, final)
            except OSError as exc:  # the log is whole and keyed; say the anchor is missing
                self.notes.append(f"audit log not anchored in {anchors}: {exc.strerror or exc}")

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
        lines = []
        if self.request.emergency is not None:  # first, wherever the summary is shown
            red = ", ".join(self.red_prechecks) or "none"
            lines.append(
                (
                    EMERGENCY,
                    f"{self.request.emergency} (operator {operator()}; red prechecks: {red})",
                )
            )
        lines.append(
            ("request", self.request.summary + (" (plan only)" if self.request.plan_only else ""))
        )
        outcome = self.deployment.progress if self.deployment else None
        point = outcome.restore_point if outcome else None
        if point is not None:
            lines.append(("restore point", f"{point.snapshot} ({point.keys} flags)"))
        if self.gate_problems:
            lines.append(("activation", "not run: " + "; ".join(self.gate_problems)))
        elif self.request.move is None:
            done = "nothing activated, as asked (--prepare)"
            lines.append(("activation", done if point else "not run"))
        elif outcome is None or not outcome.planned:
            lines.append(("activation", "not run"))
        else:
            state = (
                "rolled back automatically" if outcome.rolled_back
                else f"committed, not confirmed by the gateway ({outcome.unconfirmed}); the "
                "flags stay as written" if outcome.unconfirmed
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
        progress = self.deployment.progress if self.deployment else None
        if progress is not None and progress.restore_point is not None:
            point = progress.restore_point.files
            paths += [("restore point", point.state), ("restore script", point.script)]
        rollback = progress.rollback if progress else None
        if rollback is not None:
            paths += [("rollback", rollback.script), ("rollback sql", rollback.sql)]
            paths += [("rollback state", rollback.state)]
        paths += [("junit", self.files.junit), ("html report", self.files.html)]
        paths += [("summary", self.files.run_dir / record.SUMMARY_FILE)]
        paths += [("run history", self.files.run_dir.parent / record.INDEX_FILE)]
        paths += [("latest", self.files.latest)]
        return [(label, path) for label, path in paths if path.exists()]
