"""The gate: activation runs only behind a full green gate, and every refusal says why.

Each test runs the real suite against the real sandbox from the platform state `clean_flags`
leaves (no phase flag set) and checks what an operator and an auditor would: the exit code, the
terminal, the JUnit global properties, the HTML report, the audit log, the flag table and the
audit directory (no rollback script unless something was committed).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from suite import PRECHECK_NAMES, REPO, AuditEvent, SuiteRun, flag_rows, parse_audit

from nexus_deploy.phases.marketplace import PHASE as MARKETPLACE
from nexus_deploy.phases.marketplace import marketplace_flags

pytestmark = pytest.mark.usefixtures("sandbox_up")

ACTIVATE = ("--activate", "phase3", "--step", "1")
# The sandbox's database is shared with other test sessions: wait for their deployments rather
# than let a LOCK_DENIED stand in for the reason a test is about.
PATIENT = ("--lock-timeout", "60")
DISK_FAILS = {"disk.min_free_gb": 100000}
# Events that only an activation that went past the gate writes.
ACTIVATION_EVENTS = {"GATE_OPEN", "PLAN", "ROLLBACK_WRITTEN", "FLAG_SET", "ACTIVATION_COMMITTED"}
CHANNELS = ("terminal", "junit", "html", "audit")


# --- reading what a run left behind ---------------------------------------------------------


def terminal_activation(run: SuiteRun) -> str:
    """The `activation:` line of the nexus-deploy terminal summary."""
    match = re.search(r"^\s*activation: (.*)$", run.output, re.MULTILINE)
    assert match, f"no activation line in the terminal summary\n{run.output}"
    return match[1]


def html_activation(run: SuiteRun) -> str:
    """The activation decision as the HTML report shows it (unescaped)."""
    text = (run.run_dir / "report.html").read_text(encoding="utf-8")
    match = re.search(r"<li><b>activation</b>: (.*?)</li>", text)
    assert match, "no activation decision in report.html"
    return html.unescape(match[1])


def deployment_log(run: SuiteRun) -> list[AuditEvent]:
    return run.audit("deployment-")


def run_id_of(run: SuiteRun, prefix: str = "deployment-") -> str:
    (log,) = run.audit_files(prefix)
    return log.stem.removeprefix(prefix)


def reasons(events: list[AuditEvent], *names: str) -> str:
    return " | ".join(e.fields.get("reason", "") for e in events if e.event in names)


def assert_untouched(before: list[Any], after: list[Any], run_id: str) -> None:
    """No flag row changed by this run.

    The sandbox is shared: a concurrent deployment (another test session) may change rows while
    this run is going. Every row this run could write names it in `updated_by`; a row that
    changed is only allowed if another run wrote it.
    """
    __tracebackhide__ = True
    if before == after:
        return
    changed = set(before) ^ set(after)
    ours = sorted(row for row in changed if f"run={run_id} " in row[3])
    assert not ours, f"run {run_id} changed flag rows: {ours}"


def phase_flags(connection: Any) -> dict[str, Any]:
    return {
        key: json.loads(value)
        for key, value, _, _ in flag_rows(connection)
        if key.startswith(("marketplace.", "launch."))
    }


def step_1_flags() -> dict[str, Any]:
    return dict(marketplace_flags(MARKETPLACE.load(REPO / "pfs"), 1))


# --- the gate stays shut --------------------------------------------------------------------


@dataclass(frozen=True)
class Shut:
    """A run of `--activate phase3 --step 1` that must not activate, and why it must say."""

    args: tuple[str, ...]
    why: str  # what each channel must name
    profile: dict[str, Any] = field(default_factory=dict)
    rc: int | None = None  # the exit code, where the contract fixes it
    cases: dict[str, tuple[str, str]] = field(default_factory=dict)  # test -> (outcome, message)
    audit: dict[str, dict[str, str]] = field(default_factory=dict)  # event -> field -> substring
    output: tuple[str, ...] = ()
    prior: tuple[str, ...] = ()  # --lf: the arguments of an earlier run whose DISK failed
    plugin: str = ""  # the source of a pytest plugin the run loads with -p


REFUSED_DISK = "activation refused: prechecks failed: DISK"
# A precheck that passes and then fails in teardown (its fixture cannot clean up) has failed.
TEARDOWN_FAULT = """
import pytest

