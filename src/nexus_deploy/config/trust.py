"""Whether a file or directory the deployer relies on could be changed by someone else.

Root runs the deployer. A directory it writes through, or a file that says what it runs (an
inventory's ssh options can run a command here), is trusted only if no one but us or root can
change it or any directory above it, and no part of its path is a symlink.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def untrusted_path(target: Path, what: str) -> str | None:
    """Why ``target`` (or a directory above it) could be changed by someone other than us or
    root, or None; the message starts with ``what`` and ``target`` and names the culprit."""
    me = os.geteuid()
    for path in [target, *target.parents]:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue  # made later, under a parent checked here
        except OSError as exc:
            return f"{what} {target}: {path} cannot be examined ({exc.strerror})"
        if stat.S_ISLNK(info.st_mode):
            return f"{what} {target}: {path} is a symlink"
        if info.st_uid not in (0, me):
            return f"{what} {target}: {path} belongs to uid {info.st_uid}"
        sticky = info.st_mode & stat.S_ISVTX  # /tmp: others may add, not replace
        if info.st_mode & 0o022 and not sticky:
            mode = info.st_mode & 0o777
            return f"{what} {target}: {path} is writable by others (mode {mode:04o})"
    return None


def untrusted_tree(top: Path, what: str) -> str | None:
    """As ``untrusted_path``, for ``top`` and everything below it."""
    problem = untrusted_path(top, what)
    if problem or not top.is_dir():
        return problem
    for directory, subdirectories, files in os.walk(top):
        for name in [*subdirectories, *files]:
            path = Path(directory) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                return f"{what} {top}: {path} is a symlink"
            if info.st_uid not in (0, os.geteuid()):
                return f"{what} {top}: {path} belongs to uid {info.st_uid}"
            if info.st_mode & 0o022:
                mode = info.st_mode & 0o777
                return f"{what} {top}: {path} is writable by others (mode {mode:04o})"
    return None
