"""What a run decided, in the words a reviewer decides from: one verdict and why.

GO (every precheck passed, nothing changed), APPLIED (changed, and verified), NO-GO (a
precheck failed), REFUSED (the gate, the guard, the lock, an activation that did not run),
ROLLED BACK (verification failed and the change was undone), EMERGENCY (a move down that ran
with red prechecks). The HTML report's banner, summary.json and the run history say the same.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus_deploy.suite.run import DeploymentRun


class Verdict(enum.Enum):
    GO = "GO"
    APPLIED = "APPLIED"
    NO_GO = "NO-GO"
    REFUSED = "REFUSED"
    ROLLED_BACK = "ROLLED BACK"
    EMERGENCY = "EMERGENCY"

    @property
    def css(self) -> str:
        """The banner's class: green, red, amber or purple, as a person reads colours."""
        return {
            Verdict.GO: "go",
            Verdict.APPLIED: "go",
            Verdict.NO_GO: "nogo",
            Verdict.REFUSED: "nogo",
            Verdict.ROLLED_BACK: "rolledback",
            Verdict.EMERGENCY: "emergency",
        }[self]


@dataclass(frozen=True)
class Decision:
    """The verdict, the one line that says why, and the details behind it."""

    verdict: Verdict
    headline: str
    reasons: list[str] = field(default_factory=list)


def decide(run: DeploymentRun, exitstatus: int) -> Decision:
    """The run's verdict once its tests are over (the gate, guard and change are settled)."""
    request, tally = run.request, run.tally
    progress = run.deployment.progress if run.deployment else None
    failed = [f"{name}: {tally.outcomes[name].reason}" for name in tally.failed]
    if request is not None and request.emergency is not None and run.emergency_applied:
        red = ", ".join(run.red_prechecks) or "none"
        return Decision(
            Verdict.EMERGENCY,
            f"{request.summary} applied in an emergency: {request.emergency}",
            [f"red prechecks: {red}", *failed],
        )
    summary = request.summary if request else "precheck"
    if progress is not None and progress.rolled_back:
        return Decision(
            Verdict.ROLLED_BACK,
            f"{summary}: the new flags did not show, the change was undone",
            [progress.verification],
        )
    if progress is not None and progress.committed:
        changed = f"{summary}: {len(progress.changes)} flag changes applied"
        if progress.unconfirmed:
            return Decision(
                Verdict.APPLIED,
                f"{changed}, not confirmed by the gateway (a move down: left as written)",
                [progress.unconfirmed],
            )
        return Decision(Verdict.APPLIED, f"{changed} and verified", [progress.verification])
    if failed:
        return Decision(Verdict.NO_GO, f"precheck failed: {', '.join(tally.failed)}", failed)
    if request is None and tally.not_run:  # a selection (-k, -m, paths) is no GO
        return Decision(Verdict.NO_GO, f"prechecks did not run: {', '.join(tally.not_run)}")
    refusals = list(run.gate_problems)
    if progress is not None and progress.refusal:
        refusals.append(f"guard: {progress.refusal}")
    if tally.not_run:
        refusals.append(f"prechecks did not run: {', '.join(tally.not_run)}")
    if refusals or exitstatus != 0:
        why = refusals or [f"the run ended with exit status {exitstatus}"]
        return Decision(Verdict.REFUSED, why[0], why)
    what = "nothing changed"
    if request is not None and progress is not None and progress.planned:
        what = f"plan only: {len(progress.changes)} flag changes, nothing changed"
        if not request.plan_only:
            what = "nothing to change"
    elif request is not None and request.move is None:
        what = "deployed: restore point and rollback script written, nothing activated"
    return Decision(Verdict.GO, f"all {len(tally.names)} prechecks passed; {what}")
