"""Phase 4, the public launch: global mode opens the platform, founder mode closes it again.

``--activate phase4 [--mode global|founder]`` (``nexusctl launch --mode ...``) writes the launch.*
flags of the mode from three files: global-launch.yaml (the features and what global mode needs
first), founder-public-transition.yaml (the switches of each mode) and jurisdiction-engine.yaml
(where the platform may launch).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import pydantic
from pydantic import Field

from nexus_deploy.config.errors import shown_key
from nexus_deploy.phases.base import (
    ActivationOptions,
    FlagNeed,
    GuardResult,
    Move,
    Phase,
    PhaseOption,
    RequestError,
    StrictModel,
    load_one,
    refuse_joint_problems,
)
from nexus_deploy.values import FlagRow, JsonValue

LAUNCH_FILE = "global-launch.yaml"
TRANSITION_FILE = "founder-public-transition.yaml"
JURISDICTION_FILE = "jurisdiction-engine.yaml"
MODE_KEY = "launch.mode"
MODE = PhaseOption(
    "--mode",
    "global|founder",
    "phase4 launch mode (default: global); founder returns to founder mode",
)

Mode = Literal["global", "founder"]
MODES: tuple[Mode, ...] = get_args(Mode)


class AutoScaling(StrictModel):
    """Replica bounds for the gateway once the public arrives."""

    min_replicas: Annotated[int, Field(ge=1)]
    max_replicas: Annotated[int, Field(ge=1)]


class Prerequisite(StrictModel):
    """A flag value that must be current before global mode is written."""

    flag: Annotated[str, Field(min_length=1)]
    equals: pydantic.JsonValue

    def unmet(self, current: Mapping[str, JsonValue]) -> str | None:
        """Say why `current` does not satisfy this prerequisite, or None when it does."""
        want = json.dumps(self.equals, sort_keys=True)
        if self.flag not in current:
            return f"{self.flag} is not set; global mode needs {want}"
        # Compared as JSON so that true is not taken for 1, nor 1 for true.
        have = json.dumps(current[self.flag], sort_keys=True)
        return None if have == want else f"{self.flag} is {have}; global mode needs {want}"


class GlobalLaunchConfig(StrictModel):
    """pfs/global-launch.yaml: the features global mode opens, and what it needs first."""

    public_signups: bool
    seo: bool
    marketing_channels: list[str]
    auto_scaling: AutoScaling
    cdn: bool
    traffic_management: bool
    prerequisites: list[Prerequisite]

    def includes(self, feature: str) -> bool:
        """Whether the launch includes `feature` (one of LAUNCH_FEATURES)."""
        return bool(getattr(self, feature))


# The features global-launch.yaml names; each mode writes a launch.<feature> switch for each.
LAUNCH_FEATURES = tuple(name for name in GlobalLaunchConfig.model_fields if name != "prerequisites")


class TransitionConfig(StrictModel):
    """pfs/founder-public-transition.yaml: the launch.* switches of each mode."""

    founder: dict[str, bool]
    global_: dict[str, bool] = Field(alias="global")

    def switches(self, mode: Mode) -> dict[str, bool]:
        """The launch.* switches `mode` writes."""
        return self.global_ if mode == "global" else self.founder


# Two capital letters: what a message about a region may name without echoing the file.
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class Jurisdiction(StrictModel):
    """One jurisdiction and how it classifies NexCoin."""

    code: CountryCode
    name: Annotated[str, Field(min_length=1)]
    virtual_goods: Literal["virtual_goods", "prepaid_instrument", "undetermined"]


class JurisdictionConfig(StrictModel):
    """pfs/jurisdiction-engine.yaml: known, blocked and launch jurisdictions."""

    jurisdictions: list[Jurisdiction]
    blocked: list[CountryCode]
    launch_regions: Annotated[list[CountryCode], Field(min_length=1)]


@dataclass(frozen=True)
class LaunchConfig:
    """The launch's three configs, each valid alone and all consistent together."""

    launch: GlobalLaunchConfig
    transition: TransitionConfig
    jurisdictions: JurisdictionConfig


