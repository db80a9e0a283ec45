"""What the HTML report adds to pytest-html's defaults: the run, and each precheck's figures."""

from __future__ import annotations

import html
from typing import Any

import pytest
from pytest_html import extras
from pytest_metadata.plugin import metadata_key

from nexus_deploy.suite.prechecks import Outcome
from nexus_deploy.suite.run import EMERGENCY, DeploymentRun

# Where a report carries its precheck's status for the HTML results table.
STATUS_ATTRIBUTE = "nexus_precheck_status"


def attach_outcome(report: pytest.TestReport, outcome: Outcome) -> None:
    """Put a precheck's status and measured values into its row of the HTML report."""
    rows = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
        for key, value in outcome.measured.items()
    )
    reason = f"<p>{html.escape(outcome.reason)}</p>" if outcome.reason else ""
    table = (
        f'<div class="nexus-precheck"><p><b>PRECHECK_{outcome.name}</b> '
        f"status={outcome.status.value}</p>{reason}<table>{rows}</table></div>"
    )
    # TestReport declares no ``extras``; pytest-html reads it from the report all the same.
    setattr(report, "extras", [*getattr(report, "extras", []), extras.html(table)])  # noqa: B010
    mark_status(report, outcome)


def mark_status(report: pytest.TestReport, outcome: Outcome) -> None:
    """The precheck's status in the Precheck column of this report's row."""
    setattr(report, STATUS_ATTRIBUTE, outcome.status.value)


class HtmlHooks:
    """pytest-html hooks of a configured run."""

    def __init__(self, run: DeploymentRun) -> None:
        self.run = run

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        metadata = session.config.stash.get(metadata_key, None)
        if metadata is not None:
            metadata["Run id"] = self.run.run_id
            metadata["Target"] = f"{self.run.profile.name} ({self.run.profile_path})"

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        # pytest-html's Result says "Passed" of a WARNING: this column says which it was.
        cells.insert(1, '<th class="sortable" data-column-type="precheck">Precheck</th>')

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        status = html.escape(getattr(report, STATUS_ATTRIBUTE, ""))
        cells.insert(1, f'<td class="col-precheck">{status}</td>')

    def pytest_html_report_title(self, report: Any) -> None:
        report.title = f"nexus-deploy run {self.run.run_id} on {self.run.profile.name}"

    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        decided = self.run.summary()
        if decided and decided[0][0] == EMERGENCY:  # before anything else on the page
            prefix.append(
                f'<p class="nexus-emergency" style="color:#b00;font-size:1.3em"><b>EMERGENCY</b>: '
                f"{html.escape(decided[0][1])}</p>"
            )
            decided = decided[1:]
        tally = self.run.tally
        lines = [f"{name}: {outcome.status.value}" for name, outcome in tally.outcomes.items()]
        if tally.not_run:
            lines.append(f"not run: {', '.join(tally.not_run)}")
        prefix.append(
            f"<p>Run <b>{html.escape(self.run.run_id)}</b> against target "
            f"<b>{html.escape(self.run.profile.name)}</b>; audit log "
            f"<code>{html.escape(str(self.run.audit.path))}</code></p>"
            f"<p>Prechecks: {html.escape('; '.join(lines) or 'none ran')}</p>"
        )
        decisions = "".join(
            f"<li><b>{html.escape(name)}</b>: {html.escape(value)}</li>" for name, value in decided
        )
        if decisions:
            prefix.append(f'<ul class="nexus-activation">{decisions}</ul>')
