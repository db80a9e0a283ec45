"""The progressive guard: the phase's own rules for the move, and what every other live phase
needs of the flags the move would leave."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from nexus_deploy import phases
from nexus_deploy.change.request import ActivationRequest
from nexus_deploy.phases import PhaseConfigs
from nexus_deploy.phases.base import GuardResult
from nexus_deploy.values import FlagRow


def check(
    request: ActivationRequest,
    rows: Mapping[str, FlagRow],
    configs: PhaseConfigs,
    now: dt.datetime,
) -> GuardResult:
    """What stands between the platform's current flags and the requested ones."""
    move = request.wanted
    moving = phases.phase_named(move.phase)
    config = configs[move.phase]
    result = moving.guard(config, move, rows, now, request.force_soak)
    current = {key: row.decoded for key, row in rows.items()}
    after = {**current, **moving.desired_flags(config, move)}
    for name, other in phases.registered().items():
        if name != move.phase:
            result.refusals += other.requirements(configs[name], current, after)
    return result
