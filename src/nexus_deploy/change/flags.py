"""The platform's feature flags: rows of ``nexus_feature_flags`` read, changed and restored.

The deployer reads and writes rows only; the platform owns the table. Values travel as JSON
text so that a restore puts back exactly the bytes that were there.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from nexus_deploy.values import FlagRow, JsonValue, to_json


def read_rows(
    connection: psycopg.Connection[Any], table: str, for_update: bool = False
) -> dict[str, FlagRow]:
    """Every flag row, keyed by flag name; ``for_update`` locks them until the transaction ends."""
    query = sql.SQL(
        "SELECT key, value::text, updated_at::text, updated_by FROM {} ORDER BY key{}"
    ).format(sql.Identifier(table), sql.SQL(" FOR UPDATE" if for_update else ""))
    return {row[0]: FlagRow(*row) for row in connection.execute(query).fetchall()}


def decoded(rows: dict[str, FlagRow]) -> dict[str, JsonValue]:
    return {key: row.decoded for key, row in rows.items()}


def write_values(
    connection: psycopg.Connection[Any], table: str, values: dict[str, JsonValue], by: str
) -> None:
    """Upsert ``values``; the caller holds the transaction."""
    statement = sql.SQL(
        "INSERT INTO {} (key, value, updated_at, updated_by) VALUES (%s, %s::jsonb, now(), %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
        "updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by"
    ).format(sql.Identifier(table))
    for key, value in values.items():
        connection.execute(statement, (key, to_json(value), by))


def restore_statements(table: str, prior: dict[str, FlagRow | None]) -> list[str]:
    """Plain SQL that puts back each prior row exactly (or removes a key that was absent).

    Rendered as text, so the same statements serve the in-process auto-rollback and the
    standalone rollback script that psql runs.
    """
    name = quote_identifier(table)
    statements = []
    for key, row in sorted(prior.items()):
        if row is None:
            statements.append(f"DELETE FROM {name} WHERE key = {literal(key)};")
        else:
            statements.append(
                f"INSERT INTO {name} (key, value, updated_at, updated_by) VALUES ("
                f"{literal(key)}, {literal(row.value)}::jsonb, {literal(row.updated_at)}"
                f"::timestamptz, {literal(row.updated_by)}) ON CONFLICT (key) DO UPDATE SET "
                "value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, "
                "updated_by = EXCLUDED.updated_by;"
            )
    return statements


def quote_identifier(name: str) -> str:
    """A table name as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A standard SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    if "\x00" in text:
        raise ValueError("a flag text cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"
