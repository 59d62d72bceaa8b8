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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..yamlsrc import SourceMap, YamlError, load_yaml, parse_yaml
from . import yes_no
from .speech import Confidence, MenuSpeechFields, SpeechConfirm, check_speech

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


class MenuNode(_Node, MenuSpeechFields):
    """Play a menu and route on one DTMF key or a spoken phrase (``speech``, see
    :mod:`ivr.flow.speech`), with timeouts, retries and a repeat key."""

    type: Literal["menu"]
    prompts: list[str] = Field(min_length=1)
    choices: dict[str, str] = Field(min_length=1)
    timeout_ms: int = Field(default=5000, ge=500, le=60000)
    max_retries: int = Field(default=3, ge=0, le=10)
    invalid_prompts: list[str] = []
    no_input_prompts: list[str] = []
    repeat_key: str | None = None
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
        yield from self.speech_targets()
        yield self.on_failure
        if self.on_no_input:
            yield self.on_no_input

    def prompt_names(self) -> Iterable[str]:
        yield from self.prompts
        yield from self.invalid_prompts
        yield from self.no_input_prompts
        yield from self.speech_prompt_names()


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


_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _check_var(v: str) -> str:
    if not _VAR_NAME.match(v):
        raise ValueError(f"{v!r} is not a variable name (letters, digits, '_')")
    return v


def _check_regex(v: str | None) -> str | None:
    if v is not None:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"regular expression {v!r} does not compile: {exc}") from exc
    return v


