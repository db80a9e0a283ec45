"""The twelve prechecks: their names, their order, and how one run's outcomes add up."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import pytest

PRECHECK_NAMES: tuple[str, ...] = (
    "SYSTEM",
    "SERVICES",
    "DOCKER",
    "DISK",
    "MEMORY",
    "REPOSITORY",
    "CONFIG",
    "API",
    "DATABASE",
    "PREVIOUS_PHASES",
    "SECURITY",
    "BACKUP",
)

# Warnings a precheck raised, kept on its item until its outcome is written down.
WARNINGS_KEY = pytest.StashKey[list[str]]()


class Status(enum.Enum):
    PASS = "PASS"
    WARNING = "WARNING"
    FAIL = "FAIL"


def precheck_name(item: pytest.Item) -> str | None:
    """The audit name of a precheck item (``@pytest.mark.precheck("DISK")``), else None."""
    marker = item.get_closest_marker("precheck")
    if marker is None:
        return None
    if len(marker.args) != 1 or marker.args[0] not in PRECHECK_NAMES:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.precheck needs one of {', '.join(PRECHECK_NAMES)}"
        )
    return str(marker.args[0])


@dataclass
class Outcome:
    """How one precheck ended: its status, what it measured and, if it failed, why."""

    name: str
    status: Status
    measured: dict[str, str | int | float | bool] = field(default_factory=dict)
    reason: str = ""


def junit_status(outcome: Outcome) -> list[tuple[str, str]]:
    """A precheck's status (and why, if not PASS) as JUnit properties of its testcase."""
    reason = [("precheck_reason", outcome.reason)] if outcome.reason else []
    return [("precheck_status", outcome.status.value), *reason]


# The outcome a precheck's setup or call settled, recorded once its teardown is done.
PENDING_KEY = pytest.StashKey[Outcome]()


@dataclass
class Tally:
    """The prechecks of one run, in the order they finished."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def record(self, outcome: Outcome) -> None:
        self.outcomes[outcome.name] = outcome

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome.status is status)

    def lines(self) -> list[tuple[str, Status | None]]:
        """A line per precheck for the terminal, with its status (None: those not run)."""
        lines: list[tuple[str, Status | None]] = [
            (f"{o.name:>15}: {o.status.value}" + (f" ({o.reason})" if o.reason else ""), o.status)
            for o in self.outcomes.values()
        ]
        if self.not_run:
            lines.append((f"{'not run':>15}: {', '.join(self.not_run)}", None))
        return lines

    @property
    def not_run(self) -> list[str]:
        return [name for name in PRECHECK_NAMES if name not in self.outcomes]

    @property
    def failed(self) -> list[str]:
        return [o.name for o in self.outcomes.values() if o.status is Status.FAIL]
