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
import time
from pathlib import Path
from typing import IO, Any

import psycopg

# One key for every nexus-deploy process and the rollback scripts ("nexu" in ASCII).
ADVISORY_KEY = 0x6E657875


class LockDenied(Exception):
    """Another deployment holds the lock; the message names the holder."""


def holder_of(connection: psycopg.Connection[Any], lock_file: Path) -> str:
    """Who holds the lock, as PostgreSQL and the host lock file tell it."""
    row = connection.execute(
        "SELECT a.application_name, a.pid, a.backend_start::text FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.classid = 0 AND l.objid = %s AND l.granted LIMIT 1",
        (ADVISORY_KEY,),
    ).fetchone()
    parts = []
    if row:
        parts.append(f"database session {row[0] or '(unnamed)'} pid {row[1]} since {row[2]}")
    with contextlib.suppress(OSError):
        parts.append("host lock " + lock_file.read_text(encoding="utf-8").strip())
    return "; ".join(parts) or "unknown holder"


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
                raise LockDenied(holder_of(self.connection, self.lock_file))
            time.sleep(0.2)

    def _try_once(self) -> bool:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        handle = self.lock_file.open("a+", encoding="utf-8")
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
