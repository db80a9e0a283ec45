"""Connections to the platform's PostgreSQL, with the password kept out of every profile."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg

from nexus_deploy.config.profile import DatabaseSpec


def connection_kwargs(spec: DatabaseSpec) -> dict[str, Any]:
    """libpq parameters: the password from the environment variable, else the pgpass file."""
    kwargs: dict[str, Any] = {
        "host": spec.host,
        "port": spec.port,
        "dbname": spec.dbname,
        "user": spec.user,
        "connect_timeout": spec.connect_timeout_s,
        "application_name": "nexus-deploy",
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
