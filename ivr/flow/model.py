"""The call-flow language: a YAML graph of named nodes, validated by pydantic models.

A flow file::

    name: default
    version: 3
    language: en-US
    start: greeting
    nodes:
      greeting: {type: play, prompts: [welcome], next: main}
      main:
        type: menu
        prompts: [main_menu]
        choices: {"1": sales, "2": support}
        ...

Errors name the file, the line and the node (:class:`FlowError`). ``docs/flows.md`` is the
reference for designers.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..yamlsrc import SourceMap, YamlError, load_yaml, parse_yaml

DTMF_KEYS = "0123456789*#ABCD"
_NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""

    def targets(self) -> Iterable[str]:
        return ()

    def prompt_names(self) -> Iterable[str]:
        return ()


class PlayNode(_Node):
    """Play prompts back to back, then go to ``next``."""

    type: Literal["play"]
    prompts: list[str] = Field(min_length=1)
    barge_in: bool = False  # a key pressed during the prompt stops it and is kept as type-ahead
    next: str

    def targets(self) -> Iterable[str]:
        return (self.next,)

    def prompt_names(self) -> Iterable[str]:
        return self.prompts


class MenuNode(_Node):
    """Play a menu and route on one DTMF key, with timeouts, retries and a repeat key."""

    type: Literal["menu"]
    prompts: list[str] = Field(min_length=1)
    choices: dict[str, str] = Field(min_length=1)
    timeout_ms: int = Field(default=5000, ge=500, le=60000)
    max_retries: int = Field(default=3, ge=0, le=10)
    invalid_prompts: list[str] = []
    no_input_prompts: list[str] = []
    repeat_key: str | None = None
    barge_in: bool = True
    on_failure: str  # after more than max_retries invalid keys
    on_no_input: str | None = None  # after more than max_retries silences; default on_failure

    @field_validator("choices")
    @classmethod
    def _keys_are_dtmf(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if len(key) != 1 or key.upper() not in DTMF_KEYS:
                raise ValueError(f"choice key {key!r} is not one DTMF key ({DTMF_KEYS})")
        return {k.upper(): t for k, t in v.items()}

    @field_validator("repeat_key")
    @classmethod
    def _repeat_is_dtmf(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 1 or v.upper() not in DTMF_KEYS):
            raise ValueError(f"repeat_key {v!r} is not one DTMF key ({DTMF_KEYS})")
        return v.upper() if v else v

    def targets(self) -> Iterable[str]:
        yield from self.choices.values()
        yield self.on_failure
        if self.on_no_input:
            yield self.on_no_input

    def prompt_names(self) -> Iterable[str]:
        yield from self.prompts
        yield from self.invalid_prompts
        yield from self.no_input_prompts


class GotoNode(_Node):
    type: Literal["goto"]
    next: str

    def targets(self) -> Iterable[str]:
        return (self.next,)


class HangupNode(_Node):
    """Optionally play prompts, pause, then end the call with a BYE."""

    type: Literal["hangup"]
    prompts: list[str] = []
    pause_ms: int = Field(default=0, ge=0, le=10000)
    reason: str = "normal"

    def prompt_names(self) -> Iterable[str]:
        return self.prompts


Node = Annotated[PlayNode | MenuNode | GotoNode | HangupNode, Field(discriminator="type")]


class Flow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    version: int = 1
    description: str = ""
    language: str = "en-US"
    start: str
    nodes: dict[str, Node] = Field(min_length=1)

    def prompt_names(self) -> set[str]:
        return {p for node in self.nodes.values() for p in node.prompt_names()}


@dataclass(frozen=True)
class FlowIssue:
    """One problem found in a flow file."""

    file: str
    line: int | None
    node: str | None
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            where += f":{self.column}"
        node = f" node {self.node!r}:" if self.node else ""
        return f"{where}:{node} {self.message}"


class FlowError(Exception):
    """A flow that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[FlowIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _loc_node(loc: tuple[str | int, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "nodes":
        return str(loc[1])
    return None


def _describe(loc: tuple[str | int, ...], msg: str) -> str:
    # Drop the discriminator tag pydantic inserts (nodes.<name>.<type>.<field>).
    parts = [str(p) for p in loc]
    if len(parts) >= 3 and parts[0] == "nodes":
        parts = parts[2:]
        if parts and parts[0] in {"play", "menu", "goto", "hangup"}:
            parts = parts[1:]
    field_name = ".".join(parts)
    return f"{field_name}: {msg}" if field_name else msg


def _source_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    if len(loc) >= 3 and loc[0] == "nodes" and loc[2] in {"play", "menu", "goto", "hangup"}:
        return (*loc[:2], *loc[3:])
    return loc


_NODE_MODELS: dict[str, type[BaseModel]] = {
    "play": PlayNode, "menu": MenuNode, "goto": GotoNode, "hangup": HangupNode,
}
_NODE_TYPES = ", ".join(_NODE_MODELS)


def _issue_from_pydantic(name: str, smap: SourceMap, err: Any) -> FlowIssue:
    """Say what pydantic found in a designer's words, at the line of the offending key."""
    loc: tuple[str | int, ...] = tuple(err["loc"])
    kind, msg = err["type"], err["msg"]
    src = _source_loc(loc)
    node = _loc_node(loc)
    text = _describe(loc, msg)
    if kind == "union_tag_invalid" and node is not None:
        src = ("nodes", node, "type")
        text = (f"type: unknown node type {err['ctx']['tag']!r}; "
                f"a node's type is one of {_NODE_TYPES}")
    elif kind == "union_tag_not_found" and node is not None:
        text = f"type: missing; a node's type is one of {_NODE_TYPES}"
    elif kind == "model_attributes_type" and node is not None and len(loc) == 2:
        text = f"a node is a mapping with a type ({_NODE_TYPES}) and its fields"
    elif kind == "extra_forbidden":
        model: type[BaseModel] = Flow
        what = "a flow"
        if node is not None and len(loc) >= 4 and str(loc[2]) in _NODE_MODELS:
            model, what = _NODE_MODELS[str(loc[2])], f"a {loc[2]} node"
        field_name = str(loc[-1])
        text = f"{field_name}: unknown field of {what}"
        close = difflib.get_close_matches(field_name, list(model.model_fields), n=1)
        if close:
            text += f" (did you mean {close[0]!r}?)"
    elif kind == "value_error":
        text = _describe(loc, msg.removeprefix("Value error, "))
    elif kind == "string_type" and len(loc) >= 2 and loc[-1] == "[key]" and "choices" in loc:
        key = loc[-2]
        src = (*_source_loc(loc[:-2]), str(key))
        text = (f"choices: key {key} must be quoted, e.g. \"{key}\": ... "
                "(unquoted, YAML reads it as a number)")
    return FlowIssue(name, smap.line_of(src), node, text)


def check_graph(flow: Flow, smap: SourceMap) -> list[FlowIssue]:
    """Targets that do not exist, a missing start node, nodes no call can reach."""
    issues: list[FlowIssue] = []
    for name in flow.nodes:
        if not _NODE_NAME.match(name):
            issues.append(
                FlowIssue(smap.path, smap.line_of(("nodes", name)), name,
                          "node names are letters, digits, '_', '-' and '.'")
            )
    if flow.start not in flow.nodes:
        issues.append(
            FlowIssue(smap.path, smap.line_of(("start",)), None,
                      f"start node {flow.start!r} is not defined")
        )
    for name, node in flow.nodes.items():
        for target in node.targets():
            if target not in flow.nodes:
                issues.append(
                    FlowIssue(smap.path, smap.line_of(("nodes", name)), name,
                              f"goes to {target!r}, which is not a node of this flow")
                )
    if flow.start in flow.nodes:
        seen = {flow.start}
        todo = [flow.start]
        while todo:
            for target in flow.nodes[todo.pop()].targets():
                if target in flow.nodes and target not in seen:
                    seen.add(target)
                    todo.append(target)
        for name in flow.nodes:
            if name not in seen:
                issues.append(
                    FlowIssue(smap.path, smap.line_of(("nodes", name)), name,
                              f"unreachable: no path from start node {flow.start!r} leads here")
                )
    return issues


def check_prompts(
    flow: Flow, smap: SourceMap, available: set[str], set_name: str
) -> list[FlowIssue]:
    issues = []
    for name, node in flow.nodes.items():
        for prompt in node.prompt_names():
            if prompt not in available:
                issues.append(
                    FlowIssue(smap.path, smap.line_of(("nodes", name)), name,
                              f"prompt {prompt!r} is not in prompt set {set_name!r}")
                )
    return issues


def parse_flow(text: str, name: str = "<flow>") -> tuple[Flow, SourceMap]:
    """Validate a flow; raises :class:`FlowError` listing every problem."""
    try:
        data, smap = parse_yaml(text, name)
    except YamlError as exc:
        cause = exc.__cause__
        if isinstance(cause, yaml.MarkedYAMLError) and cause.problem_mark is not None:
            mark = cause.problem_mark
            problem = str(cause.problem)
            if "'\\t'" in problem:
                problem += " (indent with spaces: YAML does not allow tabs)"
            elif "<block" in problem:
                problem += " (check the indentation)"
            issue = FlowIssue(name, mark.line + 1, None, f"not valid YAML: {problem}",
                              column=mark.column + 1)
        else:
            issue = FlowIssue(name, None, None, str(exc).removeprefix(f"{name}: "))
        raise FlowError([issue]) from exc
    if not isinstance(data, dict):
        empty = "the file is empty; " if data is None else ""
        raise FlowError([FlowIssue(name, 1, None,
                                   f"{empty}a flow is a mapping with name, start, nodes")])
    try:
        flow = Flow.model_validate(data)
    except ValidationError as exc:
        issues = [_issue_from_pydantic(name, smap, err) for err in exc.errors()]
        raise FlowError(issues) from exc
    issues = check_graph(flow, smap)
    if issues:
        raise FlowError(issues)
    return flow, smap


def load_flow(path: Path) -> tuple[Flow, SourceMap]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError([FlowIssue(str(path), None, None, f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise FlowError([FlowIssue(str(path), None, None, "not UTF-8 text")]) from exc
    return parse_flow(text, str(path))


__all__ = [
    "DTMF_KEYS",
    "Flow",
    "FlowError",
    "FlowIssue",
    "GotoNode",
    "HangupNode",
    "MenuNode",
    "Node",
    "PlayNode",
    "check_graph",
    "check_prompts",
    "load_flow",
    "load_yaml",
    "parse_flow",
]
