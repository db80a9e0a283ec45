"""Activation end to end on the real sandbox: steps, guard, plan, audit, rollback, verification.

Every run here is the real suite in a subprocess (`run_suite`) against the sandbox's PostgreSQL,
gateway and nginx; platform state is arranged with SQL through `flags_db` only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from suite import (
    PRECHECK_NAMES,
    REPO,
    SuiteRun,
    flag_rows,
    free_port,
    junit_global_properties,
    parse_audit,
)

pytestmark = pytest.mark.usefixtures("sandbox_up")

VENV_BIN = REPO / ".venv" / "bin"
PGPASS = Path("/var/lib/nexus-sandbox/pgpass")
MARKETPLACE_KEYS = [
    "marketplace.cohorts",
    "marketplace.currency",
    "marketplace.daily_limits",
    "marketplace.enabled",
    "marketplace.safety",
    "marketplace.step",
    "marketplace.trading_types",
]
SOAK_DAYS = 7
STALE_DB = "nexus_stale"

# --- reading what a run left behind -------------------------------------------------------


@dataclass
class Activation:
    """One `--activate` run and the files named by its run id (several runs share a dir)."""

    run: SuiteRun
    run_id: str

    @property
    def rc(self) -> int:
        return self.run.rc

    @property
    def output(self) -> str:
        return self.run.output

    @property
    def log(self) -> Path:
        return self.run.audit_dir / f"deployment-{self.run_id}.log"

    @property
    def events(self) -> list[Any]:
        return parse_audit(self.log)

    @property
    def names(self) -> list[str]:
        return [e.event for e in self.events]

    def event(self, name: str) -> dict[str, str]:
        found = [e.fields for e in self.events if e.event == name]
        assert len(found) == 1, f"{name}: {len(found)} lines\n{self.output}"
        return found[0]

    @property
    def script(self) -> Path:
        return self.run.audit_dir / f"rollback-{self.run_id}.sh"

    @property
    def state(self) -> Path:
        return self.run.audit_dir / f"rollback-{self.run_id}.json"

    @property
    def rollback_log(self) -> Path:
        return self.run.audit_dir / f"rollback-{self.run_id}.log"

    @property
    def run_dir(self) -> Path:
        return self.run.reports_dir / self.run_id


def activate(run_suite: Callable[..., SuiteRun], target: Path, *args: str) -> Activation:
    # Wait for another deployment on the shared sandbox rather than fail on its lock.
    run = run_suite("--activate", *args, "--lock-timeout=60", target=target)
    found = re.search(r"nexus-deploy: run (\S+), target", run.output)
    assert found, run.output
    return Activation(run, found[1])


def unquote(text: str) -> str:
    """An audit field value as written, without the audit line's escaping."""
    return re.sub(r"\\(.)", r"\1", text)


def values(connection: Any) -> dict[str, Any]:
    return {key: json.loads(value) for key, value, _, _ in flag_rows(connection)}


