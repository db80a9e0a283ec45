"""Fact calls started in the background: same answers as direct calls, and none wasted."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from suite import REPO

from nexus_deploy.bounded_host import bounded_host
from nexus_deploy.prechecks import PRECHECK_NAMES
from nexus_deploy.prefetch import Prefetch
from nexus_deploy.probes import deployer_calls, host_calls, start_probes
from nexus_deploy.profile import load_profile


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
from nexus_deploy.plugin import RUN_KEY

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
    """nexus_deploy.probes lists each precheck's calls as the precheck makes them: on the
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


def listed_calls() -> set[tuple[object, ...]]:
    """Every call nexus_deploy.probes lists for the twelve prechecks on the sandbox profile,
    each once (the early Compose calls are among them)."""
    profile = load_profile(REPO / "pfs" / "targets" / "sandbox.yaml")
    host = bounded_host(profile.host, profile.command_timeout_s)
    return {
        (call, *args)
        for name in PRECHECK_NAMES
        for call, args in deployer_calls(name, profile, REPO / "pfs")
        + host_calls(name, profile, host)
    }


def test_every_precheck_has_calls_listed_and_an_unknown_name_is_refused():
    profile = load_profile(REPO / "pfs" / "targets" / "sandbox.yaml")
    host = bounded_host(profile.host, profile.command_timeout_s)
    for name in PRECHECK_NAMES:
        calls = deployer_calls(name, profile, REPO / "pfs") + host_calls(name, profile, host)
        assert calls, f"{name}: no call listed"
    with pytest.raises(ValueError, match="no precheck is named 'SECURTY'"):
        start_probes(Prefetch(), ["SECURTY"], profile, REPO / "pfs")
