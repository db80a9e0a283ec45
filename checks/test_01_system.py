"""SYSTEM: the OS, root or passwordless sudo, and the commands the deployment uses."""

from __future__ import annotations

import pytest

from nexus_deploy.facts import host as host_facts
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck
# Checked on every API node of a fleet (see nexus_deploy.suite.fleet).
ROLE = "api"


def wanted_facts(target, config_dir):
    return Wanted(
        on_host=[
            (host_facts.system_identity, ()),
            (host_facts.missing_commands, (target.system.required_commands,)),
            (host_facts.can_act_as_root, ()),
        ]
    )


def test_system(host, target, record_property, prefetch):
    system = prefetch.result(host_facts.system_identity, host)
    missing = prefetch.result(host_facts.missing_commands, host, target.system.required_commands)
    record_property("os", system.os)
    record_property("distribution", f"{system.distribution} {system.release}")
    record_property("user", system.user)
    record_property("commands_missing", ",".join(missing) or "none")

    problems = []
    if system.os != target.system.os:
        problems.append(f"OS is {system.os}, the target expects {target.system.os}")
    as_root = prefetch.result(host_facts.can_act_as_root, host)
    record_property("root_or_sudo", as_root)
    if not as_root:
        problems.append(f"user {system.user} is not root and has no passwordless sudo")
    if missing:
        problems.append(f"required commands not found on PATH: {', '.join(missing)}")
    no_problems(problems)
