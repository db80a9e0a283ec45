"""The target host, with a time limit on every command run on it.

testinfra runs host commands without one, locally and over ssh alike: a `stat` on a hung NFS
mount, a service script waiting on a dead daemon or a git hook that never returns would hang
the deployment. Here a command that runs out of time is ended with its whole process group and
raises ``HostCommandTimeout``, which fails the precheck that needed it with the command and the
limit, and nothing else.

Every command testinfra runs goes through ``Host.run``: its modules (file, service, user,
system_info) included. That one method is what ``BoundedHost`` changes; the one command
testinfra runs past it (the host's encoding, to decode output that is not ASCII) is sent
through it too (``host_encoding``).

Two ways, one bound:
- On this machine without sudo (the sandbox, a deployer on the platform host), the deployer
  bounds the command itself: its own process group, ended at the limit. No process is added,
  so the prechecks pay nothing for it. Being in a group of its own, the command no longer
  gets the terminal's Ctrl-C (nor can it prompt on the terminal: it stops, then times out),
  so an interrupted run ends the commands still running (``interrupt_commands``).
- Elsewhere (ssh, sudo) the command runs under coreutils' ``timeout`` on the host itself, so
  over ssh the remote command is ended too, not only our wait for it.

Over ssh the connection is bounded as well: testinfra gives ssh a 10 s ConnectTimeout, and
keepalives (``keepalive_options``) end a connection that stops answering. When ssh itself
fails (its exit status 255: host unreachable, key refused, link lost), the command raises
``HostCommandError`` naming the host and ssh's own words, and every later command on that
host in this run is refused with them at once: an unreachable host costs one connect timeout,
not one per command. A command that exits 255 by itself is told apart (``_OWN_255``).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import functools
import locale
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import testinfra.backend
from testinfra.backend.base import CommandResult
from testinfra.host import Host
from testinfra.utils import ansible_runner

# SIGTERM at the limit, SIGKILL this many seconds later for a command that ignores SIGTERM.
KILL_AFTER_S = 2
# timeout(1) exits 124 when the limit passed, 128 + 9 when it had to kill (reported by the shell
# around it). A command can exit so by itself too: these count only once the limit has passed.
TIMED_OUT = (124, 128 + signal.SIGKILL)
# How a shell says that timeout(1) itself is missing (dash, bash): the wrapper, not the command.
_NO_TIMEOUT_COMMAND = re.compile(rb"\btimeout: (command )?not found")
# ssh's exit status for its own failures; testinfra takes it so too (a RuntimeError).
SSH_FAILED = 255
# The testinfra backends that run the ssh client (safe-ssh is ssh with a list of safe commands).
SSH_BACKENDS = ("ssh", "safe-ssh")
# Written to stderr by the wrapper when the command itself exited 255: a tool may (perl's die,
# xargs, a nested ssh), and only this tells its answer from ssh's own failure. It is a line of
# its own even after stderr that does not end in a newline, and is taken out again.
_OWN_255 = b"\nnexus-deploy: the command itself exited 255\n"
# How ssh's own error lines begin: the remote command's stderr comes before them, or alone.
_SSH_SAYS = re.compile(
    r"^(ssh|ssh_\w+|kex_\w+|client_loop|mux_client\w*|channel \d+|sshpass):"
    r"|^(Connection |Timeout, server|Permission denied|Host key verification failed"
    r"|Received disconnect|Could not resolve|Bad |Load key|no such identity)"
)
# What testinfra asks about a host's make-up again and again: which service manager and tools
# it has, its kernel, its user, its encoding (for each service of SERVICES, from each thread
# of the prefetch). The answers cannot change within a run, so each is asked once per host.
PROBE = re.compile(
    r"command -v [\w.+-]+|test -d /run/systemd/system/|uname -[a-z]|id -nu|id -u [\w.-]+"
    r"|cat /etc/os-release"
    r"|python3? -c 'import locale;print\(locale\.getpreferredencoding\(\)\)'"
)
# The probes testinfra makes for the prechecks (its service module, system_info, sudo checks):
# asked together by ``warm_probes`` on a fleet's hosts.
USUAL_PROBES = (
    "test -d /run/systemd/system/",
    "command -v systemctl",
    "command -v initctl",
    "command -v rc-service",
    "command -v service",
    "command -v command",
    "uname -s",
    "uname -m",
    "id -nu",
    "id -u root",
    # testinfra's system_info reads it holding a lock all hosts share (cached_property, 3.11).
    "cat /etc/os-release",
)
# Over ssh, a connection whose peer leaves this many keepalives in a row unanswered is dropped.
KEEPALIVES_UNANSWERED = 3

# The commands running on this machine, for interrupt_commands; facts are read in threads.
_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()


class HostCommandTimeout(Exception):
    """A command on the target host did not finish within the profile's command_timeout_s."""


