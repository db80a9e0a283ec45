"""Where target profiles are and which one a run uses; no models, so it imports in no time.

The options entry point needs the chosen profile's path before pytest imports the suite (to
start the slow Compose probe early, see nexus_deploy.suite.prefetch); loading pydantic for the
models in nexus_deploy.config.profile then would delay that start by about 0.15 s.
"""

from __future__ import annotations

import os
from pathlib import Path

TARGETS_DIR = Path("pfs") / "targets"
TARGET_ENV_VAR = "NEXUS_TARGET"
DEFAULT_TARGET = "sandbox"
# The profile's command_timeout_s when it sets none. The slowest command on a healthy host is
# `git fsck` of the platform checkout: a large one needs room.
DEFAULT_COMMAND_TIMEOUT_S = 60.0
# A fleet profile's fleet.workers when it sets none: host commands over ssh at once, each mostly
# waiting on the network and the remote host.
FLEET_WORKERS = 16


def resolve_target_path(choice: str | None, deployer_root: Path) -> Path:
    """Turn ``--target``/``NEXUS_TARGET`` (a name or a file) into a profile path."""
    chosen = choice or os.environ.get(TARGET_ENV_VAR) or DEFAULT_TARGET
    if chosen.endswith((".yaml", ".yml")) or os.sep in chosen:
        return Path(chosen).expanduser().resolve()
    return deployer_root / TARGETS_DIR / f"{chosen}.yaml"
