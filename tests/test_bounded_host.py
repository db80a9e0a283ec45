"""Every command on the target host ends within the profile's limit, through real processes:
what would hang (a sleep, a FIFO nobody writes, a script ignoring SIGTERM) is ended, its
processes with it, and the caller is told which command and which limit. On this machine the
deployer bounds commands itself; over ssh (a real sshd on loopback) timeout(1) does, remotely,
and ssh's keepalives bound a connection that stops answering."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import testinfra
from faults import closed_port, descendants, ended, ssh_files, ssh_server, sshd, stopped

from nexus_deploy.facts.bounded_host import (
    KILL_AFTER_S,
    HostCommandError,
    HostCommandTimeout,
    bounded_host,
    interrupt_commands,
    ssh_said,
    usable_limit,
)

LIMIT_S = 1.0
SLACK_S = 5.0  # a noisy machine may start a process late; a hang would take minutes


@pytest.fixture
def host():
    return bounded_host("local://", LIMIT_S)


def test_a_command_within_the_limit_answers_as_testinfra_would(host):
    result = host.run("printf '%%s|' %s; exit 3", "two words; $(not run)")
    assert result.rc == 3
    assert result.stdout == "two words; $(not run)|"


@pytest.mark.parametrize(
    ("command", "code"),
    [("exit 124", 124), ("exit 137", 137), ("kill -KILL $$", -signal.SIGKILL)],
)
def test_an_exit_code_alone_is_not_taken_for_a_timeout(host, command, code):
    # What timeout(1) gives when the limit passes; a command can end so by itself, in time.
    assert host.run(command).rc == code


def test_a_command_past_the_limit_is_ended_and_named(host, tmp_path):
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(HostCommandTimeout) as raised:
        # The background child holds the output pipe: only ending the whole group frees it.
        host.run("sleep 600 & echo $! > %s; wait", str(pidfile))
    elapsed = time.monotonic() - started
    assert str(raised.value) == (
        f"`sleep 600 & echo $! > {pidfile}; wait` did not finish within 1 s (command_timeout_s)"
        " on local://"
    )
    assert LIMIT_S <= elapsed < LIMIT_S + SLACK_S
    assert ended(int(pidfile.read_text()))


def test_a_command_that_ignores_sigterm_is_killed(host):
    started = time.monotonic()
    with pytest.raises(HostCommandTimeout):
        host.run("trap '' TERM; sleep 600")
    elapsed = time.monotonic() - started
    assert LIMIT_S + KILL_AFTER_S <= elapsed < LIMIT_S + KILL_AFTER_S + SLACK_S


def test_a_stopped_command_is_woken_to_end_at_the_limit(host):
    # SIGTERM alone waits for a stopped process to be continued; without SIGCONT it would
    # take the SIGKILL, KILL_AFTER_S later.
    started = time.monotonic()
    with pytest.raises(HostCommandTimeout):
        host.run("kill -STOP $$")
    assert time.monotonic() - started < LIMIT_S + KILL_AFTER_S


def test_an_interrupted_run_ends_the_commands_still_running(tmp_path):
    # Each command runs in a process group of its own, out of reach of the terminal's Ctrl-C.
    patient = bounded_host("local://", 600)
    pidfile = tmp_path / "command.pid"
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(patient.run, "echo $$ > %s; exec sleep 600", str(pidfile))
        deadline = time.monotonic() + SLACK_S
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Again until it ends: the thread may not have counted it as running just yet.
        while not running.done() and time.monotonic() < deadline + SLACK_S:
            interrupt_commands()
            time.sleep(0.05)
        if not running.done():  # failed: end it here rather than wait 600 s for the pool
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        assert running.result(timeout=SLACK_S).rc == -signal.SIGTERM
    assert ended(int(pidfile.read_text()))


def test_a_process_that_left_the_group_holding_the_output_is_not_waited_for(host, tmp_path):
    # setsid puts the child out of reach of timeout(1); it keeps the output pipe open.
    pidfile = tmp_path / "escaped.pid"
    started = time.monotonic()
    try:
        with pytest.raises(HostCommandTimeout, match="did not finish within 1 s"):
            host.run("setsid sh -c 'echo $$ > %s; exec sleep 600' & sleep 600", str(pidfile))
        elapsed = time.monotonic() - started
        assert elapsed < LIMIT_S + KILL_AFTER_S + SLACK_S
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_commands_of_testinfra_modules_are_bounded_too(host, tmp_path):
    # Reading a FIFO that nobody writes blocks in open(2), as a read on a hung mount does.
    fifo = tmp_path / "report.md"
    os.mkfifo(fifo)
    with pytest.raises(HostCommandTimeout, match=f"cat -- {fifo}` did not finish within 1 s "):
        _ = host.file(str(fifo)).content_string


@pytest.mark.parametrize(
    ("value", "limit"),
    [
        (30, 30.0),
        (2.5, 2.5),
        (0, None),
        (-1, None),
        (True, None),
        ("30", None),
        (None, None),
        (float("nan"), None),
        (float("inf"), None),
        (10**400, None),
    ],
)
def test_a_usable_limit_is_a_finite_positive_number(value, limit):
    assert usable_limit(value) == limit


def test_one_host_object_per_spec_and_limit():
    # The facts gathered before the prechecks are found by host object: it must be the same.
    assert bounded_host("local://", 5) is bounded_host("local://", 5.0)
    assert bounded_host("local://", 5) is not bounded_host("local://", 6)


# --- over ssh: the same bound, applied by the remote host -------------------------------------


@pytest.fixture(scope="module")
def ssh_host(tmp_path_factory):
    with ssh_server(tmp_path_factory.mktemp("sshd")) as spec:
        yield bounded_host(spec, LIMIT_S)


@pytest.fixture(scope="module")
def ssh_host_without_timeout(tmp_path_factory):
    """A host whose shell finds no timeout(1): its PATH holds nothing."""
    directory = tmp_path_factory.mktemp("sshd-no-timeout")
    with ssh_server(directory, "SetEnv PATH=/nonexistent") as spec:
        yield bounded_host(spec, LIMIT_S)


def test_over_ssh_a_command_answers_as_over_plain_testinfra(ssh_host):
    plain = testinfra.get_host(ssh_host.spec)
    command = ("printf '%%s|' %s; exit 3", "two words; $(not run)")
    assert ssh_host.run(*command).rc == plain.run(*command).rc == 3
    assert ssh_host.run(*command).stdout == plain.run(*command).stdout == "two words; $(not run)|"


def test_over_ssh_the_remote_command_is_ended_at_the_limit(ssh_host, tmp_path):
    pidfile = tmp_path / "remote.pid"  # the "remote" host is this machine
    with pytest.raises(
        HostCommandTimeout, match=r"did not finish within 1 s \(command_timeout_s\)"
    ):
        ssh_host.run("sleep 600 & echo $! > %s; wait", str(pidfile))
    assert ended(int(pidfile.read_text()))


def test_over_ssh_a_command_that_ignores_sigterm_is_killed_and_named(ssh_host):
    # timeout(1) then kills itself too: the remote shell must report that (137), since ssh
    # would report a death by signal as 255, its own error code.
    started = time.monotonic()
    with pytest.raises(HostCommandTimeout):
        ssh_host.run("trap '' TERM; sleep 600")
    assert time.monotonic() - started < LIMIT_S + KILL_AFTER_S + SLACK_S


def test_over_ssh_an_exit_code_alone_is_not_taken_for_a_timeout(ssh_host):
    assert ssh_host.run("exit 124").rc == 124


def test_a_host_without_timeout_is_refused_by_name(ssh_host_without_timeout):
    name = ssh_host_without_timeout.name
    with pytest.raises(HostCommandError, match=f"^{re.escape(name)} has no `timeout` command"):
        ssh_host_without_timeout.run("true")


@pytest.mark.parametrize("stderr", ["err\n", "err", "", "two\n\nlines\n"])
def test_over_ssh_a_command_that_exits_255_by_itself_is_its_answer(ssh_host, stderr):
    # 255 is also ssh's own failure status: the wrapper tells them apart, then takes its line
    # out, whether or not the command's stderr ended in a newline.
    result = ssh_host.run("echo out; printf %s >&2; exit 255", stderr)
    assert (result.rc, result.stdout, result.stderr) == (255, "out\n", stderr)
    assert ssh_host.run("true").rc == 0  # and the host is not written off


def test_an_unreachable_ssh_host_fails_once_and_is_not_asked_again(tmp_path):
    port = closed_port()
    spec = ssh_files(tmp_path, port)
    host = bounded_host(spec, LIMIT_S)
    failed = (
        f"ssh to ssh://root@127.0.0.1:{port} failed \\(ssh: connect to host 127.0.0.1 port {port}: "
    )
    with pytest.raises(HostCommandError, match=f"^`uname`: {failed}Connection refused\\)$"):
        host.run("uname")
    with sshd(tmp_path, port):  # now it answers, yet this host object has written it off
        with pytest.raises(HostCommandError, match=f"^`id -u` not run: {failed}.* earlier in"):
            host.run("id -u")
        # Another object (in another run: one per process) asks again.
        assert bounded_host(spec, LIMIT_S + 1).run("id -u").rc == 0


def test_over_ssh_a_connection_that_stops_answering_is_dropped(tmp_path):
    port = closed_port()
    spec = ssh_files(tmp_path, port)
    host = bounded_host(spec, 6.0)  # a keepalive a second, three unanswered: dropped in ~4 s
    with sshd(tmp_path, port) as server, ThreadPoolExecutor(1) as pool:
        # Not ASCII: testinfra would ask the host for its encoding, over the lost link.
        call = pool.submit(host.run, "printf 'caf\\303\\251\\n' >&2; sleep 600")
        deadline = time.monotonic() + SLACK_S
        while not remote_sleep(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert remote_sleep(server), "the command never started on the host"
        # sshd stopped: the connection stays open, and nothing answers on it.
        with (
            stopped([server, *descendants(server)]),
            pytest.raises(HostCommandError, match="not responding"),
        ):
            call.result(timeout=3 * SLACK_S)  # a hang would last as long as the stop


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        (
            "ssh://deploy:s3cret@127.0.0.1:2222?ssh_config=/x&timeout=3",
            "ssh://deploy:***@127.0.0.1:2222",
        ),
        ("ssh://deploy:pa?ss@nexus", "ssh://deploy:***@nexus"),  # "?" in the password
        ("ssh://deploy:pa@ss@nexus", "ssh://deploy:***@nexus"),  # the host follows the last @
        ("ssh://nexus:22?ssh_identity_file=/home/a@b/key", "ssh://nexus:22"),  # @ in the query
        ("local://", "local://"),
    ],
)
def test_messages_name_the_host_without_its_password_or_options(spec, shown):
    assert bounded_host(spec, LIMIT_S).name == shown


def remote_sleep(server: int) -> bool:
    """Whether the sshd ``server`` runs the test's `sleep 600` for a client."""
    for pid in descendants(server):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00600\x00":
                return True
    return False


