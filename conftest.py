"""The deployment suite's wiring: the deployer's plugin and its fixtures. Nothing else."""

from __future__ import annotations

pytest_plugins = [
    "nexus_deploy.suite.plugin",
    "fixtures.target",
    "fixtures.host",
    "fixtures.deployment",
]