class _Sub(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Validation(_Sub):
    """Checks on collected digits: a regular expression and/or the Luhn checksum."""

    regex: str | None = None
    luhn: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        return _check_regex(v)


class Confirmation(_Sub):
    """"You entered 1 2 3 4. If this is correct, press 1. To try again, press 2." """

    prompts: list[str] = ["you_entered"]
    after_prompts: list[str] = ["confirm_correct"]
    yes_key: str = "1"
    no_key: str = "2"
    timeout_ms: int = Field(default=5000, ge=500, le=60000)

    @field_validator("yes_key", "no_key")
    @classmethod
    def _dtmf(cls, v: str) -> str:
        if len(v) != 1 or v.upper() not in DTMF_KEYS:
            raise ValueError(f"{v!r} is not one DTMF key ({DTMF_KEYS})")
        return v.upper()


class CollectNode(_Node):
    """Collect a string of digits into a variable."""

    type: Literal["collect"]
    prompts: list[str] = Field(min_length=1)
    var: str
    min_digits: int = Field(default=1, ge=1, le=64)
    max_digits: int = Field(default=16, ge=1, le=64)
    terminator: str | None = "#"
    first_digit_timeout_ms: int = Field(default=5000, ge=500, le=60000)
    inter_digit_timeout_ms: int = Field(default=3000, ge=200, le=30000)
    validate_digits: Validation | None = Field(default=None, alias="validate")
    invalid_prompts: list[str] = []
    no_input_prompts: list[str] = []
    max_retries: int = Field(default=3, ge=0, le=10)
    barge_in: bool = True
    confirm: Confirmation | None = None
    # Card numbers, PINs: the digits are masked in the logs and the store (see docs/flows.md)
    sensitive: bool = False
    # Digits by voice too, per language: {en-US: digits} ("four one five five")
    speech: dict[str, Literal["digits", "yes_no"]] = {}
    end_silence_ms: int = Field(default=1200, ge=200, le=5000)  # pauses between digit groups
    max_utterance_ms: int = Field(default=15000, ge=1000, le=60000)
    # A yes/no question instead of digits (ivr/flow/yes_no.py): var gets "yes" or "no"
    kind: Literal["digits", "yes_no"] = "digits"
    yes_key: str = "1"
    no_key: str = "2"
    confidence: Confidence = Confidence()
    speech_confirm: SpeechConfirm | None = None  # prompts per answer: {"yes": [...]}
    no_match_prompts: list[str] = []  # default: invalid_prompts
    next: str
    on_failure: str

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("yes_key", "no_key")
    @classmethod
    def _answer_key(cls, v: str) -> str:
        if len(v) != 1 or v.upper() not in DTMF_KEYS:
            raise ValueError(f"{v!r} is not a DTMF key (0-9, *, #, A-D)")
        return v.upper()

    @field_validator("speech_confirm", mode="before")
    @classmethod
    def _yaml_yes_no(cls, v: object) -> object:
        # YAML reads an unquoted yes/no key as a boolean: {yes: [...]} means "yes"
        if isinstance(v, dict) and isinstance(v.get("prompts"), dict):
            names = {True: "yes", False: "no"}
            v = {**v, "prompts": {names.get(k, k) if isinstance(k, bool) else k: p
                                  for k, p in v["prompts"].items()}}
        return v

    @model_validator(mode="after")
    def _yes_no_fields(self) -> CollectNode:
        yes_no.check_fields(self.kind, self.model_fields_set, dict(self.speech),
                            self.yes_key, self.no_key,
                            self.speech_confirm.prompts if self.speech_confirm else ())
        return self

    def listen_ms(self) -> tuple[int, int]:
        """(end of speech silence, longest utterance) for collect by voice: a yes/no has
        shorter defaults than a digit string."""
        if self.kind != "yes_no":
            return self.end_silence_ms, self.max_utterance_ms
        given = self.model_fields_set
        return (self.end_silence_ms if "end_silence_ms" in given else yes_no.END_SILENCE_MS,
                self.max_utterance_ms if "max_utterance_ms" in given
                else yes_no.MAX_UTTERANCE_MS)

    @model_validator(mode="after")
    def _sensitive_not_read_back(self) -> CollectNode:
        if self.sensitive and self.confirm is not None:
            raise ValueError("confirm reads the digits back to the caller, and a sensitive "
                             "collect's digits are never spoken or recorded: drop confirm")
        if self.sensitive and self.speech:
            raise ValueError("a sensitive collect's digits never leave the call: they are "
                             "not sent to the recogniser either: drop speech")
        return self

    @field_validator("var")
    @classmethod
    def _var_name(cls, v: str) -> str:
        return _check_var(v)

    @field_validator("terminator")
    @classmethod
    def _terminator_key(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 1 or v not in "*#"):
            raise ValueError(f"terminator {v!r} must be '#' or '*' (or null for none)")
        return v

    def targets(self) -> Iterable[str]:
        return (self.next, self.on_failure)

    def prompt_names(self) -> Iterable[str]:
        yield from self.prompts
        yield from self.invalid_prompts
        yield from self.no_input_prompts
        if self.confirm is not None:
            yield from self.confirm.prompts
            yield from self.confirm.after_prompts
        yield from self.no_match_prompts
        if self.speech_confirm is not None:
            for prompts in self.speech_confirm.prompts.values():
                yield from prompts


SAY_KINDS = ("number", "digits", "money", "date", "time", "datetime", "queue_position",
             "wait_time")


class SayNode(_Node):
    """Speak a value (a literal or a {variable}) from recorded fragments."""

    type: Literal["say"]
    kind: Literal["number", "digits", "money", "date", "time", "datetime", "queue_position",
                  "wait_time"]
    value: str
    prompts: list[str] = []  # played before the value, e.g. [you_entered]
    next: str

    def targets(self) -> Iterable[str]:
        return (self.next,)

    def prompt_names(self) -> Iterable[str]:
        return self.prompts


class SetNode(_Node):
    """Set variables from templates: ``{name: "text with {other_var}"}``."""

    type: Literal["set"]
    vars: dict[str, str] = Field(min_length=1)
    next: str

    @field_validator("vars")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            _check_var(name)
        return v

    def targets(self) -> Iterable[str]:
        return (self.next,)


class BranchCase(_Sub):
    """One test on a variable; the first case that holds wins."""

    var: str
    equals: str | None = None
    one_of: list[str] | None = None
    prefix: str | None = None
    matches: str | None = None
    empty: bool | None = None
    goto: str

    @field_validator("matches")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        return _check_regex(v)

    @field_validator("var")
    @classmethod
    def _var_name(cls, v: str) -> str:
        return _check_var(v)


class BusinessHours(_Sub):
    """Opening hours in one time zone, e.g. ``{mon-fri: "09:00-18:00", sat: "10:00-14:00"}``;
    ``holidays`` are whole days closed."""

    timezone: str = "UTC"
    hours: dict[str, str] = Field(min_length=1)
    holidays: list[str] = []

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (use an IANA name)") from exc
        return v

    @field_validator("hours")
    @classmethod
    def _spans(cls, v: dict[str, str]) -> dict[str, str]:
        from ..hours import parse_day_spec, parse_span

        for days, span in v.items():
            parse_day_spec(days)
            for part in span.split(","):
                parse_span(part)
        return v

    @field_validator("holidays")
    @classmethod
    def _dates(cls, v: list[str]) -> list[str]:
        import datetime as dt

        for day in v:
            try:
                dt.date.fromisoformat(day)
            except ValueError as exc:
                raise ValueError(f"holiday {day!r} is not a date YYYY-MM-DD") from exc
        return v


class BranchNode(_Node):
    """Route on variables (the caller's number is ``caller``) and/or business hours."""

    type: Literal["branch"]
    cases: list[BranchCase] = []
    hours: BusinessHours | None = None
    open: str | None = None
    closed: str | None = None
    default: str | None = None

    def targets(self) -> Iterable[str]:
        yield from (c.goto for c in self.cases)
        for t in (self.open, self.closed, self.default):
            if t is not None:
                yield t


class LookupNode(_Node):
    """Ask a customer system over HTTP; put fields of its JSON answer into variables."""

    type: Literal["lookup"]
    url: str
    method: Literal["GET", "POST"] = "GET"
    body: dict[str, str] = {}  # POST: JSON object of templates
    timeout_ms: int = Field(default=3000, ge=100, le=30000)
    result: dict[str, str] = {}  # variable -> dotted path in the JSON answer
    next: str
    on_failure: str

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://", "{")):
            raise ValueError(f"url {v!r} must start with http:// or https:// (or a {{variable}})")
        return v

    def targets(self) -> Iterable[str]:
        return (self.next, self.on_failure)


class QueueCallbackOption(_Sub):
    """A queue node's ``callback:`` option: while waiting the caller may press ``key`` to
    be called back keeping their place (``ivr/flow/callback.py``). The prompts are names
    in the call's prompt set; the defaults are shipped in every set."""

    key: str = "1"
    number_var: str = "caller"  # the number read back first
    offer_prompts: list[str] = ["callback_offer"]  # after queueing and each announcement
    readback_prompts: list[str] = ["callback_number_is"]  # + the number's digits
    confirm_prompts: list[str] = ["callback_confirm"]  # 1 confirms, or key another + #
    taken_prompts: list[str] = ["callback_taken"]  # + the estimated wait
    goodbye_prompts: list[str] = ["callback_goodbye"]
    refused_prompts: list[str] = ["callback_refused"]  # the caller goes on waiting
    timeout_ms: int = Field(default=8000, ge=1000, le=60000)  # no key: back to waiting
    max_digits: int = Field(default=15, ge=3, le=20)

    @field_validator("key")
    @classmethod
    def _one_key(cls, v: str) -> str:
        if len(v) != 1 or v.upper() not in DTMF_KEYS:
            raise ValueError(f"callback key {v!r} is not one DTMF key ({DTMF_KEYS})")
        return v.upper()

    def prompt_names(self) -> Iterable[str]:
        for names in (self.offer_prompts, self.readback_prompts, self.confirm_prompts,
                      self.taken_prompts, self.goodbye_prompts, self.refused_prompts):
            yield from names


class QueueNode(_Node):
    """Hand the call to the ACD with a queue, skills and a priority; the caller waits with
    music on hold (``moh``, a prompt name), may leave with one of ``exit_keys``, talks to an
    agent, and goes on at ``after_agent`` once the agent hangs up (None: the IVR hangs up,
    end reason ``completed``)."""

    type: Literal["queue"]
    queue: str
    skills: list[str] = []
    priority: int = Field(default=0, ge=0, le=100)
    prompts: list[str] = []
    moh: str = Field(default="hold_music", min_length=1)
    exit_keys: dict[str, str] = {}  # a key the caller presses while waiting -> target
    after_agent: str | None = None
    on_unavailable: str  # no ACD, or the ACD sends the call on without a target
    callback: QueueCallbackOption | None = None  # "press 1 to be called back"

    @field_validator("exit_keys")
    @classmethod
    def _exit_keys_are_dtmf(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if len(key) != 1 or key.upper() not in DTMF_KEYS:
                raise ValueError(f"exit key {key!r} is not one DTMF key ({DTMF_KEYS})")
        return {k.upper(): t for k, t in v.items()}

    @model_validator(mode="after")
    def _callback_key_is_free(self) -> QueueNode:
        if self.callback is not None and self.callback.key in self.exit_keys:
            raise ValueError(f"callback key {self.callback.key!r} is also an exit key: "
                             "give one of them another key")
        return self

    def targets(self) -> Iterable[str]:
        yield self.on_unavailable
        yield from self.exit_keys.values()
        if self.after_agent:
            yield self.after_agent

    def prompt_names(self) -> Iterable[str]:
        yield from self.prompts
        yield self.moh
        if self.callback is not None:
            yield from self.callback.prompt_names()


class TransferNode(_Node):
    """Blind transfer (SIP REFER) to a SIP URI; the IVR leaves the call once it is accepted."""

    type: Literal["transfer"]
    to: str
    prompts: list[str] = []
    timeout_ms: int = Field(default=10000, ge=1000, le=60000)
    on_failure: str

    @field_validator("to")
    @classmethod
    def _sip(cls, v: str) -> str:
        if not v.startswith(("sip:", "sips:", "{")):
            raise ValueError(f"to {v!r} must be a sip: or sips: URI")
        return v

    def targets(self) -> Iterable[str]:
        return (self.on_failure,)

    def prompt_names(self) -> Iterable[str]:
        return self.prompts


class SurveyNode(_Node):
    """Ask for a score from 1 to 5 and record it."""

    type: Literal["survey"]
    prompts: list[str] = ["survey_question"]
    thanks_prompts: list[str] = ["survey_thanks"]
    question: str = "satisfaction"
    timeout_ms: int = Field(default=5000, ge=500, le=60000)
    max_retries: int = Field(default=1, ge=0, le=5)
    next: str

    def targets(self) -> Iterable[str]:
        return (self.next,)

    def prompt_names(self) -> Iterable[str]:
        yield from self.prompts
        yield from self.thanks_prompts


class LanguageNode(_Node):
    """From here on, prompts and ``say`` come from this language's prompt set."""

    type: Literal["language"]
    language: str
    next: str

    def targets(self) -> Iterable[str]:
        return (self.next,)


class RecordNode(_Node):
    """Record the caller (voicemail or a message) after an optional beep."""

    type: Literal["record"]
    prompts: list[str] = []
    beep: bool = True
    max_s: int = Field(default=120, ge=1, le=3600)
    silence_end_s: float = Field(default=4.0, ge=0, le=60)  # 0: no end on silence
    terminator: str | None = "#"
    review: bool = False  # "press 1 to keep, 2 to record again"
    review_prompts: list[str] = ["record_review"]
    var: str = "recording"
    next: str
    on_failure: str  # nothing was recorded (silence only, or the caller left)

    def targets(self) -> Iterable[str]:
        return (self.next, self.on_failure)

    def prompt_names(self) -> Iterable[str]:
        yield from self.prompts
        if self.beep:
            yield "beep"
        if self.review:
            yield from self.review_prompts


Node = Annotated[
    PlayNode | MenuNode | GotoNode | HangupNode | CollectNode | SayNode | SetNode | BranchNode
    | LookupNode | QueueNode | TransferNode | SurveyNode | LanguageNode | RecordNode,
    Field(discriminator="type"),
]


class Flow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    version: int = 1
    description: str = ""
    language: str = "en-US"
    vars: dict[str, str] = {}  # starting values, e.g. a customer system's base URL
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
        if parts and parts[0] in _NODE_MODELS:
            parts = parts[1:]
    field_name = ".".join(parts)
    return f"{field_name}: {msg}" if field_name else msg


def _source_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    if len(loc) >= 3 and loc[0] == "nodes" and loc[2] in _NODE_MODELS:
        return (*loc[:2], *loc[3:])
    return loc


_NODE_MODELS: dict[str, type[BaseModel]] = {
    "play": PlayNode, "menu": MenuNode, "goto": GotoNode, "hangup": HangupNode,
    "collect": CollectNode, "say": SayNode, "set": SetNode, "branch": BranchNode,
    "lookup": LookupNode, "queue": QueueNode, "transfer": TransferNode, "survey": SurveyNode,
    "language": LanguageNode, "record": RecordNode,
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
    elif (kind == "string_type" and len(loc) >= 2 and loc[-1] == "[key]"
          and ("choices" in loc or "exit_keys" in loc)):
        key = loc[-2]
        src = (*_source_loc(loc[:-2]), str(key))
        what = "choices" if "choices" in loc else "exit_keys"
        text = (f"{what}: key {key} must be quoted, e.g. \"{key}\": ... "
                "(unquoted, YAML reads it as a number)")
    return FlowIssue(name, smap.line_of(src), node, text)


def template_vars(template: str) -> set[str]:
    """The variables a ``{name}`` template refers to."""
    return set(_TEMPLATE_REF.findall(template))


def sensitive_vars(flow: Flow) -> frozenset[str]:
    """Variables that hold a sensitive collect's digits: its ``var``, and any ``set``
    variable whose template uses one of them (a copy is as secret as the original)."""
    found = {n.var for n in flow.nodes.values() if isinstance(n, CollectNode) and n.sensitive}
    grew = bool(found)
    while grew:
        grew = False
        for node in flow.nodes.values():
            if isinstance(node, SetNode):
                for var, template in node.vars.items():
                    if var not in found and template_vars(template) & found:
                        found.add(var)
                        grew = True
    return frozenset(found)


def check_sensitive(flow: Flow, smap: SourceMap) -> list[FlowIssue]:
    """A sensitive variable must never be spoken (``say``) nor sent as a SIP URI
    (``transfer``): both would put its digits in the call's record and logs."""
    secret = sensitive_vars(flow)
    issues: list[FlowIssue] = []
    if not secret:
        return issues
    for name, node in flow.nodes.items():
        used: set[str] = set()
        what = ""
        if isinstance(node, SayNode):
            used, what = template_vars(node.value) & secret, "say reads out"
        elif isinstance(node, TransferNode):
            used, what = template_vars(node.to) & secret, "transfer sends as a SIP URI"
        for var in sorted(used):
            issues.append(FlowIssue(
                smap.path, smap.line_of(("nodes", name)), name,
                f"{what} {{{var}}}, which holds a sensitive collect's digits "
                "(they are never spoken nor recorded)"))
    return issues


def check_graph(flow: Flow, smap: SourceMap) -> list[FlowIssue]:
    """Targets that do not exist, a missing start node, nodes no call can reach; sensitive
    variables used where they would be disclosed."""
    issues: list[FlowIssue] = check_sensitive(flow, smap)
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
    """Prompts of a one-language flow missing from its prompt set."""
    return check_flow_prompts(flow, smap, {set_name: available}, default=set_name)


def flow_languages(flow: Flow) -> list[str]:
    """The flow's own language, then every language a ``language`` node switches to."""
    out = [flow.language]
    for node in flow.nodes.values():
        if isinstance(node, LanguageNode) and node.language not in out:
            out.append(node.language)
    return out


def check_flow_prompts(flow: Flow, smap: SourceMap, sets: dict[str, set[str]],
                       default: str | None = None) -> list[FlowIssue]:
    """Every prompt a call can play must exist: ``set:name`` in that set, a plain name in
    each language the flow can be speaking (its own and any a ``language`` node selects)."""
    issues = []
    languages = [default] if default is not None else flow_languages(flow)
    for lang in languages:
        if lang not in sets:
            issues.append(FlowIssue(smap.path, smap.line_of(("language",)), None,
                                    f"language {lang!r} has no prompt set"))
    for name, node in flow.nodes.items():
        for prompt in node.prompt_names():
            if ":" in prompt:
                set_name, bare = prompt.split(":", 1)
                wanted = [(set_name, bare)]
            else:
                wanted = [(lang, prompt) for lang in languages if lang in sets]
            for set_name, bare in wanted:
                if set_name not in sets:
                    msg = f"prompt {prompt!r}: there is no prompt set {set_name!r}"
                elif bare not in sets[set_name]:
                    msg = f"prompt {bare!r} is not in prompt set {set_name!r}"
                else:
                    continue
                issues.append(FlowIssue(smap.path, smap.line_of(("nodes", name)), name, msg))
    return issues


def check_flow_speech(flow: Flow, smap: SourceMap, model_languages: set[str] | None = None,
                      unknown_words: Callable[[list[str], str], list[str]] | None = None,
                      ) -> list[FlowIssue]:
    """Speech menus: phrases only in languages the flow speaks, a recogniser model for each
    (when ``model_languages`` is given), every phrase word in its dictionary (when
    ``unknown_words`` is given), confirmation prompts only for spoken targets."""
    return [FlowIssue(smap.path, line, node, message) for line, node, message in
            check_speech(flow.nodes, smap, flow_languages(flow), model_languages,
                         unknown_words)]


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
    issues = check_graph(flow, smap) + check_flow_speech(flow, smap)
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
    "check_flow_speech",
    "check_graph",
    "check_prompts",
    "load_flow",
    "load_yaml",
    "parse_flow",
]
