"""nexusctl, the operator's words, driving the real suite against the real sandbox."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from suite import REPO, flag_rows, parse_audit

from nexus_deploy.phases.marketplace import PHASE as MARKETPLACE
from nexus_deploy.phases.marketplace import marketplace_flags

pytestmark = pytest.mark.usefixtures("sandbox_up")

NEXUSCTL = Path(sys.executable).with_name("nexusctl")  # .venv/bin/nexusctl
COMMANDS = ("precheck", "marketplace", "launch", "status", "rollback", "audit", "history")
# The sandbox's database is shared with other test sessions: wait for their deployments.
PATIENT = ("--lock-timeout", "60")


class Ctl:
    """nexusctl with a private target profile (its own audit dir) and reports dir."""

    def __init__(self, target: Path, reports: Path) -> None:
        self.target = target
        self.reports = reports
        self.audit_dir = target.parent / "audit"  # where target_file puts it

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(NEXUSCTL), f"--target={self.target}", f"--reports-dir={self.reports}"]
        return subprocess.run(
            [*command, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
        )

    def logs(self, prefix: str = "deployment-") -> list[Path]:
        return sorted(self.audit_dir.glob(f"{prefix}*.log"))


@pytest.fixture
def ctl(target_file, tmp_path) -> Ctl:
    return Ctl(target_file(), tmp_path / "reports")


def phase_flags(connection: Any) -> dict[str, Any]:
    return {
        key: json.loads(value)
        for key, value, _, _ in flag_rows(connection)
        if key.startswith(("marketplace.", "launch."))
    }


def step_flags(step: int) -> dict[str, Any]:
    return dict(marketplace_flags(MARKETPLACE.load(REPO / "pfs"), step))


def assert_untouched(before: list[Any], after: list[Any], log: Path) -> None:
    """No flag row written by the run of `log` (other test sessions share the sandbox)."""
    __tracebackhide__ = True
    run_id = log.stem.split("-", 1)[1]
    ours = [row for row in set(before) ^ set(after) if f"run={run_id} " in row[3]]
    assert not ours, f"run {run_id} changed flag rows: {ours}"


def events(log: Path) -> list[str]:
    return [e.event for e in parse_audit(log)]


def test_help_lists_every_command(ctl):
    done = ctl("--help")
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^    (\w+)\s", done.stdout, re.MULTILINE)
    assert sorted(listed) == sorted(COMMANDS), done.stdout
    assert "--target" in done.stdout and "--reports-dir" in done.stdout
    assert "enable" in ctl("marketplace", "--help").stdout
    assert "verify" in ctl("audit", "--help").stdout


def test_marketplace_enable_help_explains_plan(ctl):
    # As the runbook writes it, `marketplace enable` applies; --plan shows the diff only.
    done = ctl("marketplace", "enable", "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "--plan show the flag diff; change nothing" in text, done.stdout
    assert "--step N" in text and "--phase {3}" in text


def test_precheck_passes_on_the_sandbox(ctl, flags_db):
    before = flag_rows(flags_db)
    done = ctl("precheck")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 passed" in done.stdout
    (log,) = ctl.logs("precheck-")
    assert events(log)[-1] == "DEPLOYMENT_COMPLETE"
    assert not ctl.logs("deployment-")
    assert_untouched(before, flag_rows(flags_db), log)


def test_enable_with_plan_only_plans(ctl, clean_flags):
    before = flag_rows(clean_flags)
    done = ctl("marketplace", "enable", "--phase", "3", "--step", "1", "--plan")
    assert done.returncode == 0, done.stdout + done.stderr
    (log,) = ctl.logs()
    assert_untouched(before, flag_rows(clean_flags), log)
    assert "request: phase3 step 1 (plan only)" in done.stdout
    assert "activation: plan only, nothing changed: 7 flag changes" in done.stdout
    assert "change: marketplace.step: (absent) -> 1" in done.stdout
    assert "change: marketplace.enabled: (absent) -> true" in done.stdout
    names = events(log)
    assert "PLAN_CHANGE" in names and "FLAG_SET" not in names and "LOCK_ACQUIRED" not in names
    assert not list(ctl.audit_dir.glob("rollback-*"))


def test_enable_with_confirm_commits_and_status_history_audit_show_it(ctl, clean_flags, tmp_path):
    done = ctl("marketplace", "enable", "--phase", "3", "--step", "1", "--confirm", *PATIENT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "activation: committed: 7 flag changes" in done.stdout
    assert phase_flags(clean_flags) == step_flags(1)
    (log,) = ctl.logs()
    run_id = log.stem.removeprefix("deployment-")

    status = ctl("status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"^marketplace\s*: step 1 \(open\)$", status.stdout, re.MULTILINE), status
    assert re.search(r"^launch mode\s*: founder \(never launched\)$", status.stdout, re.M), status

    history = ctl("history")
    assert history.returncode == 0, history.stderr
    (line,) = [line for line in history.stdout.splitlines() if line.startswith(run_id)]
    assert line.split()[1] == "deployment" and "chain=intact" in line
    assert "last=DEPLOYMENT_COMPLETE" in line

    verified = ctl("audit", "verify", str(log))
    assert verified.returncode == 0, verified.stdout
    assert verified.stdout.startswith(f"OK       {log}:") and "complete" in verified.stdout

    # An auditor's copy with one line edited: the FLAG_SET that opened step 1 now says step 4.
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    (number,) = [n for n, text in enumerate(lines, 1) if "FLAG_SET key=marketplace.step" in text]
    lines[number - 1] = lines[number - 1].replace("new=1 ", "new=4 ")
    # Same file name: a log's chain starts from its name, so a renamed copy breaks at line 1.
    edited = tmp_path / "copy" / log.name
    edited.parent.mkdir()
    edited.write_text("".join(lines), encoding="utf-8")
    broken = ctl("audit", "verify", str(log), str(edited))
    assert broken.returncode == 1, broken.stdout
    assert f"OK       {log}:" in broken.stdout
    assert f"BROKEN   {edited}:{number}: chain broken at FLAG_SET" in broken.stdout


def test_disable_sets_step_0_and_rollback_newest_restores_step_1(ctl, clean_flags):
    enabled = ctl("marketplace", "enable", "--phase", "3", "--step", "1", "--confirm", *PATIENT)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    at_step_1 = flag_rows(clean_flags)

    disabled = ctl("marketplace", "disable", "--phase", "3", "--confirm", *PATIENT)
    assert disabled.returncode == 0, disabled.stdout + disabled.stderr
    assert phase_flags(clean_flags) == step_flags(0)
    assert phase_flags(clean_flags)["marketplace.step"] == 0
    status = ctl("status").stdout
    assert re.search(r"^marketplace\s*: step 0 \(off\)$", status, re.MULTILINE), status

    newest = ctl.logs()[-1].stem.removeprefix("deployment-")
    rolled = ctl("rollback")
    for _ in range(30):  # exit 3: another test session's deployment holds the lock; try later
        if rolled.returncode != 3:
            break
        time.sleep(2)
        rolled = ctl("rollback")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert f"rollback-{newest}.sh" in rolled.stdout  # the disable run's, not the enable run's
    assert "restored" in rolled.stdout
    assert flag_rows(clean_flags) == at_step_1  # values, timestamps and authors as they were


def test_rollback_of_unknown_run_exits_2_naming_the_file(ctl):
    done = ctl("rollback", "20990101T000000Z-dead")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"no rollback-20990101T000000Z-dead.sh in {ctl.audit_dir}" in done.stderr
    # What is not a run id is not repeated, nor made into a file name.
    malformed = ctl("rollback", "NO-SUCH-RUN")
    assert malformed.returncode == 2, malformed.stdout + malformed.stderr
    assert "is not a run id (YYYYMMDDTHHMMSSZ-xxxx)" in malformed.stderr
    assert "NO-SUCH-RUN" not in malformed.stderr
    # Each refusal is a run of its own, refused: no deployment, nothing for rollback to pick.
    refusals = [parse_audit(log) for log in ctl.logs()]
    assert [[e.event for e in events] for events in refusals] == [
        ["DEPLOYMENT_START", "DEPLOYMENT_REFUSED", "DEPLOYMENT_COMPLETE"]
    ] * 2
    assert all(events[-1].fields["status"] == "refused" for events in refusals)
    history = ctl("history")
    assert history.returncode == 0, history.stdout + history.stderr
    assert [" status=refused " in row for row in history.stdout.splitlines()] == [True] * 2
    newest = ctl("rollback")
    assert newest.returncode == 2, newest.stdout + newest.stderr
    assert "no rollback script of a run whose changes are live" in newest.stderr


def test_enable_phase_4_is_a_usage_error(ctl, flags_db):
    before = flag_rows(flags_db)
    done = ctl("marketplace", "enable", "--phase", "4", "--step", "1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "argument --phase: invalid choice: 4" in done.stderr
    assert not ctl.audit_dir.exists(), "nothing may run on a usage error"
    assert flag_rows(flags_db) == before


def test_launch_global_without_confirm_shows_the_prerequisite_refusal(ctl, clean_flags):
    before = flag_rows(clean_flags)
    done = ctl("launch", "--mode", "global")
    (log,) = ctl.logs()
    assert_untouched(before, flag_rows(clean_flags), log)
    # From a platform whose marketplace never opened: the guard refuses, and the plan is shown.
    assert done.returncode == 1, done.stdout + done.stderr
    assert "request: phase4 mode global (plan only)" in done.stdout
    assert "global launch prerequisite unmet: marketplace.enabled is not set" in done.stdout
    assert "global launch prerequisite unmet: marketplace.step is not set" in done.stdout
    assert 'change: launch.mode: (absent) -> "global"' in done.stdout
    names = events(log)
    assert "FLAG_SET" not in names and "LOCK_ACQUIRED" not in names
    assert not list(ctl.audit_dir.glob("rollback-*"))


def lock_line(status: subprocess.CompletedProcess[str]) -> str:
    match = re.search(r"^lock\s*: (.*)$", status.stdout, re.MULTILINE)
    assert match, status.stdout + status.stderr
    return match[1]


def test_status_names_the_lock_holder_and_says_free_once_it_has_died(ctl, lock_holder):
    lock_file = ctl.audit_dir / ".deploy.lock"
    assert lock_line(ctl("status")) == "free"

    holder = lock_holder(lock_file)
    held = lock_line(ctl("status"))
    assert held.startswith("database session tests lock holder pid "), held
    assert '"run_id": "tests-lock-holder"' in held  # what the holder wrote in the host lock

    holder.kill()
    holder.wait(timeout=10)
    # The file keeps the dead holder's words, but no process holds its flock any more, and
    # PostgreSQL drops the advisory lock with the session (a moment after the socket closes).
    assert "tests-lock-holder" in lock_file.read_text(encoding="utf-8")
    for _ in range(50):
        if lock_line(ctl("status")) == "free":
            break
        time.sleep(0.1)
    assert lock_line(ctl("status")) == "free"


def test_status_names_a_holder_on_another_host_by_its_database_session_alone(ctl, lock_holder):
    lock_file = ctl.audit_dir / ".deploy.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock_file.write_text('{"run_id": "DEAD-RUN"}\n')  # left by a deployer that was killed
    lock_holder(lock_file, "database")
    held = lock_line(ctl("status"))
    assert held.startswith("database session tests lock holder pid "), held
    assert "host lock" not in held and "DEAD-RUN" not in held


def test_status_names_a_holder_of_the_host_lock_alone(ctl, lock_holder):
    lock_holder(ctl.audit_dir / ".deploy.lock", "file")
    held = lock_line(ctl("status"))
    assert held == 'host lock {"run_id": "tests-file-lock-holder"}', held
