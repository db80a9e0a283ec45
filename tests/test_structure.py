"""The structure holds its promises: a precheck is one file, a phase is one module, its YAML and
one entry point, and the package's layers import one way only."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from suite import REPO, SuiteRun, parse_audit

from nexus_deploy.change import guard
from nexus_deploy.change.request import ActivationRequest
from nexus_deploy.phases import load_phase_configs
from nexus_deploy.phases.marketplace import MarketStep
from nexus_deploy.suite.prechecks import CatalogueError, catalogue
from nexus_deploy.values import FlagRow

SUITE_PARTS = ("conftest.py", "pyproject.toml", "checks", "activation", "fixtures", "pfs")

DNS_CHECK = '''"""DNS: the name the platform's gateway answers on resolves to loopback."""

import socket

import pytest

pytestmark = pytest.mark.precheck


def test_dns(record_property):
    address = socket.gethostbyname("localhost")
    record_property("localhost", address)
    assert address.startswith("127."), f"localhost resolves to {address}"
'''


@pytest.fixture
def suite_copy(pytester: pytest.Pytester) -> Path:
    """A copy of the deployment suite, as a platform team would fork it."""
    for part in SUITE_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(
                source, pytester.path / part, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(source, pytester.path / part)
    return pytester.path


def audit_of(audit_dir: Path, prefix: str) -> list[Any]:
    (log,) = audit_dir.glob(f"{prefix}*.log")
    return parse_audit(log)


@pytest.mark.usefixtures("sandbox_up", "clean_flags")
def test_a_13th_precheck_is_one_file_the_gate_counts_and_orders(
    pytester: pytest.Pytester, suite_copy: Path, target_file: Callable[..., Path], tmp_path: Path
) -> None:
    (suite_copy / "checks" / "test_13_dns.py").write_text(DNS_CHECK, encoding="utf-8")
    target = target_file()
    result = pytester.runpytest_subprocess(
        f"--target={target}", "--activate", "phase3", "--step", "1", "--plan", "-v"
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*test_12_backup.py::test_backup PASSED*",
            "*test_13_dns.py::test_dns PASSED*",
            "*test_activate.py::test_plan PASSED*",
        ]
    )
    events = audit_of(tmp_path / "audit", "deployment-")
    by_name = {e.event: e.fields for e in events}
    assert by_name["PRECHECK_START"]["order"].endswith(",BACKUP,DNS")
    assert by_name["PRECHECK_DNS"]["status"] == "PASS"
    assert by_name["GATE_OPEN"]["prechecks"] == "13"

    # The count comes from checks/, not from what was selected: without DNS the gate stays shut.
    result = pytester.runpytest_subprocess(
        f"--target={target}",
        "--activate=phase3",
        "--step=1",
        "--plan",
        "--deselect=checks/test_13_dns.py::test_dns",
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*prechecks not selected: DNS*"])


def test_a_gap_or_a_repeat_in_the_numbering_is_refused(tmp_path: Path) -> None:
    checks = tmp_path / "checks"
    checks.mkdir()
    for name in ("test_01_system.py", "test_02_services.py", "test_04_disk.py", "helpers.py"):
        (checks / name).touch()
    with pytest.raises(
        CatalogueError, match=re.escape("numbered 01..03 without gaps, not 01, 02, 04")
    ):
        catalogue(checks)
    (checks / "test_03_memory.py").touch()
    assert catalogue(checks) == ("SYSTEM", "SERVICES", "MEMORY", "DISK")
    (checks / "test_03_dns.py").touch()
    with pytest.raises(CatalogueError, match="two prechecks are numbered 03"):
        catalogue(checks)


def test_a_broken_catalogue_is_a_usage_error_before_anything_runs(
    pytester: pytest.Pytester, suite_copy: Path, target_file: Callable[..., Path], tmp_path: Path
) -> None:
    (suite_copy / "checks" / "test_14_dns.py").write_text(DNS_CHECK, encoding="utf-8")
    result = pytester.runpytest_subprocess(f"--target={target_file()}", "-m", "precheck")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*prechecks must be numbered 01..13 without gaps*14*"])
    events = audit_of(tmp_path / "audit", "precheck-")
    assert [e.event for e in events][-2:] == ["DEPLOYMENT_REFUSED", "DEPLOYMENT_COMPLETE"]


# --- phase 5 from a package of its own -----------------------------------------------------

ROLLOUT = {"waves": [["US"], ["US", "CA"], ["US", "CA", "GB"]]}


@pytest.fixture
def phase_five(tmp_path: Path) -> dict[str, str]:
    """A separate package on PYTHONPATH whose dist-info registers phase5 under the entry-point
    group, as `pip install` of a platform team's package would."""
    package = tmp_path / "site"
    package.mkdir()
    shutil.copy(REPO / "tests" / "plugins" / "phase_five.py", package / "phase_five.py")
    info = package / "phase_five-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: phase-five\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nexus_deploy.phases]\nrollout = phase_five:PHASE\n")
    return {"PYTHONPATH": str(package)}


@pytest.fixture
def rollout_rows(flags_db: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    flags_db.execute("DELETE FROM nexus_feature_flags WHERE key LIKE 'rollout.%'")
    yield flags_db
    flags_db.execute("DELETE FROM nexus_feature_flags WHERE key LIKE 'rollout.%'")


def rollout_flags(connection: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = connection.execute(
        "SELECT key, value FROM nexus_feature_flags WHERE key LIKE 'rollout.%'"
    ).fetchall()
    return dict(rows)


def nexusctl(target: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nexus_deploy.cli", f"--target={target}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.mark.usefixtures("sandbox_up")
def test_a_phase_5_from_its_own_package_plans_applies_shows_and_rolls_back(
    run_suite: Callable[..., SuiteRun],
    target_file: Callable[..., Path],
    pfs_copy: Path,
    phase_five: dict[str, str],
    rollout_rows: psycopg.Connection[Any],
) -> None:
    (pfs_copy / "rollout-phase5.yaml").write_text(yaml.safe_dump(ROLLOUT), encoding="utf-8")
    target = target_file({"config.dir": str(pfs_copy)})

    plan = run_suite("--activate=phase5", "--wave=1", "--plan", target=target, env=phase_five)
    assert plan.rc == 0, plan.output
    assert "change: rollout.wave: (absent) -> 1" in plan.output
    assert "rollout_waves" in plan.cases["test_config"]["properties"]
    assert rollout_flags(rollout_rows) == {}

    applied = run_suite("--activate=phase5", "--wave=1", target=target, env=phase_five)
    assert applied.rc == 0, applied.output
    assert "request: phase5 wave 1" in applied.output
    # Committed and seen through every gateway endpoint: not rolled back automatically.
    assert "activation: committed: 2 flag changes" in applied.output
    assert rollout_flags(rollout_rows) == {"rollout.regions": ["US"], "rollout.wave": 1}

    skipped = run_suite("--activate=phase5", "--wave=3", target=target, env=phase_five)
    assert skipped.rc == 1 and "wave 3 needs wave 2; at wave 1" in skipped.output

    # nexusctl speaks the phase's own words, and shows its state.
    done = nexusctl(target, phase_five, "rollout", "--wave", "2", "--confirm")
    assert done.returncode == 0, done.stdout + done.stderr
    status = nexusctl(target, phase_five, "status")
    assert "rollout      : wave 2" in status.stdout, status.stdout + status.stderr

    back = nexusctl(target, phase_five, "rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert rollout_flags(rollout_rows)["rollout.wave"] == 1

    # Its option is its own: another phase refuses it, naming who takes it.
    wrong = run_suite("--activate=phase3", "--step=1", "--wave=2", target=target, env=phase_five)
    assert wrong.rc == 4 and "--wave is for --activate phase5" in wrong.output


def test_without_the_package_phase5_is_unknown(run_suite: Callable[..., SuiteRun]) -> None:
    refused = run_suite("--activate=phase5")
    assert refused.rc == 4
    assert "--activate: unknown phase (phases: phase3, phase4)" in refused.output


# --- layers ---------------------------------------------------------------------------------

PACKAGE = REPO / "src" / "nexus_deploy"
# What each layer may import of the others (leaves: audit, values; db and cli at the edges).
MAY_IMPORT = {
    "values": set(),
    "audit": set(),
    "runid": set(),
    "crash": set(),
    "config": set(),
    "db": {"config"},
    "facts": {"config", "db"},
    "phases": {"config", "values"},
    "change": {"audit", "config", "crash", "db", "facts", "phases", "runid", "values"},
    "suite": {"audit", "change", "config", "db", "facts", "phases", "runid", "values"},
    "cli": {"audit", "change", "config", "db", "facts", "phases", "runid", "values"},
}


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "nexus_deploy" and len(parts) > 1 and parts[1] != "__version__":
                found.add(parts[1])
    return found


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        layer = layer_of(path)
        for other in imported_layers(path) - {layer}:
            if other not in MAY_IMPORT[layer]:
                wrong.append(f"{path.relative_to(REPO)} ({layer}) imports {other}")
    assert wrong == []


def code_strings(path: Path) -> Iterator[str]:
    """The string literals a module's code uses: not its docstrings (nor comments), which may
    name a phase as an example."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_text and id(node) not in docstrings:
            yield node.value


def test_nothing_outside_a_phase_module_names_a_phase_or_a_step() -> None:
    named = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "phases" and path.name not in ("__init__.py", "base.py"):
            continue
        for text in code_strings(path):
            for word in ("phase3", "phase4", "marketplace", "launch.", "--step", "--mode"):
                if word in text:
                    named.append(f"{path.relative_to(REPO)}: {text!r}")
    assert named == []


# --- the rule between phases ----------------------------------------------------------------


def rows_at(**values: Any) -> dict[str, FlagRow]:
    """Flag rows as stored, set long enough ago that no soak is pending."""
    return {
        key.replace("_", "."): FlagRow(
            key.replace("_", "."), json.dumps(value), "2026-01-01 00:00:00+00", "tests"
        )
        for key, value in values.items()
    }


def test_the_launch_refuses_only_the_marketplace_moves_that_break_its_prerequisites() -> None:
    configs = load_phase_configs(REPO / "pfs")
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    launched = {"launch_mode": "global", "marketplace_enabled": True}

    def refusals(at_step: int, to_step: int) -> list[str]:
        rows = rows_at(**launched, marketplace_step=at_step)
        request = ActivationRequest(MarketStep("phase3", to_step))
        return guard.check(request, rows, configs, now).refusals

    (lowering,) = refusals(4, 3)
    assert lowering.startswith("the global launch needs it: marketplace.step is 3")
    assert refusals(4, 4) == []
    # Below the full marketplace already (a rollback script ran): moving back up is allowed.
    assert refusals(3, 4) == []
    assert refusals(2, 3) == []
