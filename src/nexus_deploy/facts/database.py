"""What the DATABASE precheck reads of the platform's PostgreSQL: it answers, the flag table
is there."""

from __future__ import annotations

from typing import Any

import psycopg

from nexus_deploy.config.profile import DatabaseSpec
from nexus_deploy.db import connect

FLAG_COLUMNS = ("key", "value", "updated_at", "updated_by")


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
