"""The deployment suite end to end on the healthy sandbox: order, audit, JUnit, HTML, refusals."""

from __future__ import annotations

import re
import socket

import pytest
from faults import git, git_repository, read_only_bind
from suite import DELETE, PRECHECK_NAMES

from nexus_deploy.audit import verify

pytestmark = pytest.mark.usefixtures("sandbox_up")


def test_exactly_the_twelve_prechecks_are_collected_in_order(run_suite):
    run = run_suite("-m", "precheck", "--collect-only", "-q")
    nodeids = [line for line in run.output.splitlines() if line.startswith("checks/")]
    modules = [re.sub(r"checks/test_\d\d_(\w+)\.py::test_\w+", r"\1", n) for n in nodeids]
    assert [m.upper() for m in modules] == list(PRECHECK_NAMES), run.output


@pytest.mark.parametrize("listing", ["--collect-only", "--fixtures", "--setup-plan"])
def test_listing_reads_nothing_on_the_target_and_writes_nothing(
    run_suite, target_file, tmp_path, listing
):
    # An activation asked for, yet only listed: no lock, no fact, no audit, no report. The
    # database port is a socket that records whoever connects, and the platform checkout runs
    # a git hook that leaves a file behind whenever a host command (`git status`) reads it.
    repo = git_repository(tmp_path / "nexus-cos")
    hook = tmp_path / "fsmonitor-hook"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path / 'git-ran'}\n", encoding="utf-8")
    hook.chmod(0o755)
    git(repo, "config", "core.fsmonitor", str(hook))
    with socket.socket() as database:
        database.bind(("127.0.0.1", 0))
        database.listen(8)
        database.setblocking(False)
        changes = {"database.port": database.getsockname()[1], "repository.path": str(repo)}
        run = run_suite(listing, "--activate=phase3", "--step=1", target=target_file(changes))
        assert run.rc == 0, run.output
        with pytest.raises(BlockingIOError):
            database.accept()  # nobody connected
    assert not (tmp_path / "git-ran").exists(), "a host command ran"
    assert "listing only: nothing is checked on the target, nothing is written" in run.output
    assert not (tmp_path / "audit").exists(), list((tmp_path / "audit").iterdir())
    assert not run.reports_dir.exists(), list(run.reports_dir.iterdir())
    if listing == "--collect-only":
        assert "<Function test_apply_and_verify>" in run.output  # listed, as it would run


@pytest.mark.parametrize(
    ("show", "shown"), [("--help", "--target=NAME|FILE"), ("--markers", "@pytest.mark.precheck")]
)
def test_help_and_markers_work_whatever_the_profile_says(run_suite, target_file, show, shown):
    run = run_suite(show, target=target_file({"disk.nonsense": 1}))
    assert run.rc == 0, run.output
    assert shown in run.output
    assert not run.reports_dir.exists()


def test_healthy_sandbox_passes_all_twelve_and_audits_each(run_suite):
    run = run_suite("-m", "precheck")
    assert run.rc == 0, run.output
    events = run.audit()
    names = [e.event for e in events]
    assert names == [
        "DEPLOYMENT_START",
        "PRECHECK_START",
        *(f"PRECHECK_{name}" for name in PRECHECK_NAMES),
        "PRECHECK_END",
        "DEPLOYMENT_COMPLETE",
    ]
    assert all(e.fields["status"] == "PASS" for e in events if e.event.startswith("PRECHECK_")
               and e.event not in ("PRECHECK_START", "PRECHECK_END"))  # fmt: skip
    assert run.event("PRECHECK_END").fields == {
        "passed": "12", "warnings": "0", "failed": "0", "not_run": "none"
    }  # fmt: skip
    assert run.event("DEPLOYMENT_COMPLETE").fields["status"] == "success"
    assert verify(run.audit_files()[0]).intact


def test_measured_values_reach_audit_junit_and_html(run_suite):
    run = run_suite("-m", "precheck")
    disk = run.event("PRECHECK_DISK").fields
    assert float(disk["free_gb:/var/lib/nexus-sandbox"]) > 0
    assert run.event("PRECHECK_DOCKER").fields["api_version"].startswith("1.")
    repository = run.event("PRECHECK_REPOSITORY").fields
    assert (repository["branch"], repository["expected_branch"], repository["fsck"]) == (
        "main", "main", "clean"
    )  # fmt: skip
    assert run.event("PRECHECK_SYSTEM").fields["root_or_sudo"] == "true"
    assert run.event("PRECHECK_BACKUP").fields["min_free_gb"] == "1"
    assert int(run.event("PRECHECK_SECURITY").fields["days_left"]) > 30

    properties = run.cases["test_memory"]["properties"]
    assert float(properties["available_gb"]) > 0
    assert run.cases["test_api"]["properties"]["nginx_status"] == "200"

    html = (run.run_dir / "report.html").read_text(encoding="utf-8")
    assert run.run_dir.name in html, "run id in the report"
    assert "PRECHECK_DISK" in html and "free_gb:/var/lib/nexus-sandbox" in html
    # Self-contained: no stylesheet or script fetched from elsewhere.
    assert not re.search(r'<link[^>]+href="(?!data:)', html)
    assert not re.search(r'<script[^>]+src="(?!data:)', html)


