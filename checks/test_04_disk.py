"""DISK: enough free space on every path the deployment and the platform write to."""

from __future__ import annotations

import pytest

from nexus_deploy.facts import host as host_facts
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck
# Checked on every API node of a fleet (see nexus_deploy.suite.fleet).
ROLE = "api"


def wanted_facts(target, config_dir):
    return Wanted(on_host=[(host_facts.free_gb, (str(path),)) for path in target.disk.paths])


def test_disk(host, target, record_property, prefetch):
    minimum = target.disk.min_free_gb
    record_property("min_free_gb", minimum)
    problems = []
    for path in map(str, target.disk.paths):
        free = prefetch.result(host_facts.free_gb, host, path)
        record_property(f"free_gb:{path}", "missing" if free is None else round(free, 1))
        if free is None:
            problems.append(f"{path} does not exist")
        elif free < minimum:
            problems.append(f"{path} has {free:.1f} GB free, below the minimum {minimum:g} GB")
    no_problems(problems)
