"""The target host, with a time limit on every command run on it.

testinfra runs host commands without one, locally and over ssh alike: a `stat` on a hung NFS
mount, a service script waiting on a dead daemon or a git hook that never returns would hang
the deployment. Here every command runs under coreutils' ``timeout`` on the target itself,
which ends the command's whole process group, so over ssh the remote command is ended too,
not only our wait for it. A command that runs out of time raises ``HostCommandTimeout``, which
fails the precheck that needed it with the command and the limit, and nothing else.

Every command testinfra runs goes through ``Host.run``: its modules (file, service, user,
system_info) included. That one method is what ``BoundedHost`` changes. (One exception: to
decode output that is not ASCII, testinfra once asks the host for its encoding directly.)

On this machine the deployer also stops waiting for the output a little after the limit, in
case a process left the command's group (setsid) and still holds it open. Over ssh that wait is
ssh's: the remote command is ended, but a stalled connection lasts as long as ssh lets it.
"""

from __future__ import annotations

import functools
import math
import re
import signal
import subprocess
import time
from typing import Any

import testinfra.backend
from testinfra.backend.base import CommandResult
from testinfra.host import Host

# The profile's command_timeout_s when it sets none. The slowest command on a healthy host is
# `git fsck` of the platform checkout: a large one needs room.
DEFAULT_COMMAND_TIMEOUT_S = 60.0
# SIGTERM at the limit, SIGKILL this many seconds later for a command that ignores SIGTERM.
KILL_AFTER_S = 2
# After that, how long this machine still waits for the command's output to close.
OUTPUT_GRACE_S = 1
# timeout(1) exits 124 when the limit passed. When it has to send SIGKILL, it goes to the whole
# process group, timeout(1) included: the caller then sees death by SIGKILL (-9 from a process
# we started, 128 + 9 through a shell). A command can exit so by itself too, so these count as
# a timeout only once the limit has passed.
TIMED_OUT = (124, -signal.SIGKILL, 128 + signal.SIGKILL)
# How a shell says that timeout(1) itself is missing (dash, bash): the wrapper, not the command.
_NO_TIMEOUT_COMMAND = re.compile(r"\btimeout: (command )?not found")


class HostCommandTimeout(Exception):
    """A command on the target host did not finish within the profile's command_timeout_s."""


class HostCommandError(Exception):
    """A command on the target host could not be run under a time limit at all."""


class BoundedHost(Host):  # type: ignore[misc]  # testinfra ships no type hints
    """A testinfra host whose every command ends within ``limit_s`` seconds."""

    def __init__(self, spec: str, backend: Any, limit_s: float) -> None:
        super().__init__(backend)
        self.spec = spec
        self.limit_s = limit_s

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        line = self.backend.quote(command, *args)  # as testinfra quotes it: args shell-quoted
        bound = ("timeout -k %s %s /bin/sh -c %s", str(KILL_AFTER_S), f"{self.limit_s:g}", line)
        started = time.monotonic()
        if self.backend.NAME == "local":
            try:
                result = self._run_here(*bound)
            except subprocess.TimeoutExpired:
                raise self.timed_out(line) from None
        else:
            # "; exit $?" keeps the remote shell from handing itself over to timeout(1): it
            # reports timeout(1) killed by SIGKILL as 137, where ssh would report the death by
            # signal as 255, its own error code, on which testinfra raises.
            result = super().run(bound[0] + "; exit $?", *bound[1:], **kwargs)
        if result.rc in TIMED_OUT and time.monotonic() - started >= self.limit_s:
            raise self.timed_out(line)
        if result.rc == 127 and _NO_TIMEOUT_COMMAND.search(result.stderr):
            raise HostCommandError(
                f"{self.spec} has no `timeout` command (GNU coreutils), which bounds every host"
                " command"
            )
        return result

    def _run_here(self, command: str, *args: str) -> CommandResult:
        """As testinfra's local backend runs a command, with a limit on the wait as well."""
        # exec: the shell becomes timeout(1) instead of waiting for it, one process less.
        line = self.backend.encode(self.backend.get_command("exec " + command, *args))
        pipe = subprocess.PIPE
        with subprocess.Popen(line, shell=True, stdin=pipe, stdout=pipe, stderr=pipe) as process:
            try:
                stdout, stderr = process.communicate(
                    timeout=self.limit_s + KILL_AFTER_S + OUTPUT_GRACE_S
                )
            except subprocess.TimeoutExpired:
                process.kill()  # timeout(1) has ended by now; a process that escaped holds on
                raise
        result: CommandResult = self.backend.result(process.returncode, line, stdout, stderr)
        return result

    def timed_out(self, line: str) -> HostCommandTimeout:
        return HostCommandTimeout(
            f"`{line}` did not finish within {self.limit_s:g} s (command_timeout_s) on {self.spec}"
        )


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
    backend = testinfra.backend.get_backend(spec)
    host = BoundedHost(spec, backend, limit_s)
    backend.set_host(host)
    return host
