"""Trust: the deployer cannot be turned against its operator. Each test reproduces an attack
from the trust review against the real sandbox, and failed before its fix."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from suite import REPO, flag_rows, plant_hostile
from test_activation import postgres_admin, sandbox_password

from nexus_deploy import audit, db
from nexus_deploy.audit import AuditLog
from nexus_deploy.change import rollback
from nexus_deploy.config.profile import load_profile
from nexus_deploy.facts.bounded_host import bounded_host

pytestmark = pytest.mark.usefixtures("sandbox_up")

NEXUSCTL = Path(sys.executable).with_name("nexusctl")
TRUST_DB = "nexus_trust"


def nexusctl(target: Path, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NEXUSCTL), *words, f"--target={target}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def enabled_step_1(target: Path, tmp_path: Path) -> Path:
    """Open marketplace step 1 through nexusctl; the rollback script that run wrote."""
    done = nexusctl(target, "marketplace", "enable", "--phase", "3", "--step", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    (script,) = (tmp_path / "audit").glob("rollback-*.sh")
    return script


def test_rollback_refuses_a_script_changed_since_its_run_wrote_it(
    target_file: Callable[..., Path], tmp_path: Path, clean_flags: psycopg.Connection[Any]
) -> None:
    target = target_file()
    script = enabled_step_1(target, tmp_path)
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


# --- hostile inputs: refused before any write, named, never echoed -------------------------

SECRET = "hunter2-NEVER-ECHOED"


def hostile_profiles(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name: (the --target given, what the refusal must say)."""
    made: dict[str, tuple[Path, str]] = {}
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    made["fifo"] = (fifo, "is not a regular file")
    made["dev-zero"] = (Path("/dev/zero"), "is not a regular file")
    made["directory"] = (tmp_path, "is not a regular file")
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 * 1024 * 1024) + "\n", encoding="utf-8")
    made["two-megabytes"] = (big, "is larger than")
    bomb = tmp_path / "bomb.yaml"
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    pairs = zip("abcdefgh", "bcdefghi", strict=True)  # each level nine of the one before
    levels += [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in pairs]
    bomb.write_text("\n".join(levels) + "\n", encoding="utf-8")
    made["alias-bomb"] = (bomb, "aliases")
    shadow = tmp_path / "shadow"
    shadow.write_text(f"root:{SECRET}:19000:0:99999:7:::\ndaemon:*:19000::\n", encoding="utf-8")
    link = tmp_path / "link.yaml"
    link.symlink_to(shadow)
    made["shadow-through-a-symlink"] = (link, "unknown key(s) not shown")
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"{SECRET}: 1\npassword: {SECRET}\n", encoding="utf-8")
    made["secret-keys-and-values"] = (keys, "password: Extra inputs are not permitted")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"host: local://\n\xff\xfe" + SECRET.encode() + b"\n")
    made["not-utf8"] = (binary, "not UTF-8")
    broken_yaml = tmp_path / "broken.yaml"
    broken_yaml.write_text(f"host: [unclosed {SECRET}\n", encoding="utf-8")
    made["broken-yaml"] = (broken_yaml, "cannot read target profile: line")
    password = tmp_path / "password.yaml"
    sandbox = yaml.safe_load((REPO / "pfs/targets/sandbox.yaml").read_text(encoding="utf-8"))
    sandbox["host"] = f"ssh://deploy:{SECRET}@127.0.0.1"
    password.write_text(yaml.safe_dump(sandbox), encoding="utf-8")
    made["password-in-host"] = (password, "holds a password")

    def variant(name: str, says: str, **changes: Any) -> None:
        profile = yaml.safe_load((REPO / "pfs/targets/sandbox.yaml").read_text(encoding="utf-8"))
        for dotted, value in changes.items():
            *parents, leaf = dotted.split("__")
            node = profile
            for part in parents:
                node = node[part]
            node[leaf] = value
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(profile), encoding="utf-8")
        made[name] = (path, says)

    variant("negative-threshold", "disk.min_free_gb", disk__min_free_gb=-1)
    variant("port-out-of-range", "database.port", database__port=70000)
    variant("relative-audit-dir", "audit.dir", audit__dir=f"relative/{SECRET}")
    variant(
        "key-inside-audit-dir",
        "audit.key_file",
        audit__dir=str(tmp_path / "audit"),
        audit__key_file=str(tmp_path / "audit" / "k"),
    )
    variant("string-for-a-number", "command_timeout_s", command_timeout_s=SECRET)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    made["empty-file"] = (empty, "must be a mapping of fields")
    listed = tmp_path / "list.yaml"
    listed.write_text(f"- {SECRET}\n- two\n", encoding="utf-8")
    made["a-list"] = (listed, "must be a mapping of fields")
    twice = tmp_path / "twice.yaml"
    twice.write_text(f"host: local://\nhost: ssh://{SECRET}@h\n", encoding="utf-8")
    made["a-key-twice"] = (twice, "given twice")
    return made


