"""Trust: the deployer cannot be turned against its operator. Each test reproduces an attack
from the trust review against the real sandbox, and failed before its fix."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from suite import REPO, flag_rows
from test_activation import postgres_admin, sandbox_password

from nexus_deploy import db
from nexus_deploy.config.profile import load_profile

pytestmark = pytest.mark.usefixtures("sandbox_up")

NEXUSCTL = Path(sys.executable).with_name("nexusctl")
TRUST_DB = "nexus_trust"


def nexusctl(target: Path, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NEXUSCTL), *words, f"--target={target}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_rollback_refuses_a_script_changed_since_its_run_wrote_it(
    target_file: Callable[..., Path], tmp_path: Path, clean_flags: psycopg.Connection[Any]
) -> None:
    target = target_file()
    done = nexusctl(target, "marketplace", "enable", "--phase", "3", "--step", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    (script,) = (tmp_path / "audit").glob("rollback-*.sh")
    marker = tmp_path / "ran-as-root"
    with script.open("a", encoding="utf-8") as handle:  # what a local attacker would append
        handle.write(f"\ntouch {marker}\n")
    before = flag_rows(clean_flags)
    refused = nexusctl(target, "rollback", script.stem.removeprefix("rollback-"))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "changed since the deployer wrote it" in refused.stderr
    assert not marker.exists(), "bash ran the edited script"
    assert flag_rows(clean_flags) == before
    # The same with the audit log rewritten to match: its chain breaks.
    log = script.with_name(script.name.replace("rollback-", "deployment-").replace(".sh", ".log"))
    log.write_text(log.read_text(encoding="utf-8").replace("sha256=", "sha256=0"), "utf-8")
    broken = nexusctl(target, "rollback", script.stem.removeprefix("rollback-"))
    assert broken.returncode == 1 and "audit log is broken" in broken.stderr
    assert not marker.exists()


@pytest.fixture
def hostile_row(flags_db: psycopg.Connection[Any]) -> Iterator[str]:
    key = "tests.\x1b[2J\x1b]0;owned\x07key"
    flags_db.execute(
        "INSERT INTO nexus_feature_flags (key, value, updated_at, updated_by) "
        "VALUES (%s, %s::jsonb, now(), 'tests')",
        (key, json.dumps("\x1b[31mred\x1b[0m")),
    )
    yield key
    flags_db.execute("DELETE FROM nexus_feature_flags WHERE key = %s", (key,))


def test_status_shows_terminal_escapes_stored_in_flags_as_text(
    target_file: Callable[..., Path], hostile_row: str
) -> None:
    done = nexusctl(target_file(), "status")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "tests.\\x1b[2J" in done.stdout or "tests.\\u001b[2J" in done.stdout


@pytest.fixture
def loose_database(tmp_path: Path) -> Iterator[Any]:
    """A database whose defaults would make the deployer's SQL unsafe: backslashes as escapes,
    SQL_ASCII-like encoding games, no timeouts."""
    postgres_admin(f"DROP DATABASE IF EXISTS {TRUST_DB} WITH (FORCE)")
    postgres_admin(f"CREATE DATABASE {TRUST_DB} OWNER nexus")
    postgres_admin(f"ALTER DATABASE {TRUST_DB} SET standard_conforming_strings = off")
    postgres_admin(f"ALTER DATABASE {TRUST_DB} SET client_encoding = 'LATIN1'")
    passfile = tmp_path / "trust.pgpass"
    passfile.write_text(f"127.0.0.1:55432:{TRUST_DB}:nexus:{sandbox_password()}\n")
    passfile.chmod(0o600)
    profile = load_profile(REPO / "pfs" / "targets" / "sandbox.yaml")
    yield profile.database.model_copy(update={"dbname": TRUST_DB, "passfile": passfile})
    postgres_admin(f"DROP DATABASE IF EXISTS {TRUST_DB} WITH (FORCE)")


def test_the_deployer_pins_its_session_whatever_the_database_defaults(loose_database: Any) -> None:
    with db.connect(loose_database, autocommit=True) as connection:
        shown = {
            name: connection.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in (
                "standard_conforming_strings", "client_encoding", "lock_timeout",
                "statement_timeout", "idle_in_transaction_session_timeout",
            )
        }  # fmt: skip
    assert shown == {
        "standard_conforming_strings": "on",
        "client_encoding": "UTF8",
        "lock_timeout": "10s",
        "statement_timeout": "1min",
        "idle_in_transaction_session_timeout": "1min",
    }
