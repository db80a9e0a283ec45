"""Phase 5, a regional rollout: a throwaway phase from a package of its own, proving that a
platform team adds a phase with one module, its YAML and one entry point (tests/test_structure.py
installs it on PYTHONPATH with a dist-info that registers it)."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from nexus_deploy.phases.base import (
    ActivationOptions,
    FlagNeed,
    GuardResult,
    Move,
    PhaseOption,
    RequestError,
    StrictModel,
    load_one,
    refuse_joint_problems,
)
from nexus_deploy.values import FlagRow, JsonValue

CONFIG_FILE = "rollout-phase5.yaml"
WAVE_KEY = "rollout.wave"
WAVE = PhaseOption("--wave", "N", "phase5 rollout wave: 1.. opens its regions, 0 closes all")


class RolloutConfig(StrictModel):
    """rollout-phase5.yaml: the regions each wave opens, in full."""

    waves: Annotated[list[list[str]], Field(min_length=1)]


@dataclass(frozen=True)
class Wave(Move):
    wave: int

    @property
    def summary(self) -> str:
        return f"{self.phase} wave {self.wave}"


def rules(config: RolloutConfig) -> Iterator[tuple[str, str, str]]:
    for i, (before, after) in enumerate(zip(config.waves, config.waves[1:], strict=False)):
        if set(before) - set(after):
            yield CONFIG_FILE, f"waves.{i + 1}", "a wave must keep the regions of the one before"


def current_wave(rows: Mapping[str, FlagRow]) -> int:
    row = rows.get(WAVE_KEY)
    value = row.decoded if row else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class Rollout:
    name = "phase5"
    title = "regional rollout"
    config_files = (CONFIG_FILE,)
    options = (WAVE,)

    def load(self, config_dir: Path) -> RolloutConfig:
        config = load_one(config_dir / CONFIG_FILE, RolloutConfig)
        refuse_joint_problems(config_dir, rules(config))
        return config

    def parse(self, given: Mapping[str, str | None], config: RolloutConfig | None) -> Wave:
        highest = len(config.waves) if config is not None else 1
        text = given.get(WAVE.flag)
        if text is None or re.fullmatch(r"[0-9]+", text) is None or int(text) > highest:
            raise RequestError(f"--activate phase5 needs --wave 0..{highest}")  # not echoed
        return Wave(self.name, int(text))

    def desired_flags(self, config: RolloutConfig, move: Wave) -> dict[str, JsonValue]:
        regions: list[JsonValue] = list(config.waves[move.wave - 1]) if move.wave else []
        return {WAVE_KEY: move.wave, "rollout.regions": regions}

    def moves(self, config: RolloutConfig) -> list[Wave]:
        return [Wave(self.name, wave) for wave in range(len(config.waves) + 1)]

    def needs(self, config: RolloutConfig) -> list[FlagNeed]:
        return []

    def guard(
        self,
        config: RolloutConfig,
        move: Wave,
        rows: Mapping[str, FlagRow],
        now: dt.datetime,
        force_soak: bool,
    ) -> GuardResult:
        active = current_wave(rows)
        if move.wave > active + 1:
            return GuardResult([f"wave {move.wave} needs wave {move.wave - 1}; at wave {active}"])
        return GuardResult()

    def turns_off(self, move: Wave) -> bool:
        return move.wave == 0

    def requirements(
        self,
        config: RolloutConfig,
        current: Mapping[str, JsonValue],
        after: Mapping[str, JsonValue],
    ) -> list[str]:
        return []

    def status(self, flags: Mapping[str, JsonValue]) -> list[tuple[str, str]]:
        return [("rollout", f"wave {flags.get(WAVE_KEY, 0)}")]

    def figures(self, config: RolloutConfig) -> dict[str, str | int]:
        return {"rollout_waves": len(config.waves)}

    def add_commands(self, commands: Any, activation_options: ActivationOptions) -> None:
        rollout = commands.add_parser("rollout", help="phase 5: open the regions of a wave")
        rollout.add_argument("--wave", type=int, required=True, metavar="N")
        activation_options(rollout, self.suite_arguments)

    def suite_arguments(self, args: argparse.Namespace) -> list[str]:
        return [f"--activate={self.name}", f"--wave={args.wave}"]


PHASE = Rollout()