@pytest.fixture(autouse=True)
def disk_cleanup_fails(request):
    yield
    if request.node.name == "test_disk":
        raise OSError("cannot remove the disk probe")
"""
# A profile asking for testinfra's paramiko backend, which this deployer does not install:
# the host fixture raises while setting up every precheck that uses it.
SETUP_ERROR = "You must install paramiko package"

SHUT = {
    "k-api": Shut(("-k", "api"), why="activation tests not selected", rc=1),
    "k-not-disk": Shut(("-k", "not disk"), why="prechecks not selected: DISK", rc=1),
    "m-activation": Shut(
        ("-m", "activation"),
        why="prechecks not selected: " + ", ".join(PRECHECK_NAMES),
        rc=1,  # the gate leaves no test to run; an activation asked for that did not run is 1
    ),
    "deselect-disk": Shut(
        ("--deselect", "checks/test_04_disk.py::test_disk"),
        why="prechecks not selected: DISK",
        rc=1,  # asked to activate and did not: not "done"
    ),
    # The earlier activation run failed on DISK and refused the activation tests: --lf reruns
    # test_disk and the activation tests.
    "lf-after-failed-activation": Shut(
        ("--lf",),
        why="--lf selects tests by an earlier run",
        rc=1,
        prior=(*ACTIVATE, *PATIENT),
        output=("run-last-failure: rerun previous",),
    ),
    # `pytest -m precheck` failed on DISK: --lf reruns test_disk only, no activation test.
    "lf-after-failed-precheck": Shut(
        ("--lf",),
        why="activation tests not selected",
        rc=1,
        prior=("-m", "precheck"),
        output=("run-last-failure: rerun previous",),
    ),
    "x-after-failure": Shut(
        ("-x",),
        why="stopped early",
        profile=DISK_FAILS,
        rc=1,
        cases={"test_disk": ("failed", "below the minimum 100000 GB")},
        audit={"ACTIVATION_NOT_RUN": {"reason": "session stopped early"}},
        output=("stopping after 1 failures",),
    ),
    "no-pytest-order": Shut(("-p", "no:pytest_order"), why="plugin disabled: pytest-order", rc=1),
    "failing-precheck": Shut(
        (),
        why="prechecks failed: DISK",
        profile=DISK_FAILS,
        rc=1,
        cases={
            "test_disk": ("failed", "below the minimum 100000 GB"),
            "test_plan": ("error", REFUSED_DISK),
            "test_apply_and_verify": ("error", REFUSED_DISK),
        },
        audit={
            "PRECHECK_DISK": {"status": "FAIL"},
            "GATE_CLOSED": {"reason": "prechecks failed: DISK"},
        },
    ),
    "precheck-teardown-error": Shut(
        (),
        why="prechecks failed: DISK",
        rc=1,
        plugin=TEARDOWN_FAULT,
        cases={
            "test_disk": ("error", "cannot remove the disk probe"),
            "test_plan": ("error", REFUSED_DISK),
        },
        audit={
            "PRECHECK_DISK": {
                "status": "FAIL",
                "reason": "error in teardown: OSError: cannot remove the disk probe",
            },
            "PRECHECK_MEMORY": {"status": "PASS"},
            "PRECHECK_END": {"failed": "1"},
        },
    ),
    "precheck-setup-error": Shut(
        (),
        why="prechecks failed: SYSTEM, SERVICES, DOCKER, DISK",
        profile={"host": "paramiko://deploy@127.0.0.1"},
        rc=1,
        cases={
            "test_system": ("error", SETUP_ERROR),
            "test_config": ("passed", ""),
            "test_plan": ("error", "activation refused: prechecks failed: SYSTEM"),
        },
        audit={
            "PRECHECK_SYSTEM": {
                "status": "FAIL",
                "reason": "error in setup: RuntimeError: " + SETUP_ERROR,
            },
            "PRECHECK_CONFIG": {"status": "PASS"},
        },
    ),
}


@pytest.mark.parametrize("case", SHUT.values(), ids=SHUT.keys())
def test_gate_stays_shut_and_says_why(run_suite, target_file, clean_flags, tmp_path, case: Shut):
    target = target_file(case.profile)
    before = flag_rows(clean_flags)
    args = case.args
    if case.prior:
        # The operator's previous run failed on DISK; they freed space and now rerun "only what
        # failed". A private cache dir: the repository's .pytest_cache is shared.
        cache = f"cache_dir={tmp_path / 'cache'}"
        prior_audit = {**DISK_FAILS, "audit.dir": str(tmp_path / "prior-audit")}
        prior = run_suite("-o", cache, *case.prior, target=target_file(prior_audit, "prior.yaml"))
        assert prior.rc == 1, prior.output
        args = ("-o", cache, *args)
    env = {}
    if case.plugin:
        (tmp_path / "shut_plugin.py").write_text(case.plugin, encoding="utf-8")
        args = ("-p", "shut_plugin", *args)
        env = {"PYTHONPATH": str(tmp_path)}
    run = run_suite(*ACTIVATE, *PATIENT, *args, target=target, env=env)
    after = flag_rows(clean_flags)
    run_id = run_id_of(run)
    events = deployment_log(run)
    names = [e.event for e in events]

    # Safety first: nothing past the gate ran, nothing changed, nothing to roll back.
    if case.rc is not None:
        assert run.rc == case.rc, run.output
    assert not ACTIVATION_EVENTS & set(names), names
    assert_untouched(before, after, run_id)
    assert not list(run.audit_dir.glob("rollback-*")), (
        "a rollback script for a run that did nothing"
    )
    for test in ("test_plan", "test_apply_and_verify"):
        assert run.cases.get(test, {}).get("outcome") != "passed", run.output
    assert names[0] == "DEPLOYMENT_START" and names[-1] == "DEPLOYMENT_COMPLETE", names
    for text in case.output:
        assert text in run.output, run.output
    for test, (outcome, message) in case.cases.items():
        assert run.cases[test]["outcome"] == outcome, run.cases[test]
        assert message in run.cases[test]["message"], run.cases[test]
    for event, expected in case.audit.items():
        (line,) = [e for e in events if e.event == event]
        for key, text in expected.items():
            assert text in line.fields[key], line

    # Then the why, on every channel an operator or an auditor reads.
    says = {
        "terminal": terminal_activation(run),
        "junit": run.global_properties().get("activation", ""),
        "html": html_activation(run),
        "audit": reasons(events, "GATE_CLOSED", "ACTIVATION_NOT_RUN"),
    }
    for channel in ("terminal", "junit", "html"):
        assert says[channel].startswith("not run"), says
    silent = [channel for channel in CHANNELS if case.why not in says[channel]]
    assert not silent, f"{silent} do not say {case.why!r}: {says}"


# --- the gate opens ---------------------------------------------------------------------------


def test_full_green_run_opens_the_gate_and_commits(run_suite, clean_flags):
    run = run_suite(*ACTIVATE, *PATIENT)
    assert run.rc == 0, run.output
    names = [e.event for e in deployment_log(run)]
    assert names.index("PRECHECK_END") < names.index("GATE_OPEN") < names.index("PLAN")
    assert "GATE_CLOSED" not in names and "ACTIVATION_NOT_RUN" not in names
    assert run.event("GATE_OPEN", "deployment-").fields["prechecks"] == "12"
    assert "ACTIVATION_COMMITTED" in names
    assert run.global_properties()["activation"].startswith("committed")
    assert phase_flags(clean_flags) == step_1_flags()
    assert (run.audit_dir / f"rollback-{run_id_of(run)}.sh").is_file()


def test_bare_pytest_runs_the_twelve_prechecks_and_no_activation(run_suite, flags_db):
    before = flag_rows(flags_db)
    run = run_suite()
    assert run.rc == 0, run.output
    # Deselected: the restore point, the plan and the change.
    assert "12 passed, 3 deselected" in run.output
    assert sorted(run.cases) == sorted(f"test_{n.lower()}" for n in PRECHECK_NAMES)
    assert all(case["outcome"] == "passed" for case in run.cases.values()), run.cases
    assert not run.audit_files("deployment-") and not list(run.audit_dir.glob("rollback-*"))
    names = [e.event for e in run.audit()]
    assert not {"LOCK_ACQUIRED", "GATE_OPEN", "GATE_CLOSED", "ACTIVATION_NOT_RUN"} & set(names)
    assert "activation" not in run.global_properties()
    assert_untouched(before, flag_rows(flags_db), run_id_of(run, "precheck-"))


# --- usage errors: refused before anything runs -------------------------------------------


USAGE_ERRORS = {
    "phase5": (("--activate", "phase5"), "--activate: unknown phase (phases: phase3, phase4)"),
    "phase3-without-step": (("--activate", "phase3"), "needs --step"),
    "step-9": (("--activate", "phase3", "--step", "9"), "--step: out of range: choose 0..4"),
    "step-minus-1": (("--activate", "phase3", "--step", "-1"), "--step: out of range"),
    "step-two": (("--activate", "phase3", "--step", "two"), "--step: not a whole number"),
    "step-minus-minus-1": (("--activate", "phase3", "--step=--1"), "--step: not a whole number"),
    "mode-everyone": (
        ("--activate", "phase4", "--mode", "everyone"),
        "--mode: unknown mode (modes: global, founder)",
    ),
    "phase4-with-step": (
        ("--activate", "phase4", "--step", "2"),
        "--step is for --activate phase3",
    ),
    "step-without-activate": (("--step", "2"), "--step needs --activate"),
    "lock-timeout-without-activate": (("--lock-timeout", "5"), "--lock-timeout needs --activate"),
    "plan-without-activate": (("--plan",), "--plan needs --activate"),
    "lock-timeout-forever": (
        (*ACTIVATE, "--lock-timeout", "forever"),
        "--lock-timeout: give seconds between 0 and 3600",
    ),
}
SEVERAL_WORKERS = pytest.param(
    ("-n", "2", *ACTIVATE),
    "runs in one process",
    id="xdist-workers",  # pytest-xdist is a dev dependency: this runs
)


@pytest.mark.parametrize(
    ("args", "named"),
    [*(pytest.param(*case, id=name) for name, case in USAGE_ERRORS.items()), SEVERAL_WORKERS],
)
def test_usage_error_is_refused_before_anything_runs(run_suite, flags_db, args, named):
    before = flag_rows(flags_db)
    run = run_suite(*args)
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert "activation refused: " in run.output and named in run.output, run.output
    assert "PRECHECK_" not in run.output and not run.cases
    assert not (run.reports_dir / "latest").exists(), "a refused run wrote reports"
    assert not run.audit_files("deployment-") and not list(run.audit_dir.glob("rollback-*"))
    events = run.audit()  # precheck-<id>.log in the profile's audit directory
    assert run.audit_files()[0].parent == run.audit_dir
    assert [e.event for e in events] == ["DEPLOYMENT_START", "DEPLOYMENT_REFUSED",
                                         "DEPLOYMENT_COMPLETE"]  # fmt: skip
    assert named in events[1].fields["reason"]
    assert events[2].fields["status"] == "refused"
    assert_untouched(before, flag_rows(flags_db), run_id_of(run, "precheck-"))


# --- the deployment lock between real processes -------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
import psycopg
from nexus_deploy.change.lock import DeploymentLock

lock_file, hold_s, contender_dir = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
connection = psycopg.connect(
    host="127.0.0.1", port=55432, dbname="nexus", user="nexus",
    passfile="/var/lib/nexus-sandbox/pgpass", autocommit=True, application_name="holder-test",
)
lock = DeploymentLock(
    connection, lock_file, {"run_id": "HOLDER-RUN", "operator": "holder-op", "host": "holder-host"}
)
lock.acquire(15)  # not 0: another test session may be deploying on the shared sandbox
print("locked", flush=True)
if contender_dir:
    # Hold until the contender has started (its DEPLOYMENT_START is written before it asks
    # for the lock), so that it has to wait for us.
    deadline = time.monotonic() + 60
    while not list(Path(contender_dir).glob("deployment-*.log")):
        if time.monotonic() > deadline:
            sys.exit("no contender")
        time.sleep(0.05)
    print("contender started", flush=True)
time.sleep(hold_s)
lock.release()
connection.close()
print("released", flush=True)
"""


