"""Phase 3, the NexCoin marketplace: opened to wider cohorts in progressive steps.

``--activate phase3 --step N`` (``nexusctl marketplace enable --phase 3 --step N``) writes the
marketplace.* flags of step N; step 0 (``marketplace disable``) closes the market. The steps, the
soak between them, the currency and the daily limits come from pfs/marketplace-phase3.yaml.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator

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

CONFIG_FILE = "marketplace-phase3.yaml"
STEP_KEY = "marketplace.step"
STEP = PhaseOption(
    "--step",
    "N",
    "marketplace step for phase3: 1 founders, 2 +creators, 3 +verified users, "
    "4 everyone with auctions, 0 marketplace off",
)

Cohort = Literal["founders", "creators", "verified_users", "everyone"]
TradingType = Literal["peer_to_peer", "fixed_price", "auction"]
LimitTier = Literal["founders", "creators", "public"]


class Step(StrictModel):
    """What one marketplace step opens (in full, not as a delta on the previous step)."""

    cohorts: Annotated[list[Cohort], Field(min_length=1)]
    trading_types: Annotated[list[TradingType], Field(min_length=1)]

    @field_validator("cohorts", "trading_types")
    @classmethod
    def no_repeats(cls, values: list[str]) -> list[str]:
        """Refuse a cohort or trading type listed twice in one step."""
        twice = sorted({value for value in values if values.count(value) > 1})
        if twice:  # each one of the few a Literal allows: not the list, however long
            raise ValueError(f"lists {', '.join(twice)} more than once")
        return values


class Currency(StrictModel):
    """The marketplace currency; the joint rules keep it a closed loop."""

    name: Annotated[str, Field(min_length=1)]
    fiat: bool
    withdrawal_to_money: bool
    converts_to: list[str]


class DailyLimits(StrictModel):
    """Most NexCoin a member of each limit tier may trade per day."""

    founders: int
    creators: int
    public: int


class LimitTiers(StrictModel):
    """The limit tier each cohort trades under."""

    founders: LimitTier
    creators: LimitTier
    verified_users: LimitTier
    everyone: LimitTier


class Safety(StrictModel):
    """Trade monitoring the joint rules require on."""

    anti_wash_trading: bool
    pattern_detection: bool
    realtime_monitoring: bool


class MarketplaceConfig(StrictModel):
    """pfs/marketplace-phase3.yaml: the progressive marketplace steps."""

    min_soak_days: Annotated[int, Field(ge=1)]
    steps: Annotated[dict[int, Step], Field(min_length=1)]
    currency: Currency
    daily_limits: DailyLimits
    limit_tiers: LimitTiers
    safety: Safety


@dataclass(frozen=True)
class MarketStep(Move):
    """A marketplace step to move to; 0 closes the market."""

    step: int

    @property
    def summary(self) -> str:
        return f"{self.phase} step {self.step}"


def step_count(config: MarketplaceConfig) -> int:
    """The number of marketplace steps (the last one is the full marketplace)."""
    return len(config.steps)


def soak_days(config: MarketplaceConfig) -> int:
    """Days a marketplace step must run before the next one is opened."""
    return config.min_soak_days


def marketplace_flags(config: MarketplaceConfig, step: int) -> dict[str, JsonValue]:
    """The marketplace.* flag values of `step`; 0 closes the marketplace."""
    n = step_count(config)
    if not 0 <= step <= n:
        raise ValueError(f"marketplace step {step} is out of range: valid steps are 0..{n}")
    opened = config.steps[step] if step else None
    cohorts: list[str] = list(opened.cohorts) if opened else []
    tiers = config.limit_tiers.model_dump()
    limits = config.daily_limits.model_dump()
    # Currency and safety only restrict trading, so they keep their values at step 0 too: closing
    # the market must never loosen them.
    return {
        "marketplace.enabled": opened is not None,
        STEP_KEY: step,
        "marketplace.cohorts": list(cohorts),
        "marketplace.trading_types": list(opened.trading_types) if opened else [],
        "marketplace.currency": config.currency.model_dump(),
        "marketplace.daily_limits": {c: limits[tiers[c]] for c in cohorts},
        "marketplace.safety": config.safety.model_dump(),
    }


def current_step(rows: Mapping[str, FlagRow]) -> int:
    """The marketplace step now active; 0 when it was never opened or is off."""
    row = rows.get(STEP_KEY)
    value = row.decoded if row else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def joint_rules(m: MarketplaceConfig) -> Iterator[tuple[str, str]]:
    """Every violation of the rules that span fields: (field, message)."""
    numbers = sorted(m.steps)
    if numbers != list(range(1, len(numbers) + 1)):
        yield "steps", f"steps must be numbered 1..{len(numbers)} without gaps"
    for before, after in pairwise(numbers):
        for what in ("cohorts", "trading_types"):
            lost = set(getattr(m.steps[before], what)) - set(getattr(m.steps[after], what))
            if lost:
                yield f"steps.{after}.{what}", f"drops {sorted(lost)} opened by step {before}"
    last = m.steps[numbers[-1]]
    if "everyone" not in last.cohorts:
        yield f"steps.{numbers[-1]}.cohorts", "the last step must open the market to everyone"
    missing = set(get_args(TradingType)) - set(last.trading_types)
    if missing:
        yield f"steps.{numbers[-1]}.trading_types", f"the last step must allow {sorted(missing)}"
    limits = m.daily_limits
    for tier in ("founders", "creators", "public"):
        if getattr(limits, tier) <= 0:
            yield f"daily_limits.{tier}", "must be positive"
    if limits.creators > limits.founders:
        yield "daily_limits.creators", "must not exceed daily_limits.founders"
    if limits.public > limits.creators:
        yield "daily_limits.public", "must not exceed daily_limits.creators"
    # Any way from NexCoin to money would make the marketplace money transmission.
    if m.currency.fiat:
        yield "currency.fiat", "must be false: NexCoin is closed-loop credit, not fiat"
    if m.currency.withdrawal_to_money:
        yield "currency.withdrawal_to_money", "must be false: NexCoin is a closed loop"
    if m.currency.converts_to:
        yield "currency.converts_to", "must be empty: NexCoin converts to nothing"
    for name, on in m.safety:
        if not on:
            yield f"safety.{name}", "must be true while the marketplace trades"


class Marketplace:
    """The marketplace phase, as the registry knows it (``PHASE``)."""

    name = "phase3"
    title = "marketplace"
    config_files = (CONFIG_FILE,)
    options = (STEP,)

    def load(self, config_dir: Path) -> MarketplaceConfig:
        config = load_one(config_dir / CONFIG_FILE, MarketplaceConfig)
        rules = ((CONFIG_FILE, where, why) for where, why in joint_rules(config))
        refuse_joint_problems(config_dir, rules)
        return config

    def parse(
        self, given: Mapping[str, str | None], config: MarketplaceConfig | None
    ) -> MarketStep:
        # Broken configs: 4, the shipped count; the CONFIG precheck keeps the gate shut anyway.
        highest = step_count(config) if config is not None else 4
        text = given.get(STEP.flag)
        choose = f"choose 0..{highest} (0 turns it off)"
        if text is None:
            raise RequestError(
                f"--activate {self.name} needs --step N (0..{highest}; 0 turns it off)"
            )
        # The value given is not repeated: the option and the choices say it all.
        if re.fullmatch(r"-?[0-9]+", text) is None:
            raise RequestError(f"{STEP.flag}: not a whole number: {choose}")
        if len(text) > 9 or not 0 <= int(text) <= highest:  # int() of 5,000 digits raises
            raise RequestError(f"{STEP.flag}: out of range: {choose}")
        return MarketStep(self.name, int(text))

    def desired_flags(self, config: MarketplaceConfig, move: MarketStep) -> dict[str, JsonValue]:
        return marketplace_flags(config, move.step)

    def moves(self, config: MarketplaceConfig) -> list[MarketStep]:
        return [MarketStep(self.name, step) for step in range(step_count(config) + 1)]

    def needs(self, config: MarketplaceConfig) -> list[FlagNeed]:
        return []  # the marketplace needs nothing of another phase

    def guard(
        self,
        config: MarketplaceConfig,
        move: MarketStep,
        rows: Mapping[str, FlagRow],
        now: dt.datetime,
        force_soak: bool,
    ) -> GuardResult:
        result = GuardResult()
        active, wanted = current_step(rows), move.step
        if wanted <= active or wanted == 1:
            return result  # going down, staying, or opening step 1: nothing to soak
        if active != wanted - 1:
            result.refusals.append(
                f"step {wanted} needs step {wanted - 1} active; the marketplace is at step {active}"
            )
            return result
        since = dt.datetime.fromisoformat(rows[STEP_KEY].updated_at)
        ready = since + dt.timedelta(days=soak_days(config))
        if now >= ready:
            return result
        message = (
            f"step {wanted - 1} is active since {since:%Y-%m-%d %H:%M} UTC; step {wanted} needs "
            f"{soak_days(config)} days of soak, until {ready.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
        )
        if force_soak:
            result.soak_overridden = message
        else:
            result.refusals.append(message + " (--force-soak overrides)")
        return result

    def turns_off(self, move: MarketStep) -> bool:
        return move.step == 0

    def requirements(
        self,
        config: MarketplaceConfig,
        current: Mapping[str, JsonValue],
        after: Mapping[str, JsonValue],
    ) -> list[str]:
        return []  # no other phase's flags matter to the marketplace

    def status(self, flags: Mapping[str, JsonValue]) -> list[tuple[str, str]]:
        state = "open" if flags.get("marketplace.enabled") else "off"
        return [("marketplace", f"step {flags.get(STEP_KEY, 0)} ({state})")]

    def figures(self, config: MarketplaceConfig) -> dict[str, str | int]:
        return {"marketplace_steps": step_count(config)}

    def add_commands(self, commands: Any, activation_options: ActivationOptions) -> None:
        market = commands.add_parser(
            "marketplace", help="open, widen or close the phase 3 marketplace"
        )
        actions = market.add_subparsers(dest="action", required=True, metavar="ACTION")
        enable = actions.add_parser("enable", help="activate marketplace step N (1..4)")
        enable.add_argument(
            "--step",
            type=step_to_open,
            required=True,
            metavar="N",
            help="the marketplace step to open, 1..4 (pfs/marketplace-phase3.yaml); "
            "`marketplace disable` turns it off",
        )
        enable.add_argument(
            "--force-soak", action="store_true", help="skip the soak wait (audited)"
        )
        disable = actions.add_parser("disable", help="turn the marketplace off (step 0)")
        for sub in (enable, disable):
            sub.add_argument("--phase", type=int, choices=[3], required=True, help="always 3")
        activation_options(enable, self.suite_arguments)
        activation_options(disable, self.suite_arguments, emergency=True)

    def suite_arguments(self, args: argparse.Namespace) -> list[str]:
        step = str(args.step) if args.action == "enable" else "0"
        return [f"--activate={self.name}", f"--step={step}"]


def step_to_open(text: str) -> int:
    """--step of `marketplace enable`, checked while arguments are parsed: 0 is not a step to
    open. The top step is the suite's to check (exit 4, audited): it reads the phase configs."""
    try:
        step = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a whole number") from None
    if step < 1:
        raise argparse.ArgumentTypeError(
            "enable opens a step from 1 up: "
            "to turn the marketplace off, use `nexusctl marketplace disable --phase 3`"
        )
    return step


# The registry's entry point (pyproject.toml, group nexus_deploy.phases).
PHASE: Phase[MarketplaceConfig, MarketStep] = Marketplace()
