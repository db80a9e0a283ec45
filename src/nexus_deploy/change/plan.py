"""The plan of an activation: the flags the request wants, against what the platform has."""

from __future__ import annotations

from dataclasses import dataclass

from nexus_deploy import phases
from nexus_deploy.change.request import ActivationRequest
from nexus_deploy.phases import PhaseConfigs
from nexus_deploy.values import JsonValue, to_json

ABSENT = "(absent)"


@dataclass(frozen=True)
class Change:
    key: str
    old: JsonValue  # None with ``existed`` False: the key has no row yet
    new: JsonValue
    existed: bool

    @property
    def old_text(self) -> str:
        return to_json(self.old) if self.existed else ABSENT

    @property
    def new_text(self) -> str:
        return to_json(self.new)

    def describe(self) -> str:
        return f"{self.key}: {self.old_text} -> {self.new_text}"


def desired_flags(request: ActivationRequest, configs: PhaseConfigs) -> dict[str, JsonValue]:
    """Every flag value the requested move writes."""
    move = request.wanted
    return phases.phase_named(move.phase).desired_flags(configs[move.phase], move)


def diff(current: dict[str, JsonValue], desired: dict[str, JsonValue]) -> list[Change]:
    """Only the keys whose value would change, in key order."""
    return [
        Change(key, current.get(key), value, key in current)
        for key, value in sorted(desired.items())
        # Compared as JSON text: in Python True == 1, in jsonb true and 1 differ.
        if key not in current or to_json(current[key]) != to_json(value)
    ]
