"""SERVICES: docker and nginx running, as the host's own service manager reports."""

from __future__ import annotations

import pytest

from nexus_deploy.facts import host as host_facts
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck
# Checked on every API node of a fleet (see nexus_deploy.suite.fleet).
ROLE = "api"


def wanted_facts(target, config_dir):
    return Wanted(on_host=[(host_facts.service_running, (name,)) for name in target.services])


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