class HostCommandError(Exception):
    """A command on the target host could not be run under a time limit at all."""


class BoundedHost(Host):  # type: ignore[misc]  # testinfra ships no type hints
    """A testinfra host whose every command ends within ``limit_s`` seconds."""

    def __init__(self, spec: str, backend: Any, limit_s: float) -> None:
        super().__init__(backend)
        self.spec = spec
        # For messages and logs: the spec without its query (ssh_config=..., timeout=...) and
        # without a password (ssh://user:password@host, which testinfra passes to sshpass).
        self.name = display_name(spec)
        self.limit_s = limit_s
        # Why ssh to this host failed, once it has: later commands are refused with it, for
        # the life of this object. That is one run: pytest runs (nexusctl's too) are processes.
        self.ssh_failure: str | None = None
        self._probes: dict[str, CommandResult] = {}
        self._probe_failures: dict[str, HostCommandTimeout] = {}
        self._probe_locks: dict[str, threading.Lock] = {}

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        line = self.backend.quote(command, *args)  # as testinfra quotes it: args shell-quoted
        if not PROBE.fullmatch(line):
            return self._run_line(line, **kwargs)
        # Asked from several threads at once, a probe waits for the first one's answer; one
        # that ran out of time is not run again by each of the others in turn (a host whose
        # `uname` hangs costs one command limit, not one per precheck that asks).
        with self._probe_locks.setdefault(line, threading.Lock()):
            if line in self._probe_failures:
                raise self._probe_failures[line]
            if line not in self._probes:
                try:
                    self._probes[line] = self._run_line(line, **kwargs)
                except HostCommandTimeout as exc:
                    self._probe_failures[line] = exc
                    raise
            return self._probes[line]

    def warm_probes(self, probes: tuple[str, ...] = USUAL_PROBES) -> None:
        """Answer ``probes`` (PROBE lines) with one command, before anyone asks: over ssh, one
        round trip instead of one each. A probe someone is asking already is left to them."""
        held = [line for line in probes if self._probe_locks.setdefault(line, threading.Lock())
                .acquire(blocking=False)]  # fmt: skip
        try:
            wanted = [line for line in held if line not in self._probes]
            if not wanted:
                return
            # Each answer as "<status>RS<stdout>US"; stdout without its last newline ($(...)).
            script = "; ".join(
                f'o=$({line} 2>/dev/null); printf \'%s\\036%s\\037\' "$?" "$o"' for line in wanted
            )
            answer = self._run_line(script)
            records = answer.stdout_bytes.split(b"\037")[: len(wanted)]
            if answer.rc != 0 or len(records) != len(wanted):
                return  # each is then asked on its own, as without this
            answers = [record.partition(b"\036") for record in records]
            if not all(status.isdigit() for status, _, _ in answers):
                return
            for line, (status, _, out) in zip(wanted, answers, strict=True):
                stdout = out + b"\n" if out else b""
                command = self.backend.encode(line)
                self._probes[line] = self.backend.result(int(status), command, stdout, b"")
        finally:
            for line in held:
                self._probe_locks[line].release()

    def _run_line(self, line: str, **kwargs: Any) -> CommandResult:
        if self.backend.NAME == "local" and not self.backend.sudo:
            return self._run_here(line)
        if self.ssh_failure is not None:
            raise HostCommandError(f"`{line}` not run: {self.ssh_failure} earlier in this run")
        started = time.monotonic()
        try:
            # "; r=$?; ... exit $r" keeps the shell from handing itself over to timeout(1) (bash
            # does, for a last command): it reports timeout(1) killed by SIGKILL as 137, where
            # ssh would report the death by signal as 255, its own error code. The marker is
            # printf's format (its "\n"s become newlines), so it must hold no "%".
            result: CommandResult = super().run(
                "timeout -k %s %s /bin/sh -c %s; r=$?; [ $r -ne 255 ] || printf %s >&2; exit $r",
                str(KILL_AFTER_S),
                f"{self.limit_s:g}",
                line,
                _OWN_255.decode().replace("\n", "\\n"),  # printf writes the newlines
                **kwargs,
            )
        except RuntimeError as exc:  # testinfra's ssh backends raise it on 255
            result = exc.args[0] if exc.args else None
            if not (isinstance(result, CommandResult) and result.rc == SSH_FAILED):
                raise
            if not self.answered_255(result):
                self.ssh_failure = f"ssh to {self.name} failed ({ssh_said(result.stderr_bytes)})"
                raise HostCommandError(f"`{line}`: {self.ssh_failure}") from None
        if result.rc == SSH_FAILED:
            result = self.without_own_255(result)
        if result.rc in TIMED_OUT and time.monotonic() - started >= self.limit_s:
            raise self.timed_out(line)
        if result.rc == 127 and _NO_TIMEOUT_COMMAND.search(result.stderr_bytes):
            raise HostCommandError(
                f"{self.name} has no `timeout` command (GNU coreutils), which bounds every host"
                " command"
            )
        return result

    @staticmethod
    def answered_255(result: CommandResult) -> bool:
        """Whether a 255 is the command's own exit status, not ssh's failure."""
        return _OWN_255 in result.stderr_bytes

    def without_own_255(self, result: CommandResult) -> CommandResult:
        """``result`` with the wrapper's line about a 255 taken out of its stderr."""
        stderr = result.stderr_bytes
        at = stderr.rfind(_OWN_255)
        if at < 0:
            return result
        stderr = stderr[:at] + stderr[at + len(_OWN_255) :]
        plain: CommandResult = self.backend.result(
            result.rc, result.command, result.stdout_bytes, stderr
        )
        return plain

    def _run_here(self, line: str) -> CommandResult:
        """As testinfra's local backend runs a command, in a process group of its own that is
        ended at the limit (``end_group``)."""
        command = self.backend.encode(line)
        pipe = subprocess.PIPE
        with subprocess.Popen(
            command,
            shell=True,
            stdin=pipe,
            stdout=pipe,
            stderr=pipe,
            process_group=0,
            env=command_environment(),
        ) as process:
            with _running_lock:
                _running.add(process)
            try:
                stdout, stderr = process.communicate(timeout=self.limit_s)
            except subprocess.TimeoutExpired:
                end_group(process)
                # Not waiting for the output again: a process that left the group (setsid)
                # may hold it open for good.
                raise self.timed_out(line) from None
            except BaseException:  # Ctrl-C in this thread: the terminal's reaches no command
                end_group(process)
                raise
            finally:
                with _running_lock:
                    _running.discard(process)
        result: CommandResult = self.backend.result(process.returncode, command, stdout, stderr)
        return result

    def timed_out(self, line: str) -> HostCommandTimeout:
        return HostCommandTimeout(
            f"`{line}` did not finish within {self.limit_s:g} s (command_timeout_s) on {self.name}"
        )


