"""YAML loading that remembers where every key came from, for errors that name a line.

``load_yaml(path)`` returns the data and a :class:`SourceMap`; ``SourceMap.line_of(loc)``
gives the 1-based line of the deepest key of ``loc`` (a pydantic error location) it knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class YamlError(Exception):
    """A file that is not valid YAML; the message names the file, line and column."""


@dataclass
class SourceMap:
    path: str
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        key = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return None


Loc = tuple[str | int, ...]


def _walk(node: yaml.Node, prefix: Loc, out: dict[Loc, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            path = (*prefix, key)
            out[path] = key_node.start_mark.line + 1
            _walk(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = (*prefix, i)
            out[path] = item.start_mark.line + 1
            _walk(item, path, out)


def parse_yaml(text: str, name: str) -> tuple[Any, SourceMap]:
    smap = SourceMap(name)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise YamlError(f"{where}: not valid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"{name}: not valid YAML: {exc}") from exc
    if node is not None:
        _walk(node, (), smap.lines)
    return data, smap


def load_yaml(path: Path) -> tuple[Any, SourceMap]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise YamlError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return parse_yaml(text, str(path))