def test_junit_names_the_run_and_each_precheck_status(run_suite):
    run = run_suite("-m", "precheck")
    assert run.global_properties() == {
        "verdict": "GO",  # the run's verdict comes first (the review issue)
        "verdict_reason": "all 12 prechecks passed; nothing changed",
        "run_id": run.run_dir.name,
        "target": f"sandbox ({run.reports_dir.parent / 'target.yaml'})",
        "audit_log": str(run.audit_files()[0]),
    }
    statuses = {name: case["properties"]["precheck_status"] for name, case in run.cases.items()}
    assert statuses == {f"test_{name.lower()}": "PASS" for name in PRECHECK_NAMES}


def test_terminal_names_the_run_and_every_file_written(run_suite):
    run = run_suite("-m", "precheck")
    run_id = run.run_dir.name
    assert f"nexus-deploy: run {run_id}, target sandbox" in run.output
    for name in PRECHECK_NAMES:
        assert re.search(rf"^ *{name}: PASS$", run.output, re.MULTILINE), name
    for path in (run.audit_files()[0], run.run_dir / "junit.xml", run.run_dir / "report.html"):
        assert path.exists()
        assert str(path) in run.output
    assert (run.reports_dir / "latest").resolve() == run.run_dir


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"memory.min_available_gb": "plenty"}, "memory.min_available_gb"),
        ({"disk.nonsense": 1}, "disk.nonsense: Extra inputs are not permitted"),
        ({"database": DELETE}, "database: Field required"),
        ({"gateway.endpoints": [{"name": "x", "url": "ftp://h"}]}, "gateway.endpoints.0.url"),
        (
            {"gateway.endpoints": [{"name": "x", "url": "https://deploy:s3cret@h"}]},
            "gateway.endpoints.0.url: Value error, a login in the URL is refused",
        ),
    ],
)
def test_bad_profile_is_refused_before_any_check(run_suite, target_file, change, named):
    target = target_file(change)
    run = run_suite("-m", "precheck", target=target)
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert f"target profile refused: {target}" in run.output
    assert named in run.output
    assert "PRECHECK_" not in run.output and not run.cases
    refused = run.audit()
    assert [e.event for e in refused] == ["DEPLOYMENT_START", "DEPLOYMENT_REFUSED",
                                          "DEPLOYMENT_COMPLETE"]  # fmt: skip
    assert named.split(":")[0] in refused[1].fields["reason"]
    assert "s3cret" not in run.output + run.audit_files()[0].read_text(encoding="utf-8")


def test_missing_profile_is_refused_naming_the_file(run_suite, tmp_path):
    run = run_suite("-m", "precheck", target=tmp_path / "nowhere.yaml")
    assert run.rc == pytest.ExitCode.USAGE_ERROR
    assert f"{tmp_path / 'nowhere.yaml'}: target profile not found" in run.output


def test_a_reports_dir_that_cannot_be_made_is_refused_before_any_check(run_suite, tmp_path):
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    reports = tmp_path / "a-file" / "reports"
    run = run_suite("-m", "precheck", f"--reports-dir={reports}")
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert f"reports directory {reports} cannot be made: {tmp_path / 'a-file'} is not a" in (
        run.output
    )
    assert "Traceback" not in run.output and "PRECHECK_" not in run.output
    refused = run.audit()  # in the profile's audit directory
    assert refused[1].event == "DEPLOYMENT_REFUSED"


def test_a_latest_that_is_not_a_link_is_refused_and_left_alone(run_suite, tmp_path):
    latest = tmp_path / "reports" / "latest"
    latest.mkdir(parents=True)
    run = run_suite("-m", "precheck")
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert f"{latest} is not a link (each run points it at itself): move it away" in run.output
    assert latest.is_dir() and not latest.is_symlink()
    assert run_suite("-m", "precheck", "--collect-only").rc == 0  # listing writes no report


def test_a_read_only_reports_dir_is_refused_before_any_check(run_suite, tmp_path):
    with read_only_bind(tmp_path / "read-only") as reports:
        run = run_suite("-m", "precheck", f"--reports-dir={reports}")
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert f"reports directory {reports} cannot be written: {reports} is read-only" in run.output
    assert "Traceback" not in run.output


def test_a_refusal_that_cannot_be_audited_anywhere_says_so(run_suite, tmp_path):
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    nowhere = tmp_path / "nowhere.yaml"
    run = run_suite("-m", "precheck", f"--reports-dir={tmp_path / 'a-file'}", target=nowhere)
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert f"{nowhere}: target profile not found (not audited: " in run.output
    assert "Traceback" not in run.output


def test_an_activation_that_selects_no_test_did_not_run_and_exits_1(run_suite):
    run = run_suite("--activate=phase3", "--step=1", "--plan", "-k", "no-such-test")
    assert run.rc == pytest.ExitCode.TESTS_FAILED, run.output
    not_run = run.event("ACTIVATION_NOT_RUN", prefix="deployment-")
    assert not_run.fields["reason"].startswith("activation tests not selected (-k, -m")


def test_junit_names_each_precheck_by_number_and_name_and_carries_the_verdict(run_suite):
    run = run_suite("-m", "precheck")
    assert run.rc == 0, run.output
    assert run.cases["test_disk"]["name"] == "precheck 04 DISK"
    assert run.cases["test_previous_phases"]["name"] == "precheck 10 PREVIOUS_PHASES"
    properties = run.global_properties()
    assert properties["verdict"] == "GO"
    assert properties["verdict_reason"].startswith("all 12 prechecks passed")
