"""API: every gateway health endpoint answers ok, directly and through nginx."""

from __future__ import annotations

import pytest

from nexus_deploy.facts.http import probe_health
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck


def wanted_facts(target, config_dir):
    spec = target.gateway
    health = [(e.url + spec.health_path, spec.timeout_s, spec.ca_file) for e in spec.endpoints]
    return Wanted(from_deployer=[(probe_health, args) for args in health])


def test_api(target, record_property, prefetch):
    spec = target.gateway
    problems = []
    for endpoint in spec.endpoints:
        url = endpoint.url + spec.health_path
        probe = prefetch.result(probe_health, url, spec.timeout_s, spec.ca_file)
        record_property(f"{endpoint.name}_url", probe.url)
        record_property(f"{endpoint.name}_status", probe.status_code or "none")
        record_property(f"{endpoint.name}_latency_ms", round(probe.latency_ms, 1))
        if probe.ca_problem:
            problems.append(f"{endpoint.name} {probe.url}: {probe.ca_problem}")
        elif probe.error:
            problems.append(f"{endpoint.name} {probe.url} unreachable: {probe.error[:200]}")
        elif probe.status_code != 200 or probe.body_status != "ok":
            problems.append(
                f"{endpoint.name} {probe.url} answered {probe.status_code} "
                f"with status {probe.body_status!r}, expected 200 and 'ok'"
            )
    no_problems(problems)
