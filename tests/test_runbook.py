"""The platform runbook's commands as it writes them, and the kill switch in an incident: with
the gateway and nginx down, an emergency move down still turns features off, audited."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from faults import closed_port
from suite import REPO, flag_rows, junit_global_properties, parse_audit

from nexus_deploy.phases.launch import PHASE as LAUNCH
from nexus_deploy.phases.launch import launch_flags
from nexus_deploy.phases.marketplace import PHASE as MARKETPLACE
from nexus_deploy.phases.marketplace import marketplace_flags

pytestmark = pytest.mark.usefixtures("sandbox_up")

NEXUSCTL = Path(sys.executable).with_name("nexusctl")
PATIENT = ("--lock-timeout=60",)  # the sandbox database is shared with other test sessions
REASON = "payment fraud in the marketplace"


class Ctl:
    """nexusctl as the runbook writes it, with the target given after the command."""

    def __init__(self, target: Path, reports: Path) -> None:
        self.target, self.reports = target, reports
        self.audit_dir = target.parent / "audit"  # where target_file puts it

    def __call__(self, *words: str) -> subprocess.CompletedProcess[str]:
        command = [str(NEXUSCTL), *words, f"--target={self.target}"]
        command.append(f"--reports-dir={self.reports}")
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)

    def newest_log(self) -> list[Any]:
        logs = sorted(self.audit_dir.glob("deployment-*.log"), key=lambda p: p.stat().st_mtime)
        return parse_audit(logs[-1])


@pytest.fixture
def ctl(target_file: Callable[..., Path], tmp_path: Path) -> Ctl:
    return Ctl(target_file(), tmp_path / "reports")


@pytest.fixture
def down(target_file: Callable[..., Path], tmp_path: Path) -> Ctl:
    """The platform in an incident: its gateway and nginx answer nowhere (closed ports)."""
    direct, through_nginx = closed_port(), closed_port()
    target = target_file(
        {
            "gateway.endpoints": [
                {"name": "direct", "url": f"http://127.0.0.1:{direct}"},
                {"name": "nginx", "url": f"https://127.0.0.1:{through_nginx}"},
            ],
            "security.tls_endpoint": f"127.0.0.1:{through_nginx}",
        },
        name="down.yaml",
    )
    return Ctl(target, tmp_path / "reports")


def phase_flags(connection: psycopg.Connection[Any], prefix: str) -> dict[str, Any]:
    return {k: json.loads(v) for k, v, _, _ in flag_rows(connection) if k.startswith(prefix)}


def market(step: int) -> dict[str, Any]:
    return dict(marketplace_flags(MARKETPLACE.load(REPO / "pfs"), step))


def launch(mode: str) -> dict[str, Any]:
    return dict(launch_flags(LAUNCH.load(REPO / "pfs"), mode))  # type: ignore[arg-type]


def fields(events: list[Any], name: str) -> dict[str, str]:
    (found,) = [e.fields for e in events if e.event == name]
    return found


def test_marketplace_enable_as_written_applies_and_plan_changes_nothing(ctl, clean_flags):
    planned = ctl("marketplace", "enable", "--phase", "3", "--step", "1", "--plan")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert phase_flags(clean_flags, "marketplace.") == {}

    done = ctl("marketplace", "enable", "--phase", "3", "--step", "1", *PATIENT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert phase_flags(clean_flags, "marketplace.") == market(1)
    events = ctl.newest_log()
    assert fields(events, "LOCK_ACQUIRED")["pid"].isdigit()
    start = fields(events, "DEPLOYMENT_START")
    assert start["timestamp"].isdigit() and start["version"]
    complete = fields(events, "DEPLOYMENT_COMPLETE")
    assert complete["status"] == "success" and float(complete["duration"]) > 0

    disabled = ctl("marketplace", "disable", "--phase", "3", *PATIENT)
    assert disabled.returncode == 0, disabled.stdout + disabled.stderr
    assert phase_flags(clean_flags, "marketplace.") == market(0)


def test_launch_without_confirm_says_nothing_changed_and_how_to_apply(ctl, clean_flags):
    done = ctl("launch", "--mode", "founder")
    assert done.returncode == 0, done.stdout + done.stderr
    assert phase_flags(clean_flags, "launch.") == {}
    # The command as typed, --confirm added: an operator copies it.
    told = "nexusctl: plan only, nothing was changed. To apply it: nexusctl launch --mode founder"
    assert told in done.stderr and done.stderr.rstrip().endswith(" --confirm"), done.stderr
    applied = ctl("launch", "--mode", "founder", "--confirm", *PATIENT)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert phase_flags(clean_flags, "launch.") == launch("founder")
    assert "plan only" not in applied.stderr


def test_the_kill_switch_turns_the_marketplace_off_with_the_gateway_and_nginx_down(
    ctl, down, clean_flags
):
    opened = ctl("marketplace", "enable", "--phase", "3", "--step", "1", *PATIENT)
    assert opened.returncode == 0, opened.stdout + opened.stderr

    refused = down("marketplace", "disable", "--phase", "3", *PATIENT)
    assert refused.returncode == 1, "without --emergency, red prechecks keep the gate shut"
    assert "prechecks failed: API, SECURITY" in refused.stdout
    assert phase_flags(clean_flags, "marketplace.") == market(1)

    done = down("marketplace", "disable", "--phase", "3", "--emergency", REASON, *PATIENT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert phase_flags(clean_flags, "marketplace.") == market(0), "and it stays off"
    events = down.newest_log()
    override = fields(events, "EMERGENCY_OVERRIDE")
    assert override["reason"] == REASON and override["red"] == "API,SECURITY"
    assert override["operator"]
    verify = fields(events, "VERIFY")
    assert verify["status"] == "UNCONFIRMED" and "direct" in verify["reason"]
    assert "AUTO_ROLLBACK" not in [e.event for e in events]
    assert fields(events, "DEPLOYMENT_COMPLETE")["status"] == "emergency"
    # Shown first: the terminal summary's first decision line, and the JUnit properties.
    summary = done.stdout.split("nexus-deploy ===")[1]
    decisions = [line for line in summary.splitlines() if ": " in line and "PASS" not in line]
    assert decisions[0].strip().startswith(f"EMERGENCY: {REASON} (operator ")
    assert "red prechecks: API, SECURITY" in decisions[0]
    assert "not confirmed by the gateway" in done.stdout
    properties = dict(junit_global_properties(down.reports / "latest" / "junit.xml"))
    assert properties["EMERGENCY"].startswith(REASON)
    summary = json.loads((down.reports / "latest" / "summary.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "EMERGENCY" and REASON in summary["headline"]
    page = (down.reports / "latest" / "report.html").read_text(encoding="utf-8")
    banner = page.index('<section class="banner emergency" id="verdict">')
    assert banner < page.index('id="prechecks"') and REASON in page[banner : banner + 400]


def test_the_launch_goes_back_to_founder_mode_in_an_emergency(ctl, down, clean_flags):
    clean_flags.execute(
        "INSERT INTO nexus_feature_flags (key, value, updated_at, updated_by) VALUES "
        "('launch.mode', '\"global\"', now(), 'tests')"
    )
    done = down("launch", "--mode", "founder", "--emergency", REASON, *PATIENT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert phase_flags(clean_flags, "launch.") == launch("founder")


@pytest.mark.parametrize(
    ("words", "says"),
    [
        (("launch", "--mode", "global", "--emergency", REASON), "--emergency only turns"),
        (("marketplace", "disable", "--phase", "3", "--emergency", " "), "needs a reason"),
        (("marketplace", "disable", "--phase", "3", "--emergency", "a\x1b[2Jb"), "printable"),
    ],
    ids=["moving-up", "empty-reason", "terminal-escape"],
)
def test_an_emergency_is_refused_before_anything_runs_unless_it_moves_down(
    down, flags_db, words, says
):
    before = flag_rows(flags_db)
    done = down(*words)
    assert done.returncode == 4, done.stdout + done.stderr
    assert says in done.stderr
    assert "\x1b" not in done.stderr, "the reason is not echoed"
    assert flag_rows(flags_db) == before


def test_an_emergency_still_needs_the_database(target_file, tmp_path, clean_flags):
    unreachable = Ctl(
        target_file({"database.port": closed_port()}, name="nodb.yaml"), tmp_path / "reports"
    )
    done = unreachable("marketplace", "disable", "--phase", "3", "--emergency", REASON)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot take the deployment lock" in done.stdout
    assert "EMERGENCY_OVERRIDE" not in [e.event for e in unreachable.newest_log()]


def test_an_emergency_still_needs_valid_configs(target_file, pfs_copy, tmp_path, clean_flags):
    (pfs_copy / "marketplace-phase3.yaml").write_text("steps: {}\n", encoding="utf-8")
    broken = Ctl(target_file({"config.dir": str(pfs_copy)}, name="badcfg.yaml"), tmp_path / "r")
    done = broken("marketplace", "disable", "--phase", "3", "--emergency", REASON, *PATIENT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the phase configs are not valid" in done.stdout
    assert phase_flags(clean_flags, "marketplace.") == {}


def test_global_options_go_before_or_after_the_command(ctl, tmp_path):
    after = ctl("history")
    assert after.returncode == 0, after.stdout + after.stderr
    before = subprocess.run(
        [str(NEXUSCTL), f"--target={ctl.target}", "history"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert before.returncode == 0 and before.stdout == after.stdout
    assert str(ctl.audit_dir) in after.stdout or "no runs recorded" in after.stdout