@dataclass(frozen=True)
class LaunchMode(Move):
    """The launch mode to move to."""

    mode: Mode

    @property
    def summary(self) -> str:
        return f"{self.phase} mode {self.mode}"


def launch_flags(config: LaunchConfig, mode: Mode) -> dict[str, JsonValue]:
    """The launch.* flag values of `mode`; both modes write the same keys."""
    on = config.transition.switches(mode)
    launch = config.launch
    scaling = launch.auto_scaling
    regions = config.jurisdictions
    return {
        MODE_KEY: mode,
        "launch.public_signups": on["launch.public_signups"],
        "launch.seo": on["launch.seo"],
        "launch.marketing_channels": (
            list(launch.marketing_channels) if on["launch.marketing_channels"] else []
        ),
        "launch.auto_scaling": {
            "enabled": on["launch.auto_scaling"],
            "min_replicas": scaling.min_replicas,
            "max_replicas": scaling.max_replicas,
        },
        "launch.cdn": on["launch.cdn"],
        "launch.traffic_management": on["launch.traffic_management"],
        "launch.regions": list(regions.launch_regions) if mode == "global" else [],
        # Blocking is a restriction, so it holds in founder mode as much as in global mode.
        "launch.blocked_regions": list(regions.blocked),
    }


def launch_prerequisites(config: LaunchConfig) -> list[Prerequisite]:
    """The current flag values global mode needs before it may be written."""
    return list(config.launch.prerequisites)


def _launch_rules(config: LaunchConfig) -> Iterator[tuple[str, str]]:
    scaling = config.launch.auto_scaling
    if scaling.min_replicas > scaling.max_replicas:
        yield (
            "auto_scaling",
            f"min_replicas {scaling.min_replicas} exceeds max_replicas {scaling.max_replicas}",
        )


def _transition_rules(config: LaunchConfig) -> Iterator[tuple[str, str]]:
    keys = {f"launch.{feature}": feature for feature in LAUNCH_FEATURES}
    for mode in MODES:
        switches = config.transition.switches(mode)
        for key in sorted(set(keys) - set(switches)):
            yield mode, f"missing {key}: each mode must set every launch feature"
        for key, on in switches.items():
            if key not in keys:  # named only if it looks like a key (launch.chat), not shown
                yield f"{mode}.{shown_key(key)}", f"not a feature of {LAUNCH_FILE} ({sorted(keys)})"
                continue
            want = mode == "global" and config.launch.includes(keys[key])
            if on != want:
                why = "global-launch.yaml includes it" if want else "global-launch.yaml omits it"
                if mode == "founder":
                    why = "founder mode turns every launch feature off"
                yield f"{mode}.{key}", f"must be {str(want).lower()}: {why}"


def _jurisdiction_rules(config: LaunchConfig) -> Iterator[tuple[str, str]]:
    j = config.jurisdictions
    codes = [x.code for x in j.jurisdictions]
    for i, code in enumerate(codes):
        if code in codes[:i]:
            yield f"jurisdictions.{i}.code", f"{code} is listed twice"
    classification = {x.code: x.virtual_goods for x in j.jurisdictions}
    for i, code in enumerate(j.launch_regions):
        if code in j.blocked:
            yield f"launch_regions.{i}", f"{code} is blocked"
        elif code not in codes:
            yield f"launch_regions.{i}", f"{code} is not listed under jurisdictions"
        elif classification[code] != "virtual_goods":
            # NexCoin launches only where it is a virtual good, not a payment instrument.
            yield f"launch_regions.{i}", f"{code} classifies NexCoin as {classification[code]}"


def joint_rules(config: LaunchConfig) -> Iterator[tuple[str, str, str]]:
    """Every violation of the rules that span fields or files: (file, field, message)."""
    for file, rules in (
        (LAUNCH_FILE, _launch_rules),
        (TRANSITION_FILE, _transition_rules),
        (JURISDICTION_FILE, _jurisdiction_rules),
    ):
        for where, why in rules(config):
            yield file, where, why


