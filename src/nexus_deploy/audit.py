"""The hash-chained audit log.

Each line reads ``[AUDIT] 2026-01-15 10:30:45 EVENT key=value key="two words" sha=<16 hex>``.
``sha`` is the start of sha256(previous sha + line body); the first line chains from a value
derived from the file's name, so a line that is edited, removed, reordered or appended by hand,
or a whole log passed off under another run's name, breaks the chain. A log that does not end
with a closing event was cut short (or is still being written). The chain has no secret: it
proves the log is as the deployer wrote it, not who could have written it. Lines are flushed
and fsynced as they are written: after a crash the log tells how far the run got.

With a key (a file outside the audit directory, owner-only, made at setup), each line also
carries ``hmac=<16 hex>`` before its ``sha``: the start of HMAC-SHA256(key, previous hmac +
line body), chained the same way. Whoever rewrites a log and re-chains its ``sha`` with the
public formula cannot forge the ``hmac``; ``verify(path, key)`` catches it, and a verifier
without the key still checks the ``sha`` chain as before. When a keyed log is closed, its
final hmac is appended to an anchor file outside the directory too (``anchor``), so that a
log cut short and re-chained, or replaced whole, no longer matches its anchor.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# A key whose name has one of these words as a part (db_password, api.token) is never written.
_SECRET_KEY = re.compile(
    r"(^|[_.\-])(password|passwd|pwd|secret|token|credentials?|api_?key)($|[_.\-])", re.IGNORECASE
)
_NEEDS_QUOTES = re.compile(r'[\s"=\\]')
_LINE = re.compile(
    r"^(?P<body>\[AUDIT\] \S+ \S+ (?P<event>[A-Z0-9_]+)(?P<fields> .*)?) sha=(?P<sha>[0-9a-f]{16})$"
)
# A field as format_value writes it: bare, or quoted with \" and \\ inside.
_FIELD = re.compile(r' (?P<key>[^\s=]+)=(?P<value>"(?:[^"\\]|\\.)*"|\S*)')
_QUOTED_ESCAPE = re.compile(r'\\(["\\])')

Value = str | int | float | bool | None
CLOSING_EVENTS = frozenset(
    {"DEPLOYMENT_COMPLETE", "ROLLBACK_COMPLETE", "ROLLBACK_REFUSED", "ROLLBACK_FAILED"}
)
STARTING_EVENTS = frozenset({"DEPLOYMENT_START", "ROLLBACK_START"})


def genesis(file_name: str) -> str:
    """Where the chain of the log called ``file_name`` starts."""
    return hashlib.sha256(f"nexus-deploy audit v1 {file_name}".encode()).hexdigest()[:16]


def chain(previous: str, body: str) -> str:
    """The sha of a line given the sha of the line before it."""
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()[:16]


def keyed(key: bytes, previous: str, body: str) -> str:
    """The hmac of a line (its body without the hmac field) given the hmac before it."""
    return hmac.new(key, f"{previous}\n{body}".encode(), hashlib.sha256).hexdigest()[:16]


_HMAC_FIELD = re.compile(r" hmac=(?P<hmac>[0-9a-f]{16})$")


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


def safe_key(key: str) -> str:
    """``key`` as one word of the line: a path in it may hold a space, "=" or a quote (what a
    value is quoted for, a key cannot be)."""
    return _NEEDS_QUOTES.sub("_", key)


def format_body(event: str, fields: dict[str, Value], now: dt.datetime) -> str:
    """The line without its sha: prefix, UTC timestamp, event and fields in the given order."""
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    parts = [f"[AUDIT] {stamp} {event}"]
    parts += [f"{safe_key(key)}={format_value(key, value)}" for key, value in fields.items()]
    return " ".join(parts)


class AuditLog:
    """Appends chained lines to one file, each on disk before ``write`` returns."""

    def __init__(self, path: Path, key: bytes | None = None) -> None:
        self.path = path
        self.key = key
        if path.is_symlink():  # checked before reading it too: see the open below
            raise OSError(errno.ELOOP, "an audit log is never written through a symlink", str(path))
        # Appending to an existing log (a rollback run twice) continues its chain.
        self._last = last_sha(path) or genesis(path.name)
        self._last_hmac = genesis(path.name)
        if key is not None and path.exists() and path.stat().st_size:
            raise OSError(errno.EEXIST, "a keyed audit log is always a new file", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Never through a symlink: root appends here, and the directory may be writable by others.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o640)
        self._file: IO[str] = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, event: str, **fields: Value) -> str:
        body = format_body(event, fields, dt.datetime.now(dt.UTC))
        if self.key is not None:
            self._last_hmac = keyed(self.key, self._last_hmac, body)
            body = f"{body} hmac={self._last_hmac}"
        self._last = chain(self._last, body)
        line = f"{body} sha={self._last}"
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        return line

    @property
    def final_hmac(self) -> str | None:
        """The keyed chain's last value (what ``anchor`` records), or None without a key."""
        return self._last_hmac if self.key is not None else None

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def anchor(anchor_file: Path, log: Path, final_hmac: str) -> None:
    """Record a closed log's final hmac outside its directory: ``<log name> <hmac>`` lines,
    appended, never through a symlink, owner-only."""
    anchor_file.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(anchor_file, flags, 0o600)
    try:
        os.write(fd, f"{log.name} {final_hmac}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def anchored(anchor_file: Path, log: Path) -> str | None:
    """The final hmac recorded for ``log`` (the last, if recorded twice), or None."""
    found = None
    for line in _read_lines(anchor_file):
        name, _, value = line.partition(" ")
        if name == log.name:
            found = value
    return found


class NotUtf8(OSError):
    """A log with a byte that is not UTF-8: neither its chain nor the line it sits on can be read.

    An OSError like any other failure to read, so a caller that falls back when a log cannot
    be opened (the deployer audits in the run folder then) falls back here too.
    """

    def __init__(self, path: Path, line: int, offset: int) -> None:
        super().__init__(errno.EILSEQ, f"not UTF-8 at byte offset {offset}", str(path))
        self.line = line


def last_sha(path: Path) -> str | None:
    """The sha of the last line of an existing log, or None for a new or empty one.

    Raises OSError (NotUtf8 among them) for a log that exists but cannot be read: continuing
    a chain from a guess would hide where the log went wrong.
    """
    last = None
    try:
        for line in _read_lines(path):
            last = line or last
        torn = path.stat().st_size > 0 and _last_byte(path) != b"\n"
    except FileNotFoundError:
        return None
    if torn:  # a writer died mid-line: continuing would chain onto half a line
        raise OSError(errno.EIO, "its last line is torn (no newline): not continued", str(path))
    match = _LINE.match(last) if last else None
    return match["sha"] if match else None


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)


