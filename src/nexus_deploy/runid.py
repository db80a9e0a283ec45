"""Run ids and operators: how each deployment run is named (in its audit log, reports and
restore point) and who ran it."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
import secrets

# UTC YYYYMMDDTHHMMSSZ plus four hex digits. A run id becomes part of file names: nothing that
# does not match this may be used as one (no "../", no "/").
RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$")


def new_run_id(now: dt.datetime | None = None) -> str:
    """UTC ``YYYYMMDDTHHMMSSZ`` plus a short suffix, so two runs in one second stay apart."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(2)}"


def is_run_id(text: str) -> bool:
    return RUN_ID.fullmatch(text) is not None  # match() would take "<id>\n" ($ before \n)


def operator() -> str:
    """Who runs the deployment, as the audit should name them (the sudo caller if any)."""
    return os.environ.get("SUDO_USER") or getpass.getuser()
