"""PREVIOUS_PHASES: the phase 1 and 2 audit reports exist and state completion."""

from __future__ import annotations

import pytest

from nexus_deploy.facts import host as host_facts
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck


def wanted_facts(target, config_dir):
    spec = target.previous_phases
    reports = [(str(report), spec.completion_marker) for report in spec.reports]
    return Wanted(on_host=[(host_facts.report_state, args) for args in reports])


def test_previous_phases(host, target, record_property, prefetch):
    spec = target.previous_phases
    problems = []
    for report in map(str, spec.reports):
        state = prefetch.result(host_facts.report_state, host, report, spec.completion_marker)
        record_property(f"report:{report}", state)  # by path: two reports may share a name
        if state == "missing":
            problems.append(f"phase report {report} is missing")
        elif state == "incomplete":
            problems.append(f"phase report {report} has no line {spec.completion_marker!r}")
    no_problems(problems)
