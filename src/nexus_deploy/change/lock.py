"""One deployment at a time per platform: a PostgreSQL advisory lock plus a host file lock.

The advisory lock lives as long as the deployer's database session, so the server frees it if
the deployer dies. Its holder is visible to a second operator: the session's application_name
names the run, and the host lock file says who, where and since when.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg

# One key for every nexus-deploy process and the rollback scripts ("nexu" in ASCII).
ADVISORY_KEY = 0x6E657875


class LockDenied(Exception):
    """Another deployment holds the lock; the message names the holder."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock: the database session with the advisory lock, and what the holder
    of the host file lock wrote in it. Either alone means held (a deployer on another host
    shares only the database lock)."""

    session: str | None = None
    host_lock: str | None = None

    @property
    def held(self) -> bool:
        return self.session is not None or self.host_lock is not None

    def __str__(self) -> str:
        parts = [f"database session {self.session}"] if self.session is not None else []
        parts += [f"host lock {self.host_lock}"] if self.host_lock is not None else []
        return "; ".join(parts) or "unknown holder (it may have just released the lock)"


def holder_of(connection: psycopg.Connection[Any], lock_file: Path) -> LockHolder:
    """Who holds the lock, as PostgreSQL and the host lock file tell it."""
    row = connection.execute(
        "SELECT a.application_name, a.pid, a.backend_start::text FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.classid = 0 AND l.objid = %s AND l.granted LIMIT 1",
        (ADVISORY_KEY,),
    ).fetchone()
    session = f"{row[0] or '(unnamed)'} pid {row[1]} since {row[2]}" if row else None
    return LockHolder(session, host_lock_content(lock_file))


def host_lock_content(lock_file: Path) -> str | None:
    """What the holder wrote in the host lock file, if a live process holds its flock; a file
    left by a process that died is not held (the kernel dropped its flock)."""
    try:
        if not flock_holders(lock_file):
            return None
        # The holder may release (and empty the file) between the two reads.
        return lock_file.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:  # /proc/locks unreadable: say so rather than "free"
        return f"(unknown: {exc})"


def flock_holders(path: Path) -> list[int]:
    """The pids holding a flock on ``path``, as the kernel lists them in /proc/locks.

    Read, not tested by taking a lock: even a brief shared lock, taken just to look, would
    make a deployer's non-blocking exclusive flock fail meanwhile. The kernel lists only the
    locks of processes in our pid namespace, and names a btrfs subvolume's files by another
    device than stat() does: there a held lock reads as free (the database lock still shows)."""
    stat = path.stat()
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    pids = []
    for line in Path("/proc/locks").read_text(encoding="ascii").splitlines():
        # "2: FLOCK  ADVISORY  WRITE 30159 fe:00:1474672 0 EOF"; a waiter's line has "->".
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode:
            pids.append(int(fields[4]))
    return pids


def open_lock_file(path: Path) -> IO[str]:
    """The host lock file, never through a symlink and only if it is a regular file: root
    truncates and rewrites it, and a local user who can write the audit directory could
    otherwise point it at any file on the host (OSError says why)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return os.fdopen(fd, "a+", encoding="utf-8")


class DeploymentLock:
    """Both locks, taken together and released together."""

    def __init__(
        self, connection: psycopg.Connection[Any], lock_file: Path, holder: dict[str, Any]
    ):
        self.connection = connection
        self.lock_file = lock_file
        self.holder = holder
        self._file: IO[str] | None = None

    def acquire(self, timeout_s: float) -> None:
        """Take both locks, waiting up to ``timeout_s``; raise LockDenied naming the holder."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self._try_once():
                return
            if time.monotonic() >= deadline:
                raise LockDenied(str(holder_of(self.connection, self.lock_file)))
            time.sleep(0.2)

    def _try_once(self) -> bool:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        handle = open_lock_file(self.lock_file)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        row = self.connection.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,)).fetchone()
        if not row or not row[0]:
            handle.close()  # closing drops the flock
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(self.holder, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is None:
            return
        try:
            # A session that died has lost its advisory lock already: nothing to undo there.
            with contextlib.suppress(psycopg.Error):
                self.connection.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_KEY,))
        finally:
            self._file.truncate(0)
            self._file.close()
            self._file = None
