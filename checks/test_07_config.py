"""CONFIG: every phase's configs are present, valid one by one and consistent together."""

from __future__ import annotations

import pytest

from nexus_deploy import phases
from nexus_deploy.phases import load_phase_configs
from nexus_deploy.phases.base import ConfigError
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck


def wanted_facts(target, config_dir):
    # Pure Python, so it gains from a thread only while the others wait: which they do.
    return Wanted(from_deployer=[(load_phase_configs, (config_dir,))])


def test_config(target, deployer_root, record_property, prefetch):
    config_dir = deployer_root / target.config.dir
    record_property("config_dir", str(config_dir))
    record_property("files", ",".join(phases.config_files()))
    if not phases.registered():  # nothing to check is no pass: the install is broken
        no_problems([f"no phase is registered (entry-point group {phases.ENTRY_POINT_GROUP})"])
    try:
        configs = prefetch.result(load_phase_configs, config_dir)
    except ConfigError as exc:
        refused = str(exc)
    else:
        for name, phase in phases.registered().items():
            for figure, value in phase.figures(configs[name]).items():
                record_property(figure, value)
        return
    # Failed outside the except block, so the ConfigError is not shown again as its context.
    no_problems([refused])