def test_over_ssh_the_encoding_query_is_bounded_too(tmp_path):
    # Output that is not ASCII makes testinfra ask the host for its encoding, with a command of
    # its own: here the host's Python hangs as it starts (a sitecustomize that never returns).
    hung = tmp_path / "python-path"
    hung.mkdir()
    (hung / "sitecustomize.py").write_text("import time\ntime.sleep(600)\n")
    with ssh_server(tmp_path / "sshd", f"SetEnv PYTHONPATH={hung}") as spec:
        result = bounded_host(spec, LIMIT_S).run("printf 'caf\\303\\251'")
        with pytest.raises(HostCommandTimeout, match=r"^`python3 -c .*` did not finish within 1 s"):
            _ = result.stdout


def test_output_that_is_not_ascii_is_decoded_as_the_host_says(ssh_host, host):
    assert ssh_host.run("printf 'caf\\303\\251'").stdout == "café"
    assert host.run("printf 'caf\\303\\251'").stdout == "café"


def test_ssh_failure_is_told_in_ssh_words_not_the_commands():
    # Over ssh the remote command's stderr comes first, then ssh's own line, if its LogLevel
    # lets it print one.
    refused = "ssh: connect to host nexus port 22: Connection refused"
    assert ssh_said(f"what the command said\n{refused}\r\n".encode()) == refused
    assert ssh_said(b"what the command said\n").startswith("exit status 255 and no message")
