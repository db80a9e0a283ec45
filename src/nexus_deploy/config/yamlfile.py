"""YAML as the deployer reads it: safe types only, and a key given twice is an error.

PyYAML's safe_load keeps the last of two equal keys without a word; in a profile or a phase
config that silently discards what the operator wrote first.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

# A profile or a phase config is a page of text; anything larger is not one (a --target at
# /dev/zero would otherwise exhaust memory).
MAX_BYTES = 1024 * 1024


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


class AliasError(yaml.YAMLError):
    """YAML aliases (``*name``): a few hundred bytes of them can expand to gigabytes."""


def load(text: str) -> Any:
    """Parse YAML text like yaml.safe_load, refusing duplicate keys and aliases."""
    if "*" in text:  # an alias needs one; the event scan costs little, in C
        for event in yaml.parse(text, Loader=_SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise AliasError(f"line {line}: YAML aliases (*name) are not accepted here")
    return yaml.load(text, Loader=_StrictLoader)


def read_bounded(path: Path, limit: int = MAX_BYTES) -> str:
    """A small regular file's text. A FIFO, a device or a directory is refused before it is
    opened (a FIFO would block the read forever), and so is a file over ``limit`` bytes;
    OSError (with FileNotFoundError as such) says which."""
    mode = path.stat().st_mode  # follows a symlink: what would be read
    if not stat.S_ISREG(mode):
        raise OSError(f"{path} is not a regular file")
    # O_NONBLOCK: should it have become a FIFO since the stat, opening does not block either.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{path} is larger than {limit} bytes: not a profile or phase config")
    return data.decode("utf-8")


def yaml_problem(exc: Exception) -> str:
    """What is wrong and where, on one line: PyYAML's own text spans four, naming
    "<unicode string>" for the file."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None and exc.problem:
        context = f" ({exc.context})" if exc.context else ""
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}{context}"
    return " ".join(str(exc).split())
