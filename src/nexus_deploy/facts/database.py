"""Connections to the platform's PostgreSQL, with the password kept out of every profile."""

from __future__ import annotations

import os
from typing import Any

import psycopg

from nexus_deploy.profile import DatabaseSpec

FLAG_COLUMNS = ("key", "value", "updated_at", "updated_by")


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


def connect(spec: DatabaseSpec, **extra: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(**{**connection_kwargs(spec), **extra})


def flag_table_columns(connection: psycopg.Connection[Any], table: str) -> set[str]:
    rows = connection.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    ).fetchall()
    return {str(row[0]) for row in rows}


def flag_table_check(spec: DatabaseSpec) -> set[str]:
    """Connect, prove the server answers ``SELECT 1``, and return the flag table's columns
    (empty if the table is absent); raises psycopg.Error if any of it fails."""
    with connect(spec) as connection:
        connection.execute("SELECT 1").fetchone()
        return flag_table_columns(connection, spec.flag_table)
