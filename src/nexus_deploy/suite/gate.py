"""The gate: activation runs only after every precheck ran in this run and none failed."""

from __future__ import annotations

from typing import Protocol

import pytest

from nexus_deploy.change.request import ActivationRequest
from nexus_deploy.suite.prechecks import Tally, precheck_label, precheck_name

# Plugins whose absence changes how the prechecks run or are reported.
REQUIRED_PLUGINS = {
    "pytest_order": "pytest-order (-p no:pytest_order)",
    "junitxml": "the JUnit report (-p no:junitxml)",
    "html": "the HTML report (-p no:html)",
}


class RunState(Protocol):
    """What the gate needs of a run: its request, every precheck it owes (on a fleet, one per
    host of a host-level precheck: ``DISK[api-3]``), and where to record why the gate is shut."""

    @property
    def request(self) -> ActivationRequest | None: ...

    @property
    def expected(self) -> tuple[str, ...]: ...

    def close_gate(self, problems: list[str]) -> None: ...


def activation_stage(item: pytest.Item) -> str | None:
    """``plan`` or ``apply`` for an activation test (``@pytest.mark.activation("plan")``)."""
    marker = item.get_closest_marker("activation")
    if marker is None:
        return None
    return str(marker.args[0]) if marker.args else "apply"


# The activation tests' stages, in the order they run: the restore point of every deployment,
# then the plan and the change of one that activates something.
STAGES = ("prepare", "plan", "apply")


def run_order(item: pytest.Item, prechecks: tuple[str, ...]) -> int | None:
    """Where ``item`` runs (pytest-order's index): precheck N at N, then the activation stages;
    None for any other test."""
    name = precheck_name(item)
    if name is not None:
        return prechecks.index(name) + 1 if name in prechecks else None
    stage = activation_stage(item)
    if stage is None:
        return None
    return len(prechecks) + 1 + (STAGES.index(stage) if stage in STAGES else len(STAGES))


def selection_problems(
    items: list[pytest.Item], config: pytest.Config, expected: tuple[str, ...]
) -> list[str]:
    """Why the selected items cannot open the gate, before any of them runs."""
    problems = []
    selected = [label for label in map(precheck_label, items) if label]
    missing = [label for label in expected if label not in selected]
    if missing:
        problems.append(f"prechecks not selected: {', '.join(missing)} (-k, -m, --deselect, paths)")
    if selected != [label for label in expected if label in selected]:
        problems.append(f"prechecks out of order: {', '.join(selected)}")
    stages = [i for i, item in enumerate(items) if activation_stage(item)]
    checks = [i for i, item in enumerate(items) if precheck_name(item)]
    if stages and checks and min(stages) < max(checks):
        problems.append("an activation test would run before a precheck")
    for name, label in REQUIRED_PLUGINS.items():
        if not config.pluginmanager.has_plugin(name):
            problems.append(f"plugin disabled: {label}")
    if getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput"):
        problems.append("several workers (xdist): prechecks and activation must run in one process")
    reordering = (
        ("lf", "--lf"),
        ("failedfirst", "--ff"),
        ("newfirst", "--nf"),
        ("stepwise", "--sw"),
    )
    for option, label in reordering:
        if getattr(config.option, option, False):
            problems.append(f"{label} selects tests by an earlier run")
    return problems


def runtime_problems(tally: Tally) -> list[str]:
    """Why the prechecks that ran do not open the gate."""
    problems = []
    if tally.failed:
        problems.append(f"prechecks failed: {', '.join(tally.failed)}")
    if tally.not_run:
        problems.append(f"prechecks did not run: {', '.join(tally.not_run)}")
    return problems


def split_activation(
    items: list[pytest.Item], run: RunState, config: pytest.Config
) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """Activation items that may stay, and those deselected (with the reason recorded)."""
    activation = [item for item in items if activation_stage(item)]
    if run.request is None:
        return [i for i in items if i not in activation], activation
    if not activation:
        run.close_gate(["activation tests not selected (-k, -m, --deselect or paths)"])
        return items, []
    problems = selection_problems(items, config, run.expected)
    if problems:
        run.close_gate(problems)
        return [i for i in items if i not in activation], activation
    wanted = (
        ("plan",) if run.request.plan_only  # writes nothing, not even a restore point
        else ("prepare",) if run.request.move is None
        else STAGES
    )  # fmt: skip
    dropped = [item for item in activation if activation_stage(item) not in wanted]
    return [i for i in items if i not in dropped], dropped
