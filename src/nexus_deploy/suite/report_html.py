"""What the HTML report adds to pytest-html's defaults: the verdict and the decision material
first (see report_page), the Precheck column, and no empty log boxes."""

from __future__ import annotations

import html
from typing import Any

import pytest
from pytest_metadata.plugin import metadata_key

from nexus_deploy.suite import report_page
from nexus_deploy.suite.prechecks import Outcome
from nexus_deploy.suite.run import EMERGENCY, DeploymentRun

# Where a report carries its precheck's status for the HTML results table.
STATUS_ATTRIBUTE = "nexus_precheck_status"
NO_LOG = "No log output captured."


def attach_outcome(report: pytest.TestReport, outcome: Outcome) -> None:
    """Mark a precheck's row with its status; its figures are in the table at the top."""
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
            # The run, not the Python build: the interpreter and plugins are one `pip freeze`
            # away, and a reviewer needs what ran where.
            metadata.clear()
            metadata["Run id"] = self.run.run_id
            metadata["Target"] = f"{self.run.profile.name} ({self.run.profile_path})"

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        # pytest-html's Result says "Passed" of a WARNING: this column says which it was.
        cells.insert(1, '<th class="sortable" data-column-type="precheck">Precheck</th>')

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        status = html.escape(getattr(report, STATUS_ATTRIBUTE, ""))
        cells.insert(1, f'<td class="col-precheck">{status}</td>')

    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list[str]) -> None:
        if data == [NO_LOG]:
            data.clear()  # an empty box under every passed test says nothing

    def pytest_html_report_title(self, report: Any) -> None:
        decision = self.run.decision
        verdict = f"{decision.verdict.value}: " if decision else ""
        report.title = f"{verdict}nexus-deploy run {self.run.run_id} on {self.run.profile.name}"

    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        decision = self.run.decision
        if decision is not None:
            prefix.append(report_page.top_of_report(self.run, decision))
        decided = self.run.summary()
        if decided and decided[0][0] == EMERGENCY:  # shown in the banner, first
            decided = decided[1:]
        decisions = "".join(
            f"<li><b>{html.escape(name)}</b>: {html.escape(value)}</li>" for name, value in decided
        )
        if decisions:
            prefix.append(f'<ul class="nexus-activation">{decisions}</ul>')
