"""What is wrong with a file the deployer was given (a target profile, a phase config), said
without repeating what the file holds: the field's path and the problem, never the value, and a
key only if it looks like a field name (a --target pointed at /etc/shadow must not print its
lines as "unknown fields").
"""

from __future__ import annotations

import re

from pydantic import ValidationError

# An unknown key is named only if it looks like a field name (a typo of one, most likely).
FIELD_NAME = re.compile(r"[a-z][a-z_]{0,31}")
# A key on the way to a field: a field name, a dotted one (launch.seo), or a number (a step, an
# index); anything else is shown as "?".
_SHOWN_KEY = re.compile(r"[a-z][a-z_]{0,31}(?:\.[a-z][a-z_]{0,31})*|[0-9]{1,9}|\[key\]")
SHOWN_ERRORS = 8


def shown_key(key: object) -> str:
    """``key`` as a message may show it: itself if it looks like a field name, else "?"."""
    text = str(key)
    return text if _SHOWN_KEY.fullmatch(text) else "?"


def field_errors(exc: ValidationError, what: str) -> list[tuple[str, str]]:
    """(field path, what is wrong) for each invalid field, unknown keys first, at most
    SHOWN_ERRORS of them; then, with an empty path, how many more there were and how many
    unknown keys were left out for not looking like field names (is this ``what``?)."""
    shown, hidden = [], 0
    # Unknown keys first: a misspelt field is the likeliest cause of the others' "missing".
    errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
    for error in errors:
        parts = [str(part) for part in error["loc"]]
        if error["type"] == "extra_forbidden" and not FIELD_NAME.fullmatch(parts[-1]):
            hidden += 1
            continue
        shown.append((".".join(map(shown_key, parts)) or "(top level)", str(error["msg"])))
    more = len(shown) - SHOWN_ERRORS
    shown = shown[:SHOWN_ERRORS]
    if more > 0:
        shown.append(("", f"and {more} more"))
    if hidden:
        shown.append(("", f"{hidden} unknown key(s) not shown (not field names: is this {what}?)"))
    return shown


def describe_errors(exc: ValidationError, what: str = "a target profile") -> str:
    """One part per invalid field, as ``field.path: what is wrong``; never a value, nor a key
    that does not look like a field name."""
    return "; ".join(f"{field}: {why}" if field else why for field, why in field_errors(exc, what))
