"""Precheck 7, CONFIG: the phase configs are present, valid one by one and consistent together."""

from __future__ import annotations

import pytest

from nexus_deploy.phase_config import PHASE_CONFIG_FILES, ConfigError, load_phase_configs
from nexus_deploy.verdict import no_problems

pytestmark = [pytest.mark.precheck("CONFIG"), pytest.mark.order(7)]


def test_config(target, deployer_root, record_property, prefetch):
    config_dir = deployer_root / target.config.dir
    record_property("config_dir", str(config_dir))
    record_property("files", ",".join(PHASE_CONFIG_FILES))
    try:
        configs = prefetch.result(load_phase_configs, config_dir)
    except ConfigError as exc:
        refused = str(exc)
    else:
        record_property("marketplace_steps", len(configs.marketplace.steps))
        return
    # Failed outside the except block, so the ConfigError is not shown again as its context.
    no_problems([refused])