@pytest.fixture
def timed_lock_holder(background):
    """Start a second real process that holds the deployment lock; killed at teardown."""

    def start(audit_dir: Path, hold_s: float, wait_for_contender: bool = False):
        command = [sys.executable, "-c", HOLDER, str(audit_dir / ".deploy.lock"), str(hold_s)]
        command.append(str(audit_dir) if wait_for_contender else "")
        return background(command, ready="locked")

    return start


def test_held_lock_refuses_activation_naming_the_holder(
    run_suite, target_file, clean_flags, timed_lock_holder, tmp_path
):
    target = target_file()
    timed_lock_holder(tmp_path / "audit", hold_s=600)
    before = flag_rows(clean_flags)
    run = run_suite(*ACTIVATE, target=target)
    after = flag_rows(clean_flags)
    assert run.rc == 1, run.output
    names = [e.event for e in deployment_log(run)]
    assert "LOCK_ACQUIRED" not in names and not ACTIVATION_EVENTS & set(names), names
    holder = run.event("LOCK_DENIED", "deployment-").fields["holder"]
    assert "database session holder-test" in holder  # the holder's application_name
    assert '"run_id": "HOLDER-RUN"' in holder.replace('\\"', '"')  # the host lock file's content
    assert "holder-host" in holder
    refused = "activation refused: another deployment holds the lock"
    assert refused in run.cases["test_plan"]["message"]
    assert (
        "another deployment holds the lock"
        in run.event("GATE_CLOSED", "deployment-").fields["reason"]
    )
    assert "holder-test" in run.global_properties()["activation"]
    assert "holder-test" in terminal_activation(run)
    assert_untouched(before, after, run_id_of(run))
    assert not list(run.audit_dir.glob("rollback-*"))


