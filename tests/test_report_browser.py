"""The reports as a reviewer sees them: each verdict's report.html, and the run history,
rendered in headless Chromium (Debian's package). What the page shows after its scripts ran is
checked; a screenshot of each is kept in reports/screenshots/ for CI's artifacts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from faults import closed_port
from suite import REPO, SuiteRun
from test_activation import stale_gateway  # noqa: F401  (a fixture: a gateway that never shows)

pytestmark = [
    pytest.mark.usefixtures("sandbox_up"),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed"),
]

SCREENSHOTS = REPO / "reports" / "screenshots"
CHROMIUM = [
    "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]  # fmt: skip


def chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [*CHROMIUM, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def seen(page: Path, screenshot: str) -> str:
    """The page's DOM after its scripts ran, offline (file://); a screenshot kept for CI."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chromium("--window-size=1280,1600", f"--screenshot={SCREENSHOTS / screenshot}", page.as_uri())
    return chromium("--dump-dom", page.as_uri())


def banner(dom: str) -> tuple[str, str]:
    """The verdict banner's colour class and the verdict word."""
    match = re.search(
        r'<section class="banner (\w+)" id="verdict"><h2><span class="verdict \w+">([^<]+)</span>',
        dom,
    )
    assert match, "no verdict banner on the page"
    return match[1], match[2]


def precheck_rows(dom: str) -> dict[str, str]:
    rows = re.findall(
        r'<tr class="precheck" id="precheck-(\w+)">.*?<td class="status-[\w-]+">([\w ]+)</td>', dom
    )
    return dict(rows)


def report_of(run: SuiteRun) -> Path:
    return run.run_dir / "report.html"


def test_go(run_suite: Callable[..., SuiteRun]) -> None:
    run = run_suite("-m", "precheck")
    dom = seen(report_of(run), "go.png")
    assert banner(dom) == ("go", "GO")
    assert "all 12 prechecks passed; nothing changed" in dom
    assert set(precheck_rows(dom).values()) == {"PASS"} and len(precheck_rows(dom)) == 12
    assert "No log output captured" not in dom
    # The banner comes before pytest-html's environment table and results (flex order).
    assert dom.index('id="verdict"') < dom.index('id="results-table"')


def test_no_go(run_suite: Callable[..., SuiteRun], target_file: Callable[..., Path]) -> None:
    run = run_suite("-m", "precheck", target=target_file({"disk.min_free_gb": 100000}))
    dom = seen(report_of(run), "no-go.png")
    assert banner(dom) == ("nogo", "NO-GO")
    assert "precheck failed: DISK" in dom
    rows = precheck_rows(dom)
    assert rows["DISK"] == "FAIL" and rows["MEMORY"] in ("PASS", "WARNING")
    assert "below the minimum 100000 GB" in dom


def test_applied_shows_the_plan_and_the_rollback_script(
    run_suite: Callable[..., SuiteRun], clean_flags: psycopg.Connection[Any]
) -> None:
    run = run_suite("--activate=phase3", "--step=1")
    assert run.rc == 0, run.output
    dom = seen(report_of(run), "applied.png")
    assert banner(dom) == ("go", "APPLIED")
    changes = re.findall(r'<tr class="change"><td>([\w.]+)</td>', dom)
    assert "marketplace.step" in changes and len(changes) == 7
    assert re.search(r'id="rollback-script">#!/usr/bin/env bash\s+# Rollback of nexus-deploy', dom)
    assert re.search(r'id="verification">.*all 7 changed flags as written', dom, re.DOTALL)
    assert 'id="restore-point"' in dom and "chain intact" in dom
    summary = json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "APPLIED" and len(summary["changes"]) == 7


def test_refused_by_the_guard(
    run_suite: Callable[..., SuiteRun], clean_flags: psycopg.Connection[Any]
) -> None:
    run = run_suite("--activate=phase3", "--step=3")
    dom = seen(report_of(run), "refused.png")
    assert banner(dom) == ("nogo", "REFUSED")
    assert "step 3 needs step 2 active" in dom


def test_rolled_back(
    run_suite: Callable[..., SuiteRun],
    target_file: Callable[..., Path],
    clean_flags: psycopg.Connection[Any],
    stale_gateway: str,  # noqa: F811
) -> None:
    endpoints = [
        {"name": "direct", "url": "http://127.0.0.1:8081"},
        {"name": "stale", "url": stale_gateway},
    ]
    target = target_file({"gateway.endpoints": endpoints, "gateway.verify_timeout_s": 1})
    run = run_suite("--activate=phase3", "--step=1", target=target)
    dom = seen(report_of(run), "rolled-back.png")
    assert banner(dom) == ("rolledback", "ROLLED BACK")
    assert "stale: old or missing" in dom


def test_emergency(
    run_suite: Callable[..., SuiteRun],
    target_file: Callable[..., Path],
    clean_flags: psycopg.Connection[Any],
) -> None:
    down = closed_port()
    target = target_file(
        {"gateway.endpoints": [{"name": "direct", "url": f"http://127.0.0.1:{down}"}]}
    )
    run = run_suite("--activate=phase3", "--step=0", "--emergency=fraud", target=target)
    assert run.rc == 0, run.output
    dom = seen(report_of(run), "emergency.png")
    assert banner(dom) == ("emergency", "EMERGENCY")
    assert "applied in an emergency: fraud" in dom and "red prechecks: API" in dom


@pytest.fixture
def history(run_suite: Callable[..., SuiteRun]) -> tuple[Path, list[str]]:
    """The history page after two runs, and their run ids, newest first."""
    first = run_suite("-m", "precheck").run_dir.name  # `latest` now: resolved at once
    newest = run_suite("-m", "precheck", "-k", "disk")  # not every precheck ran: no GO
    return newest.reports_dir / "index.html", [newest.run_dir.name, first]


def test_the_run_history_lists_every_run_newest_first(history: tuple[Path, list[str]]) -> None:
    page, run_ids = history
    dom = seen(page, "history.png")
    rows = re.findall(r'<tr><td>[^<]+</td><td>[^<]*</td><td><span class="verdict (\w+)">', dom)
    assert rows == ["nogo", "go"], "the -k run, newest, is no GO"
    links = re.findall(r'<a href="([^"]+)/report.html">', dom)
    assert links == run_ids, "newest first (two runs may share a second: by milliseconds)"
    assert all((page.parent / link / "report.html").is_file() for link in links)


def test_refused_before_any_check_still_leaves_a_report(run_suite: Callable[..., SuiteRun]) -> None:
    run = run_suite("--activate=phase9")
    assert run.rc == pytest.ExitCode.USAGE_ERROR
    (folder,) = [p for p in run.reports_dir.iterdir() if p.is_dir()]
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "REFUSED" and "--activate: unknown phase" in summary["headline"]
    dom = seen(folder / "report.html", "refused-input.png")
    assert banner(dom) == ("nogo", "REFUSED")
    assert "unknown phase" in dom and "Nothing was checked and nothing was changed" in dom
    assert not (run.reports_dir / "latest").exists()  # no session ran