HOSTILE_PROFILES = (
    "fifo", "dev-zero", "directory", "two-megabytes", "alias-bomb", "shadow-through-a-symlink",
    "secret-keys-and-values", "not-utf8", "broken-yaml", "password-in-host",
    "negative-threshold", "port-out-of-range", "relative-audit-dir", "key-inside-audit-dir",
    "string-for-a-number", "empty-file", "a-list", "a-key-twice",
)  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_PROFILES)
def test_a_hostile_profile_is_refused_named_and_not_echoed(
    name: str, tmp_path: Path, flags_db: psycopg.Connection[Any]
) -> None:
    target, says = hostile_profiles(tmp_path)[name]
    before = flag_rows(flags_db)
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "precheck", f"--target={target}",
         f"--reports-dir={reports}"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert says in output and str(target.resolve()) in output, output
    assert SECRET not in output, "the file's content was echoed"
    # Audited: in the run folder, or in the profile's audit directory when that one is sound.
    (log,) = [*reports.glob("*/precheck-*.log"), *(tmp_path / "audit").glob("precheck-*.log")]
    text = log.read_text(encoding="utf-8")
    assert "DEPLOYMENT_REFUSED" in text and SECRET not in text
    assert SECRET not in "".join(p.read_text("utf-8") for p in reports.glob("*/*.json"))
    assert flag_rows(flags_db) == before


