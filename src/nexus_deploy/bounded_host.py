"""The target host, with a time limit on every command run on it.

testinfra runs host commands without one, locally and over ssh alike: a `stat` on a hung NFS
mount, a service script waiting on a dead daemon or a git hook that never returns would hang
the deployment. Here every command runs under coreutils' ``timeout`` on the target itself,
which ends the command's whole process group, so over ssh the remote command is ended too,
not only our wait for it. A command that runs out of time raises ``HostCommandTimeout``, which
fails the precheck that needed it with the command and the limit, and nothing else.

Every command testinfra runs goes through ``Host.run``: its modules (file, service, user,
system_info) included. That one method is what ``BoundedHost`` changes.
"""

from __future__ import annotations

import functools
import re
import signal
from typing import Any

import testinfra.backend
from testinfra.backend.base import CommandResult
from testinfra.host import Host

# The profile's command_timeout_s when it sets none. The slowest command on a healthy host is
# `git fsck` of the platform checkout: a large one needs room.
DEFAULT_COMMAND_TIMEOUT_S = 60.0
# SIGTERM at the limit, SIGKILL this many seconds later for a command that ignores SIGTERM.
KILL_AFTER_S = 2
# timeout(1) exits 124 when the limit passed. When it has to send SIGKILL, it goes to the whole
# process group, timeout(1) included: the caller then sees death by SIGKILL (-9 from a process
# we started, 128 + 9 through a shell).
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
        limit = f"{self.limit_s:g}"
        # Here the shell testinfra starts can become timeout(1) (exec), one process less per
        # command. Elsewhere it must stay: it reports timeout(1) killed by SIGKILL as 137,
        # whereas ssh reports a remote death by signal as 255, as it does its own errors.
        exec_ = "exec " if self.backend.NAME == "local" else ""
        result: CommandResult = super().run(
            exec_ + "timeout -k %s %s /bin/sh -c %s", str(KILL_AFTER_S), limit, line, **kwargs
        )
        if result.rc in TIMED_OUT:
            raise HostCommandTimeout(f"`{line}` did not finish within {limit} s on {self.spec}")
        if result.rc == 127 and _NO_TIMEOUT_COMMAND.search(result.stderr):
            raise HostCommandError(
                f"{self.spec} has no `timeout` command (GNU coreutils), which bounds every host"
                " command"
            )
        return result


@functools.cache
def bounded_host(spec: str, limit_s: float) -> BoundedHost:
    """The host of testinfra spec ``spec`` (local://, ssh://user@host, ...), one per spec and
    limit: the prechecks, and the facts gathered for them, must share one host object."""
    backend = testinfra.backend.get_backend(spec)
    host = BoundedHost(spec, backend, limit_s)
    backend.set_host(host)
    return host
