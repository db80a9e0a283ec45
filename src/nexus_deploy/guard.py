"""The progressive guard: the marketplace moves one step at a time, after its soak."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from nexus_deploy.flags import FlagRow
from nexus_deploy.phase_config import (
    JsonValue,
    PhaseConfigs,
    launch_prerequisites,
    marketplace_flags,
    soak_days,
)
from nexus_deploy.request import ActivationRequest

STEP_KEY = "marketplace.step"


@dataclass
class GuardResult:
    refusals: list[str] = field(default_factory=list)
    soak_overridden: str | None = None  # what --force-soak allowed, for the audit


def current_step(rows: dict[str, FlagRow]) -> int:
    """The marketplace step now active; 0 when it was never opened or is off."""
    row = rows.get(STEP_KEY)
    value = row.decoded if row else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def check(
    request: ActivationRequest,
    rows: dict[str, FlagRow],
    configs: PhaseConfigs,
    now: dt.datetime,
) -> GuardResult:
    """What stands between the platform's current flags and the requested ones."""
    if request.phase == "phase4":
        return _launch(request, rows, configs)
    assert request.step is not None
    result = GuardResult()
    active, wanted = current_step(rows), request.step
    if wanted < active:
        result.refusals += _launch_needs(rows, marketplace_flags(configs, wanted), configs)
        return result  # going down needs no soak, only a launch that does not depend on it
    if wanted == active or wanted == 1:
        return result  # staying, or opening step 1: nothing to soak
    if active != wanted - 1:
        result.refusals.append(
            f"step {wanted} needs step {wanted - 1} active; the marketplace is at step {active}"
        )
    else:
        _soak(rows[STEP_KEY], wanted, soak_days(configs), now, request.force_soak, result)
    return result


def _soak(
    row: FlagRow, wanted: int, days: int, now: dt.datetime, force: bool, result: GuardResult
) -> None:
    since = dt.datetime.fromisoformat(row.updated_at)
    ready = since + dt.timedelta(days=days)
    if now >= ready:
        return
    message = (
        f"step {wanted - 1} is active since {since:%Y-%m-%d %H:%M} UTC; step {wanted} needs "
        f"{days} days of soak, until {ready.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )
    if force:
        result.soak_overridden = message
    else:
        result.refusals.append(message + " (--force-soak overrides)")


def _launch_needs(
    rows: dict[str, FlagRow], new_flags: dict[str, JsonValue], configs: PhaseConfigs
) -> list[str]:
    """While the platform is launched globally, what lowering the marketplace would break."""
    current = {key: row.decoded for key, row in rows.items()}
    if current.get("launch.mode") != "global":
        return []
    after = {**current, **new_flags}
    return [
        f"the global launch needs it: {unmet}; return to founder mode first "
        "(--activate phase4 --mode founder)"
        for unmet in filter(None, (p.unmet(after) for p in launch_prerequisites(configs)))
    ]


def _launch(
    request: ActivationRequest, rows: dict[str, FlagRow], configs: PhaseConfigs
) -> GuardResult:
    result = GuardResult()
    if request.mode == "global":
        current = {key: row.decoded for key, row in rows.items()}
        for prerequisite in launch_prerequisites(configs):
            unmet = prerequisite.unmet(current)
            if unmet:
                result.refusals.append(f"global launch prerequisite unmet: {unmet}")
    return result
