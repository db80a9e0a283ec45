"""YAML as the deployer reads it: safe types only, and a key given twice is an error.

PyYAML's safe_load keeps the last of two equal keys without a word; in a profile or a phase
config that silently discards what the operator wrote first.
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names the same key twice."""


# libyaml's parser when PyYAML was built with it: the pure-Python one is several times slower.
try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _StrictLoader(_SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise DuplicateKeyError(f"line {line}: key {key!r} given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """Parse YAML text like yaml.safe_load, refusing duplicate keys."""
    return yaml.load(text, Loader=_StrictLoader)


def yaml_problem(exc: Exception) -> str:
    """What is wrong and where, on one line: PyYAML's own text spans four, naming
    "<unicode string>" for the file."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None and exc.problem:
        context = f" ({exc.context})" if exc.context else ""
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}{context}"
    return " ".join(str(exc).split())
