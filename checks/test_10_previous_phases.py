"""Precheck 10, PREVIOUS_PHASES: the phase 1 and 2 audit reports exist and state completion."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_deploy.verdict import no_problems

pytestmark = [pytest.mark.precheck("PREVIOUS_PHASES"), pytest.mark.order(10)]


def test_previous_phases(host, target, record_property):
    spec = target.previous_phases
    problems = []
    for report in map(str, spec.reports):
        document = host.file(report)
        complete = document.is_file and any(
            line.strip() == spec.completion_marker for line in document.content_string.splitlines()
        )
        state = "complete" if complete else "incomplete" if document.is_file else "missing"
        record_property(Path(report).name, state)
        if not document.is_file:
            problems.append(f"phase report {report} is missing")
        elif not complete:
            problems.append(f"phase report {report} has no line {spec.completion_marker!r}")
    no_problems(problems)
