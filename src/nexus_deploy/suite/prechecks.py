"""The prechecks: which there are and in what order (the files of checks/), and how one run's
outcomes add up.

The catalogue is the checks directory itself: ``checks/test_NN_name.py`` is precheck NN, audited
as NAME. Adding a precheck is adding its file; nothing else counts or orders them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHECKS_DIR = "checks"
CHECK_FILE = re.compile(r"^test_(?P<number>[0-9]{2})_(?P<name>[a-z][a-z0-9_]*)\.py$")

# Warnings a precheck raised, kept on its item until its outcome is written down.
WARNINGS_KEY = pytest.StashKey[list[str]]()


class CatalogueError(Exception):
    """The checks directory does not make one numbered list of prechecks."""


def name_of_file(path: Path) -> str | None:
    """The audit name of a precheck file (``test_04_disk.py``: DISK), else None."""
    match = CHECK_FILE.match(path.name)
    return match["name"].upper() if match else None


def catalogue(checks_dir: Path) -> tuple[str, ...]:
    """Every precheck's name, in order: the files test_01_*.py, test_02_*.py... of checks_dir,
    numbered from 01 without gaps or repeats."""
    return tuple(name_of_file(path) or "" for path in catalogue_files(checks_dir))


def catalogue_files(checks_dir: Path) -> tuple[Path, ...]:
    """The precheck files of ``catalogue``, in the same order."""
    numbered: dict[int, Path] = {}
    for path in sorted(checks_dir.glob("test_*.py")):
        match = CHECK_FILE.match(path.name)
        if match is None:
            continue
        number = int(match["number"])
        if number in numbered:
            raise CatalogueError(
                f"{checks_dir}: two prechecks are numbered {number:02d} "
                f"({name_of_file(numbered[number])} and {match['name'].upper()})"
            )
        numbered[number] = path
    expected = list(range(1, len(numbered) + 1))
    if sorted(numbered) != expected:
        raise CatalogueError(
            f"{checks_dir}: prechecks must be numbered 01..{len(numbered):02d} without gaps, "
            f"not {', '.join(f'{n:02d}' for n in sorted(numbered))}"
        )
    return tuple(numbered[n] for n in expected)


def precheck_name(item: pytest.Item) -> str | None:
    """The audit name of a precheck item (marked ``precheck``, in checks/test_NN_name.py)."""
    if item.get_closest_marker("precheck") is None:
        return None
    name = name_of_file(item.path)
    if name is None:
        raise pytest.UsageError(
            f"{item.nodeid}: a precheck lives in {CHECKS_DIR}/test_NN_name.py (NN its number)"
        )
    return name


class Status(enum.Enum):
    PASS = "PASS"
    WARNING = "WARNING"
    FAIL = "FAIL"


@dataclass
class Outcome:
    """How one precheck ended (on one host of a fleet): its status, what it measured and, if
    it failed, why."""

    name: str
    status: Status
    measured: dict[str, str | int | float | bool] = field(default_factory=dict)
    reason: str = ""
    host: str | None = None  # on a fleet, the host a host-level precheck ran on

    @property
    def label(self) -> str:
        """``DISK``, or ``DISK[api-3]`` on a host of a fleet: what the gate counts."""
        return label(self.name, self.host)


def label(name: str, host: str | None) -> str:
    return f"{name}[{host}]" if host else name


def base_name(label: str) -> str:
    """The precheck a label is of (``DISK[api-3]``: DISK)."""
    return label.split("[", 1)[0]


NODE_PARAMETER = "node"  # the fixture a host-level precheck is parametrized over (suite.fleet)


def host_of(item: pytest.Item) -> str | None:
    """The host a precheck item runs on, if it was parametrized over a fleet's hosts."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    host = callspec.params.get(NODE_PARAMETER)
    return str(host) if host is not None else None


def host_of_label(label: str) -> str | None:
    """The host in a label (``DISK[api-3]``: api-3), None for a precheck run once."""
    return label.split("[", 1)[1].rstrip("]") if "[" in label else None


def precheck_label(item: pytest.Item) -> str | None:
    """The label of a precheck item (see Outcome.label), None for any other test."""
    name = precheck_name(item)
    return None if name is None else label(name, host_of(item))


def junit_status(outcome: Outcome) -> list[tuple[str, str]]:
    """A precheck's status (and why, if not PASS) as JUnit properties of its testcase."""
    reason = [("precheck_reason", outcome.reason)] if outcome.reason else []
    return [("precheck_status", outcome.status.value), *reason]


# The outcome a precheck's setup or call settled, recorded once its teardown is done.
PENDING_KEY = pytest.StashKey[Outcome]()


def outcome_of(item: pytest.Item, report: pytest.TestReport) -> Outcome | None:
    """The precheck outcome a report settles, or None if the item is not finished yet."""
    name = precheck_name(item)
    if name is None:
        return None
    host = host_of(item)
    measured = {str(key): scalar(value) for key, value in report.user_properties}
    if report.failed:
        phase = "" if report.when == "call" else f"error in {report.when}: "
        return Outcome(name, Status.FAIL, measured, phase + failure_reason(report), host)
    if report.skipped:
        return Outcome(name, Status.FAIL, measured, "skipped: " + failure_reason(report), host)
    if report.when != "call":
        return None
    warnings = item.stash.get(WARNINGS_KEY, [])
    status = Status.WARNING if warnings else Status.PASS
    return Outcome(name, status, measured, "; ".join(warnings), host)


def scalar(value: object) -> str | int | float | bool:
    return value if isinstance(value, str | int | float | bool) else str(value)


def failure_reason(report: pytest.TestReport) -> str:
    """The one line an operator needs: the failure message, not the traceback."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, reason)
        text = str(report.longrepr[2])
    text = text.removeprefix("Failed: ").removeprefix("AssertionError: ")
    return text.split("\nassert ")[0].strip().replace("\n", " ")[:400]


@dataclass
class Tally:
    """The prechecks of one run (``names``: the labels of all it owes, in order; on a fleet one
    per host of a host-level precheck), in the order they finished."""

    names: tuple[str, ...]
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def record(self, outcome: Outcome) -> None:
        self.outcomes[outcome.label] = outcome

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome.status is status)

    def lines(self) -> list[tuple[str, Status | None]]:
        """A line per precheck for the terminal, with its status (None: those not run)."""
        width = max([15, *map(len, self.outcomes)])  # DISK, or REPOSITORY[api-12] on a fleet
        lines: list[tuple[str, Status | None]] = [
            (
                f"{o.label:>{width}}: {o.status.value}" + (f" ({o.reason})" if o.reason else ""),
                o.status,
            )
            for o in self.outcomes.values()
        ]
        if self.not_run:
            lines.append((f"{'not run':>{width}}: {', '.join(self.not_run)}", None))
        return lines

    @property
    def not_run(self) -> list[str]:
        return [name for name in self.names if name not in self.outcomes]

    @property
    def failed(self) -> list[str]:
        return [o.label for o in self.outcomes.values() if o.status is Status.FAIL]
