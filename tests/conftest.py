"""Fixtures of the deployer's tests: the sandbox, target profiles with one fault, suite runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml
from suite import CHECK_FILES, REPO, SANDBOX_PROFILE, SuiteRun, parse_junit, set_dotted

pytest_plugins = ["pytester"]  # copies of the deployment suite (test_structure.py)


@pytest.fixture(scope="session")
def sandbox_up() -> None:
    """The tests that run the suite need the sandbox that .ci/run starts (sandbox/up.sh)."""
    try:
        healthy = requests.get("http://127.0.0.1:8081/health", timeout=3).status_code == 200
    except requests.RequestException:
        healthy = False
    if not healthy:
        pytest.fail("the sandbox is not up: run `bash sandbox/up.sh` first", pytrace=False)


@pytest.fixture
def target_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a copy of the sandbox profile with some fields changed; its audit dir is private."""

    def write(changes: dict[str, Any] | None = None, name: str = "target.yaml") -> Path:
        profile = yaml.safe_load(SANDBOX_PROFILE.read_text(encoding="utf-8"))
        profile["audit"]["dir"] = str(tmp_path / "audit")
        for dotted, value in (changes or {}).items():
            set_dotted(profile, dotted, value)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(profile), encoding="utf-8")
        return path

    return write


@pytest.fixture
def run_suite(tmp_path: Path, target_file: Callable[..., Path]) -> Callable[..., SuiteRun]:
    """Run the real deployment suite as an operator does: `pytest ...` in the repository."""

    def run(
        *args: str,
        target: Path | None = None,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> SuiteRun:
        target = target or target_file()
        reports = tmp_path / "reports"
        # "--opt=value": a path given as a separate word would move pytest's rootdir.
        command = [sys.executable, "-m", "pytest", f"--target={target}"]
        command += [f"--reports-dir={reports}", *args]
        done = subprocess.run(
            command,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        profile = yaml.safe_load(target.read_text()) if target.exists() else None
        audit_dir = Path(profile["audit"]["dir"]) if profile else tmp_path / "audit"
        run = SuiteRun(done.returncode, done.stdout + done.stderr, reports, audit_dir)
        junit = reports / "latest" / "junit.xml"
        if junit.exists():
            run.cases = parse_junit(junit)
        return run

    return run


@pytest.fixture
def run_check(
    run_suite: Callable[..., SuiteRun], target_file: Callable[..., Path]
) -> Callable[..., SuiteRun]:
    """Run one precheck's file against the sandbox profile with ``changes`` made."""

    def run(name: str, changes: dict[str, Any] | None = None) -> SuiteRun:
        return run_suite(CHECK_FILES[name], target=target_file(changes or {}))

    return run


@pytest.fixture
def pfs_copy(tmp_path: Path) -> Path:
    """A copy of the phase configs (pfs/*.yaml) to break; point config.dir at it."""
    pfs = tmp_path / "pfs"
    pfs.mkdir()
    for path in (REPO / "pfs").glob("*.yaml"):
        shutil.copy(path, pfs)
    return pfs


@pytest.fixture
def flags_db(sandbox_up: None) -> Iterator[psycopg.Connection[Any]]:
    """A direct connection to the sandbox's flag table, to arrange and inspect platform state."""
    with psycopg.connect(
        host="127.0.0.1",
        port=55432,
        dbname="nexus",
        user="nexus",
        passfile="/var/lib/nexus-sandbox/pgpass",
        autocommit=True,
        options="-c TimeZone=UTC",
    ) as connection:
        yield connection


PHASE_KEYS = "key LIKE 'marketplace.%' OR key LIKE 'launch.%'"


@pytest.fixture
def clean_flags(flags_db: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """Start from a platform where no phase flag was ever set, and leave it so."""
    flags_db.execute(f"DELETE FROM nexus_feature_flags WHERE {PHASE_KEYS}")
    yield flags_db
    flags_db.execute(f"DELETE FROM nexus_feature_flags WHERE {PHASE_KEYS}")


@pytest.fixture
def background() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start real helper processes that print a ready line first; each is ended at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(command: list[str], ready: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(process)
        line = process.stdout.readline() if process.stdout else ""
        if line.strip() != ready:
            process.kill()
            _, error = process.communicate(timeout=10)
            pytest.fail(f"helper process did not print {ready!r}: {line!r} {error}")
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


LOCK_HOLDER = """
import sys, time
from pathlib import Path
import psycopg
from nexus_deploy.change.lock import ADVISORY_KEY, DeploymentLock
connection = psycopg.connect(
    host="127.0.0.1", port=55432, dbname="nexus", user="nexus",
    passfile="/var/lib/nexus-sandbox/pgpass", autocommit=True,
    application_name="tests lock holder",
)
if sys.argv[2] == "both":
    lock = DeploymentLock(connection, Path(sys.argv[1]), {"run_id": "tests-lock-holder"})
    lock.acquire(30)  # kept referenced: the host lock lives as long as its open file
elif sys.argv[2] == "file":  # a process holding only the host lock
    import fcntl
    Path(sys.argv[1]).parent.mkdir(parents=True, exist_ok=True)
    handle = open(sys.argv[1], "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    handle.write('{"run_id": "tests-file-lock-holder"}\\n')
    handle.flush()
else:  # a deployer on another host: only the database lock is shared
    connection.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))
print("locked", flush=True)
time.sleep(600)
"""


@pytest.fixture
def lock_holder(background) -> Callable[..., subprocess.Popen[str]]:
    """Start a real second process that holds the deployment lock until the test ends."""

    def start(lock_file: Path, which: str = "both") -> subprocess.Popen[str]:
        command = [sys.executable, "-c", LOCK_HOLDER, str(lock_file), which]
        return background(command, ready="locked")

    return start
