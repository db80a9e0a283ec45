"""kill -9 at each named point of an activation (nexus_deploy.crash) and what it leaves: the
flags all old or all new, the lock free, an audit log that claims nothing that did not happen,
`nexusctl rollback` choosing the run whose changes are live, `history` naming it killed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from suite import REPO, SuiteRun, flag_rows, parse_audit
from test_activation import stale_gateway  # noqa: F401  (a fixture: a gateway that never shows)

from nexus_deploy.crash import CRASH_ENV, POINTS
from nexus_deploy.phases.marketplace import PHASE as MARKETPLACE
from nexus_deploy.phases.marketplace import marketplace_flags

pytestmark = pytest.mark.usefixtures("sandbox_up")

NEXUSCTL = Path(sys.executable).with_name("nexusctl")
# Where the change is live once the process dies there: COMMIT has happened.
COMMITTED_AT = {"after-commit", "during-verification", "during-auto-rollback"}


def market(connection: psycopg.Connection[Any]) -> dict[str, Any]:
    return {
        key: json.loads(value)
        for key, value, _, _ in flag_rows(connection)
        if key.startswith("marketplace.")
    }


def step(number: int) -> dict[str, Any]:
    return dict(marketplace_flags(MARKETPLACE.load(REPO / "pfs"), number))


def nexusctl(target: Path, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NEXUSCTL), *words, f"--target={target}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def lock_is_free(target: Path) -> bool:
    """The server drops a dead client's session (and its advisory lock) once it notices."""
    for _ in range(50):
        status = nexusctl(target, "status")
        if re.search(r"^lock\s*: free$", status.stdout, re.MULTILINE):
            return True
        time.sleep(0.1)
    return False


def assert_the_truth(
    run: SuiteRun,
    target: Path,
    db: psycopg.Connection[Any],
    old: dict[str, Any],
    new: dict[str, Any],
    live: bool,
    earlier_live_run: str | None = None,
) -> None:
    __tracebackhide__ = True
    assert run.rc == -signal.SIGKILL, run.output
    now = market(db)
    assert now == (new if live else old), "flags all new after COMMIT, all old before it"
    assert lock_is_free(target), "the dead run still holds the lock"
    logs = Path(target.parent / "audit").glob("deployment-*.log")
    (log,) = [log for log in logs if parse_audit(log)[-1].event != "DEPLOYMENT_COMPLETE"]
    events = [e.event for e in parse_audit(log)]
    if not live:
        assert not {"FLAG_SET", "ACTIVATION_COMMITTED"} & set(events), events
    run_id = log.stem.removeprefix("deployment-")
    history = nexusctl(target, "history").stdout
    assert re.search(rf"^{run_id} .* status=killed ", history, re.MULTILINE), history
    rolled = nexusctl(target, "rollback")
    chosen = run_id if live else earlier_live_run  # the newest run whose changes are live
    if chosen is None:
        assert rolled.returncode == 2, rolled.stdout + rolled.stderr
        assert "run whose changes are live" in rolled.stderr
        assert market(db) == old
    else:
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        assert f"rollback-{chosen}.sh" in rolled.stdout, "the run whose changes are live"


@pytest.mark.parametrize("point", POINTS)
def test_kill_9_during_an_activation_leaves_the_truth(
    point: str,
    run_suite: Callable[..., SuiteRun],
    target_file: Callable[..., Path],
    clean_flags: psycopg.Connection[Any],
    request: pytest.FixtureRequest,
) -> None:
    changes: dict[str, Any] = {}
    if point == "during-auto-rollback":  # verification must fail for the rollback to start
        stale = request.getfixturevalue("stale_gateway")
        changes = {
            "gateway.endpoints": [{"name": "stale", "url": stale}],
            "gateway.verify_timeout_s": 1,
        }
    target = target_file(changes)
    run = run_suite("--activate=phase3", "--step=1", target=target, env={CRASH_ENV: point})
    assert_the_truth(run, target, clean_flags, {}, step(1), live=point in COMMITTED_AT)


@pytest.mark.parametrize("point", ["inside-transaction", "after-commit"])
def test_kill_9_during_an_emergency_move_leaves_the_truth(
    point: str,
    run_suite: Callable[..., SuiteRun],
    target_file: Callable[..., Path],
    clean_flags: psycopg.Connection[Any],
) -> None:
    target = target_file()
    opened = run_suite("--activate=phase3", "--step=1", target=target)
    assert opened.rc == 0, opened.output
    (opened_log,) = opened.audit_files("deployment-")
    opened_id = opened_log.stem.removeprefix("deployment-")
    run = run_suite(
        "--activate=phase3", "--step=0", "--emergency=fraud", target=target,
        env={CRASH_ENV: point},
    )  # fmt: skip
    assert_the_truth(run, target, clean_flags, step(1), step(0), point == "after-commit", opened_id)


def test_kill_9_during_a_rollback_script_leaves_the_truth(
    run_suite: Callable[..., SuiteRun],
    target_file: Callable[..., Path],
    clean_flags: psycopg.Connection[Any],
    flags_db: psycopg.Connection[Any],
) -> None:
    """The script is held inside its transaction by a row lock another session takes, for
    real, then killed with its psql: the server rolls the restore back."""
    target = target_file()
    run = run_suite("--activate=phase3", "--step=1", target=target)
    assert run.rc == 0, run.output
    (script,) = (target.parent / "audit").glob("rollback-*.sh")
    with psycopg.connect(flags_db.info.dsn, password=flags_db.info.password) as blocker:
        blocker.execute(
            "SELECT key FROM nexus_feature_flags WHERE key = 'marketplace.step' FOR UPDATE"
        )
        rollback = subprocess.Popen(
            ["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, process_group=0,
        )  # fmt: skip
        waiting = False
        for _ in range(100):  # until its UPDATE waits on the row lock, inside its transaction
            waits = flags_db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name LIKE 'nexus-rollback%'"
            ).fetchone()
            if waits and waits[0]:
                waiting = True
                break
            time.sleep(0.1)
        os.killpg(rollback.pid, signal.SIGKILL)
        rollback.communicate(timeout=30)
        blocker.rollback()
    assert waiting, "the rollback never reached its transaction"
    assert market(clean_flags) == step(1), "all new: the killed restore was rolled back"
    assert lock_is_free(target)
    log = script.with_suffix(".log")
    events = [line.split()[3] for line in log.read_text(encoding="utf-8").splitlines()]
    assert events == ["ROLLBACK_START"], "it claims nothing it did not finish"
    again = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "restored" in again.stdout, again.stdout + again.stderr
    assert market(clean_flags) == {}