def test_a_log_of_gigabytes_without_a_newline_is_not_read_into_memory(tmp_path: Path) -> None:
    log = tmp_path / "deployment-20260101T000000Z-abcd.log"
    with log.open("wb") as handle:  # sparse: 4 GB on paper, nothing on disk
        handle.truncate(4 * 1024**3)
    done = subprocess.run(
        [str(NEXUSCTL), "audit", "verify", str(log)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "line longer than 65536 bytes" in done.stdout


@pytest.mark.parametrize("words", [("rollback", "../x"), ("rollback", "--to", "../../etc/x")])
def test_a_run_id_that_would_leave_its_directory_is_refused(
    target_file: Callable[..., Path], words: tuple[str, ...]
) -> None:
    done = nexusctl(target_file(), *words)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a run id" in done.stderr


@pytest.mark.parametrize(
    ("file", "make", "says"),
    [
        ("marketplace-phase3.yaml", "fifo", "is not a regular file"),
        ("global-launch.yaml", "dev-zero", "is not a regular file"),
        ("jurisdiction-engine.yaml", "alias-bomb", "aliases"),
    ],
)
def test_a_hostile_phase_config_fails_config_at_once(
    file: str,
    make: str,
    says: str,
    run_suite: Callable[..., Any],
    target_file: Callable[..., Path],
    pfs_copy: Path,
) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    levels += [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("ab", "bc", strict=True)]
    plant_hostile(pfs_copy / file, make, ("\n".join(levels) + "\n").encode())
    run = run_suite("-m", "precheck", target=target_file({"config.dir": str(pfs_copy)}), timeout=60)
    assert run.rc == 1, run.output
    assert run.cases["test_config"]["outcome"] == "failed"
    assert (
        says in run.cases["test_config"]["message"] and file in run.cases["test_config"]["message"]
    )


@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_close_the_run_like_ctrl_c(
    ending: signal.Signals,
    target_file: Callable[..., Path],
    tmp_path: Path,
    lock_holder: Callable[..., Any],
) -> None:
    target = target_file()
    audit_dir = tmp_path / "audit"
    lock_holder(audit_dir / ".deploy.lock")  # the run waits for it: a run in progress
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--target={target}", "--activate=phase3", "--step=1",
         "--lock-timeout=60", f"--reports-dir={tmp_path / 'reports'}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not list(audit_dir.glob("deployment-*.log")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # into the wait for the lock
        run.send_signal(ending)
        output, _ = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output
    (log,) = audit_dir.glob("deployment-*.log")
    events = [line.split()[3] for line in log.read_text(encoding="utf-8").splitlines()]
    assert events[-1] == "DEPLOYMENT_COMPLETE", events
    verified = subprocess.run(
        [str(NEXUSCTL), "audit", "verify", str(log)], capture_output=True, text=True, timeout=30
    )
    assert verified.returncode == 0 and "complete" in verified.stdout, verified.stdout


# --- the audit directory: nothing written through a symlink someone left there ------------


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(
    run_suite: Callable[..., Any],
    target_file: Callable[..., Path],
    tmp_path: Path,
    clean_flags: psycopg.Connection[Any],
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n", encoding="utf-8")
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / ".deploy.lock").symlink_to(victim)
    run = run_suite("--activate=phase3", "--step=1", target=target_file())
    assert run.rc == 1, run.output
    assert "cannot take the deployment lock" in run.output
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert market_flags(clean_flags) == {}, "nothing activated without the lock"


def test_write_ahead_files_are_never_written_through_a_symlinked_temp_file(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n", encoding="utf-8")
    script = tmp_path / "rollback-20260101T000000Z-abcd.sh"
    (tmp_path / f".{script.name}.tmp").symlink_to(victim)
    rollback.write_durably(script, "#!/usr/bin/env bash\n", 0o750)
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert script.read_text(encoding="utf-8") == "#!/usr/bin/env bash\n"
    assert oct(script.stat().st_mode & 0o777) == "0o750"


def test_an_audit_log_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n", encoding="utf-8")
    log = tmp_path / "deployment-20260101T000000Z-abcd.log"
    log.symlink_to(victim)
    with pytest.raises(OSError, match="symlink"):
        AuditLog(log)
    assert victim.read_text(encoding="utf-8") == "precious\n"


def test_a_rollback_script_refuses_a_symlinked_log(
    target_file: Callable[..., Path], tmp_path: Path, clean_flags: psycopg.Connection[Any]
) -> None:
    target = target_file()
    script = enabled_step_1(target, tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious\n", encoding="utf-8")
    script.with_suffix(".log").symlink_to(victim)
    refused = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "is a symlink" in refused.stderr, refused.stderr
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert market_flags(clean_flags)["marketplace.step"] == 1, "nothing restored"


def market_flags(connection: psycopg.Connection[Any]) -> dict[str, Any]:
    return {k: json.loads(v) for k, v, _, _ in flag_rows(connection) if k.startswith("market")}


# --- finding 1: a database refusal after DATABASE passed -----------------------------------

PASSWORD_SWAP = """
import os

def pytest_runtest_setup(item):
    # DATABASE has passed; now the platform's password changes under the run, for real: the
    # plan's connection is refused by PostgreSQL itself.
    if item.name == "test_plan":
        os.environ["NEXUS_DB_PASSWORD"] = os.environ["SWAPPED_PASSWORD"]
"""


def test_a_refused_connection_after_database_passed_never_shows_the_password(
    run_suite: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "password_swap.py").write_text(PASSWORD_SWAP, encoding="utf-8")
    secret = f"wrong-{SECRET}"
    run = run_suite(
        "--activate=phase3", "--step=1", "--plan", "-p", "password_swap",
        env={"PYTHONPATH": str(tmp_path), "SWAPPED_PASSWORD": secret},
    )  # fmt: skip
    assert run.rc == 1, run.output
    assert run.cases["test_database"]["outcome"] == "passed"
    assert "password authentication failed" in run.output
    assert secret not in run.output, "the password reached the terminal"
    for written in ("junit.xml", "report.html", "summary.json"):
        assert secret not in (run.run_dir / written).read_text(encoding="utf-8"), written


# --- finding 7: a keyed chain, anchored outside the audit directory ------------------------


def rechained(log: Path, edit: Callable[[str], str]) -> None:
    """What someone who can write the audit directory, but has no key, can do: edit a line and
    recompute every sha with the public formula."""
    previous = audit.genesis(log.name)
    lines = []
    for line in log.read_text(encoding="utf-8").splitlines():
        body = edit(line.rsplit(" sha=", 1)[0])
        previous = audit.chain(previous, body)
        lines.append(f"{body} sha={previous}")
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_the_keyed_chain_catches_a_log_rewritten_and_rechained(
    run_suite: Callable[..., Any], tmp_path: Path
) -> None:
    run = run_suite("-m", "precheck")
    assert run.rc == 0, run.output
    (log,) = run.audit_files()
    target = tmp_path / "target.yaml"
    ok = nexusctl(target, "audit", "verify", str(log))
    assert ok.returncode == 0 and "complete (keyed, anchored)" in ok.stdout, ok.stdout
    rechained(
        log, lambda body: body.replace("PRECHECK_DISK status=PASS", "PRECHECK_DISK status=FAIL")
    )
    assert audit.verify(log).intact, "without the key the forgery passes, as before"
    caught = nexusctl(target, "audit", "verify", str(log))
    assert caught.returncode == 1, caught.stdout
    assert "keyed chain broken at PRECHECK_DISK" in caught.stdout


def test_the_rollback_scripts_own_log_is_keyed_and_anchored(
    target_file: Callable[..., Path], tmp_path: Path, clean_flags: psycopg.Connection[Any]
) -> None:
    target = target_file()
    script = enabled_step_1(target, tmp_path)
    for expected in ("restored", "already-restored"):  # the second run continues the chain
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and f": {expected} (" in done.stdout, done.stderr
    log = script.with_suffix(".log")
    assert all(" hmac=" in line for line in log.read_text(encoding="utf-8").splitlines())
    key = yaml.safe_load(target.read_text(encoding="utf-8"))["audit"]["key_file"]
    assert Path(key).read_text(encoding="ascii").strip() not in script.read_text(encoding="utf-8")
    ok = nexusctl(target, "audit", "verify", str(log))
    assert ok.returncode == 0 and "complete (keyed, anchored)" in ok.stdout, ok.stdout
    rechained(log, lambda body: body.replace("result=already-restored", "result=restored"))
    assert audit.verify(log).intact, "without the key the forgery passes"
    caught = nexusctl(target, "audit", "verify", str(log))
    assert caught.returncode == 1 and "keyed chain broken at ROLLBACK_COMPLETE" in caught.stdout


def test_a_rollback_script_refuses_an_audit_key_others_could_read(
    target_file: Callable[..., Path], tmp_path: Path, clean_flags: psycopg.Connection[Any]
) -> None:
    key = tmp_path / "audit.key"
    key.write_text(SECRET.encode().hex()[:64].ljust(64, "0"), encoding="ascii")
    key.chmod(0o600)
    script = enabled_step_1(target_file({"audit.key_file": str(key)}), tmp_path)
    key.chmod(0o640)
    before = flag_rows(clean_flags)
    refused = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1, refused.stdout
    assert f"{key}: the audit key has mode 640; it must be 0600" in refused.stderr
    assert SECRET.encode().hex()[:64] not in refused.stdout + refused.stderr
    assert flag_rows(clean_flags) == before


def test_a_run_refused_before_any_check_leaves_a_keyed_anchored_log(
    run_suite: Callable[..., Any], tmp_path: Path
) -> None:
    run = run_suite("--activate", "phase9")
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    (log,) = run.audit_files()
    assert all(" hmac=" in line for line in log.read_text(encoding="utf-8").splitlines())
    verified = nexusctl(tmp_path / "target.yaml", "audit", "verify", str(log))
    assert verified.returncode == 0, verified.stdout
    assert "complete (keyed, anchored)" in verified.stdout


def test_a_closed_log_must_match_its_anchor(run_suite: Callable[..., Any], tmp_path: Path) -> None:
    run = run_suite("-m", "precheck")
    (log,) = run.audit_files()
    profile = yaml.safe_load((tmp_path / "target.yaml").read_text(encoding="utf-8"))
    key = profile["audit"]["key_file"]
    anchors = tmp_path / "anchors"
    shutil.copy(profile["audit"]["anchor_file"], anchors)
    verify = [str(NEXUSCTL), "audit", "verify", str(log), f"--key={key}", f"--anchors={anchors}"]
    assert subprocess.run(verify, capture_output=True, text=True).returncode == 0
    lines = anchors.read_text(encoding="utf-8").splitlines()
    forged = [f"{log.name} {'0' * 16}" if line.startswith(log.name) else line for line in lines]
    anchors.write_text("\n".join(forged) + "\n", encoding="utf-8")
    mismatch = subprocess.run(verify, capture_output=True, text=True)
    assert mismatch.returncode == 1 and "does not match its anchor" in mismatch.stdout
    anchors.write_text("", encoding="utf-8")
    missing = subprocess.run(verify, capture_output=True, text=True)
    assert missing.returncode == 1 and "no anchor" in missing.stdout


def test_an_audit_key_others_could_read_is_refused(
    run_suite: Callable[..., Any], target_file: Callable[..., Path], tmp_path: Path
) -> None:
    key = tmp_path / "audit.key"
    key.write_text(SECRET.encode().hex()[:64].ljust(64, "0"), encoding="ascii")
    key.chmod(0o644)
    run = run_suite("-m", "precheck", target=target_file({"audit.key_file": str(key)}))
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert f"{key}: the audit key has mode 0644; it must be 0600" in run.output
    assert SECRET.encode().hex()[:64] not in run.output


def test_stripping_every_hmac_and_rechaining_is_caught_by_the_anchor(
    run_suite: Callable[..., Any], tmp_path: Path
) -> None:
    run = run_suite("-m", "precheck")
    (log,) = run.audit_files()
    rechained(log, lambda body: re.sub(r" hmac=[0-9a-f]{16}$", "", body))
    assert audit.verify(log).intact
    caught = nexusctl(tmp_path / "target.yaml", "audit", "verify", str(log))
    assert caught.returncode == 1, caught.stdout
    assert "anchored as keyed, yet no line carries an hmac" in caught.stdout


def test_host_commands_never_see_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_DB_PASSWORD", SECRET)
    monkeypatch.setenv("PGPASSWORD", SECRET)
    host = bounded_host("local://", 10)
    shown = host.run("env").stdout
    assert SECRET not in shown, "a host command (a git hook, say) could read the password"
    assert "PATH=" in shown, "the rest of the environment is passed on"


def test_an_audit_directory_others_can_write_keeps_activation_out(
    run_suite: Callable[..., Any],
    target_file: Callable[..., Path],
    tmp_path: Path,
    clean_flags: psycopg.Connection[Any],
) -> None:
    audit_dir = tmp_path / "audit"
    audit_dir.mkdir()
    audit_dir.chmod(0o777)  # any local user could plant files there
    run = run_suite("--activate=phase3", "--step=1", target=target_file())
    assert run.rc == 1, run.output
    assert f"audit directory {audit_dir}: {audit_dir} is writable by others (mode 0777)" in (
        run.output
    )
    assert market_flags(clean_flags) == {}, "nothing activated"
