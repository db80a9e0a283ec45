"""The hash-chained audit log.

Each line reads ``[AUDIT] 2026-01-15 10:30:45 EVENT key=value key="two words" sha=<16 hex>``.
``sha`` is the start of sha256(previous sha + line body); the first line chains from a value
derived from the file's name, so a line that is edited, removed, reordered or appended by hand,
or a whole log passed off under another run's name, breaks the chain. A log that does not end
with a closing event was cut short (or is still being written). The chain has no secret: it
proves the log is as the deployer wrote it, not who could have written it. Lines are flushed
and fsynced as they are written: after a crash the log tells how far the run got.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# A key whose name has one of these words as a part (db_password, api.token) is never written.
_SECRET_KEY = re.compile(
    r"(^|[_.\-])(password|passwd|pwd|secret|token|credentials?|api_?key)($|[_.\-])", re.IGNORECASE
)
_NEEDS_QUOTES = re.compile(r'[\s"=\\]')
_LINE = re.compile(
    r"^(?P<body>\[AUDIT\] \S+ \S+ (?P<event>[A-Z0-9_]+)(?: .*)?) sha=(?P<sha>[0-9a-f]{16})$"
)

Value = str | int | float | bool | None
CLOSING_EVENTS = frozenset(
    {"DEPLOYMENT_COMPLETE", "ROLLBACK_COMPLETE", "ROLLBACK_REFUSED", "ROLLBACK_FAILED"}
)


def genesis(file_name: str) -> str:
    """Where the chain of the log called ``file_name`` starts."""
    return hashlib.sha256(f"nexus-deploy audit v1 {file_name}".encode()).hexdigest()[:16]


def chain(previous: str, body: str) -> str:
    """The sha of a line given the sha of the line before it."""
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()[:16]


def format_value(key: str, value: Value) -> str:
    """Render one value; secrets are never written, whatever a caller passes."""
    if _SECRET_KEY.search(key):
        return "***"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "none"
    elif isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    else:
        text = str(value)
    text = escape_controls(text.replace("\\", "\\\\"))
    if text == "" or _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def escape_controls(text: str) -> str:
    """Newlines, carriage returns and other control or separator characters, as escapes:
    one event must stay one line, however a reader splits lines."""
    if text.isprintable():  # the common case, checked in C: no control or separator but " "
        return text
    return "".join(_escaped(ch) if _is_control(ch) else ch for ch in text)


def _is_control(ch: str) -> bool:
    return ch != " " and unicodedata.category(ch)[0] in "CZ"


def _escaped(ch: str) -> str:
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def format_body(event: str, fields: dict[str, Value], now: dt.datetime) -> str:
    """The line without its sha: prefix, UTC timestamp, event and fields in the given order."""
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    parts = [f"[AUDIT] {stamp} {event}"]
    parts += [f"{key}={format_value(key, value)}" for key, value in fields.items()]
    return " ".join(parts)


class AuditLog:
    """Appends chained lines to one file, each on disk before ``write`` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Appending to an existing log (a rollback run twice) continues its chain.
        self._last = last_sha(path) or genesis(path.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._file: IO[str] = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, event: str, **fields: Value) -> str:
        body = format_body(event, fields, dt.datetime.now(dt.UTC))
        self._last = chain(self._last, body)
        line = f"{body} sha={self._last}"
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        return line

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def last_sha(path: Path) -> str | None:
    """The sha of the last line of an existing log, or None for a new or empty one."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
        lines = [line for line in lines if line]
    except FileNotFoundError:
        return None
    match = _LINE.match(lines[-1]) if lines else None
    return match["sha"] if match else None


@dataclass
class Verification:
    """What ``verify`` found in one log file."""

    path: Path
    lines: int = 0
    problems: list[str] = field(default_factory=list)
    last_event: str | None = None

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def complete(self) -> bool:
        """Ends with an event that closes a run; otherwise truncated or still being written."""
        return self.last_event in CLOSING_EVENTS


def verify(path: Path) -> Verification:
    """Check every line's sha against the chain; report the first line where it breaks."""
    result = Verification(path)
    previous = genesis(path.name)
    for number, line in enumerate(_read_lines(path), start=1):
        result.lines = number
        match = _LINE.match(line)
        if match is None:
            result.problems.append(f"{path}:{number}: not an audit line: {line[:80]!r}")
            return result
        if chain(previous, match["body"]) != match["sha"]:
            result.problems.append(
                f"{path}:{number}: chain broken at {match['event']} "
                "(line edited, removed, reordered or added by hand)"
            )
            return result
        previous = match["sha"]
        result.last_event = match["event"]
    if result.lines == 0:
        result.problems.append(f"{path}: empty audit log")
    return result


def _read_lines(path: Path) -> Iterable[str]:
    with path.open(encoding="utf-8", newline="\n") as lines:  # split on \n only
        for line in lines:
            yield line.rstrip("\n")
