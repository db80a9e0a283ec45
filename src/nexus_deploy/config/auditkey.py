"""The audit key: what makes the audit chain unforgeable by whoever can write the audit directory.

A file outside that directory holding 64 hex digits (32 random bytes), made by `make setup`
(scripts/setup.sh) and readable by its owner only. A key in a file anyone else could read or
replace would prove nothing, so such a file is refused, naming the fact, never its content.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

KEY_TEXT = re.compile(r"[0-9a-f]{64}")


class AuditKeyError(Exception):
    """The audit key file cannot be trusted or read; str() names the file and why."""


def load_audit_key(path: Path, audit_dir: Path) -> bytes:
    """The key in ``path``, after checking that only its owner (us) can read or change it."""
    if path.resolve().is_relative_to(audit_dir.resolve()):
        raise AuditKeyError(f"{path}: the audit key must live outside the audit directory")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise AuditKeyError(f"{path}: no audit key (make setup creates one)") from None
    except OSError as exc:
        raise AuditKeyError(f"{path}: cannot open the audit key: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AuditKeyError(f"{path}: the audit key is not a regular file")
        if info.st_uid != os.geteuid():
            raise AuditKeyError(f"{path}: the audit key belongs to uid {info.st_uid}, not us")
        if info.st_mode & 0o077:
            mode = info.st_mode & 0o777
            raise AuditKeyError(f"{path}: the audit key has mode {mode:04o}; it must be 0600")
        text = os.read(fd, 256).decode("ascii", errors="replace").strip()
    finally:
        os.close(fd)
    if KEY_TEXT.fullmatch(text) is None:
        raise AuditKeyError(f"{path}: not an audit key (64 hex digits expected)")
    return bytes.fromhex(text)