# Environment variables a host command never needs and must never see: the database password
# among them (a git hook in the platform checkout runs with what the deployer passes on).
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_?KEY", re.IGNORECASE)


def command_environment() -> dict[str, str]:
    """This process's environment without anything named like a secret."""
    return {name: value for name, value in os.environ.items() if not _SECRET_NAME.search(name)}


def interrupt_commands() -> None:
    """Ask the commands still running on this machine to end (SIGTERM), as the terminal's
    Ctrl-C would have: the threads waiting for them then return at once."""
    with _running_lock:
        groups = [process.pid for process in _running]
    for group in groups:
        signal_group(group, signal.SIGTERM, signal.SIGCONT)


def end_group(process: subprocess.Popen[bytes]) -> None:
    """End the process group led by ``process``: SIGTERM (with SIGCONT, so that a stopped
    process wakes up to it), then SIGKILL to whatever is left of the group KILL_AFTER_S later.

    The leader, our child, is reaped only at the very end: until then its pid, which is the
    group's id, cannot be given to another process, so no signal here can reach a stranger."""
    group = process.pid
    signal_group(group, signal.SIGTERM, signal.SIGCONT)
    deadline = time.monotonic() + KILL_AFTER_S
    while live_members(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    signal_group(group, signal.SIGKILL)
    process.wait()


def signal_group(group: int, *signals: signal.Signals) -> None:
    for number in signals:
        # Gone: nothing left to signal. Not permitted: what is left runs as another user.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, number)


def live_members(group: int) -> bool:
    """Whether a process of ``group`` is still alive, zombies aside: an orphan's zombie waits
    for PID 1, which here may take a second or two."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:  # ended meanwhile
            continue
        state, _parent, process_group = stat.rsplit(")", 1)[1].split()[:3]
        if int(process_group) == group and state not in ("Z", "X"):
            return True
    return False


def display_name(spec: str) -> str:
    """``spec`` for messages and logs: without its query (ssh_config=..., timeout=...) and
    without a password (ssh://user:password@host, which testinfra hands to sshpass). As in
    testinfra, the host follows the last @, and the password the user's first colon."""
    scheme, _, rest = spec.partition("://")
    # Not urlsplit: a "?" in the password would cut the user part short, showing the rest.
    user, at, host = rest.split("/", 1)[0].rpartition("@")
    if ":" in user:
        user = user.split(":", 1)[0] + ":***"
    return f"{scheme}://{user}{at}{host.split('?', 1)[0]}"


def ssh_said(stderr: bytes) -> str:
    """ssh's own error: its last line in stderr, after whatever the remote command wrote there.
    Decoded here, not by testinfra, which for bytes that are not ASCII would ask the host (over
    the lost link)."""
    text = stderr.decode("utf-8", errors="replace")
    said = [line.strip() for line in text.splitlines() if _SSH_SAYS.match(line.strip())]
    if said:
        return said[-1]
    return "exit status 255 and no message from ssh: the link was lost, or its LogLevel hides why"


def keepalive_options(limit_s: float) -> str:
    """ssh options that drop a connection that stops answering. ssh gives up about
    KEEPALIVES_UNANSWERED + 1 intervals after the server went quiet: within the command limit
    where that is 4 s or more, within 4 s below that, and within about 20 s for long limits."""
    interval = max(1, min(5, int(limit_s // (KEEPALIVES_UNANSWERED + 1))))
    return f"-o ServerAliveInterval={interval} -o ServerAliveCountMax={KEEPALIVES_UNANSWERED}"


def usable_limit(value: object) -> float | None:
    """``value`` as a command time limit in seconds, if it is one: a finite positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        limit = float(value)
    except OverflowError:  # a whole number too large for a float
        return None
    return limit if math.isfinite(limit) and limit > 0 else None


@functools.cache
def bounded_host(spec: str, limit_s: float) -> BoundedHost:
    """The host of testinfra spec ``spec`` (local://, ssh://user@host, ...), one per spec and
    limit: the prechecks, and the facts gathered for them, must share one host object."""
    over_ssh = urllib.parse.urlsplit(spec).scheme in SSH_BACKENDS
    # testinfra reads no ssh_extra_args from a spec, so these are the only ones.
    extra = {"ssh_extra_args": keepalive_options(limit_s)} if over_ssh else {}
    return wrapped(spec, testinfra.backend.get_backend(spec, **extra), limit_s)


def fleet_host(
    inventory: str, listing: Mapping[str, Any], name: str, limit_s: float, connect_timeout_s: float
) -> BoundedHost:
    """Host ``name`` of an Ansible inventory (``listing``: what ansible-inventory printed of
    it), its connection resolved from the inventory as testinfra's ansible backend does: ssh
    without Ansible's per-task cost. Bounded as ``bounded_host`` is, and fit for commands from
    several threads at once: ssh never prompts (BatchMode), and one master connection per host
    carries them (ControlMaster), in a directory of our own. Made once per host by the run."""
    config = ansible_runner.get_ansible_config()
    resolved = ansible_runner.get_ansible_host(config, dict(listing), name)
    if resolved is None:
        raise HostCommandError("its ansible_connection is not one testinfra can run")
    # A copy: testinfra keeps the one it made for anyone asking the same again.
    backend = copy.copy(resolved.backend)
    if backend.NAME in SSH_BACKENDS:
        # Ours first: ssh takes an option's first value, and the inventory's ssh arguments
        # (or ansible.cfg's) must not turn prompting back on or lengthen the time limits.
        backend.ssh_extra_args = " ".join(
            filter(None, [fleet_ssh_options(limit_s, connect_timeout_s), backend.ssh_extra_args])
        )
    return wrapped(f"ansible://{name}?ansible_inventory={inventory}", backend, limit_s)


@functools.cache
def listed_host(spec: str, limit_s: float, connect_timeout_s: float) -> BoundedHost:
    """A fleet's host given as a testinfra spec, fit for commands from several threads as
    ``fleet_host``'s are."""
    over_ssh = urllib.parse.urlsplit(spec).scheme in SSH_BACKENDS
    extra = {"ssh_extra_args": fleet_ssh_options(limit_s, connect_timeout_s)} if over_ssh else {}
    return wrapped(spec, testinfra.backend.get_backend(spec, **extra), limit_s)


def wrapped(spec: str, backend: Any, limit_s: float) -> BoundedHost:
    """``backend`` as a BoundedHost: every command, the encoding probe included, bounded."""
    host = BoundedHost(spec, backend, limit_s)
    backend.set_host(host)
    # testinfra asks for the host's encoding (to decode output that is not ASCII) with a
    # command of its own, past Host.run: asked through the host, that one is bounded too.
    backend.get_encoding = functools.partial(host_encoding, host)
    return host


def fleet_ssh_options(limit_s: float, connect_timeout_s: float) -> str:
    """ssh options of a fleet's host: bounded, never prompting, one master connection."""
    return " ".join([
        keepalive_options(limit_s),
        f"-o BatchMode=yes -o ConnectTimeout={max(1, math.ceil(connect_timeout_s))}",
        "-o ControlMaster=auto -o ControlPersist=5s",
        f"-o ControlPath={shlex.quote(str(control_directory() / '%C'))}",
    ])  # fmt: skip


@functools.cache
def control_directory() -> Path:
    """Where ssh keeps this process's master connections: private (mkdtemp: 0700, ours), made
    anew per process and removed at its exit; a master outlives its last command by a few
    seconds (ControlPersist), then ends by itself."""
    directory = Path(tempfile.mkdtemp(prefix="nexus-ssh-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def host_encoding(host: BoundedHost) -> str:
    """testinfra's BaseBackend.get_encoding, its commands run through ``host``."""
    for python in ("python3", "python"):
        result = host.run("%s -c 'import locale;print(locale.getpreferredencoding())'", python)
        if result.rc == 0 and result.stdout_bytes.strip():
            encoding = result.stdout_bytes.splitlines()[0].decode("ascii")
            break
    else:  # no Python there: as testinfra does, take this machine's
        encoding = locale.getpreferredencoding()
    # An ASCII locale (no LANG set) would fail on the first other byte: testinfra's choice too.
    return "UTF-8" if encoding == "ANSI_X3.4-1968" else encoding
