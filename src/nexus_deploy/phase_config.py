"""Phase configs (pfs/*.yaml): strict models, joint rules, and the flag values they produce."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal, TypeAlias, TypeVar, get_args

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from nexus_deploy import yamlfile

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None

PHASE_CONFIG_FILES: tuple[str, ...] = (
    "marketplace-phase3.yaml",
    "global-launch.yaml",
    "founder-public-transition.yaml",
    "jurisdiction-engine.yaml",
)

Cohort = Literal["founders", "creators", "verified_users", "everyone"]
TradingType = Literal["peer_to_peer", "fixed_price", "auction"]
LimitTier = Literal["founders", "creators", "public"]
Mode = Literal["global", "founder"]


class ConfigError(Exception):
    """A phase config that is missing, unparsable or invalid; str() names the file and field."""

    def __init__(self, file: Path, field: str | None, message: str) -> None:
        super().__init__(message)
        self.file = file
        self.field = field

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else str(self.file)
        return f"{where}: {self.args[0]}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Step(_Strict):
    """What one marketplace step opens (in full, not as a delta on the previous step)."""

    cohorts: Annotated[list[Cohort], Field(min_length=1)]
    trading_types: Annotated[list[TradingType], Field(min_length=1)]

    @field_validator("cohorts", "trading_types")
    @classmethod
    def no_repeats(cls, values: list[str]) -> list[str]:
        """Refuse a cohort or trading type listed twice in one step."""
        if len(set(values)) != len(values):
            raise ValueError(f"lists a value twice: {values}")
        return values


class Currency(_Strict):
    """The marketplace currency; the joint rules keep it a closed loop."""

    name: Annotated[str, Field(min_length=1)]
    fiat: bool
    withdrawal_to_money: bool
    converts_to: list[str]


class DailyLimits(_Strict):
    """Most NexCoin a member of each limit tier may trade per day."""

    founders: int
    creators: int
    public: int


class LimitTiers(_Strict):
    """The limit tier each cohort trades under."""

    founders: LimitTier
    creators: LimitTier
    verified_users: LimitTier
    everyone: LimitTier


class Safety(_Strict):
    """Trade monitoring the joint rules require on."""

    anti_wash_trading: bool
    pattern_detection: bool
    realtime_monitoring: bool


class MarketplaceConfig(_Strict):
    """pfs/marketplace-phase3.yaml: the progressive marketplace steps."""

    min_soak_days: Annotated[int, Field(ge=1)]
    steps: Annotated[dict[int, Step], Field(min_length=1)]
    currency: Currency
    daily_limits: DailyLimits
    limit_tiers: LimitTiers
    safety: Safety


class AutoScaling(_Strict):
    """Replica bounds for the gateway once the public arrives."""

    min_replicas: Annotated[int, Field(ge=1)]
    max_replicas: Annotated[int, Field(ge=1)]


class Prerequisite(_Strict):
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


class GlobalLaunchConfig(_Strict):
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


class TransitionConfig(_Strict):
    """pfs/founder-public-transition.yaml: the launch.* switches of each mode."""

    founder: dict[str, bool]
    global_: dict[str, bool] = Field(alias="global")

    def switches(self, mode: Mode) -> dict[str, bool]:
        """The launch.* switches `mode` writes."""
        return self.global_ if mode == "global" else self.founder


class Jurisdiction(_Strict):
    """One jurisdiction and how it classifies NexCoin."""

    code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    name: Annotated[str, Field(min_length=1)]
    virtual_goods: Literal["virtual_goods", "prepaid_instrument", "undetermined"]


class JurisdictionConfig(_Strict):
    """pfs/jurisdiction-engine.yaml: known, blocked and launch jurisdictions."""

    jurisdictions: list[Jurisdiction]
    blocked: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]]
    launch_regions: Annotated[list[str], Field(min_length=1)]


@dataclass(frozen=True)
class PhaseConfigs:
    """The four phase configs, each valid alone and all jointly consistent."""

    marketplace: MarketplaceConfig
    launch: GlobalLaunchConfig
    transition: TransitionConfig
    jurisdictions: JurisdictionConfig


M = TypeVar("M", bound=BaseModel)


def load_one(path: Path, model: type[M]) -> M:
    """Parse one YAML file into `model`; any failure is a ConfigError naming the field."""
    try:
        data = yamlfile.load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, None, "file is missing") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        # "from None": the message says it all; a chained cause would be shown again before it.
        raise ConfigError(path, None, f"cannot be read as YAML: {yaml_problem(exc)}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [(".".join(map(str, e["loc"])) or None, with_input(e)) for e in exc.errors()]
        message = errors[0][1] + "".join(f"; also {f}: {m}" for f, m in errors[1:])
        raise ConfigError(path, errors[0][0], message) from None


# pydantic errors whose message already says it all: no value (missing), the key itself
# (extra), or our own validators' words, which name the value where it matters.
MESSAGE_NAMES_INPUT = ("missing", "extra_forbidden", "value_error", "assertion_error", "too_short",
                       "too_long")  # fmt: skip


def with_input(error: ErrorDetails) -> str:
    """pydantic's message with the value it was given, as the file has it ("... got -3")."""
    if error["type"] in MESSAGE_NAMES_INPUT or "input" not in error:
        return str(error["msg"])
    shown = json.dumps(error["input"], default=str)  # as YAML would write it, near enough
    return f"{error['msg']} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"


