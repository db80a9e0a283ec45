"""nexusctl and the audit reader on odd input: real files and directories, no sandbox needed."""

from __future__ import annotations

import os

import pytest

from nexus_deploy.audit import AuditLog, verify
from nexus_deploy.cli import main


def write_log(path, *events):
    """A log as the deployer writes it: each event is (NAME, {field: value})."""
    audit = AuditLog(path)
    for name, fields in events:
        audit.write(name, **fields)
    audit.close()
    return path


def run_log(path, request="precheck", plan_only=False, status="success"):
    start = {"run_id": path.stem.split("-", 1)[1], "request": request, "plan_only": plan_only}
    return write_log(
        path,
        ("DEPLOYMENT_START", start),
        ("PRECHECK_DISK", {"status": "PASS"}),
        ("DEPLOYMENT_COMPLETE", {"duration": 0.5, "status": status}),
    )


def not_utf8(path):
    """Spoil the second line with a byte that is not UTF-8; return its offset in the file."""
    data = path.read_bytes()
    offset = data.index(b"\n") + 10
    path.write_bytes(data[:offset] + b"\xff" + data[offset + 1 :])
    return offset


@pytest.fixture
def audit_dir(tmp_path):
    path = tmp_path / "audit"  # where target_file points the profile's audit dir
    path.mkdir()
    return path


def test_a_log_that_is_not_utf8_is_broken_at_its_byte(audit_dir, capsys):
    log = run_log(audit_dir / "precheck-20260101T000000Z-aaaa.log")
    offset = not_utf8(log)
    result = verify(log)
    assert result.problems == [f"{log}:2: not UTF-8 at byte offset {offset}"]
    assert main(["audit", "verify", str(log)]) == 1
    assert capsys.readouterr().out == f"BROKEN   {log}:2: not UTF-8 at byte offset {offset}\n"


def test_a_log_that_cannot_be_read_is_broken_naming_why(audit_dir):
    unreadable = audit_dir / "deployment-x.log"
    unreadable.mkdir()  # open() fails as it would on a permission or I/O error: an OSError
    assert verify(unreadable).problems == [f"{unreadable}: cannot read: Is a directory"]


def test_audit_verify_of_a_directory_says_so(audit_dir, capsys):
    log = run_log(audit_dir / "precheck-20260101T000000Z-aaaa.log")
    assert main(["audit", "verify", str(audit_dir), str(log)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"DIRECTORY {audit_dir}: a directory, not an audit log (try {audit_dir}/*.log)"
    assert out[1].startswith(f"OK       {log}:")


def test_audit_verify_still_names_a_missing_file(tmp_path, capsys):
    assert main(["audit", "verify", str(tmp_path / "gone.log")]) == 1
    assert capsys.readouterr().out == f"MISSING  {tmp_path / 'gone.log'}\n"


def test_appending_to_a_log_that_is_not_utf8_is_refused_as_an_oserror(audit_dir):
    # An OSError: the deployer then audits in the run folder and keeps the activation gate shut.
    log = run_log(audit_dir / "rollback-20260101T000000Z-aaaa.log")
    offset = not_utf8(log)
    with pytest.raises(OSError, match=f"not UTF-8 at byte offset {offset}"):
        AuditLog(log)


def history_rows(target, capsys):
    code = main(["--target", str(target), "history"])
    return code, capsys.readouterr().out.splitlines()


def test_history_tells_runs_apart_by_status_and_request(audit_dir, target_file, capsys):
    run_log(audit_dir / "precheck-20260101T000001Z-aaaa.log")
    run_log(audit_dir / "deployment-20260101T000002Z-bbbb.log", "phase3 step 2", status="failed")
    run_log(audit_dir / "deployment-20260101T000003Z-cccc.log", "phase3 step 1", plan_only=True)
    write_log(  # a usage error, refused before any check (startup.refuse)
        audit_dir / "precheck-20260101T000004Z-dddd.log",
        ("DEPLOYMENT_START", {"run_id": "20260101T000004Z-dddd"}),
        ("DEPLOYMENT_REFUSED", {"reason": "step '9' is out of range"}),
        ("DEPLOYMENT_COMPLETE", {"duration": 0, "status": "refused"}),
    )
    write_log(  # the rollback script's own log
        audit_dir / "rollback-20260101T000002Z-bbbb.log",
        ("ROLLBACK_START", {"run_id": "20260101T000002Z-bbbb", "force": True}),
        ("ROLLBACK_COMPLETE", {"run_id": "20260101T000002Z-bbbb", "result": "restored"}),
    )
    code, rows = history_rows(target_file(), capsys)
    assert code == 0, rows
    # run id, kind, last=, chain=, status=, request= (the request may hold spaces, in quotes)
    shown = [tuple(row.split(None, 5)[i] for i in (0, 1, 3, 4, 5)) for row in rows]
    assert all(
        " last=DEPLOYMENT_COMPLETE " in row or " last=ROLLBACK_COMPLETE " in row for row in rows
    )
    assert shown == [
        ("20260101T000001Z-aaaa", "precheck", "chain=intact", "status=success", "request=precheck"),
        ("20260101T000002Z-bbbb", "deployment", "chain=intact", "status=failed",
         'request="phase3 step 2"'),
        ("20260101T000002Z-bbbb", "rollback", "chain=intact", "status=restored",
         'request="rollback --force"'),
        ("20260101T000003Z-cccc", "deployment", "chain=intact", "status=success",
         'request="phase3 step 1 (plan only)"'),
        ("20260101T000004Z-dddd", "precheck", "chain=intact", "status=refused", "request=-"),
    ]  # fmt: skip


def test_history_shows_a_run_cut_short_as_killed(audit_dir, target_file, capsys):
    log = run_log(audit_dir / "deployment-20260101T000001Z-aaaa.log", "phase4 mode global")
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:-1]))
    code, rows = history_rows(target_file(), capsys)
    assert code == 0, rows
    (row,) = rows
    # The Trust issue: a run whose log never ended, and that holds no lock, was killed.
    assert "last=PRECHECK_DISK" in row and "status=killed " in row, row
    assert row.endswith('request="phase4 mode global"'), row


