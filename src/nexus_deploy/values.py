"""Flag values as the deployer handles them: JSON values, their canonical text, stored rows.

A leaf: the phases compute values, the change layer stores them, both in these terms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypeAlias

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None


def to_json(value: JsonValue) -> str:
    """Canonical JSON text, as it is written into jsonb."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class FlagRow:
    """One row as stored: jsonb value and timestamp as PostgreSQL prints them."""

    key: str
    value: str  # jsonb text
    updated_at: str  # timestamptz text, full precision
    updated_by: str

    @property
    def decoded(self) -> JsonValue:
        value: JsonValue = json.loads(self.value)
        return value