class Launch:
    """The launch phase, as the registry knows it (``PHASE``)."""

    name = "phase4"
    title = "launch"
    config_files = (LAUNCH_FILE, TRANSITION_FILE, JURISDICTION_FILE)
    options = (MODE,)

    def load(self, config_dir: Path) -> LaunchConfig:
        config = LaunchConfig(
            launch=load_one(config_dir / LAUNCH_FILE, GlobalLaunchConfig),
            transition=load_one(config_dir / TRANSITION_FILE, TransitionConfig),
            jurisdictions=load_one(config_dir / JURISDICTION_FILE, JurisdictionConfig),
        )
        refuse_joint_problems(config_dir, joint_rules(config))
        return config

    def parse(self, given: Mapping[str, str | None], config: LaunchConfig | None) -> LaunchMode:
        chosen = given.get(MODE.flag) or "global"
        for mode in MODES:
            if chosen == mode:
                return LaunchMode(self.name, mode)
        # The value given is not repeated: the option and the choices say it all.
        raise RequestError(f"{MODE.flag}: unknown mode (modes: {', '.join(MODES)})")

    def desired_flags(self, config: LaunchConfig, move: LaunchMode) -> dict[str, JsonValue]:
        return launch_flags(config, move.mode)

    def moves(self, config: LaunchConfig) -> list[LaunchMode]:
        return [LaunchMode(self.name, mode) for mode in MODES]

    def needs(self, config: LaunchConfig) -> list[FlagNeed]:
        return [
            FlagNeed(LAUNCH_FILE, f"prerequisites.{i}.equals", need.flag, need.equals)
            for i, need in enumerate(launch_prerequisites(config))
        ]

    def guard(
        self,
        config: LaunchConfig,
        move: LaunchMode,
        rows: Mapping[str, FlagRow],
        now: dt.datetime,
        force_soak: bool,
    ) -> GuardResult:
        result = GuardResult()
        if move.mode == "global":
            current = {key: row.decoded for key, row in rows.items()}
            for prerequisite in launch_prerequisites(config):
                unmet = prerequisite.unmet(current)
                if unmet:
                    result.refusals.append(f"global launch prerequisite unmet: {unmet}")
        return result

    def turns_off(self, move: LaunchMode) -> bool:
        return move.mode == "founder"

    def requirements(
        self, config: LaunchConfig, current: Mapping[str, JsonValue], after: Mapping[str, JsonValue]
    ) -> list[str]:
        """While the platform is launched globally, which of its prerequisites another move
        would break (one already unmet, e.g. after a rollback script, is not this move's doing)."""
        if current.get(MODE_KEY) != "global":
            return []
        broken = [
            unmet
            for prerequisite in launch_prerequisites(config)
            if prerequisite.unmet(current) is None and (unmet := prerequisite.unmet(after))
        ]
        return [
            f"the global launch needs it: {unmet}; return to founder mode first "
            f"(--activate {self.name} --mode founder)"
            for unmet in broken
        ]

    def status(self, flags: Mapping[str, JsonValue]) -> list[tuple[str, str]]:
        return [("launch mode", str(flags.get(MODE_KEY, "founder (never launched)")))]

    def figures(self, config: LaunchConfig) -> dict[str, str | int]:
        return {"launch_regions": len(config.jurisdictions.launch_regions)}

    def add_commands(self, commands: Any, activation_options: ActivationOptions) -> None:
        launch = commands.add_parser(
            "launch", help="phase 4: public launch, or back to founder mode"
        )
        launch.add_argument(
            "--mode",
            choices=list(MODES),
            required=True,
            help="global: the public launch; founder: back to the invite-only pre-launch platform",
        )
        activation_options(launch, self.suite_arguments, needs_confirm=True, emergency=True)

    def suite_arguments(self, args: argparse.Namespace) -> list[str]:
        return [f"--activate={self.name}", f"--mode={args.mode}"]


# The registry's entry point (pyproject.toml, group nexus_deploy.phases).
PHASE: Phase[LaunchConfig, LaunchMode] = Launch()
