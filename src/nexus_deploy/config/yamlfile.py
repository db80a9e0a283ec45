"""YAML as the deployer reads it: safe types only, and a key given twice is an error.

PyYAML's safe_load keeps the last of two equal keys without a word; in a profile or a phase
config that silently discards what the operator wrote first.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from nexus_deploy.config.errors import shown_key

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
                name = shown_key(key)  # a key that is not a field name is not repeated
                what = f"key {name!r}" if name != "?" else "a key (not a field name)"
                raise DuplicateKeyError(f"line {line}: {what} given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class AliasError(yaml.YAMLError):
    """YAML aliases (``*name``): a few hundred bytes of them can expand to gigabytes."""


class ControlCharacterError(yaml.MarkedYAMLError):
    """A key or a string value holding a control character (a quoted "\\e" is one): wherever
    it were printed (terminal, report, audit log), a terminal would act on it."""

    def __init__(self, field: str, what: str, mark: Any, char: str) -> None:
        # The character's code point, never the string: the string is what must not be shown.
        why = f"{what} holds a control character (U+{ord(char):04X}): not accepted"
        super().__init__(problem=f"{field}: {why}", problem_mark=mark)
        self.field = field
        self.why = f"{why} (line {mark.line + 1})" if mark is not None else why


# Cc is what a terminal obeys (ESC, BEL, CR...); \n and \t are a block scalar's own. The bidi
# overrides and isolates (Cf) reorder what is shown, so a text reads other than it is.
_ALLOWED_CONTROLS = frozenset("\n\t")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _control_in(text: str) -> str | None:
    if text.isprintable():  # the common case, in C: no Cc, Cf or separator but " "
        return None
    for char in text:
        if char in _BIDI or (unicodedata.category(char) == "Cc" and char not in _ALLOWED_CONTROLS):
            return char
    return None


def _refuse_controls(root: yaml.Node) -> None:
    """ControlCharacterError for the first scalar, key or value, that holds a control
    character, naming its field's dotted path and its line."""
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            char = _control_in(node.value)
            if char is not None:
                raise ControlCharacterError(
                    path or "(top level)", "a string", node.start_mark, char
                )
        elif isinstance(node, yaml.MappingNode):
            children = []
            for key, value in node.value:
                name = "?"
                if isinstance(key, yaml.ScalarNode):
                    char = _control_in(key.value)
                    if char is not None:
                        where = path or "(top level)"
                        raise ControlCharacterError(where, "a key", key.start_mark, char)
                    name = shown_key(key.value)
                else:  # a mapping or a list as a key: its strings are checked too
                    children.append((key, path))
                children.append((value, f"{path}.{name}" if path else name))
            stack += reversed(children)  # the first child is checked first
        elif isinstance(node, yaml.SequenceNode):
            items = list(enumerate(node.value))
            stack += [(item, f"{path}.{i}" if path else str(i)) for i, item in reversed(items)]


def load(text: str) -> Any:
    """Parse YAML text like yaml.safe_load, refusing duplicate keys, aliases and control
    characters in strings."""
    if "*" in text:  # an alias needs one; the event scan costs little, in C
        for event in yaml.parse(text, Loader=_SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise AliasError(f"line {line}: YAML aliases (*name) are not accepted here")
    loader = _StrictLoader(text)
    try:
        # yaml.load's own two halves, with the node tree checked between them.
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_controls(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


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
