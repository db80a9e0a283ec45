"""SERVICES: the profile's services running, as the host's own service manager reports; and,
where the profile names it (a fleet's nodes), the gateway healthy as its own host reaches it."""

from __future__ import annotations

import pytest

from nexus_deploy.facts import host as host_facts
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck
# Checked on every API node of a fleet (see nexus_deploy.suite.fleet).
ROLE = "api"


def wanted_facts(target, config_dir):
    calls = [(host_facts.service_running, (name,)) for name in target.services]
    if target.gateway.local_url:
        calls.append((host_facts.local_http_status, local_health(target)))
    return Wanted(on_host=calls)


def local_health(target):
    gateway = target.gateway
    return (gateway.local_url + gateway.health_path, gateway.timeout_s)


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
    if target.gateway.local_url:
        url, _ = local_health(target)
        status = prefetch.result(host_facts.local_http_status, host, *local_health(target))
        record_property("gateway_local_health", status or "no answer")
        if status != 200:
            said = f"answered {status}" if status else "gave no answer (or no curl there)"
            problems.append(f"the gateway at {url}, asked on the host, {said}")
    no_problems(problems)
