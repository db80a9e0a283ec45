"""Precheck 2, SERVICES: docker and nginx running, as the host's own service manager reports."""

from __future__ import annotations

import pytest

from nexus_deploy.facts import host as host_facts
from nexus_deploy.verdict import no_problems

pytestmark = [pytest.mark.precheck("SERVICES"), pytest.mark.order(2)]


def test_services(host, target, record_property, prefetch):
    problems = []
    for name in target.services:
        running = prefetch.result(host_facts.service_running, host, name)
        record_property(f"{name}_running", running)
        if running:
            continue
        if host_facts.service_installed(host, name):
            problems.append(f"service {name} is not running")
        else:
            problems.append(f"service {name} is not installed (no such service on the host)")
    no_problems(problems)
