"""The phase registry: every phase the deployer can activate, found through entry points.

A phase is an object that follows ``nexus_deploy.phases.base.Phase``, registered under the
entry-point group ``nexus_deploy.phases`` (the marketplace and the launch are registered in the
deployer's own pyproject.toml; a platform team adds a phase from its own package the same way).
Nothing outside a phase's own module names a phase, a step or a mode.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from nexus_deploy.phases.base import ConfigError, Phase, PhaseOption, merged
from nexus_deploy.values import to_json

ENTRY_POINT_GROUP = "nexus_deploy.phases"
AnyPhase = Phase[Any, Any]


class RegistryError(Exception):
    """A phase that cannot be registered: it does not load, lacks a part, or reuses a name."""


REQUIRED = ("name", "title", "config_files", "options", "load", "parse", "desired_flags",
            "moves", "needs", "guard", "turns_off", "requirements", "status", "figures",
            "add_commands")  # fmt: skip


@functools.cache
def registered() -> dict[str, AnyPhase]:
    """Every registered phase by name, in name order ("phase3", "phase4", ...)."""
    found: dict[str, AnyPhase] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            phase = entry.load()
        except Exception as exc:  # someone else's package: say which, whatever it raised
            raise RegistryError(
                f"phase entry point {entry.name} = {entry.value} does not load: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        missing = [part for part in REQUIRED if not hasattr(phase, part)]
        if missing:
            raise RegistryError(
                f"phase entry point {entry.name} = {entry.value} is not a phase: "
                f"it has no {', '.join(missing)}"
            )
        if phase.name in found:
            raise RegistryError(f"two phases are named {phase.name!r} ({entry.value} is one)")
        found[phase.name] = phase
    return dict(sorted(found.items()))


def phase_named(name: str) -> AnyPhase:
    """The phase ``--activate`` names, or a KeyError."""
    return registered()[name]


def all_options() -> list[PhaseOption]:
    """Every phase's options, each flag once (phases may share one)."""
    options: dict[str, PhaseOption] = {}
    for phase in registered().values():
        for option in phase.options:
            options.setdefault(option.flag, option)
    return list(options.values())


def owners_of(flag: str) -> list[str]:
    """The phases that take the option ``flag``."""
    return [p.name for p in registered().values() if any(o.flag == flag for o in p.options)]


def config_files() -> list[str]:
    """Every phase's config files, in phase order."""
    return [file for phase in registered().values() for file in phase.config_files]


@dataclass(frozen=True)
class PhaseConfigs(Mapping[str, Any]):
    """Every phase's configs by phase name, all loaded and valid."""

    by_phase: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.by_phase[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_phase)

    def __len__(self) -> int:
        return len(self.by_phase)


def load_phase_configs(config_dir: Path) -> PhaseConfigs:
    """Every registered phase's configs from ``config_dir``; the first problem found is raised
    as a ConfigError naming its file and field, with every other problem added."""
    loaded: dict[str, Any] = {}
    problems: list[ConfigError] = []
    for name, phase in registered().items():
        try:
            loaded[name] = phase.load(config_dir)
        except ConfigError as exc:
            problems.append(exc)
    problems += unreachable_needs(loaded, config_dir)
    if problems:
        raise merged(problems)
    return PhaseConfigs(loaded)


def unreachable_needs(loaded: Mapping[str, Any], config_dir: Path) -> list[ConfigError]:
    """The rule between phases: a flag a phase needs (a prerequisite) that another phase
    writes must be needed at a value one of that phase's moves writes, else the move that needs
    it could never be made. Checked among the phases whose configs loaded."""
    writers: dict[str, tuple[AnyPhase, set[str]]] = {}  # flag: its writer, each value as JSON
    for name, config in loaded.items():
        phase = registered()[name]
        for move in phase.moves(config):
            for flag, value in phase.desired_flags(config, move).items():
                writers.setdefault(flag, (phase, set()))[1].add(to_json(value))
    problems = []
    for name, config in loaded.items():
        for need in registered()[name].needs(config):
            # Compared as JSON, as a prerequisite is met: true is not 1, nor 1 true.
            if need.flag not in writers or to_json(need.value) in writers[need.flag][1]:
                continue
            writer, values = writers[need.flag]
            problems.append(
                ConfigError(
                    config_dir / need.file,
                    need.field,
                    f"{need.flag} can never have this value: no move of {writer.name} "
                    f"({writer.title}) writes it{_choices(values)}",
                )
            )
    return problems


def _choices(values: set[str]) -> str:
    """The values a phase writes, when they are a few short words or numbers."""
    if len(values) > 8 or any(len(v) > 20 or v[:1] in "[{" for v in values):
        return ""
    return f" (it writes {', '.join(sorted(values, key=lambda v: (len(v), v)))})"
