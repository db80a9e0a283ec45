"""Fact calls started in the background: same answers as direct calls, and none wasted."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from types import ModuleType

import pytest
from suite import CHECK_FILES, REPO

from nexus_deploy.config.profile import load_profile
from nexus_deploy.facts.bounded_host import bounded_host
from nexus_deploy.suite.prefetch import Declaration, Prefetch, Wanted, start_wanted


class Counter:
    """A fact call that counts how often it really ran, and in which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def __call__(self, value: int) -> int:
        self.calls.append((value, threading.current_thread().name))
        if value < 0:
            raise ValueError(f"negative: {value}")
        return value * 2


def test_a_started_call_answers_from_the_background_and_runs_once():
    count = Counter()
    prefetch = Prefetch()
    prefetch.start(count, 21)
    prefetch.start(count, 21)  # the same call again: not run twice
    assert prefetch.result(count, 21) == 42
    prefetch.close()
    assert len(count.calls) == 1
    assert count.calls[0][1].startswith("nexus-prefetch")
    assert prefetch.started_count == 1
    assert prefetch.unasked() == []


def test_a_call_nobody_started_runs_on_the_spot_and_other_arguments_are_other_calls():
    count = Counter()
    prefetch = Prefetch()
    prefetch.start(count, 1)
    assert prefetch.result(count, 2) == 4
    prefetch.close()
    assert sorted(value for value, _ in count.calls) == [1, 2]
    assert (2, threading.current_thread().name) in count.calls
    assert len(prefetch.unasked()) == 1 and "(1,)" in prefetch.unasked()[0]
    assert len(prefetch.made_on_the_spot) == 1 and "(2,)" in prefetch.made_on_the_spot[0]


def test_an_exception_in_the_background_is_raised_where_the_answer_is_asked_for():
    count = Counter()
    prefetch = Prefetch()
    prefetch.start(count, -1)
    with pytest.raises(ValueError, match="negative: -1"):
        prefetch.result(count, -1)
    prefetch.close()


REPORTER = """
import json, os
from pathlib import Path
from nexus_deploy.suite.plugin import RUN_KEY

running_at_first_test = None

def pytest_runtest_setup(item):
    global running_at_first_test
    if running_at_first_test is None:
        running_at_first_test = item.config.stash[RUN_KEY].prefetch.running()

def pytest_unconfigure(config):
    prefetch = config.stash[RUN_KEY].prefetch
    report = {
        "started": prefetch.started_count,
        "unasked": prefetch.unasked(),
        "made_on_the_spot": prefetch.made_on_the_spot,
        "running_at_first_test": running_at_first_test,
    }
    Path(os.environ["PREFETCH_REPORT"]).write_text(json.dumps(report))
"""


@pytest.mark.usefixtures("sandbox_up")
def test_the_prechecks_ask_for_exactly_the_calls_started_and_all_have_ended_before_them(
    run_suite, tmp_path: Path
):
    """Each precheck declares its calls (wanted_facts) as it makes them: on the
    healthy sandbox, where every check reads every fact, none is left unasked and none is made
    on the spot; and none is still running when the first test starts (the barrier)."""
    (tmp_path / "prefetch_reporter.py").write_text(REPORTER, encoding="utf-8")
    report = tmp_path / "prefetch.json"
    run = run_suite(
        "-m",
        "precheck",
        "-p",
        "prefetch_reporter",
        env={"PYTHONPATH": str(tmp_path), "PREFETCH_REPORT": str(report)},
    )
    assert run.rc == 0, run.output
    found = json.loads(report.read_text(encoding="utf-8"))
    assert found["running_at_first_test"] == []
    assert found["made_on_the_spot"] == []
    unasked = found["unasked"]
    if run.cases["test_docker"]["properties"]["compose"].startswith("docker compose "):
        # The v2 plugin answered first, so the check never asked for v1's answer.
        unasked = [call for call in unasked if "docker-compose version" not in call]
    assert unasked == []
    assert found["started"] == len(listed_calls()), found  # each listed call once, no more


def check_modules() -> dict[str, ModuleType]:
    """Each precheck module of checks/, imported as pytest would, by its name."""
    modules = {}
    for name, file in CHECK_FILES.items():
        spec = importlib.util.spec_from_file_location(f"_check_{name.lower()}", REPO / file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[name] = module
    return modules


def declared_calls(name: str, module: ModuleType) -> list[tuple[object, ...]]:
    """The calls one precheck declares (wanted_facts) on the sandbox profile, host calls with
    the host the run uses."""
    profile = load_profile(REPO / "pfs" / "targets" / "sandbox.yaml")
    host = bounded_host(profile.host, profile.command_timeout_s)
    wanted: Wanted = module.wanted_facts(profile, REPO / "pfs")
    return [(call, *args) for call, args in wanted.from_deployer] + [
        (call, host, *args) for call, args in wanted.on_host
    ]


def listed_calls() -> set[tuple[object, ...]]:
    """Every call the twelve prechecks declare on the sandbox profile, each once (the early
    Compose calls are among them)."""
    return {
        call for name, module in check_modules().items() for call in declared_calls(name, module)
    }


def test_every_precheck_declares_its_calls_and_a_module_without_any_starts_none(tmp_path: Path):
    for name, module in check_modules().items():
        assert declared_calls(name, module), f"{name}: no call declared"
    profile = load_profile(REPO / "pfs" / "targets" / "sandbox.yaml")

    quiet = ModuleType("test_13_quiet")  # a collected precheck whose module declares nothing
    prefetch = Prefetch()
    start_wanted(
        prefetch, [Declaration(quiet, profile, bounded_host("local://", 10))], REPO / "pfs"
    )
    prefetch.close()
    assert prefetch.started_count == 0