def run_rollback(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a rollback script as an operator would: plain bash, no virtualenv, bare environment."""
    return subprocess.run(
        ["env", "-i", "PATH=/usr/bin:/bin", "bash", str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def rollback_events(activation: Activation) -> list[Any]:
    return parse_audit(activation.rollback_log)


def audit_verify(*paths: Path) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "nexusctl"), "audit", "verify", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(line.startswith("OK ") for line in done.stdout.splitlines()), done.stdout
    return done.stdout


def sandbox_password() -> str:
    return PGPASS.read_text(encoding="utf-8").splitlines()[0].rsplit(":", 1)[1]


def set_rows(
    connection: Any, rows: dict[str, Any], at: str = "2026-01-01 00:00:00+00", by: str = "tests"
) -> None:
    """Arrange flag rows as another writer (the platform, an operator) left them; ``at`` and
    ``by`` matter to the tests of what rollback restores, which pass their own."""
    for key, value in rows.items():
        connection.execute(
            "INSERT INTO nexus_feature_flags (key, value, updated_at, updated_by) "
            "VALUES (%s, %s::jsonb, %s::timestamptz, %s) ON CONFLICT (key) DO UPDATE SET "
            "value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, "
            "updated_by = EXCLUDED.updated_by",
            (key, json.dumps(value), at, by),
        )


def backdate_soak(connection: Any, days: int = SOAK_DAYS + 1) -> None:
    connection.execute(
        "UPDATE nexus_feature_flags SET updated_at = updated_at - make_interval(days => %s) "
        "WHERE key = 'marketplace.step'",
        (days,),
    )


def rollback_scripts(audit_dir: Path) -> list[Path]:
    return sorted(audit_dir.glob("rollback-*.sh"))


def switched_on(value: Any) -> bool:
    """A launch switch as the flag stores it: a bool, a list (empty: off) or {"enabled": ...}."""
    return bool(value["enabled"] if isinstance(value, dict) else value)


def launch_switches(mode: str) -> dict[str, bool]:
    transition = yaml.safe_load(
        (REPO / "pfs" / "founder-public-transition.yaml").read_text(encoding="utf-8")
    )
    return transition[mode]


# --- fixtures -----------------------------------------------------------------------------


def postgres_admin(sql: str, database: str = "postgres", stdin: str | None = None) -> None:
    command = ["docker", "exec", "-i", "-u", "postgres", "nexus-postgres", "psql"]
    command += ["-h", "/var/run/postgresql", "-d", database, "-v", "ON_ERROR_STOP=1", "-q"]
    command += ["-c", sql] if sql else []
    subprocess.run(command, input=stdin, check=True, capture_output=True, text=True, timeout=60)


@pytest.fixture
def stale_gateway(tmp_path: Path) -> Iterator[str]:
    """A second real gateway, healthy, in front of a database where no flag ever shows."""
    postgres_admin(f"DROP DATABASE IF EXISTS {STALE_DB} WITH (FORCE)")
    postgres_admin(f"CREATE DATABASE {STALE_DB} OWNER nexus")
    gateway: subprocess.Popen[bytes] | None = None
    try:
        schema = (REPO / "sandbox" / "schema.sql").read_text(encoding="utf-8")
        postgres_admin("", STALE_DB, stdin="SET ROLE nexus;\n" + schema)
        # The sandbox's pgpass names database nexus only; this one names the stale database.
        passfile = tmp_path / "stale.pgpass"
        passfile.write_text(f"127.0.0.1:55432:{STALE_DB}:nexus:{sandbox_password()}\n")
        passfile.chmod(0o600)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            NEXUS_GATEWAY_PORT=str(port),
            PGHOST="127.0.0.1",
            PGPORT="55432",
            PGDATABASE=STALE_DB,
            PGUSER="nexus",
            PGPASSFILE=str(passfile),
        )
        with (tmp_path / "stale-gateway.log").open("wb") as log:
            gateway = subprocess.Popen(
                [str(VENV_BIN / "python"), "sandbox/gateway.py"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(url + "/health", timeout=1).json().get("status") == "ok":
                    break
            except (requests.RequestException, ValueError):
                pass
            assert gateway.poll() is None, (tmp_path / "stale-gateway.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "stale-gateway.log").read_text()
            time.sleep(0.1)
        yield url
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(timeout=10)
        postgres_admin(f"DROP DATABASE IF EXISTS {STALE_DB} WITH (FORCE)")


# --- 1. phase 3, step by step ---------------------------------------------------------------


def test_phase3_walk_up_one_step_at_a_time_after_soak_and_down_at_once(
    run_suite, target_file, clean_flags
):
    db = clean_flags
    target = target_file()
    audit_dir = Path(yaml.safe_load(target.read_text())["audit"]["dir"])

    step1 = activate(run_suite, target, "phase3", "--step", "1")
    assert step1.rc == 0, step1.output
    now = values(db)
    assert now["marketplace.enabled"] is True and now["marketplace.step"] == 1
    assert now["marketplace.cohorts"] == ["founders"]
    assert now["marketplace.trading_types"] == ["peer_to_peer", "fixed_price"]
    assert now["marketplace.daily_limits"] == {"founders": 10000}
    assert now["marketplace.currency"]["fiat"] is False
    assert all(v is True for v in now["marketplace.safety"].values())
    assert {row[3] for row in flag_rows(db) if row[0] in MARKETPLACE_KEYS} == {
        f"nexus-deploy run={step1.run_id} operator={step1.event('DEPLOYMENT_START')['operator']}"
    }

    # Skipping a step is refused whatever the soak.
    before = flag_rows(db)
    skip = activate(run_suite, target, "phase3", "--step", "3", "--force-soak")
    assert skip.rc == 1, skip.output
    assert "step 3 needs step 2 active; the marketplace is at step 1" in skip.output
    assert skip.event("GUARD")["status"] == "REFUSED"
    assert flag_rows(db) == before

    # Step 2 before its soak: refused, naming when the soak ends; nothing written at all.
    step_at = next(row[2] for row in before if row[0] == "marketplace.step")
    soak_end = dt.datetime.fromisoformat(step_at) + dt.timedelta(days=SOAK_DAYS)
    early = activate(run_suite, target, "phase3", "--step", "2")
    assert early.rc == 1, early.output
    assert f"until {soak_end:%Y-%m-%d %H:%M} UTC" in early.output
    assert "--force-soak overrides" in early.output
    guard = early.event("GUARD")
    assert guard["status"] == "REFUSED"
    assert f"until {soak_end:%Y-%m-%d %H:%M} UTC" in unquote(guard["reason"])
    assert flag_rows(db) == before
    assert not early.script.exists() and not early.state.exists()
    assert rollback_scripts(audit_dir) == [step1.script]
    assert not {"ROLLBACK_WRITTEN", "FLAG_SET", "ACTIVATION_COMMITTED"} & set(early.names)

    # --force-soak opens it, and the audit says who overrode which soak.
    forced = activate(run_suite, target, "phase3", "--step", "2", "--force-soak")
    assert forced.rc == 0, forced.output
    overridden = forced.event("SOAK_OVERRIDDEN")
    assert overridden["operator"] == forced.event("DEPLOYMENT_START")["operator"]
    assert f"until {soak_end:%Y-%m-%d %H:%M} UTC" in unquote(overridden["detail"])
    assert forced.names.index("SOAK_OVERRIDDEN") < forced.names.index("GUARD")
    now = values(db)
    assert now["marketplace.step"] == 2
    assert now["marketplace.cohorts"] == ["founders", "creators"]
    assert now["marketplace.daily_limits"] == {"founders": 10000, "creators": 5000}
    assert "auction" not in now["marketplace.trading_types"]

    # A soak that has run its 7 days needs no force.
    backdate_soak(db)
    step3 = activate(run_suite, target, "phase3", "--step", "3")
    assert step3.rc == 0, step3.output
    assert "SOAK_OVERRIDDEN" not in step3.names
    now = values(db)
    assert now["marketplace.step"] == 3
    assert now["marketplace.cohorts"] == ["founders", "creators", "verified_users"]
    assert now["marketplace.daily_limits"] == {
        "founders": 10000,
        "creators": 5000,
        "verified_users": 1000,
    }
    assert "auction" not in now["marketplace.trading_types"]

    backdate_soak(db)
    step4 = activate(run_suite, target, "phase3", "--step", "4")
    assert step4.rc == 0, step4.output
    now = values(db)
    assert now["marketplace.step"] == 4
    assert now["marketplace.cohorts"] == ["founders", "creators", "verified_users", "everyone"]
    assert now["marketplace.trading_types"] == ["peer_to_peer", "fixed_price", "auction"]
    assert now["marketplace.daily_limits"] == {
        "founders": 10000,
        "creators": 5000,
        "verified_users": 1000,
        "everyone": 1000,
    }

    # Going down needs no soak, straight after the step above was opened.
    down = activate(run_suite, target, "phase3", "--step", "2")
    assert down.rc == 0, down.output
    assert not {"SOAK_OVERRIDDEN"} & set(down.names)
    now = values(db)
    assert now["marketplace.step"] == 2 and now["marketplace.enabled"] is True
    assert now["marketplace.cohorts"] == ["founders", "creators"]
    assert now["marketplace.trading_types"] == ["peer_to_peer", "fixed_price"]

    off = activate(run_suite, target, "phase3", "--step", "0")
    assert off.rc == 0, off.output
    now = values(db)
    assert now["marketplace.enabled"] is False and now["marketplace.step"] == 0
    assert now["marketplace.cohorts"] == [] and now["marketplace.trading_types"] == []
    assert now["marketplace.daily_limits"] == {}
    # Closing the market keeps its restrictions.
    assert now["marketplace.currency"]["withdrawal_to_money"] is False
    assert all(v is True for v in now["marketplace.safety"].values())


# --- 2. phase 4 -----------------------------------------------------------------------------


def test_global_launch_needs_the_full_marketplace_and_founder_mode_turns_it_off(
    run_suite, target_file, clean_flags
):
    db = clean_flags
    target = target_file()
    set_rows(db, {"marketplace.enabled": True, "marketplace.step": 3})
    before = flag_rows(db)
    early = activate(run_suite, target, "phase4")
    assert early.rc == 1, early.output
    assert "global launch prerequisite unmet: marketplace.step is 3; global mode needs 4" in (
        early.output
    )
    assert early.event("GUARD")["status"] == "REFUSED"
    assert flag_rows(db) == before
    assert not early.script.exists()

    set_rows(db, {"marketplace.step": 4})
    launch = activate(run_suite, target, "phase4", "--mode", "global")
    assert launch.rc == 0, launch.output
    now = values(db)
    assert now["launch.mode"] == "global"
    assert {key: switched_on(now[key]) for key in launch_switches("global")} == (
        launch_switches("global")
    )
    assert now["launch.public_signups"] is True and now["launch.seo"] is True
    assert now["launch.cdn"] is True and now["launch.traffic_management"] is True
    assert now["launch.marketing_channels"] == ["email", "social", "partners"]
    assert now["launch.auto_scaling"] == {"enabled": True, "min_replicas": 2, "max_replicas": 20}
    assert now["launch.regions"] == ["US", "CA", "GB", "DE", "FR", "AU"]
    assert now["launch.blocked_regions"] == ["CU", "IR", "KP", "SY"]

    founder = activate(run_suite, target, "phase4", "--mode", "founder")
    assert founder.rc == 0, founder.output
    now = values(db)
    assert now["launch.mode"] == "founder"
    assert {key: switched_on(now[key]) for key in launch_switches("founder")} == (
        launch_switches("founder")
    )
    assert not any(launch_switches("founder").values())
    assert now["launch.regions"] == []
    assert now["launch.blocked_regions"] == ["CU", "IR", "KP", "SY"]
    assert now["marketplace.step"] == 4, "the launch leaves the marketplace alone"


# --- 3. plan --------------------------------------------------------------------------------


def test_plan_reports_the_diff_and_changes_nothing_even_while_another_holds_the_lock(
    run_suite, target_file, clean_flags, lock_holder
):
    db = clean_flags
    target = target_file()
    audit_dir = Path(yaml.safe_load(target.read_text())["audit"]["dir"])
    before = flag_rows(db)
    lock_holder(audit_dir / ".deploy.lock")  # a plan takes no lock, so it is not stopped

    plan = activate(run_suite, target, "phase3", "--step", "1", "--plan")
    assert plan.rc == 0, plan.output
    assert flag_rows(db) == before
    expected = {
        "marketplace.enabled: (absent) -> true",
        "marketplace.step: (absent) -> 1",
        'marketplace.cohorts: (absent) -> ["founders"]',
        'marketplace.daily_limits: (absent) -> {"founders":10000}',
        'marketplace.trading_types: (absent) -> ["peer_to_peer","fixed_price"]',
    }
    terminal = set(re.findall(r"^ +change: (.*)$", plan.output, re.MULTILINE))
    assert expected <= terminal and len(terminal) == len(MARKETPLACE_KEYS), plan.output
    assert "plan only, nothing changed: 7 flag changes" in plan.output

    assert "LOCK_ACQUIRED" not in plan.names and "LOCK_RELEASED" not in plan.names
    assert plan.event("DEPLOYMENT_START")["plan_only"] == "true"
    assert plan.event("PLAN")["changes"] == "7"
    changes = [e.fields for e in plan.events if e.event == "PLAN_CHANGE"]
    assert [c["key"] for c in changes] == MARKETPLACE_KEYS
    assert {f"{c['key']}: {c['old']} -> {unquote(c['new'])}" for c in changes} == terminal
    assert not {"ROLLBACK_WRITTEN", "FLAG_SET", "ACTIVATION_COMMITTED"} & set(plan.names)
    assert plan.event("DEPLOYMENT_COMPLETE")["status"] == "success"
    assert not plan.script.exists() and not plan.state.exists()
    assert rollback_scripts(audit_dir) == []

    report = html.unescape((plan.run_dir / "report.html").read_text(encoding="utf-8"))
    for line in terminal:
        assert line in report
    properties = junit_global_properties(plan.run_dir / "junit.xml")
    assert {value for name, value in properties if name == "change"} == terminal
    assert ("request", "phase3 step 1 (plan only)") in properties


def test_requesting_the_active_step_again_changes_nothing(run_suite, target_file, clean_flags):
    db = clean_flags
    target = target_file()
    audit_dir = Path(yaml.safe_load(target.read_text())["audit"]["dir"])
    first = activate(run_suite, target, "phase3", "--step", "1")
    assert first.rc == 0, first.output
    before = flag_rows(db)

    plan = activate(run_suite, target, "phase3", "--step", "1", "--plan")
    assert plan.rc == 0, plan.output
    assert "0 flag changes" in plan.output and "change:" not in plan.output
    assert plan.event("PLAN")["changes"] == "0"
    assert "PLAN_CHANGE" not in plan.names

    again = activate(run_suite, target, "phase3", "--step", "1")
    assert again.rc == 0, again.output
    assert flag_rows(db) == before
    assert "activation: nothing to change: 0 flag changes" in again.output
    assert "plan only" not in again.output
    assert again.event("ACTIVATION_SKIPPED")["reason"] == "nothing to change"
    assert not {"ROLLBACK_WRITTEN", "FLAG_SET", "ACTIVATION_COMMITTED", "ROLLBACK_FINAL"} & set(
        again.names
    )
    assert not again.script.exists() and not again.state.exists()
    assert rollback_scripts(audit_dir) == [first.script]
    assert again.event("DEPLOYMENT_COMPLETE")["status"] == "success"


def test_a_refusal_is_told_once(run_suite, target_file, clean_flags):
    run = activate(run_suite, target_file(), "phase3", "--step", "2")
    assert run.rc == 1, run.output
    reason = "step 2 needs step 1 active; the marketplace is at step 0"
    assert run.event("GUARD")["reason"] == reason
    assert "During handling of the above exception" not in run.output
    failures = run.output.split("= FAILURES =", 1)[1].split("generated xml file", 1)[0]
    assert failures.count(reason) == 1, failures


# --- 4. the audit trail of a committing run -------------------------------------------------


def test_committing_run_audits_every_step_in_order(run_suite, target_file, clean_flags):
    db = clean_flags
    run = activate(run_suite, target_file(), "phase3", "--step", "1")
    assert run.rc == 0, run.output
    assert run.names == [
        "DEPLOYMENT_START",
        "LOCK_ACQUIRED",
        "PRECHECK_START",
        *(f"PRECHECK_{name}" for name in PRECHECK_NAMES),
        "PRECHECK_END",
        "GATE_OPEN",
        "RESTORE_POINT",  # every deployment saves the whole table first (the runbook's issue)
        "PLAN",
        *["PLAN_CHANGE"] * len(MARKETPLACE_KEYS),
        "GUARD",
        "ROLLBACK_WRITTEN",
        *["FLAG_SET"] * len(MARKETPLACE_KEYS),
        "ACTIVATION_COMMITTED",
        "VERIFY",
        "ROLLBACK_FINAL",
        "LOCK_RELEASED",
        "DEPLOYMENT_COMPLETE",
    ]
    assert run.event("LOCK_ACQUIRED")["run_id"] == run.run_id
    assert run.event("GUARD")["status"] == "PASS"
    written = run.event("ROLLBACK_WRITTEN")
    assert re.fullmatch(r"[0-9a-f]{64}", written["sha256"])
    assert written["script"] == str(run.script) and written["keys"] == "7"

    stored = values(db)
    flag_sets = [e.fields for e in run.events if e.event == "FLAG_SET"]
    assert [f["key"] for f in flag_sets] == MARKETPLACE_KEYS
    for flag_set in flag_sets:
        assert flag_set["old"] == "(absent)"
        assert json.loads(unquote(flag_set["new"])) == stored[flag_set["key"]]
    assert run.event("ACTIVATION_COMMITTED")["changes"] == "7"
    assert run.event("VERIFY")["status"] == "PASS"
    final = run.event("ROLLBACK_FINAL")
    assert final["status"] == "committed"
    assert final["sha256"] == hashlib.sha256(run.script.read_bytes()).hexdigest()
    assert re.search(r"^STATUS=committed ", run.script.read_text(), re.MULTILINE)
    assert run.event("DEPLOYMENT_COMPLETE")["status"] == "success"
    assert "OK" in audit_verify(run.log)


# --- 5. the rollback script -----------------------------------------------------------------


def assert_no_password(*paths: Path) -> None:
    __tracebackhide__ = True
    password = sandbox_password()
    assert len(password) >= 8
    for path in paths:
        assert password not in path.read_text(encoding="utf-8", errors="replace"), path


def test_rollback_script_restores_the_rows_exactly_without_venv_or_password(
    run_suite, target_file, clean_flags
):
    db = clean_flags
    target = target_file()
    # Someone opened step 1 by hand long ago; other step-1 keys were never written.
    set_rows(
        db,
        {"marketplace.enabled": True, "marketplace.step": 1, "marketplace.cohorts": ["founders"]},
        "2026-01-02 03:04:05.123456+00",
        "ops-console alice",
    )
    before = flag_rows(db)

    run = activate(run_suite, target, "phase3", "--step", "2")
    assert run.rc == 0, run.output
    assert "SOAK_OVERRIDDEN" not in run.names, "the soak ran out long ago"
    assert flag_rows(db) != before
    state = json.loads(run.state.read_text())
    assert set(state["keys"]) == {
        "marketplace.step",
        "marketplace.cohorts",
        "marketplace.currency",
        "marketplace.daily_limits",
        "marketplace.safety",
        "marketplace.trading_types",
    }, "enabled was already true: not touched"
    assert state["keys"]["marketplace.currency"]["prior"] is None

    first = run_rollback(run.script)
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.search(rf"rollback of run {run.run_id}: restored \(6 flags\)", first.stdout)
    assert flag_rows(db) == before

    second = run_rollback(run.script)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already-restored" in second.stdout
    assert flag_rows(db) == before

    events = rollback_events(run)
    assert [e.event for e in events] == [
        "ROLLBACK_START",
        "ROLLBACK_COMPLETE",
        "ROLLBACK_START",
        "ROLLBACK_COMPLETE",
    ]
    assert events[0].fields["deployment_status"] == "committed"
    assert [e.fields["result"] for e in events[1::2]] == ["restored", "already-restored"]
    durations = [int(e.fields["duration_ms"]) for e in events[1::2]]
    assert all(0 <= d < 5000 for d in durations), durations
    print(f"rollback duration_ms (step 2): {durations}")
    assert "OK" in audit_verify(run.rollback_log, run.log)

    html_report = run.run_dir / "report.html"
    assert_no_password(
        run.script, run.state, run.log, run.rollback_log, run.run_dir / "junit.xml", html_report
    )
    assert sandbox_password() not in run.output


def test_rollback_of_a_launch_returns_to_founder_mode_exactly(run_suite, target_file, clean_flags):
    db = clean_flags
    target = target_file()
    founder = activate(run_suite, target, "phase4", "--mode", "founder")
    assert founder.rc == 0, founder.output
    now = values(db)
    assert now["launch.mode"] == "founder" and now["launch.regions"] == []
    assert not any(switched_on(now[key]) for key in launch_switches("founder"))

    set_rows(db, {"marketplace.enabled": True, "marketplace.step": 4})
    before = flag_rows(db)
    launch = activate(run_suite, target, "phase4")
    assert launch.rc == 0, launch.output
    assert values(db)["launch.public_signups"] is True

    restored = run_rollback(launch.script)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert flag_rows(db) == before
    events = rollback_events(launch)
    print(f"rollback duration_ms (launch): {events[-1].fields['duration_ms']}")
    assert events[-1].event == "ROLLBACK_COMPLETE"
    assert "OK" in audit_verify(launch.rollback_log)
    assert_no_password(launch.script, launch.state, launch.log, founder.log, launch.rollback_log)


def test_rollback_script_refuses_while_locked_and_after_drift_unless_forced(
    run_suite, target_file, clean_flags, lock_holder
):
    db = clean_flags
    target = target_file()
    # The market was closed by hand once; step 1 rewrites these keys and adds the others.
    set_rows(
        db,
        {"marketplace.enabled": False, "marketplace.step": 0, "marketplace.cohorts": []},
        "2026-02-03 04:05:06.789+00",
        "ops-console alice",
    )
    before = flag_rows(db)
    run = activate(run_suite, target, "phase3", "--step", "1")
    assert run.rc == 0, run.output
    after = flag_rows(db)

    holder = lock_holder(run.run.audit_dir / ".deploy.lock")
    locked = run_rollback(run.script)
    assert locked.returncode == 3, locked.stdout + locked.stderr
    assert f"another deployment holds {run.run.audit_dir / '.deploy.lock'}" in locked.stderr
    assert flag_rows(db) == after
    holder.terminate()
    holder.wait(timeout=10)
    # A deployer on another host shares only the database lock: refused all the same.
    holder = lock_holder(run.run.audit_dir / ".deploy.lock", "database")
    locked = run_rollback(run.script)
    assert locked.returncode == 3, locked.stdout + locked.stderr
    assert "a deployment holds the nexus-deploy database lock" in locked.stderr
    assert flag_rows(db) == after
    holder.terminate()
    holder.wait(timeout=10)

    db.execute(
        'UPDATE nexus_feature_flags SET value = \'["founders", "staff"]\'::jsonb, '
        "updated_at = now(), updated_by = 'ops-console bob' WHERE key = 'marketplace.cohorts'"
    )
    drifted = flag_rows(db)
    refused = run_rollback(run.script)
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "marketplace.cohorts" in refused.stderr and "--force" in refused.stderr
    assert "marketplace.step" not in refused.stderr, "only the changed key is named"
    assert flag_rows(db) == drifted

    forced = run_rollback(run.script, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert flag_rows(db) == before

    events = rollback_events(run)
    assert [e.event for e in events] == [
        "ROLLBACK_REFUSED",
        "ROLLBACK_START",
        "ROLLBACK_REFUSED",
        "ROLLBACK_START",
        "ROLLBACK_REFUSED",
        "ROLLBACK_START",
        "ROLLBACK_COMPLETE",
    ]
    assert "host deployment lock" in events[0].fields["reason"]
    assert "database lock" in events[2].fields["reason"]
    assert events[4].fields["keys"] == "marketplace.cohorts"
    assert events[5].fields["force"] == "true"
    print(f"rollback duration_ms (forced): {events[-1].fields['duration_ms']}")
    assert "OK" in audit_verify(run.rollback_log)


def test_rollback_script_sees_drift_on_keys_absent_before_or_deleted_since(
    run_suite, target_file, clean_flags
):
    db = clean_flags
    set_rows(db, {"marketplace.step": 0}, "2026-02-03 04:05:06+00", "ops-console alice")
    run = activate(run_suite, target_file(), "phase3", "--step", "1")
    assert run.rc == 0, run.output
    # Someone else, after the run: a key the run created is changed, a key it updated is removed.
    db.execute(
        'UPDATE nexus_feature_flags SET value = \'["founders", "staff"]\'::jsonb, '
        "updated_at = now(), updated_by = 'ops-console bob' WHERE key = 'marketplace.cohorts'"
    )
    db.execute("DELETE FROM nexus_feature_flags WHERE key = 'marketplace.step'")
    drifted = flag_rows(db)

    refused = run_rollback(run.script)
    assert flag_rows(db) == drifted, "someone else's changes were overwritten"
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "marketplace.cohorts,marketplace.step" in refused.stderr


# --- 6. verification fails: the activation rolls itself back --------------------------------


def test_flags_not_shown_by_every_gateway_roll_the_activation_back(
    run_suite, target_file, clean_flags, stale_gateway
):
    db = clean_flags
    set_rows(
        db,
        {"marketplace.enabled": False, "marketplace.step": 0},
        "2025-12-24 18:00:00.5+00",
        "ops-console carol",
    )
    before = flag_rows(db)
    endpoints = [
        {"name": "direct", "url": "http://127.0.0.1:8081"},
        {"name": "nginx", "url": "https://127.0.0.1:8443"},
        {"name": "stale", "url": stale_gateway},
    ]
    target = target_file({"gateway.endpoints": endpoints, "gateway.verify_timeout_s": 1})

    run = activate(run_suite, target, "phase3", "--step", "1")
    assert run.rc == 1, run.output
    assert run.event("PRECHECK_API")["status"] == "PASS"
    assert "did not show within 1 s" in run.output
    assert "the activation was rolled back" in run.output
    assert "rolled back automatically" in run.output
    verify = run.event("VERIFY")
    assert verify["status"] == "FAIL" and "stale: old or missing" in unquote(verify["reason"])
    assert run.event("AUTO_ROLLBACK")["keys"] == "7"
    assert run.names.index("VERIFY") < run.names.index("AUTO_ROLLBACK")
    assert run.event("ROLLBACK_FINAL")["status"] == "auto-rolled-back"
    assert run.event("DEPLOYMENT_COMPLETE")["status"] == "failed"
    assert flag_rows(db) == before

    assert re.search(r"^STATUS=auto-rolled-back ", run.script.read_text(), re.MULTILINE)
    afterwards = run_rollback(run.script)
    assert afterwards.returncode == 0, afterwards.stdout + afterwards.stderr
    assert "already-restored" in afterwards.stdout
    assert flag_rows(db) == before
    assert "OK" in audit_verify(run.log, run.rollback_log)


# --- 7. a failed precheck: no write at all --------------------------------------------------


def test_failed_precheck_writes_nothing(run_suite, target_file, clean_flags):
    db = clean_flags
    before = flag_rows(db)
    run = activate(run_suite, target_file({"disk.min_free_gb": 100000}), "phase3", "--step", "1")
    assert run.rc == 1, run.output
    assert flag_rows(db) == before
    assert run.event("PRECHECK_DISK")["status"] == "FAIL"
    assert "DISK" in run.event("GATE_CLOSED")["reason"]
    assert not {"GATE_OPEN", "PLAN", "ROLLBACK_WRITTEN", "FLAG_SET"} & set(run.names)
    assert run.names.index("GATE_CLOSED") < run.names.index("LOCK_RELEASED")
    assert not run.script.exists() and rollback_scripts(run.run.audit_dir) == []
    assert run.event("DEPLOYMENT_COMPLETE")["status"] == "failed"


def test_hostile_flag_text_is_restored_as_data_and_never_runs(
    run_suite, target_file, clean_flags, tmp_path
):
    db = clean_flags
    canary = tmp_path / "pwned"
    # Text another writer left in the rows this run will change: quotes, backslashes, a psql
    # meta-command, the old here-document terminator and shell code on lines of their own.
    hostile = (
        f"x'); DROP TABLE nexus_feature_flags; --\n\\! touch {canary}\n"
        f"NEXUS_ROLLBACK_SQL\n) ; touch {canary} ; ("
    )
    set_rows(
        db,
        {"marketplace.step": 1, "marketplace.cohorts": [hostile]},
        "2026-01-02 03:04:05+00",
        hostile,
    )
    before = flag_rows(db)

    run = activate(run_suite, target_file(), "phase3", "--step", "2")
    assert run.rc == 0, run.output
    restored = run_rollback(run.script)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert flag_rows(db) == before
    assert not canary.exists()


def test_lowering_the_marketplace_under_a_global_launch_is_refused(
    run_suite, target_file, clean_flags
):
    db = clean_flags
    set_rows(
        db,
        {"marketplace.enabled": True, "marketplace.step": 4, "launch.mode": "global"},
        "2026-01-02 03:04:05+00",
        "ops-console alice",
    )
    before = flag_rows(db)
    run = activate(run_suite, target_file(), "phase3", "--step", "3")
    assert run.rc == 1, run.output
    reason = unquote(run.event("GUARD")["reason"])
    assert "the global launch needs it" in reason and "return to founder mode first" in reason
    assert flag_rows(db) == before
    assert not run.script.exists()