def yaml_problem(exc: Exception) -> str:
    """What is wrong and where, on one line: PyYAML's own text spans four, naming
    "<unicode string>" for the file."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None and exc.problem:
        context = f" ({exc.context})" if exc.context else ""
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}{context}"
    return " ".join(str(exc).split())


def load_phase_configs(config_dir: Path) -> PhaseConfigs:
    """Load the four phase configs from `config_dir` and enforce the joint rules."""
    market, launch, transition, jurisdictions = (config_dir / f for f in PHASE_CONFIG_FILES)
    configs = PhaseConfigs(
        marketplace=load_one(market, MarketplaceConfig),
        launch=load_one(launch, GlobalLaunchConfig),
        transition=load_one(transition, TransitionConfig),
        jurisdictions=load_one(jurisdictions, JurisdictionConfig),
    )
    problems = check_joint_rules(configs, config_dir)
    if problems:
        first, rest = problems[0], problems[1:]
        also = "".join(f"; also {p}" for p in rest)
        raise ConfigError(first.file, first.field, f"{first.args[0]}{also}")
    return configs


def check_joint_rules(configs: PhaseConfigs, config_dir: Path) -> list[ConfigError]:
    """Every violation of the rules that span fields or files, each naming file and field."""
    rules = (_marketplace_rules, _launch_rules, _transition_rules, _jurisdiction_rules)
    return [
        ConfigError(config_dir / name, field, message)
        for name, rule in zip(PHASE_CONFIG_FILES, rules, strict=True)
        for field, message in rule(configs)
    ]


def _marketplace_rules(configs: PhaseConfigs) -> Iterator[tuple[str, str]]:
    m = configs.marketplace
    numbers = sorted(m.steps)
    if numbers != list(range(1, len(numbers) + 1)):
        yield "steps", f"steps must be numbered 1..{len(numbers)} without gaps, not {numbers}"
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
            yield f"daily_limits.{tier}", f"must be positive, not {getattr(limits, tier)}"
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
        yield "currency.converts_to", f"must be empty, not {m.currency.converts_to}"
    for name, on in m.safety:
        if not on:
            yield f"safety.{name}", "must be true while the marketplace trades"


def _launch_rules(configs: PhaseConfigs) -> Iterator[tuple[str, str]]:
    scaling = configs.launch.auto_scaling
    if scaling.min_replicas > scaling.max_replicas:
        yield (
            "auto_scaling",
            f"min_replicas {scaling.min_replicas} exceeds max_replicas {scaling.max_replicas}",
        )


def _transition_rules(configs: PhaseConfigs) -> Iterator[tuple[str, str]]:
    keys = {f"launch.{feature}": feature for feature in LAUNCH_FEATURES}
    for mode in get_args(Mode):
        switches = configs.transition.switches(mode)
        for key in sorted(set(keys) - set(switches)):
            yield mode, f"missing {key}: each mode must set every launch feature"
        for key, on in switches.items():
            if key not in keys:
                yield f"{mode}.{key}", f"not a feature of global-launch.yaml ({sorted(keys)})"
                continue
            want = mode == "global" and configs.launch.includes(keys[key])
            if on != want:
                why = "global-launch.yaml includes it" if want else "global-launch.yaml omits it"
                if mode == "founder":
                    why = "founder mode turns every launch feature off"
                yield f"{mode}.{key}", f"must be {str(want).lower()}: {why}"


def _jurisdiction_rules(configs: PhaseConfigs) -> Iterator[tuple[str, str]]:
    j = configs.jurisdictions
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


def step_count(configs: PhaseConfigs) -> int:
    """The number of marketplace steps (the last one is the full marketplace)."""
    return len(configs.marketplace.steps)


def soak_days(configs: PhaseConfigs) -> int:
    """Days a marketplace step must run before the next one is opened."""
    return configs.marketplace.min_soak_days


def marketplace_flags(configs: PhaseConfigs, step: int) -> dict[str, JsonValue]:
    """The marketplace.* flag values of `step`; 0 closes the marketplace."""
    n = step_count(configs)
    if not 0 <= step <= n:
        raise ValueError(f"marketplace step {step} is out of range: valid steps are 0..{n}")
    m = configs.marketplace
    opened = m.steps[step] if step else None
    cohorts: list[str] = list(opened.cohorts) if opened else []
    tiers = m.limit_tiers.model_dump()
    limits = m.daily_limits.model_dump()
    # Currency and safety only restrict trading, so they keep their values at step 0 too: closing
    # the market must never loosen them.
    return {
        "marketplace.enabled": opened is not None,
        "marketplace.step": step,
        "marketplace.cohorts": list(cohorts),
        "marketplace.trading_types": list(opened.trading_types) if opened else [],
        "marketplace.currency": m.currency.model_dump(),
        "marketplace.daily_limits": {c: limits[tiers[c]] for c in cohorts},
        "marketplace.safety": m.safety.model_dump(),
    }


def launch_flags(configs: PhaseConfigs, mode: Mode) -> dict[str, JsonValue]:
    """The launch.* flag values of `mode`; both modes write the same keys."""
    on = configs.transition.switches(mode)
    launch = configs.launch
    scaling = launch.auto_scaling
    regions = configs.jurisdictions
    return {
        "launch.mode": mode,
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


def launch_prerequisites(configs: PhaseConfigs) -> list[Prerequisite]:
    """The current flag values global mode needs before it may be written."""
    return list(configs.launch.prerequisites)
