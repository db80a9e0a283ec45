"""What a phase is to the deployer: the Phase protocol and the parts every phase shares.

A phase owns its config files in pfs/ and their typed model, the rules that span its fields and
files, the arguments its activation takes (``--step``, ``--mode``...) and their validation, the
flag values a move wants, its progressive guard, what it needs of the flags while it is live,
and its words in nexusctl. The deployer knows phases only through this protocol; the registry
(``nexus_deploy.phases``) finds them through the ``nexus_deploy.phases`` entry-point group.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from nexus_deploy.config import yamlfile
from nexus_deploy.config.errors import field_errors
from nexus_deploy.config.yamlfile import yaml_problem
from nexus_deploy.values import FlagRow, JsonValue

ConfigT = TypeVar("ConfigT")
MoveT = TypeVar("MoveT", bound="Move")
M = TypeVar("M", bound=BaseModel)

# What a nexusctl command of a phase hands the suite: the pytest arguments of its request.
SuiteArguments = Callable[[argparse.Namespace], list[str]]


class ActivationOptions(Protocol):
    """nexusctl's own options of an activation command (--plan, --confirm, --lock-timeout...),
    added by a phase to each of its commands with the SuiteArguments the command runs.
    ``needs_confirm``: without --confirm the command only plans (the launch, as the runbook
    writes it). ``emergency``: the command takes --emergency REASON (its moves turn off)."""

    def __call__(
        self,
        command: argparse.ArgumentParser,
        suite_arguments: SuiteArguments,
        *,
        needs_confirm: bool = False,
        emergency: bool = False,
    ) -> None: ...


class ConfigError(Exception):
    """A phase config that is missing, unparsable or invalid; str() names the file and field."""

    def __init__(self, file: Path, field: str | None, message: str) -> None:
        super().__init__(message)
        self.file = file
        self.field = field

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else str(self.file)
        return f"{where}: {self.args[0]}"


class RequestError(Exception):
    """An activation request that cannot be carried out as written (a usage error)."""


class StrictModel(BaseModel):
    """The base of every phase config model: unknown keys, loose types and edits refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class PhaseOption:
    """A pytest option a phase's activation takes, e.g. ``--step N`` for the marketplace.
    Phases may share an option (same flag, same dest); each validates what it is given."""

    flag: str  # "--step"
    metavar: str
    help: str

    @property
    def dest(self) -> str:
        return "nexus_" + self.flag.removeprefix("--").replace("-", "_")


@dataclass(frozen=True)
class Move:
    """What the operator asked of a phase, validated; ``summary`` is how the audit says it
    ("phase3 step 2"). Each phase subclasses it with its own fields."""

    phase: str

    @property
    def summary(self) -> str:
        return self.phase


@dataclass(frozen=True)
class FlagNeed:
    """A flag value a phase needs before one of its moves (a prerequisite), and where its
    config says so. A flag that some phase writes must be needed at a value that phase can
    write: the registry checks it (a prerequisite that can never be met keeps a move out)."""

    file: str  # the config file that says so, a name in the config directory
    field: str  # where in that file: "prerequisites.1.equals"
    flag: str
    value: JsonValue


@dataclass
class GuardResult:
    """The progressive guard's decision: why not (empty: cleared), and what --force-soak allowed."""

    refusals: list[str] = field(default_factory=list)
    soak_overridden: str | None = None


class Phase(Protocol[ConfigT, MoveT]):
    """One phase of the platform, as the deployer drives it."""

    @property
    def name(self) -> str:
        """What ``--activate`` takes and the audit says: "phase3"."""

    @property
    def title(self) -> str:
        """What the phase is, in a word or two: "marketplace"."""

    @property
    def config_files(self) -> tuple[str, ...]:
        """Its files in the config directory (pfs/)."""

    @property
    def options(self) -> tuple[PhaseOption, ...]:
        """The pytest options its activation takes."""

    def load(self, config_dir: Path) -> ConfigT:
        """Its configs, each valid alone and consistent together, or a ConfigError."""

    def parse(self, given: Mapping[str, str | None], config: ConfigT | None) -> MoveT:
        """The move the options ask for (keyed by option flag), or a RequestError. ``config``
        is None when the configs do not load: the CONFIG precheck then keeps the gate shut."""

    def desired_flags(self, config: ConfigT, move: MoveT) -> dict[str, JsonValue]:
        """The flag values the move writes, every key it owns."""

    def moves(self, config: ConfigT) -> list[MoveT]:
        """Every move it can make with these configs (each step, each mode): their
        desired_flags are every value it can write."""

    def needs(self, config: ConfigT) -> list[FlagNeed]:
        """The flag values its configs require before a move of its own (its prerequisites)."""

    def guard(
        self,
        config: ConfigT,
        move: MoveT,
        rows: Mapping[str, FlagRow],
        now: dt.datetime,
        force_soak: bool,
    ) -> GuardResult:
        """Whether the move may go from the current rows: one step at a time, soaks kept..."""

    def turns_off(self, move: MoveT) -> bool:
        """Whether the move only turns features off: the moves an emergency may make (with red
        prechecks, no soak, and a verification that never turns anything back on)."""

    def requirements(
        self, config: ConfigT, current: Mapping[str, JsonValue], after: Mapping[str, JsonValue]
    ) -> list[str]:
        """What this phase, as live in ``current``, needs of another phase's move to ``after``:
        why not, or []."""

    def status(self, flags: Mapping[str, JsonValue]) -> list[tuple[str, str]]:
        """Its state in the flags, as nexusctl status shows it: (label, value) lines."""

    def figures(self, config: ConfigT) -> dict[str, str | int]:
        """What the CONFIG precheck records of its configs (JUnit properties, audit fields)."""

    def add_commands(self, commands: Any, activation_options: ActivationOptions) -> None:
        """Its nexusctl words: subcommands of ``commands`` (argparse's subparsers action), each
        given nexusctl's activation options and the pytest arguments it asks for."""


def load_one(path: Path, model: type[M]) -> M:
    """Parse one YAML file into `model`; any failure is a ConfigError naming the field."""
    try:
        data = yamlfile.load(yamlfile.read_bounded(path))
    except FileNotFoundError:
        raise ConfigError(path, None, "file is missing") from None
    except yamlfile.ControlCharacterError as exc:
        raise ConfigError(path, exc.field, exc.why) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        # "from None": the message says it all; a chained cause would be shown again before it.
        raise ConfigError(path, None, f"cannot be read as YAML: {yaml_problem(exc)}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Where and what, never the value given (a list of 20,000 items, a terminal escape).
        (field, why), *rest = field_errors(exc, "a phase config")
        message = why + "".join(f"; also {f}: {m}" if f else f"; {m}" for f, m in rest)
        raise ConfigError(path, field or None, message) from None


def merged(problems: list[ConfigError]) -> ConfigError:
    """One ConfigError naming the first problem's file and field, with every other added."""
    first, rest = problems[0], problems[1:]
    if not rest:
        return first
    also = "".join(f"; also {p}" for p in rest)
    return ConfigError(first.file, first.field, f"{first.args[0]}{also}")


def refuse_joint_problems(config_dir: Path, rules: Iterator[tuple[str, str | None, str]]) -> None:
    """Raise every violation of a phase's joint rules ((file, field, message), the file a name
    in ``config_dir``) as one ConfigError; return when there is none."""
    problems = [ConfigError(config_dir / file, where, message) for file, where, message in rules]
    if problems:
        raise merged(problems)