def test_history_names_a_broken_log_and_skips_a_directory(audit_dir, target_file, capsys):
    good = run_log(audit_dir / "precheck-20260101T000001Z-aaaa.log")
    spoiled = run_log(audit_dir / "precheck-20260101T000002Z-bbbb.log")
    offset = not_utf8(spoiled)
    (audit_dir / "x.log").mkdir()
    code, rows = history_rows(target_file(), capsys)
    assert code == 1, rows
    assert rows[0].startswith(f"{good.stem.split('-', 1)[1]} ") and "chain=intact" in rows[0]
    assert rows[1].startswith("20260101T000002Z-bbbb ") and "chain=BROKEN" in rows[1]
    assert rows[2] == f"    {spoiled}:2: not UTF-8 at byte offset {offset}"
    assert rows[3] == f"skipped  {audit_dir / 'x.log'}: a directory, not an audit log"
    assert len(rows) == 4


@pytest.mark.parametrize("step", ["0", "-1"])
def test_enable_refuses_a_step_below_1_before_anything_runs(audit_dir, target_file, capsys, step):
    target = target_file()
    audit_dir.rmdir()
    with pytest.raises(SystemExit) as exited:
        main(["--target", str(target), "marketplace", "enable", "--phase", "3", "--step", step])
    assert exited.value.code == 2  # nexusctl's own usage errors
    error = capsys.readouterr().err
    assert "argument --step: enable opens a step from 1 up: " in error  # not repeated
    assert "to turn the marketplace off, use `nexusctl marketplace disable --phase 3`" in error
    assert not audit_dir.exists(), "nothing may run on a usage error"


@pytest.mark.parametrize(
    ("command", "option", "words"),
    [
        (["marketplace", "enable"], "--step N", "the marketplace step to open, 1..4"),
        (["launch"], "--mode {global,founder}", "global: the public launch; founder: back to"),
    ],
)
def test_step_and_mode_have_help(command, option, words, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"{option} {words}" in text, text


def test_audit_verify_does_not_wait_on_a_fifo(tmp_path, capsys):
    fifo = tmp_path / "deployment-x.log"
    os.mkfifo(fifo)  # opening it to read would block until a writer came
    assert main(["audit", "verify", str(fifo)]) == 1
    assert capsys.readouterr().out == f"BROKEN   {fifo}: not a regular file\n"
