"""The documents an operator follows are run as written: every shell block of docs/, in order,
against the sandbox; and the runbook's two entry points at the repository root."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from suite import REPO, flag_rows, parse_audit

pytestmark = pytest.mark.usefixtures("sandbox_up")

DOCS = ("PHASE_4_QUICK_REFERENCE.md", "PHASE_4_DEPLOYMENT_GUIDE.md")
BLOCK = re.compile(r"^```(?:sh|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)
EXPECT = re.compile(r"^# expect: exit (\d+)")


def shell_blocks(document: Path) -> list[str]:
    return BLOCK.findall(document.read_text(encoding="utf-8"))


@pytest.fixture
def platform(target_file: Callable[..., Path], tmp_path: Path) -> dict[str, str]:
    """The production paths the documents name, mapped onto a private sandbox target."""
    backups = tmp_path / "backups"
    backups.mkdir()
    target = target_file({"backup.dir": str(backups)})
    profile = yaml.safe_load(target.read_text(encoding="utf-8"))
    Path(profile["audit"]["dir"]).mkdir()  # as on a prepared host (BACKUP checks it exists)
    return {
        "/opt/nexus-deploy": str(REPO),
        "/var/log/nexus-cos/phase4-audit": profile["audit"]["dir"],
        "/var/backups/nexus-cos": str(backups),
        "NEXUS_TARGET": str(target),
    }


def run_block(
    block: str, platform: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    script = block
    for production, sandbox in platform.items():
        if production.startswith("/"):
            script = script.replace(production, sandbox)
    env = {**os.environ, "NEXUS_TARGET": platform["NEXUS_TARGET"], "PATH": path_with_nexusctl()}
    env["HOME"] = str(tmp_path)
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def path_with_nexusctl() -> str:
    # As after `make setup`: nexusctl on PATH (the virtualenv's, where setup links it from).
    return f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize("name", DOCS)
def test_every_command_of_the_document_runs_as_written(
    name: str, platform: dict[str, str], tmp_path: Path, clean_flags: psycopg.Connection[Any]
) -> None:
    blocks = shell_blocks(REPO / "docs" / name)
    assert len(blocks) >= 5, f"{name}: too few shell blocks to be a guide"
    for number, block in enumerate(blocks, 1):
        expect = EXPECT.match(block)
        done = run_block(block, platform, tmp_path)
        want = int(expect[1]) if expect else 0
        assert done.returncode == want, (
            f"{name} block {number} exited {done.returncode}, not {want}:\n{block}\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
        )


def test_the_deployment_script_deploys_and_activates_nothing(
    platform: dict[str, str], tmp_path: Path, clean_flags: psycopg.Connection[Any]
) -> None:
    before = flag_rows(clean_flags)
    done = run_block("/opt/nexus-deploy/deploy-phase-4-full-launch.sh", platform, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert flag_rows(clean_flags) == before, "it activates nothing"
    audit = Path(platform["/var/log/nexus-cos/phase4-audit"])
    (log,) = audit.glob("deployment-*.log")
    events = [e.event for e in parse_audit(log)]
    assert events[-1] == "DEPLOYMENT_COMPLETE" and "FLAG_SET" not in events
    assert {"LOCK_ACQUIRED", "RESTORE_POINT", "ROLLBACK_WRITTEN", "PRECHECK_END"} <= set(events)
    run_id = log.stem.removeprefix("deployment-")
    script = audit / f"rollback-{run_id}.sh"
    assert script.is_file() and os.access(script, os.X_OK)
    assert (Path(platform["/var/backups/nexus-cos"]) / f"restore-{run_id}.json").is_file()
    # Its rollback script returns the table to that point: already there, nothing to do.
    again = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already-restored" in again.stdout, again.stdout + again.stderr


def test_the_validation_passes_and_counts_its_checks(
    platform: dict[str, str], tmp_path: Path
) -> None:
    done = run_block("bash /opt/nexus-deploy/validate-phase4-deployment.sh", platform, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (count,) = re.findall(r"^(\d+)/\1 tests passed$", done.stdout, re.MULTILINE)
    assert int(count) >= 10
    assert "FAIL" not in done.stdout


def test_the_validation_fails_naming_what_is_broken(
    target_file: Callable[..., Path], pfs_copy: Path, tmp_path: Path
) -> None:
    (pfs_copy / "global-launch.yaml").write_text("public_signups: maybe\n", encoding="utf-8")
    changes = {"backup.dir": str(tmp_path / "no-such-dir"), "config.dir": str(pfs_copy)}
    target = target_file(changes, name="broken.yaml")
    (tmp_path / "audit").mkdir()  # where target_file puts it: writable, so that check passes
    done = subprocess.run(
        ["bash", str(REPO / "validate-phase4-deployment.sh"), f"--target={target}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"FAIL  the backup directory {tmp_path / 'no-such-dir'} is writable" in done.stdout
    assert f"FAIL  the phase configs in {pfs_copy} are valid and consistent" in done.stdout
    assert "public_signups" in done.stdout, "the failing check says why"
    passed, total = map(int, re.findall(r"^(\d+)/(\d+) tests passed$", done.stdout, re.M)[0])
    assert passed == total - 2, done.stdout
