"""Precheck 2, SERVICES: docker and nginx running, as the host's own service manager reports."""

from __future__ import annotations

import pytest

from nexus_deploy.verdict import no_problems

pytestmark = [pytest.mark.precheck("SERVICES"), pytest.mark.order(2)]


def test_services(host, target, record_property):
    stopped = []
    for name in target.services:
        running = host.service(name).is_running
        record_property(f"{name}_running", running)
        if not running:
            stopped.append(name)
    no_problems([f"service {name} is not running" for name in stopped])