def test_lock_timeout_waits_for_the_holder_then_commits(
    run_suite, target_file, clean_flags, timed_lock_holder, tmp_path
):
    target = target_file()
    holder = timed_lock_holder(tmp_path / "audit", hold_s=1.0, wait_for_contender=True)
    run = run_suite(*ACTIVATE, "--lock-timeout", "5", target=target)
    out, err = holder.communicate(timeout=30)
    assert "contender started" in out and "released" in out, err
    assert run.rc == 0, run.output
    names = [e.event for e in deployment_log(run)]
    assert "LOCK_DENIED" not in names
    assert names.index("LOCK_ACQUIRED") < names.index("ACTIVATION_COMMITTED")
    assert phase_flags(clean_flags) == step_1_flags()


def test_two_simultaneous_activations_commit_once(target_file, clean_flags, tmp_path):
    target = target_file()
    commands = [
        [
            sys.executable,
            "-m",
            "pytest",
            f"--target={target}",
            f"--reports-dir={tmp_path / r}",
            *ACTIVATE,
        ]
        for r in ("reports-a", "reports-b")
    ]
    runs = [
        subprocess.Popen(c, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for c in commands
    ]
    outputs = [run.communicate(timeout=180)[0] for run in runs]
    logs = sorted((tmp_path / "audit").glob("deployment-*.log"))
    assert len(logs) == 2, outputs
    events = [[e.event for e in parse_audit(log)] for log in logs]
    committed = [names for names in events if "FLAG_SET" in names]
    assert len(committed) == 1, (events, outputs)
    (other,) = [names for names in events if "FLAG_SET" not in names]
    # Either it asked while the first held the lock, or it came after and found nothing to do.
    assert "LOCK_DENIED" in other or "ACTIVATION_SKIPPED" in other, (other, outputs)
    assert phase_flags(clean_flags) == step_1_flags()
    assert len(list((tmp_path / "audit").glob("rollback-*.sh"))) == 1
