"""A precheck that fails says so in one message naming the field, file or place at fault.

Each fault is real and made beside the shared sandbox: a CA file that is missing or holds no
certificate, a password looked for where there is none, a broken copy of pfs/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from suite import CHECK_FILES, REPO, SuiteRun
from test_precheck_faults import assert_red, audit_event

from nexus_deploy.change.verify import problems_at, wait_until_visible
from nexus_deploy.config.profile import load_profile

pytestmark = pytest.mark.usefixtures("sandbox_up")

NEXUSCTL = Path(sys.executable).with_name("nexusctl")  # .venv/bin/nexusctl
SANDBOX_PASSFILE = Path("/var/lib/nexus-sandbox/pgpass")
NGINX_HEALTH = "https://127.0.0.1:8443/health"
SECTION = re.compile(r"^[-=_]+ .* [-=_]+$")  # a terminal header such as "--- generated xml ---"


def failure_lines(run: SuiteRun, test: str) -> list[str]:
    """What the terminal shows under the failed test's header, up to the next section."""
    __tracebackhide__ = True
    lines = run.output.splitlines()
    header = [i for i, line in enumerate(lines) if f" {test} " in line and line.startswith("_")]
    assert len(header) == 1, run.output
    shown = []
    for line in lines[header[0] + 1 :]:
        if SECTION.match(line):
            break
        shown.append(line)
    return [line for line in shown if line.strip()]


# --- API: the CA file -------------------------------------------------------------------------


def not_a_certificate(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "ca.crt"
    path.write_text("not a certificate\n", encoding="utf-8")
    return path, "no certificate or crl found"


def missing(tmp_path: Path) -> tuple[Path, str]:
    return Path("/nonexistent/ca.crt"), "No such file or directory"


@pytest.mark.parametrize("fault", [missing, not_a_certificate], ids=["missing", "no-certificate"])
def test_api_names_the_endpoint_and_the_unusable_ca_file(run_check, tmp_path, fault):
    ca_file, why = fault(tmp_path)
    run = run_check("API", {"gateway.ca_file": str(ca_file)})
    message = assert_red(run, "API", f"nginx {NGINX_HEALTH}: CA file {ca_file} unusable: ")
    assert message.endswith(why)
    # The http endpoint does not use the CA file: it is checked, and passes.
    assert message.startswith("Failed: nginx ") and ";" not in message
    assert run.cases["test_api"]["properties"]["direct_status"] == "200"
    assert failure_lines(run, "test_api") == [message.removeprefix("Failed: ")]
    assert "Traceback" not in run.output and "OSError" not in run.output, run.output


def test_a_relative_ca_file_refuses_the_run_naming_the_field(run_suite, target_file):
    run = run_suite(CHECK_FILES["API"], target=target_file({"gateway.ca_file": "certs/ca.crt"}))
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    # The value itself is not repeated (the Trust issue: a refusal never echoes the file).
    assert "gateway.ca_file: Value error, must be an absolute path" in run.output
    assert not run.cases, "no precheck may run on a refused profile"


def test_verification_names_the_endpoint_and_the_unusable_ca_file(target_file):
    healthy = load_profile(target_file()).gateway
    assert problems_at(healthy, {}) == []
    spec = load_profile(target_file({"gateway.ca_file": "/nonexistent/ca.crt"})).gateway
    problem = "nginx: CA file /nonexistent/ca.crt unusable: No such file or directory"
    assert problems_at(spec, {}) == [problem]
    seen = wait_until_visible(spec, {}, timeout_s=0.3)
    assert not seen.ok and seen.problem == problem


# --- DATABASE: where the password was looked for ---------------------------------------------


def passfile_missing(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "pgpass"
    return path, f"passfile {path} does not exist"


def passfile_world_readable(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "pgpass"
    shutil.copy(SANDBOX_PASSFILE, path)  # the right password, in a file libpq skips
    path.chmod(0o644)
    return path, f"passfile {path} is ignored: mode 0644, libpq needs 0600 or less"


def passfile_for_another_database(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "pgpass"
    path.write_text("127.0.0.1:55432:otherdb:nexus:secret\n", encoding="utf-8")
    path.chmod(0o600)
    return path, f"passfile {path} holds no password for 127.0.0.1:55432:nexus:nexus"


PASSFILE_FAULTS = pytest.mark.parametrize(
    "fault",
    [passfile_missing, passfile_world_readable, passfile_for_another_database],
    ids=["missing", "world-readable", "other-database"],
)


@PASSFILE_FAULTS
def test_database_names_where_the_password_was_looked_for(run_check, monkeypatch, tmp_path, fault):
    monkeypatch.delenv("NEXUS_DB_PASSWORD", raising=False)
    passfile, why = fault(tmp_path)
    run = run_check("DATABASE", {"database.passfile": str(passfile)})
    named = (
        "cannot connect to nexus@127.0.0.1:55432/nexus: "
        f"no password: $NEXUS_DB_PASSWORD is not set and {why}"
    )
    message = assert_red(run, "DATABASE", named)
    assert "fe_sendauth" not in message


def test_database_names_an_empty_password_variable(run_check, monkeypatch, tmp_path):
    monkeypatch.setenv("NEXUS_DB_PASSWORD", "")
    run = run_check("DATABASE", {"database.passfile": str(tmp_path / "pgpass")})
    assert_red(run, "DATABASE", "no password: $NEXUS_DB_PASSWORD is empty and passfile")


@PASSFILE_FAULTS
def test_status_names_where_the_password_was_looked_for(target_file, tmp_path, fault):
    passfile, why = fault(tmp_path)
    target = target_file({"database.passfile": str(passfile)})
    env = {k: v for k, v in os.environ.items() if k != "NEXUS_DB_PASSWORD"}
    done = subprocess.run(
        [str(NEXUSCTL), f"--target={target}", "status"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert not done.stdout, "an error goes to stderr"
    assert done.stderr.strip().splitlines()[-1] == (  # after libpq's own warning, if any
        "nexusctl: cannot read flags from 127.0.0.1:55432/nexus: "
        f"no password: $NEXUS_DB_PASSWORD is not set and {why}"
    )


# --- CONFIG: one message, not three -----------------------------------------------------------


def soak_days_as_text(pfs: Path) -> tuple[str, str]:
    path = pfs / "marketplace-phase3.yaml"
    text = path.read_text(encoding="utf-8")
    assert "\nmin_soak_days: 7\n" in text
    path.write_text(text.replace("\nmin_soak_days: 7\n", '\nmin_soak_days: "7"\n'))
    return path.name, "min_soak_days: Input should be a valid integer"  # not the value


def unclosed_list(pfs: Path) -> tuple[str, str]:
    (pfs / "global-launch.yaml").write_text("seo: [true\npublic_signups: true\n")
    return "global-launch.yaml", (
        "cannot be read as YAML: line 2, column 15: "
        "did not find expected ',' or ']' (while parsing a flow sequence)"
    )


@pytest.mark.parametrize("fault", [soak_days_as_text, unclosed_list], ids=["string", "yaml"])
def test_config_failure_is_shown_once(run_check, pfs_copy, fault):
    pfs = pfs_copy
    file, named = fault(pfs)
    run = run_check("CONFIG", {"config.dir": str(pfs)})
    shown = f"{pfs / file}: {named}"
    assert assert_red(run, "CONFIG", shown) == f"Failed: {shown}"
    assert failure_lines(run, "test_config") == [shown]
    for chained in ("The above exception", "During handling", "validation error", "<unicode"):
        assert chained not in run.output, run.output
    assert audit_event(run, "PRECHECK_CONFIG").fields["reason"] == shown
