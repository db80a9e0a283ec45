"""The audit log on real files: format, fsync'd order, secrets, and tamper detection."""

from __future__ import annotations

import re

import pytest

from nexus_deploy.audit import AuditLog, verify


@pytest.fixture
def log_file(tmp_path):
    audit = AuditLog(tmp_path / "deployment-x.log")
    audit.write("DEPLOYMENT_START", run_id="20260115T103045Z-ab12", version="1.0.0")
    audit.write("PRECHECK_DISK", status="PASS", free_gb=42.125, note="two words")
    audit.write("FLAG_SET", key="launch.mode", old=None, new='"global"')
    audit.write("DEPLOYMENT_COMPLETE", duration=1.5, status="success")
    audit.close()
    return audit.path


def lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_lines_have_the_documented_format(log_file):
    first, disk, flag, last = lines(log_file)
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    pattern = rf"^\[AUDIT\] {stamp} DEPLOYMENT_START run_id=\S+ version=1.0.0 sha=[0-9a-f]{{16}}$"
    assert re.match(pattern, first)
    assert ' free_gb=42.125 note="two words" ' in disk
    assert 'old=none new="\\"global\\""' in flag
    assert "DEPLOYMENT_COMPLETE duration=1.5 status=success" in last


def test_an_untouched_log_verifies_complete(log_file):
    result = verify(log_file)
    assert result.intact and result.complete and result.lines == 4


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda ls: [ls[0], ls[1].replace("PASS", "FAIL"), *ls[2:]], id="edited"),
        pytest.param(lambda ls: [ls[0], *ls[2:]], id="removed"),
        pytest.param(lambda ls: [ls[0], ls[2], ls[1], ls[3]], id="reordered"),
        pytest.param(
            lambda ls: [*ls, "[AUDIT] 2026-01-15 10:31:00 FLAG_SET key=x sha=0123456789abcdef"],
            id="appended",
        ),
        pytest.param(lambda ls: [*ls, "rolled back by hand"], id="free text"),
    ],
)
def test_tampering_is_detected_at_the_line(log_file, tamper):
    log_file.write_text("\n".join(tamper(lines(log_file))) + "\n", encoding="utf-8")
    result = verify(log_file)
    assert not result.intact
    assert re.search(rf"{re.escape(str(log_file))}:\d+: ", result.problems[0])


def test_truncation_shows_as_incomplete(log_file):
    log_file.write_text("\n".join(lines(log_file)[:-1]) + "\n", encoding="utf-8")
    result = verify(log_file)
    assert result.intact and not result.complete


def test_secrets_are_never_written(tmp_path):
    audit = AuditLog(tmp_path / "a.log")
    audit.write("CONNECT", db_password="hunter2", api_token="t0k", passed=3, server_tokens_off=True)
    audit.close()
    text = (tmp_path / "a.log").read_text()
    assert "hunter2" not in text and "t0k" not in text
    assert "db_password=*** api_token=*** passed=3 server_tokens_off=true" in text


def test_lines_reach_disk_as_written(tmp_path):
    audit = AuditLog(tmp_path / "a.log")
    audit.write("DEPLOYMENT_START", run_id="r")
    # Read through another handle before close: the line is already on disk.
    assert "DEPLOYMENT_START" in (tmp_path / "a.log").read_text()
    audit.close()


def test_a_log_passed_off_under_another_name_breaks_at_its_first_line(log_file, tmp_path):
    renamed = tmp_path / "deployment-y.log"
    renamed.write_text(log_file.read_text(encoding="utf-8"), encoding="utf-8")
    result = verify(renamed)
    assert not result.intact
    assert result.problems[0].startswith(f"{renamed}:1: chain broken at DEPLOYMENT_START")


def test_a_key_with_a_space_stays_one_field(tmp_path):
    # Figures are keyed by path (free_gb:/path, report:/path), and a path may hold a space.
    audit = AuditLog(tmp_path / "a.log")
    audit.write("PRECHECK_X", **{"report:/srv/old dir/a=b.md": "missing", "status": "FAIL"})
    audit.close()
    checked = verify(tmp_path / "a.log")
    assert checked.intact
    assert checked.last_fields == {"report:/srv/old_dir/a_b.md": "missing", "status": "FAIL"}


def test_control_characters_cannot_split_an_event(tmp_path):
    audit = AuditLog(tmp_path / "a.log")
    audit.write("PRECHECK_X", status="FAIL", reason="line one\nline two\rthree\u2028four")
    audit.close()
    assert len((tmp_path / "a.log").read_bytes().split(b"\n")) == 2  # one line and the end
    assert verify(tmp_path / "a.log").intact


def test_nexusctl_audit_verify_fails_an_incomplete_log(log_file, capsys):
    from nexus_deploy.cli import main

    assert main(["audit", "verify", str(log_file)]) == 0
    log_file.write_text("\n".join(lines(log_file)[:-1]) + "\n", encoding="utf-8")
    assert main(["audit", "verify", str(log_file)]) == 1
    assert "INCOMPLETE" in capsys.readouterr().out
