"""Where a field is in a YAML file: the line of each key, found from the composed node tree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml


class YamlMap:
    """The parsed document and the line of every key and list item, by path (keys and indexes)."""

    def __init__(self, text: str) -> None:
        self.root = yaml.compose(text, Loader=yaml.SafeLoader)
        self.data: Any = yaml.safe_load(text)

    def line(self, path: Sequence[str | int]) -> int | None:
        """1-based line of the deepest part of ``path`` that exists in the file (its key's line)."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in path:
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        line, node = key.start_mark.line + 1, value
                        break
                else:
                    return line
            elif (
                isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value)
            ):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def align(data: Any, loc: Sequence[str | int]) -> list[str | int]:
    """A pydantic error location as a path in the document: union tags (``culvert``, ``serial``...)
    and validator names that are not keys of the data are dropped."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            if part in node:
                path.append(part)
                node = node[part]
            elif isinstance(part, str) and (part in node.values() or part[:1].isupper() or "[" in part):
                continue  # a union's tag (the value of kind/type/method, or a member's class name)
            else:
                path.append(part)  # a missing key: the error is about it
                node = None
        elif isinstance(node, list) and isinstance(part, int):
            path.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif node is None or isinstance(part, int):
            path.append(part)
    return path


def dotted(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def split(dotted_path: str) -> list[str | int]:
    """``a.b[2].c`` as ``["a", "b", 2, "c"]``."""
    parts: list[str | int] = []
    for piece in dotted_path.replace("]", "").split("."):
        name, _, index = piece.partition("[")
        parts.append(name)
        if index:
            parts.append(int(index))
    return parts
