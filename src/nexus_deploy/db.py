"""Connections to the platform's PostgreSQL, with the password kept out of every profile."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import psycopg

from nexus_deploy.config.profile import DatabaseSpec

# Every deployer session, whatever the server, database or role defaults say:
# - standard_conforming_strings on: the restore SQL quotes by doubling quotes only, which is
#   safe only then (off, a stored backslash could end a literal early);
# - UTF8: with SQL_ASCII the keys would come back as bytes and every flag look absent;
# - bounded waits: a deployer cut off from the network must not hold row locks for hours.
SESSION_OPTIONS = " ".join(
    f"-c {setting}"
    for setting in (
        "TimeZone=UTC",
        "standard_conforming_strings=on",
        "client_encoding=UTF8",
        "lock_timeout=10s",
        "statement_timeout=60s",
        "idle_in_transaction_session_timeout=60s",
    )
)
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def without_secrets(text: str) -> str:
    """``text`` with any ``password=...`` of a connection string masked (libpq quotes some)."""
    return SECRET_IN_CONNINFO.sub(r"\1***", text)


SECRET_IN_CONNINFO = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def connection_kwargs(spec: DatabaseSpec) -> dict[str, Any]:
    """libpq parameters: the password from the environment variable, else the pgpass file."""
    kwargs: dict[str, Any] = {
        "host": spec.host,
        "port": spec.port,
        "dbname": spec.dbname,
        "user": spec.user,
        "connect_timeout": spec.connect_timeout_s,
        "application_name": "nexus-deploy",
        "options": SESSION_OPTIONS,
        **KEEPALIVES,
    }
    password = os.environ.get(spec.password_env)
    if password:
        kwargs["password"] = password
    elif spec.passfile is not None:
        kwargs["passfile"] = str(spec.passfile)
    return kwargs


class NoPassword(psycopg.OperationalError):
    """The server wants a password and none was where the profile says to look for one."""


def connect(spec: DatabaseSpec, **extra: Any) -> psycopg.Connection[Any]:
    """Connect as ``spec`` says; a missing password is a NoPassword saying where it was sought."""
    try:
        return psycopg.connect(**{**connection_kwargs(spec), **extra})
    except psycopg.OperationalError as exc:
        # libpq's own words ("fe_sendauth: no password supplied") name neither place.
        if "no password supplied" not in str(exc):
            raise
        raise NoPassword(f"no password: {password_sources(spec)}") from None


def password_sources(spec: DatabaseSpec) -> str:
    """Where the password was looked for, and why neither place gave one."""
    value = os.environ.get(spec.password_env)
    env = f"${spec.password_env} is {'empty' if value == '' else 'not set'}"
    passfile = spec.passfile
    if passfile is None:  # libpq then reads $PGPASSFILE or ~/.pgpass, which held none either
        return f"{env}, database.passfile is not set, and $PGPASSFILE or ~/.pgpass had none"
    try:
        return f"{env} and passfile {passfile} {passfile_problem(spec, passfile)}"
    except OSError as exc:  # a directory on the way we may not search, say
        return f"{env} and passfile {passfile} cannot be read ({exc.strerror or exc})"


def passfile_problem(spec: DatabaseSpec, passfile: Path) -> str:
    """Why libpq found no password in ``passfile`` for this database."""
    if not passfile.is_file():
        return "is not a file" if passfile.exists() else "does not exist"
    mode = passfile.stat().st_mode & 0o777
    if mode & 0o077:  # libpq skips such a file with only a warning on stderr
        return f"is ignored: mode {mode:04o}, libpq needs 0600 or less"
    if not os.access(passfile, os.R_OK):
        return "cannot be read"
    return f"holds no password for {spec.host}:{spec.port}:{spec.dbname}:{spec.user}"
