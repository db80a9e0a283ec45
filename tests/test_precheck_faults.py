"""Each of the twelve prechecks turned red by a real fault, with a message that names it.

Every fault is real (a stopped service, a closed port, a corrupted git object, an expired
certificate, a read-only mount, a second gateway or nginx process) and made beside the shared
sandbox, never in it: the profile of the run points at the fault, and what a test stops it
starts again.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults import (
    SANDBOX_CERT,
    SANDBOX_KEY,
    closed_port,
    corrupt_loose_object,
    degraded_gateway,
    ended,
    git,
    git_repository,
    legacy_nginx_conf,
    legacy_tls_nginx,
    read_only_bind,
    sandbox_https_ok,
    service_running,
    sh,
    silent_listener,
    silent_unix_socket,
    ssh_files,
    stopped_service,
    tls_listener,
    version_banner_nginx,
    write_certificate,
)
from suite import CHECK_FILES, PRECHECK_NAMES, REPO, AuditEvent, SuiteRun, parse_audit

pytestmark = pytest.mark.usefixtures("sandbox_up")

DOCKER_CLI = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
SANDBOX_COMMANDS = ["git", "docker", "nginx", "openssl", "psql", "stat"]


def audit_event(run: SuiteRun, name: str) -> AuditEvent:
    """The line ``name`` of this run's own audit log, in the audit dir or the run folder.

    Found by run id: SuiteRun.audit() also counts the ``latest`` link and earlier runs."""
    __tracebackhide__ = True
    log = f"precheck-{run.run_dir.name}.log"
    found = [path for path in (run.audit_dir / log, run.run_dir / log) if path.exists()]
    assert len(found) == 1, f"{log}: found {found}\n{run.output}"
    matches = [event for event in parse_audit(found[0]) if event.event == name]
    assert len(matches) == 1, f"{name}: {len(matches)} lines in {found[0]}"
    return matches[0]


def assert_red(run: SuiteRun, name: str, *fragments: str) -> str:
    """The precheck failed in JUnit and in the audit, naming every fragment; the run exits 1."""
    __tracebackhide__ = True
    case = run.cases.get(f"test_{name.lower()}")
    assert case is not None, run.output
    assert case["outcome"] == "failed", run.output
    event = audit_event(run, f"PRECHECK_{name}")
    assert event.fields["status"] == "FAIL", event
    for fragment in fragments:
        assert fragment in case["message"], f"{fragment!r} not in {case['message']!r}"
        assert fragment in event.fields["reason"], f"{fragment!r} not in {event.fields!r}"
    assert run.rc == pytest.ExitCode.TESTS_FAILED, run.output
    return case["message"]


# --- SYSTEM -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        pytest.param(
            {"system.required_commands": [*SANDBOX_COMMANDS, "nexus-no-such-command"]},
            "required commands not found on PATH: nexus-no-such-command",
            id="missing-command",
        ),
        pytest.param(
            {"system.os": "freebsd"}, "OS is linux, the target expects freebsd", id="other-os"
        ),
    ],
)
def test_system_fails(run_check, changes, named):
    assert_red(run_check("SYSTEM", changes), "SYSTEM", named)


# --- SERVICES ---------------------------------------------------------------------------------


def test_services_fails_while_nginx_is_stopped_and_passes_once_it_is_back(run_check):
    with stopped_service("nginx"):
        assert not service_running("nginx")
        run = run_check("SERVICES")
    assert service_running("nginx")
    deadline = time.monotonic() + 10
    while not sandbox_https_ok() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sandbox_https_ok(), "nginx is running again but https://127.0.0.1:8443 is not served"

    assert_red(run, "SERVICES", "service nginx is not running")
    assert "docker" not in run.cases["test_services"]["message"]
    assert audit_event(run, "PRECHECK_SERVICES").fields["nginx_running"] == "false"
    assert run_check("SERVICES").rc == 0


def test_services_tells_a_service_that_is_not_installed_from_a_stopped_one(run_check):
    run = run_check("SERVICES", {"services": ["docker", "nginx", "nexus-no-such-service"]})
    message = assert_red(
        run, "SERVICES", "service nexus-no-such-service is not installed (no such service"
    )
    assert "docker" not in message and "nginx" not in message


# --- DOCKER -----------------------------------------------------------------------------------


def test_docker_fails_fast_on_a_socket_where_nothing_listens(run_check, tmp_path):
    url = f"unix://{tmp_path / 'docker.sock'}"
    started = time.monotonic()
    run = run_check("DOCKER", {"docker.url": url})
    assert time.monotonic() - started < 30, "a missing daemon must not take the ping timeout"
    assert_red(run, "DOCKER", f"docker daemon at {url} did not answer: ")


def test_docker_fails_on_an_api_older_than_the_minimum(run_check):
    run = run_check("DOCKER", {"docker.min_api_version": "9.99"})
    message = assert_red(run, "DOCKER", "is below the minimum 9.99")
    api = audit_event(run, "PRECHECK_DOCKER").fields["api_version"]
    assert f"docker API version {api} is below the minimum 9.99" in message


# --- DISK -------------------------------------------------------------------------------------


def test_disk_fails_below_a_threshold_above_what_exists(run_check):
    run = run_check("DISK", {"disk.min_free_gb": 100000})
    assert_red(run, "DISK", "/var/lib/docker has", "GB free, below the minimum 100000 GB")


def test_disk_fails_on_a_path_that_does_not_exist(run_check, tmp_path):
    missing = tmp_path / "no-such-dir"
    run = run_check("DISK", {"disk.paths": ["/var/lib/nexus-sandbox", str(missing)]})
    assert_red(run, "DISK", f"{missing} does not exist")
    assert audit_event(run, "PRECHECK_DISK").fields[f"free_gb:{missing}"] == "missing"


# --- MEMORY -----------------------------------------------------------------------------------


def test_memory_below_threshold_is_a_warning_and_never_fails_the_run(run_suite, target_file):
    target = target_file({"memory.min_available_gb": 100000})
    run = run_suite(CHECK_FILES["MEMORY"], target=target)
    assert run.rc == 0, run.output
    assert run.cases["test_memory"]["outcome"] == "passed"
    event = audit_event(run, "PRECHECK_MEMORY")
    assert event.fields["status"] == "WARNING"
    assert "memory available, below the recommended 100000 GB" in event.fields["reason"]

    full = run_suite("-m", "precheck", target=target)
    assert full.rc == 0, full.output
    assert audit_event(full, "PRECHECK_END").fields == {
        "passed": "11", "warnings": "1", "failed": "0", "not_run": "none"
    }  # fmt: skip
    assert "PrecheckWarning: " in full.output  # in pytest's warnings summary too
    warned = "memory available, below the recommended 100000 GB"
    assert re.search(rf"^ *MEMORY: WARNING \(.*{warned}", full.output, re.MULTILINE)
    memory = full.cases["test_memory"]["properties"]
    assert memory["precheck_status"] == "WARNING" and warned in memory["precheck_reason"]
    html = (full.run_dir / "report.html").read_text(encoding="utf-8")
    # The Precheck column's cell, inside pytest-html's escaped JSON: WARNING, not "Passed".
    assert len(re.findall(r"col-precheck[^A-Z]{0,20}WARNING", html)) == 1

    strict = run_suite(CHECK_FILES["MEMORY"], "-W", "error", target=target)  # warnings as errors
    assert strict.rc == 0, strict.output
    assert audit_event(strict, "PRECHECK_MEMORY").fields["status"] == "WARNING"


# --- REPOSITORY -------------------------------------------------------------------------------


def on_other_branch(repo: Path) -> list[str]:
    git(repo, "switch", "-q", "-c", "hotfix")
    return [f"{repo} is on branch hotfix, expected main"]


def with_uncommitted_change(repo: Path) -> list[str]:
    (repo / "README.md").write_text("edited by hand on the server\n", encoding="utf-8")
    return [f"{repo} has 1 uncommitted paths: README.md"]


def with_corrupted_object(repo: Path) -> list[str]:
    object_id = corrupt_loose_object(repo, "HEAD:README.md")
    # git names the damaged object by its loose file, .git/objects/ab/cdef...
    return [f"git fsck found damage in {repo}: error:", object_id[2:]]


@pytest.mark.parametrize(
    "fault",
    [on_other_branch, with_uncommitted_change, with_corrupted_object],
    ids=["other-branch", "uncommitted-change", "corrupted-object"],
)
def test_repository_fails(run_check, tmp_path, fault):
    repo = git_repository(tmp_path / "nexus-cos")
    named = fault(repo)
    run = run_check("REPOSITORY", {"repository.path": str(repo)})
    assert_red(run, "REPOSITORY", *named)


def test_repository_fails_on_a_plain_directory(run_check, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    run = run_check("REPOSITORY", {"repository.path": str(plain)})
    assert_red(run, "REPOSITORY", f"{plain} is not a git repository")


# --- CONFIG -----------------------------------------------------------------------------------


def remove_file(pfs: Path) -> tuple[str, str]:
    (pfs / "global-launch.yaml").unlink()
    return "global-launch.yaml", "file is missing"


def write_invalid_yaml(pfs: Path) -> tuple[str, str]:
    (pfs / "marketplace-phase3.yaml").write_text("steps: [1, 2\nmin_soak_days: 7\n")
    return "marketplace-phase3.yaml", "cannot be read as YAML"


def break_a_field(pfs: Path) -> tuple[str, str]:
    path = pfs / "global-launch.yaml"
    path.write_text(path.read_text().replace("min_replicas: 2", "min_replicas: 0"))
    return "global-launch.yaml", (
        "auto_scaling.min_replicas: Input should be greater than or equal to 1"
    )


def break_a_joint_rule(pfs: Path) -> tuple[str, str]:
    path = pfs / "jurisdiction-engine.yaml"
    path.write_text(path.read_text().replace("launch_regions: [US,", "launch_regions: [CU,"))
    return "jurisdiction-engine.yaml", "launch_regions.0: CU is blocked"


@pytest.mark.parametrize(
    "fault",
    [remove_file, write_invalid_yaml, break_a_field, break_a_joint_rule],
    ids=["missing-file", "invalid-yaml", "invalid-field", "joint-rule"],
)
def test_config_fails_naming_file_and_field(run_check, pfs_copy, fault):
    pfs = pfs_copy
    file, named = fault(pfs)
    run = run_check("CONFIG", {"config.dir": str(pfs)})
    assert_red(run, "CONFIG", f"{pfs / file}: {named}")


# --- API --------------------------------------------------------------------------------------


def test_api_fails_on_a_closed_port_naming_the_endpoint(run_check):
    url = f"http://127.0.0.1:{closed_port()}"
    endpoints = [{"name": "direct", "url": url}, {"name": "nginx", "url": "https://127.0.0.1:8443"}]
    run = run_check("API", {"gateway.endpoints": endpoints})
    message = assert_red(run, "API", f"direct {url}/health unreachable: connection refused")
    assert "nginx" not in message
    assert run.cases["test_api"]["properties"]["nginx_status"] == "200"


def test_api_fails_on_a_degraded_gateway_naming_503(run_check, tmp_path):
    with degraded_gateway(tmp_path / "gateway.log") as url:
        run = run_check("API", {"gateway.endpoints": [{"name": "second", "url": url}]})
    assert_red(run, "API", f"second {url}/health answered 503 with status 'degraded'")
    assert audit_event(run, "PRECHECK_API").fields["second_status"] == "503"


# --- DATABASE ---------------------------------------------------------------------------------


@pytest.fixture
def created_container():
    """A second container from the sandbox image, created and never started."""
    name = f"nexus-postgres-fault-{secrets.token_hex(4)}"
    sh(DOCKER_CLI, "create", "--name", name, "--network", "host", "local/nexus-postgres:15")
    yield name
    sh(DOCKER_CLI, "rm", "--force", name)


def test_database_fails_on_a_container_that_is_not_running(run_check, created_container):
    run = run_check("DATABASE", {"database.container": created_container})
    assert_red(run, "DATABASE", f"container {created_container} is created, not running")


def test_database_fails_on_a_closed_port(run_check):
    port = closed_port()
    run = run_check("DATABASE", {"database.port": port})
    assert_red(run, "DATABASE", f"cannot connect to nexus@127.0.0.1:{port}/nexus")


def test_database_fails_on_a_missing_table(run_check):
    run = run_check("DATABASE", {"database.flag_table": "no_such_flags"})
    assert_red(run, "DATABASE", "table no_such_flags not found in nexus@127.0.0.1:55432/nexus")


def test_database_fails_on_a_wrong_password_without_writing_it(run_check, monkeypatch):
    password = f"wrong-{secrets.token_hex(12)}"
    monkeypatch.setenv("NEXUS_DB_PASSWORD", password)
    run = run_check("DATABASE")
    named = "cannot connect to nexus@127.0.0.1:55432/nexus: connection failed"
    assert_red(run, "DATABASE", named, "password authentication failed")
    assert password not in run.output
    written = [*run.audit_files(), *(p for p in run.reports_dir.rglob("*") if p.is_file())]
    assert {p.name for p in written} >= {"junit.xml", "report.html"}
    for path in written:
        assert password not in path.read_text(encoding="utf-8", errors="replace"), path


# --- PREVIOUS_PHASES --------------------------------------------------------------------------


def test_previous_phases_fails_on_a_missing_report(run_check, tmp_path):
    report = tmp_path / "PHASE_2_AUDIT_REPORT.md"
    run = run_check("PREVIOUS_PHASES", {"previous_phases.reports": [str(report)]})
    assert_red(run, "PREVIOUS_PHASES", f"phase report {report} is missing")


def test_previous_phases_fails_on_a_report_without_completion(run_check, tmp_path):
    report = tmp_path / "PHASE_2_AUDIT_REPORT.md"
    report.write_text("# Phase 2 audit report\n\nStatus: IN PROGRESS\n", encoding="utf-8")
    run = run_check("PREVIOUS_PHASES", {"previous_phases.reports": [str(report)]})
    assert_red(run, "PREVIOUS_PHASES", f"phase report {report} has no line 'Status: COMPLETE'")
    assert audit_event(run, "PRECHECK_PREVIOUS_PHASES").fields[f"report:{report}"] == "incomplete"


def test_previous_phases_keeps_apart_two_reports_of_the_same_name(run_check, tmp_path):
    present = tmp_path / "new" / "PHASE_1_AUDIT_REPORT.md"
    present.parent.mkdir()
    present.write_text("# Phase 1 audit report\n\nStatus: COMPLETE\n", encoding="utf-8")
    missing = tmp_path / "old" / "PHASE_1_AUDIT_REPORT.md"
    run = run_check("PREVIOUS_PHASES", {"previous_phases.reports": [str(missing), str(present)]})
    assert_red(run, "PREVIOUS_PHASES", f"phase report {missing} is missing")
    fields = audit_event(run, "PRECHECK_PREVIOUS_PHASES").fields
    assert (fields[f"report:{missing}"], fields[f"report:{present}"]) == ("missing", "complete")


# --- SECURITY ---------------------------------------------------------------------------------


def expired(directory: Path) -> tuple[Path, Path, list[str]]:
    cert, key = write_certificate(directory, "expired", valid_days=(-400, -3))
    return cert, key, [f"certificate {cert} expired 3 days ago"]


def key_of_another_cert(directory: Path) -> tuple[Path, Path, list[str]]:
    cert, _ = write_certificate(directory, "one")
    _, key = write_certificate(directory, "other")
    return cert, key, [f"certificate {cert} does not match key {key}"]


def for_another_host(directory: Path) -> tuple[Path, Path, list[str]]:
    cert, key = write_certificate(directory, "other-host", hostname="other.example")
    return cert, key, [f"certificate {cert} is not valid for localhost"]


@pytest.mark.parametrize(
    "fault",
    [expired, key_of_another_cert, for_another_host],
    ids=["expired", "key-mismatch", "other-hostname"],
)
def test_security_fails_on_a_bad_certificate(run_check, tmp_path, fault):
    cert, key, named = fault(tmp_path)
    run = run_check("SECURITY", {"security.certificate": str(cert), "security.key": str(key)})
    assert_red(run, "SECURITY", *named)


def test_security_fails_on_an_nginx_config_with_legacy_tls(run_check, tmp_path):
    conf = legacy_nginx_conf(tmp_path)
    run = run_check("SECURITY", {"security.nginx_config": str(conf)})
    message = assert_red(run, "SECURITY", f"nginx config {conf} enables TLSv1, TLSv1.1")
    assert "failed" not in message, "the config itself is valid: only its protocols are wrong"
    assert audit_event(run, "PRECHECK_SECURITY").fields["nginx_config_test"] == "ok"


def test_security_fails_on_an_endpoint_completing_legacy_handshakes(run_check, tmp_path):
    # OpenSSL 3 serves TLS 1.0/1.1 only at security level 0, which the second nginx sets.
    with legacy_tls_nginx(tmp_path) as endpoint:
        run = run_check("SECURITY", {"security.tls_endpoint": endpoint})
    message = assert_red(run, "SECURITY", f"{endpoint} completes handshakes with TLSv1, TLSv1.1")
    assert "serves a different certificate" not in message
    fields = audit_event(run, "PRECHECK_SECURITY").fields
    assert fields["served_matches_file"] == "true"
    assert fields["legacy_tls_accepted"] == "TLSv1,TLSv1.1"


def test_security_fails_on_a_server_block_that_turns_server_tokens_on_again(run_check, tmp_path):
    # http says off, one server says on: the config check names it, and the live endpoint of
    # that server shows the version in its Server header.
    with version_banner_nginx(tmp_path) as (endpoint, conf):
        run = run_check(
            "SECURITY", {"security.nginx_config": str(conf), "security.tls_endpoint": endpoint}
        )
    message = assert_red(
        run,
        "SECURITY",
        f"nginx config {conf} sets server_tokens on",
        f"{endpoint} announces its version (Server: nginx/",
    )
    assert "TLSv1" not in message and "different certificate" not in message
    fields = audit_event(run, "PRECHECK_SECURITY").fields
    assert fields["server_tokens_off"] == "false"
    assert fields["server_header"].startswith("nginx/")


def test_security_warns_when_the_endpoint_gives_no_http_answer(run_check):
    # A real TLS server presenting the sandbox certificate, silent after the handshake: the
    # certificate checks pass; whether it announces a version is unknown, which is a WARNING.
    with tls_listener(SANDBOX_CERT, SANDBOX_KEY, lambda tls: None) as endpoint:
        run = run_check("SECURITY", {"security.tls_endpoint": endpoint, "gateway.timeout_s": 1})
    assert run.rc == 0, run.output
    assert run.cases["test_security"]["outcome"] == "passed"
    event = audit_event(run, "PRECHECK_SECURITY")
    assert event.fields["status"] == "WARNING", event
    assert f"{endpoint} gave no HTTP answer within 1 s" in event.fields["reason"]
    assert event.fields["server_header"] == "no answer"
    assert event.fields["served_matches_file"] == "true"


# --- BACKUP -----------------------------------------------------------------------------------


def test_backup_fails_on_a_missing_directory(run_check, tmp_path):
    missing = tmp_path / "no-backups"
    run = run_check("BACKUP", {"backup.dir": str(missing)})
    assert_red(run, "BACKUP", f"backup directory {missing} does not exist")


def test_backup_fails_on_a_read_only_backup_directory(run_check, tmp_path):
    with read_only_bind(tmp_path / "backups") as backups:
        run = run_check("BACKUP", {"backup.dir": str(backups)})
    assert_red(run, "BACKUP", f"backup directory {backups} is not writable")


def test_backup_fails_on_a_read_only_audit_directory_audited_in_the_run_folder(run_check, tmp_path):
    with read_only_bind(tmp_path / "audit-ro") as audit:
        run = run_check("BACKUP", {"audit.dir": str(audit)})
        assert not list(audit.iterdir())
    assert_red(run, "BACKUP", f"audit directory {audit} is not writable")
    assert (run.run_dir / f"precheck-{run.run_dir.name}.log").is_file()
    assert f"audit directory {audit} not writable (Read-only file system)" in run.output


# --- bounds -----------------------------------------------------------------------------------


# A daemon that accepts connections and never answers must cost its timeout (3 s), not a hang.
BOUND_S = 60  # generous: the point is that the run ends, on a noisy machine


def test_a_hung_docker_daemon_fails_within_a_bound(run_check, tmp_path):
    with silent_unix_socket(tmp_path / "hung.sock") as url:
        started = time.monotonic()
        run = run_check("DOCKER", {"docker.url": url})
        elapsed = time.monotonic() - started
    assert elapsed < BOUND_S, f"the DOCKER check took {elapsed:.0f} s"
    assert_red(run, "DOCKER", f"docker daemon at {url} did not answer: ")


def test_a_hung_gateway_fails_within_a_bound(run_check):
    with silent_listener() as port:
        url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        run = run_check("API", {"gateway.endpoints": [{"name": "hung", "url": url}]})
        elapsed = time.monotonic() - started
    assert elapsed < BOUND_S, f"the API check took {elapsed:.0f} s"
    assert_red(run, "API", f"hung {url}/health unreachable: no answer within 3 s")


def repository_with_hung_hook(directory: Path) -> Path:
    """A checkout whose `git status` never returns: it runs an fsmonitor hook that sleeps (and
    writes its pid to hook.pid beside the checkout)."""
    repo = git_repository(directory / "nexus-cos")
    hook = directory / "fsmonitor-hook"
    hook.write_text(f"#!/bin/sh\necho $$ > {directory / 'hook.pid'}\nexec sleep 600\n")
    hook.chmod(0o755)
    git(repo, "config", "core.fsmonitor", str(hook))
    return repo


def test_a_hung_host_command_fails_its_precheck_within_the_command_limit(run_check, tmp_path):
    repo = repository_with_hung_hook(tmp_path)
    started = time.monotonic()
    run = run_check("REPOSITORY", {"repository.path": str(repo), "command_timeout_s": 2})
    elapsed = time.monotonic() - started
    assert elapsed < BOUND_S, f"the REPOSITORY check took {elapsed:.0f} s"
    status = f"git -C {repo} status --porcelain=v2 --branch --untracked-files=normal"
    assert_red(run, "REPOSITORY", f"`{status}` did not finish within 2 s (command_timeout_s) on")
    assert ended(int((tmp_path / "hook.pid").read_text())), "the hung hook outlived the run"


def test_ctrl_c_ends_a_hung_host_command_and_the_run_at_once(target_file, tmp_path):
    # Host commands run in process groups of their own, which the terminal's Ctrl-C does not
    # reach: the interrupted run must end them itself, not wait out command_timeout_s.
    repo = repository_with_hung_hook(tmp_path)
    target = target_file({"repository.path": str(repo), "command_timeout_s": 600})
    command = [sys.executable, "-m", "pytest", "-m", "precheck", f"--target={target}"]
    command.append(f"--reports-dir={tmp_path / 'reports'}")
    hook_pid = tmp_path / "hook.pid"
    # Its own process group, as a terminal gives a foreground job: Ctrl-C signals the group.
    with subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0
    ) as deployer:
        try:
            deadline = time.monotonic() + BOUND_S
            while not hook_pid.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert hook_pid.exists(), "the hook never ran"
            os.killpg(deployer.pid, signal.SIGINT)
            interrupted = time.monotonic()
            output, _ = deployer.communicate(timeout=BOUND_S)
            took = time.monotonic() - interrupted
        finally:  # a run that did not end: stop it, and git with its hook, then fail
            with contextlib.suppress(ProcessLookupError):
                os.killpg(deployer.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                hook_group = os.getpgid(int(hook_pid.read_text()))
                if hook_group != os.getpgrp():
                    os.killpg(hook_group, signal.SIGKILL)
    assert deployer.returncode == pytest.ExitCode.INTERRUPTED, output.decode()
    assert took < 15, f"the run took {took:.0f} s to end after Ctrl-C"
    assert ended(int(hook_pid.read_text())), "the hung hook outlived the run"
    log = next((tmp_path / "audit").glob("precheck-*.log"))
    assert "DEPLOYMENT_COMPLETE" in log.read_text(encoding="utf-8")


def test_an_unreachable_ssh_host_costs_one_connect_timeout(run_suite, target_file, tmp_path):
    # The port accepts and never answers, and ssh gets 2 s to connect: the first command says
    # why ssh failed, and every later one is refused with the same words without trying again.
    # So the run waits out one timeout, where asking again would wait out at least one per
    # precheck that uses the host. The deployer's own checks (pfs files, gateway, database) do
    # not go through the host and pass.
    connect_timeout_s = 2
    with silent_listener() as port:
        spec = ssh_files(tmp_path / "ssh", port) + f"&timeout={connect_timeout_s}"
        started = time.monotonic()
        run = run_suite("-m", "precheck", target=target_file({"host": spec}))
        elapsed = time.monotonic() - started
    passed = [n for n in PRECHECK_NAMES if run.cases[f"test_{n.lower()}"]["outcome"] == "passed"]
    assert passed == ["CONFIG", "API", "DATABASE"], run.output
    host_prechecks = set(PRECHECK_NAMES) - set(passed)
    for name in host_prechecks:
        assert_red(run, name, f"ssh to ssh://root@127.0.0.1:{port} failed (")
    assert elapsed < len(host_prechecks) * connect_timeout_s, f"the prechecks took {elapsed:.0f} s"


def test_the_run_names_the_facts_it_is_still_waiting_for(run_check):
    # A TLS endpoint that accepts and never answers, with an 8 s timeout: the gathering before
    # the first test takes longer than 5 s, and says what holds it up.
    with silent_listener() as port:
        endpoint = f"127.0.0.1:{port}"
        run = run_check("SECURITY", {"security.tls_endpoint": endpoint, "gateway.timeout_s": 8})
    waiting = [line for line in run.output.splitlines() if "still waiting for" in line]
    assert waiting, run.output
    assert waiting[0].startswith("nexus-deploy: still waiting for "), waiting
    assert f"served_endpoint('{endpoint}', 'localhost', 8.0)" in waiting[0], waiting
    assert_red(run, "SECURITY", f"TLS endpoint {endpoint} unreachable: no answer within 8 s")
    # Never reached: whether it takes TLS 1.0 or 1.1 is unknown, not "none".
    assert audit_event(run, "PRECHECK_SECURITY").fields["legacy_tls_accepted"] == "unknown"
