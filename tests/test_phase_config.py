"""Tests of the phase configs: the shipped pfs/, each joint rule broken on a copy, the flags."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from nexus_deploy.phases import PhaseConfigs, config_files, load_phase_configs
from nexus_deploy.phases import launch as launch_phase
from nexus_deploy.phases import marketplace as marketplace_phase
from nexus_deploy.phases.base import ConfigError, load_one
from nexus_deploy.phases.launch import launch_flags, launch_prerequisites
from nexus_deploy.phases.marketplace import (
    MarketplaceConfig,
    marketplace_flags,
    soak_days,
    step_count,
)

SHIPPED = Path(__file__).resolve().parents[1] / "pfs"
MARKET, LAUNCH, TRANSITION, JURISDICTIONS = config_files()
MARKET_PHASE, LAUNCH_PHASE = marketplace_phase.PHASE.name, launch_phase.PHASE.name

Change = Callable[[dict[str, Any]], None]


@pytest.fixture
def pfs(tmp_path: Path) -> Path:
    """A copy of the shipped phase configs that a test may break."""
    target = tmp_path / "pfs"
    target.mkdir()
    for name in config_files():
        shutil.copy(SHIPPED / name, target / name)
    return target


@pytest.fixture(scope="module")
def configs() -> PhaseConfigs:
    return load_phase_configs(SHIPPED)


def edit(config_dir: Path, name: str, change: Change) -> None:
    """Rewrite one config file with `change` applied to its parsed content."""
    path = config_dir / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def put(*where: Any, value: Any) -> Change:
    """A change that sets the value at path `where`."""

    def change(data: dict[str, Any]) -> None:
        for key in where[:-1]:
            data = data[key]
        data[where[-1]] = value

    return change


def drop(*where: Any) -> Change:
    """A change that deletes the key at path `where`."""

    def change(data: dict[str, Any]) -> None:
        for key in where[:-1]:
            data = data[key]
        del data[where[-1]]

    return change


def add(*where: Any, value: Any) -> Change:
    """A change that appends a value to the list at path `where`."""

    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for key in where:
            node = node[key]
        node.append(value)

    return change


def refused(config_dir: Path, name: str, field: str | None) -> str:
    """Load `config_dir`, expect a ConfigError naming file and field, return its message."""
    __tracebackhide__ = True
    with pytest.raises(ConfigError) as info:
        load_phase_configs(config_dir)
    assert info.value.file == config_dir / name
    assert info.value.field == field
    where = f"{config_dir / name}: {field}" if field else str(config_dir / name)
    assert str(info.value).startswith(f"{where}: "), str(info.value)
    return str(info.value)


def renumber_last_step(data: dict[str, Any]) -> None:
    data["steps"][5] = data["steps"].pop(4)


def duplicate_jurisdiction(data: dict[str, Any]) -> None:
    data["jurisdictions"].append(dict(data["jurisdictions"][0]))


def test_shipped_configs_load_and_pass_joint_rules(configs: PhaseConfigs) -> None:
    assert step_count(configs[MARKET_PHASE]) == 4
    assert soak_days(configs[MARKET_PHASE]) == 7
    assert configs[MARKET_PHASE].currency.name == "NexCoin"
    assert configs[LAUNCH_PHASE].launch.marketing_channels == ["email", "social", "partners"]


def test_config_error_names_file_and_field() -> None:
    error = ConfigError(Path("pfs/marketplace-phase3.yaml"), "steps.2.cohorts", "drops x")
    assert str(error) == "pfs/marketplace-phase3.yaml: steps.2.cohorts: drops x"
    assert str(ConfigError(Path("pfs/a.yaml"), None, "file is missing")) == (
        "pfs/a.yaml: file is missing"
    )


LAST_STEP_WITHOUT_EVERYONE = ["founders", "creators", "verified_users"]
BROKEN = [
    # cohorts and trading types only grow
    (MARKET, put("steps", 3, "cohorts", value=["founders"]), "steps.3.cohorts", "drops"),
    (
        MARKET,
        put("steps", 2, "trading_types", value=["peer_to_peer"]),
        "steps.2.trading_types",
        "drops",
    ),
    # the last step is the full marketplace
    (
        MARKET,
        put("steps", 4, "cohorts", value=LAST_STEP_WITHOUT_EVERYONE),
        "steps.4.cohorts",
        "everyone",
    ),
    (
        MARKET,
        put("steps", 4, "trading_types", value=["peer_to_peer", "fixed_price"]),
        "steps.4.trading_types",
        "auction",
    ),
    # steps numbered 1..N without gaps
    (MARKET, renumber_last_step, "steps", "1..4 without gaps"),
    # limits positive and ordered
    (MARKET, put("daily_limits", "public", value=0), "daily_limits.public", "positive"),
    (MARKET, put("daily_limits", "creators", value=20000), "daily_limits.creators", "founders"),
    (MARKET, put("daily_limits", "public", value=6000), "daily_limits.public", "creators"),
    # closed-loop currency, safety on
    (MARKET, put("currency", "fiat", value=True), "currency.fiat", "not fiat"),
    (
        MARKET,
        put("currency", "withdrawal_to_money", value=True),
        "currency.withdrawal_to_money",
        "closed loop",
    ),
    (MARKET, put("currency", "converts_to", value=["USD"]), "currency.converts_to", "be empty"),
    (MARKET, put("safety", "pattern_detection", value=False), "safety.pattern_detection", "true"),
    (
        LAUNCH,
        put("auto_scaling", "min_replicas", value=30),
        "auto_scaling",
        "exceeds max_replicas 20",
    ),
    # global mode turns on what global-launch.yaml names, founder mode turns it off
    (TRANSITION, put("global", "launch.cdn", value=False), "global.launch.cdn", "must be true"),
    (TRANSITION, put("founder", "launch.seo", value=True), "founder.launch.seo", "must be false"),
    (TRANSITION, drop("founder", "launch.seo"), "founder", "missing launch.seo"),
    (TRANSITION, put("global", "launch.chat", value=True), "global.launch.chat", "not a feature"),
    # launch regions are known and not blocked
    (JURISDICTIONS, add("launch_regions", value="ZZ"), "launch_regions.6", "ZZ is not listed"),
    (JURISDICTIONS, add("launch_regions", value="KP"), "launch_regions.6", "KP is blocked"),
    (
        JURISDICTIONS,
        add("launch_regions", value="JP"),
        "launch_regions.6",
        "JP classifies NexCoin as prepaid_instrument",
    ),
    (JURISDICTIONS, duplicate_jurisdiction, "jurisdictions.8.code", "US is listed twice"),
    # between phases: a prerequisite is a value the phase writing the flag can write
    (
        LAUNCH,
        put("prerequisites", 1, "equals", value=9),
        "prerequisites.1.equals",
        "marketplace.step can never have this value: no move of phase3 (marketplace) writes it "
        "(it writes 0, 1, 2, 3, 4)",
    ),
    (LAUNCH, put("prerequisites", 0, "equals", value=1), "prerequisites.0.equals", "true, false"),
]


@pytest.mark.parametrize(("name", "change", "field", "says"), BROKEN)
def test_joint_rule_violation_is_refused(
    pfs: Path, name: str, change: Change, field: str, says: str
) -> None:
    edit(pfs, name, change)
    message = refused(pfs, name, field)
    assert says in message
    assert "; also" not in message, "only the broken rule should fire"


def test_removing_the_last_step_is_refused(pfs: Path) -> None:
    edit(pfs, MARKET, drop("steps", 4))
    message = refused(pfs, MARKET, "steps.3.cohorts")
    assert "steps.3.trading_types: the last step must allow ['auction']" in message


def test_global_launch_leaving_a_feature_out_requires_global_mode_to_match(pfs: Path) -> None:
    edit(pfs, LAUNCH, put("seo", value=False))
    message = refused(pfs, TRANSITION, "global.launch.seo")
    assert "omits" in message
    edit(pfs, TRANSITION, put("global", "launch.seo", value=False))
    assert launch_flags(load_phase_configs(pfs)[LAUNCH_PHASE], "global")["launch.seo"] is False


def test_a_prerequisite_on_a_flag_no_phase_writes_is_not_checked(pfs: Path) -> None:
    edit(pfs, LAUNCH, add("prerequisites", value={"flag": "platform.ready", "equals": True}))
    assert len(launch_prerequisites(load_phase_configs(pfs)[LAUNCH_PHASE])) == 3


def test_a_string_holding_a_control_character_is_refused_unshown(pfs: Path) -> None:
    edit(pfs, MARKET, put("currency", "name", value="Nex\u202eCoin\x1b[2J"))
    message = refused(pfs, MARKET, "currency.name")
    assert "holds a control character (U+202E)" in message and "Coin" not in message


def test_every_violation_is_reported(pfs: Path) -> None:
    edit(pfs, MARKET, put("currency", "fiat", value=True))
    edit(pfs, JURISDICTIONS, put("launch_regions", 0, value="KP"))
    message = refused(pfs, MARKET, "currency.fiat")
    assert f"also {pfs / JURISDICTIONS}: launch_regions.0: KP is blocked" in message


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        (MARKET, put("colour", value="blue"), "colour"),
        (MARKET, put("steps", 1, "colour", value="blue"), "steps.1.colour"),
        (LAUNCH, put("prerequisites", 0, "at_least", value=3), "prerequisites.0.at_least"),
        (TRANSITION, put("public", value={}), "public"),
        (
            JURISDICTIONS,
            put("jurisdictions", 0, "currency", value="USD"),
            "jurisdictions.0.currency",
        ),
    ],
)
def test_unknown_key_is_refused(pfs: Path, name: str, change: Change, field: str) -> None:
    edit(pfs, name, change)
    assert "Extra inputs are not permitted" in refused(pfs, name, field)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (put("daily_limits", "founders", value="10000"), "daily_limits.founders"),
        (put("daily_limits", "founders", value=True), "daily_limits.founders"),
        (put("steps", 1, "cohorts", value=["admins"]), "steps.1.cohorts.0"),
        (put("steps", 1, "cohorts", value=["founders", "founders"]), "steps.1.cohorts"),
        (put("min_soak_days", value=0), "min_soak_days"),
        (drop("currency"), "currency"),
    ],
)
def test_invalid_value_is_refused_strictly(pfs: Path, change: Change, field: str) -> None:
    edit(pfs, MARKET, change)
    refused(pfs, MARKET, field)


def test_missing_file_is_refused(pfs: Path) -> None:
    (pfs / JURISDICTIONS).unlink()
    assert "missing" in refused(pfs, JURISDICTIONS, None)


def test_invalid_yaml_is_refused(pfs: Path) -> None:
    (pfs / LAUNCH).write_text("seo: [true\n", encoding="utf-8")
    assert "cannot be read as YAML" in refused(pfs, LAUNCH, None)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / MARKET
    path.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="valid dictionary") as info:
        load_one(path, MarketplaceConfig)
    assert info.value.file == path


def test_load_one_reports_first_field_and_all_errors(tmp_path: Path) -> None:
    path = tmp_path / MARKET
    data = yaml.safe_load((SHIPPED / MARKET).read_text(encoding="utf-8"))
    data["daily_limits"]["founders"] = "lots"
    data["safety"]["pattern_detection"] = "yes"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_one(path, MarketplaceConfig)
    assert info.value.field == "daily_limits.founders"
    assert "also safety.pattern_detection" in str(info.value)


def test_marketplace_flags_open_step_by_step(configs: PhaseConfigs) -> None:
    flags: list[dict[str, Any]] = [
        marketplace_flags(configs[MARKET_PHASE], step) for step in range(5)
    ]
    assert {frozenset(f) for f in flags} == {frozenset(flags[0])}
    assert all(key.startswith("marketplace.") for key in flags[0])
    json.dumps(flags)
    for before, after in pairwise(flags[1:]):
        assert set(before["marketplace.cohorts"]) < set(after["marketplace.cohorts"])
    assert [f["marketplace.step"] for f in flags] == [0, 1, 2, 3, 4]
    assert flags[1]["marketplace.cohorts"] == ["founders"]
    assert flags[4]["marketplace.cohorts"][-1] == "everyone"
    assert ["auction" in f["marketplace.trading_types"] for f in flags] == [False] * 4 + [True]
    assert flags[2]["marketplace.daily_limits"] == {"founders": 10000, "creators": 5000}
    assert flags[4]["marketplace.daily_limits"]["everyone"] == 1000
    assert flags[3]["marketplace.currency"] == {
        "name": "NexCoin",
        "fiat": False,
        "withdrawal_to_money": False,
        "converts_to": [],
    }


def test_marketplace_step_zero_closes_everything(configs: PhaseConfigs) -> None:
    off = marketplace_flags(configs[MARKET_PHASE], 0)
    assert off["marketplace.enabled"] is False
    assert off["marketplace.cohorts"] == []
    assert off["marketplace.trading_types"] == []
    assert off["marketplace.daily_limits"] == {}
    # restrictions stay in force while the market is closed
    assert (
        off["marketplace.safety"]
        == marketplace_flags(configs[MARKET_PHASE], 4)["marketplace.safety"]
    )


@pytest.mark.parametrize("step", [-1, 5])
def test_marketplace_step_out_of_range(configs: PhaseConfigs, step: int) -> None:
    with pytest.raises(ValueError, match=r"valid steps are 0\.\.4"):
        marketplace_flags(configs[MARKET_PHASE], step)


def test_launch_flags_global_and_founder(configs: PhaseConfigs) -> None:
    on: dict[str, Any] = launch_flags(configs[LAUNCH_PHASE], "global")
    off: dict[str, Any] = launch_flags(configs[LAUNCH_PHASE], "founder")
    assert set(on) == set(off)
    assert all(key.startswith("launch.") for key in on)
    json.dumps([on, off])
    assert on["launch.mode"] == "global" and off["launch.mode"] == "founder"
    switches = ["launch.public_signups", "launch.seo", "launch.cdn", "launch.traffic_management"]
    assert all(on[key] is True and off[key] is False for key in switches)
    assert on["launch.marketing_channels"] == ["email", "social", "partners"]
    assert off["launch.marketing_channels"] == []
    assert on["launch.auto_scaling"] == {"enabled": True, "min_replicas": 2, "max_replicas": 20}
    assert off["launch.auto_scaling"]["enabled"] is False
    assert on["launch.regions"] == ["US", "CA", "GB", "DE", "FR", "AU"]
    assert off["launch.regions"] == []
    assert on["launch.blocked_regions"] == off["launch.blocked_regions"] == ["CU", "IR", "KP", "SY"]


def test_prerequisites_met_by_full_marketplace(configs: PhaseConfigs) -> None:
    current = {**marketplace_flags(configs[MARKET_PHASE], 4), "launch.mode": "founder"}
    assert [p.unmet(current) for p in launch_prerequisites(configs[LAUNCH_PHASE])] == [None, None]


def test_prerequisites_unmet_name_flag_required_and_current(configs: PhaseConfigs) -> None:
    prerequisites = launch_prerequisites(configs[LAUNCH_PHASE])
    unmet = [p.unmet(marketplace_flags(configs[MARKET_PHASE], 3)) for p in prerequisites]
    assert unmet == [None, "marketplace.step is 3; global mode needs 4"]
    assert [p.unmet({}) for p in prerequisites] == [
        "marketplace.enabled is not set; global mode needs true",
        "marketplace.step is not set; global mode needs 4",
    ]
    # 1 is not true in jsonb, however Python compares them
    assert prerequisites[0].unmet({"marketplace.enabled": 1}) == (
        "marketplace.enabled is 1; global mode needs true"
    )