def parse_fields(text: str) -> dict[str, str]:
    """The ``key=value`` fields of a line body, values unquoted as format_value quoted them."""
    return {found["key"]: _unquoted(found["value"]) for found in _FIELD.finditer(text)}


def _unquoted(value: str) -> str:
    if len(value) < 2 or not value.startswith('"') or not value.endswith('"'):
        return value
    # Control characters stay as \xNN escapes: a reader shows them, never acts on them.
    return _QUOTED_ESCAPE.sub(r"\1", value[1:-1])


@dataclass
class Verification:
    """What ``verify`` found in one log file."""

    path: Path
    lines: int = 0
    problems: list[str] = field(default_factory=list)
    last_event: str | None = None
    # Fields of verified lines only: a line that breaks the chain tells nothing.
    last_fields: dict[str, str] = field(default_factory=dict)
    start_fields: dict[str, str] = field(default_factory=dict)
    final_hmac: str | None = None  # the keyed chain's last value, when checked with the key
    keyed: bool = True  # False: no line carries an hmac (a log written without a key)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def complete(self) -> bool:
        """Ends with an event that closes a run; otherwise truncated or still being written."""
        return self.last_event in CLOSING_EVENTS

    @property
    def status(self) -> str | None:
        """How the run ended (success, failed, refused, restored...); None if it did not end."""
        if not self.complete:
            return None
        if self.last_event == "ROLLBACK_REFUSED":
            return "refused"
        if self.last_event == "ROLLBACK_FAILED":
            return "failed"
        return self.last_fields.get("status") or self.last_fields.get("result")

    @property
    def request(self) -> str | None:
        """What the run was asked to do, in the words its start line has ("phase3 step 2")."""
        if "force" in self.start_fields:  # ROLLBACK_START
            return "rollback --force" if self.start_fields["force"] == "true" else "rollback"
        request = self.start_fields.get("request")
        if request and self.start_fields.get("plan_only") == "true":
            return f"{request} (plan only)"  # as the run's own summary words it
        return request


