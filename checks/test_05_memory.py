"""MEMORY: enough available memory; too little is a WARNING, never a failure."""

from __future__ import annotations

import pytest

from nexus_deploy.facts import host as host_facts
from nexus_deploy.suite.prefetch import Wanted

pytestmark = pytest.mark.precheck
# Checked on every API node of a fleet (see nexus_deploy.suite.fleet).
ROLE = "api"


def wanted_facts(target, config_dir):
    return Wanted(on_host=[(host_facts.available_memory_gb, ())])


def test_memory(host, target, record_property, precheck_warning, prefetch):
    available = prefetch.result(host_facts.available_memory_gb, host)
    minimum = target.memory.min_available_gb
    record_property("available_gb", round(available, 1))
    record_property("min_available_gb", minimum)
    # A flag change needs little memory; low memory is worth knowing, not worth stopping for.
    if available < minimum:
        precheck_warning(
            f"{available:.1f} GB memory available, below the recommended {minimum:g} GB"
        )