def verify(path: Path, key: bytes | None = None, anchors: Path | None = None) -> Verification:
    """Check every line's sha against the chain; report the first line where it breaks. With
    ``key``, the keyed chain too (every line must carry it); with ``anchors`` as well, a closed
    log's final hmac must be the one recorded there.

    A log that cannot be read (not UTF-8, a directory, no permission) is broken too, and says so.
    """
    result = Verification(path)
    try:
        problem = _check_chain(path, result, key)
        if problem is None and key is not None and anchors is not None:
            if not result.keyed:
                # Fine for a log made without a key; not for one whose hmacs were stripped.
                if anchors.exists() and anchored(anchors, path) is not None:
                    problem = f"{path}: anchored as keyed, yet no line carries an hmac"
            elif result.complete:
                problem = _check_anchor(path, result, anchors)
    except (NotUtf8, LineTooLong) as exc:
        problem = f"{path}:{exc.line}: {exc.strerror}"
    except OSError as exc:
        problem = f"{path}: cannot read: {exc.strerror or exc}"
    if problem is None and result.lines == 0:
        problem = f"{path}: empty audit log"
    if problem is not None:
        result.problems.append(problem)
    return result


def _check_chain(path: Path, result: Verification, key: bytes | None) -> str | None:
    """Walk the lines into ``result``; the first problem found, or None."""
    previous = previous_hmac = genesis(path.name)
    for number, line in enumerate(_read_lines(path), start=1):
        result.lines = number
        match = _LINE.match(line)
        if match is None:
            # Its length, never its text: a line the deployer did not write is anyone's.
            return f"{path}:{number}: not an audit line ({len(line)} characters, not shown)"
        if chain(previous, match["body"]) != match["sha"]:
            return (
                f"{path}:{number}: chain broken at {match['event']} "
                "(line edited, removed, reordered or added by hand)"
            )
        if key is not None:
            tagged = _HMAC_FIELD.search(match["body"])
            if tagged is None and number == 1:
                key = None  # written without a key: see verify, which asks the anchors
                result.keyed = False
            elif tagged is None:
                return f"{path}:{number}: no hmac at {match['event']} (not written with the key)"
        if key is not None and tagged is not None:
            previous_hmac = keyed(key, previous_hmac, match["body"][: tagged.start()])
            if previous_hmac != tagged["hmac"]:
                return (
                    f"{path}:{number}: keyed chain broken at {match['event']} (rewritten and "
                    "re-chained by someone without the key)"
                )
            result.final_hmac = previous_hmac
        previous = match["sha"]
        result.last_event = match["event"]
        result.last_fields = parse_fields(match["fields"] or "")
        if result.last_event in STARTING_EVENTS:
            result.start_fields = result.last_fields
    return None


# No line the deployer writes comes near this; a "log" of gigabytes without a newline must not
# be read into memory to find out.
MAX_LINE_BYTES = 64 * 1024


class LineTooLong(OSError):
    """A line longer than any the deployer writes: not an audit log, or a forged one."""

    def __init__(self, path: Path, line: int) -> None:
        super().__init__(errno.EFBIG, f"line longer than {MAX_LINE_BYTES} bytes", str(path))
        self.line = line


def _check_anchor(path: Path, result: Verification, anchors: Path) -> str | None:
    recorded = anchored(anchors, path) if anchors.exists() else None
    if recorded is None:
        return f"{path}: closed, but no anchor in {anchors} (made without it, or replaced whole)"
    if recorded != result.final_hmac:
        return f"{path}: does not match its anchor in {anchors} (changed after it was closed)"
    return None


def _read_lines(path: Path) -> Iterator[str]:
    """The lines of a log, split on \\n only; NotUtf8 names the first byte that is not UTF-8,
    LineTooLong the first line too long to be one of ours."""
    offset = 0
    with path.open("rb") as lines:  # bytes: a decoding error then knows its place in the file
        number = 0
        while raw := lines.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise LineTooLong(path, number)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise NotUtf8(path, number, offset + exc.start) from None
            offset += len(raw)
            yield line.rstrip("\n")
