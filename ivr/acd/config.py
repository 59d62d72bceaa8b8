"""The ACD file (``paths.acd``, shipped ``ivr/acd.yaml``): queues, agents, the call-reason
tree. Validated at the door; errors name the file, the line and the field
(:class:`AcdConfigError`). ``docs/acd.md`` is the reference. Agents' passwords are not here:
``ivr agent add`` keeps their digest hashes in the store.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..hours import parse_day_spec, parse_span
from ..yamlsrc import SourceMap, YamlError, load_yaml, parse_yaml
from .dialplan import compile_pattern
from .strategies import STRATEGIES


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WideningRule(_Model):
    """After ``after_s`` of waiting, agents down to ``min_proficiency`` may take the call."""

    after_s: float = Field(ge=0, le=86400)
    min_proficiency: int = Field(ge=1, le=10)


class SkillsConfig(_Model):
    min_proficiency: int = Field(default=1, ge=1, le=10)
    widen: list[WideningRule] = []

    @model_validator(mode="after")
    def _widening_widens(self) -> SkillsConfig:
        last_s, last_p = -1.0, self.min_proficiency
        for rule in self.widen:
            if rule.after_s <= last_s:
                raise ValueError("widen: rules go in order of after_s, each later than the last")
            if rule.min_proficiency > last_p:
                raise ValueError(f"widen: after {rule.after_s:g}s min_proficiency "
                                 f"{rule.min_proficiency} narrows (was {last_p}); rules only "
                                 "lower it")
            last_s, last_p = rule.after_s, rule.min_proficiency
        return self

    def min_at(self, wait_s: float) -> int:
        """The proficiency an agent needs for a call that has waited ``wait_s``."""
        current = self.min_proficiency
        for rule in self.widen:
            if wait_s >= rule.after_s:
                current = rule.min_proficiency
        return current


class CallbackConfig(_Model):
    """A queue's callbacks (``callback:`` in the ACD file; docs/acd.md "Callbacks")."""

    retries: int = Field(default=2, ge=0, le=20)  # attempts after the first
    retry_s: float = Field(default=600, gt=0, le=86400)  # between attempts
    no_answer_s: float = Field(default=25, gt=0, le=300)  # ringing longer: not reached
    hours: dict[str, str] = {}  # calling hours as the flow's branch node; {}: any time
    timezone: str = "UTC"
    holidays: list[str] = []  # ISO dates without calling hours
    dial_uri: str = ""  # the customer's URI, {number} replaced; "": sip:{number}@agent domain
    # voicemail suspected (ivr/voicemail_detect.py; 0 turns each off): answered sooner than
    # this after ringing started, or the first voicemail_greeting_s continuous speech (off
    # by default: it holds every answered customer that long before the bridge)
    voicemail_answer_s: float = Field(default=1.0, ge=0, le=10)
    voicemail_greeting_s: float = Field(default=0.0, ge=0, le=10)

    @field_validator("dial_uri")
    @classmethod
    def _dial_uri(cls, v: str) -> str:
        if v and (not v.startswith(("sip:", "sips:")) or "{number}" not in v):
            raise ValueError(f"dial_uri {v!r} must be a sip: URI with {{number}} in it, "
                             "e.g. sip:{number}@gateway.example.com")
        return v

    @model_validator(mode="after")
    def _hours_parse(self) -> CallbackConfig:
        for spec, spans in self.hours.items():
            parse_day_spec(spec)
            for span in spans.split(","):
                parse_span(span)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone {self.timezone!r} is not a known time zone "
                             "(e.g. Europe/Paris, UTC)") from exc
        for day in self.holidays:
            try:
                dt.date.fromisoformat(day)
            except ValueError as exc:
                raise ValueError(f"holiday {day!r} is not a date like 2026-12-25") from exc
        return self


class QueueConfig(_Model):
    strategy: str = "longest-idle"
    ring_timeout_s: float = Field(default=15, gt=0, le=300)
    wrapup_s: float = Field(default=30, ge=0, le=3600)
    wrapup_ends_on_code: bool = True  # a disposition code ends after-call work early
    autopause_after: int = Field(default=1, ge=0, le=100)  # misses in a row; 0: never
    announce_every_s: float = Field(default=30, ge=0, le=3600)  # 0: no announcements
    max_wait_s: float | None = Field(default=None, gt=0, le=86400)
    max_size: int | None = Field(default=None, ge=1, le=100000)
    when_no_agents: Literal["wait", "overflow"] = "wait"
    overflow_to: str | None = None  # a flow target; None: the queue node's on_unavailable
    service_level_s: float = Field(default=20, gt=0, le=3600)
    short_abandon_s: float = Field(default=20, ge=0, le=3600)
    record: bool = False
    skills: SkillsConfig = SkillsConfig()
    expected_handle_s: float = Field(default=180, gt=0, le=86400)  # estimate until measured
    # the agent's guided script, by language ("en", "de-DE"): the standard phrases in order
    script: dict[str, list[str]] = {}
    callback: CallbackConfig | None = None  # None: this queue takes no callbacks
    abandoned_callback: bool = False  # an abandoned caller's number is called back
    abandoned_callback_within_s: float = Field(default=10800, gt=0, le=86400)  # same day too
    own_agent_s: float = Field(default=0, ge=0, le=3600)  # 0: no own agent

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        if v not in STRATEGIES:
            close = difflib.get_close_matches(v, list(STRATEGIES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown strategy {v!r}{hint}; one of {', '.join(STRATEGIES)}")
        return v


class AgentConfig(_Model):
    name: str
    queues: dict[str, int] = Field(min_length=1)
    skills: dict[str, int] = {}

    @model_validator(mode="before")
    @classmethod
    def _no_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("password" in data or "ha1" in data):
            raise ValueError("passwords are not kept in the ACD file: set them with "
                             "`ivr agent add ID --password ...` (stored as a digest hash)")
        return data

    @field_validator("queues", "skills")
    @classmethod
    def _proficiency(cls, v: dict[str, int]) -> dict[str, int]:
        for name, level in v.items():
            if not 1 <= level <= 10:
                raise ValueError(f"{name}: proficiency {level} is not between 1 and 10")
        return v


class ReasonNode(_Model):
    label: str
    children: dict[str, ReasonNode | str] = {}


class SupervisionConfig(_Model):
    supervisors: list[str] = []  # agent ids who may supervise calls over the agent API
    tell_agent_on_listen: bool = False  # whisper and barge are always told


class AcdConfig(_Model):
    queues: dict[str, QueueConfig] = Field(min_length=1)
    agents: dict[str, AgentConfig] = {}
    not_ready_reasons: list[str] = ["break", "lunch", "meeting", "training", "no-answer"]
    call_reasons: dict[str, ReasonNode | str] = {}
    dialplan: list[str] = []  # outside numbers agents may transfer to (dialplan.py)
    supervision: SupervisionConfig = SupervisionConfig()

    @field_validator("supervision", mode="before")
    @classmethod
    def _supervisor_ids(cls, v: Any) -> Any:
        if isinstance(v, dict) and isinstance(v.get("supervisors"), list):
            return {**v, "supervisors": [str(a) for a in v["supervisors"]]}  # 1003: an int
        return v

    @field_validator("dialplan")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for pattern in v:
            compile_pattern(pattern)  # DialPlanError (a ValueError) names the pattern
        return v
    # phrases the softphone flags in an agent's note
    banned_phrases: list[str] = ["it's company policy", "you're wrong"]

    def script(self, queue: str, language: str) -> tuple[str, list[str]]:
        """(language used, steps) of ``queue``'s script in ``language``: exact, then the
        same language without region (``en-US`` -> ``en``), then the first one written."""
        scripts = self.queues[queue].script
        base = language.split("-")[0].lower()
        for lang in (language, base, *[k for k in scripts if k.split("-")[0].lower() == base]):
            if lang in scripts:
                return lang, list(scripts[lang])
        first = next(iter(scripts), "")
        return first, list(scripts.get(first, []))

    @field_validator("agents", "queues", mode="before")
    @classmethod
    def _string_keys(cls, v: Any) -> Any:
        # agent ids are often numbers (1001): YAML reads them as ints
        return {str(k): item for k, item in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _agents_name_queues(self) -> AcdConfig:
        for agent_id, agent in self.agents.items():
            for queue in agent.queues:
                if queue not in self.queues:
                    raise ValueError(f"agents.{agent_id}.queues: no queue {queue!r} "
                                     f"(queues: {', '.join(self.queues)})")
        return self

    def reason_codes(self) -> dict[str, str]:
        """Every disposition code (``billing/refund``) with its label."""
        out: dict[str, str] = {}

        def walk(prefix: str, tree: dict[str, ReasonNode | str]) -> None:
            for key, node in tree.items():
                code = f"{prefix}{key}"
                if isinstance(node, str):
                    out[code] = node
                else:
                    out[code] = node.label
                    walk(code + "/", node.children)

        walk("", self.call_reasons)
        return out

    def search_reasons(self, text: str) -> list[tuple[str, str]]:
        """Codes whose code or label contains ``text`` (any case), in tree order."""
        needle = text.lower()
        return [(c, lbl) for c, lbl in self.reason_codes().items()
                if needle in c.lower() or needle in lbl.lower()]


@dataclass(frozen=True)
class AcdIssue:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class AcdConfigError(Exception):
    """An ACD file that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[AcdIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _issues(name: str, smap: SourceMap, exc: ValidationError) -> Iterator[AcdIssue]:
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (
            p in ("ReasonNode", "str") or p.startswith("function-"))))
        field = ".".join(str(p) for p in loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
            parents: dict[tuple[int, str | int], type[BaseModel]] = {
                (1, loc[0]): AcdConfig, (3, "queues"): QueueConfig, (3, "agents"): AgentConfig}
            parent = parents.get((len(loc), loc[0]))
            if parent is not None:
                close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
                if close:
                    msg += f" (did you mean {close[0]!r}?)"
        yield AcdIssue(name, smap.line_of(loc), f"{field}: {msg}" if field else msg)


def parse_acd(text: str, name: str = "<acd>") -> AcdConfig:
    """Validate an ACD file's text; raises :class:`AcdConfigError` listing every problem."""
    try:
        data, smap = parse_yaml(text, name)
    except YamlError as exc:
        raise AcdConfigError([AcdIssue(name, None, str(exc).removeprefix(f"{name}: "))]) from exc
    if not isinstance(data, dict):
        raise AcdConfigError([AcdIssue(name, 1, "an ACD file is a mapping with queues "
                                                "(and agents, call_reasons)")])
    try:
        return AcdConfig.model_validate(data)
    except ValidationError as exc:
        raise AcdConfigError(list(_issues(name, smap, exc))) from exc


def load_acd(path: Path) -> AcdConfig:
    try:
        load_yaml(path)  # readable, UTF-8, YAML: errors name the file
        text = path.read_text(encoding="utf-8")
    except YamlError as exc:
        raise AcdConfigError([AcdIssue(str(path), None,
                                       str(exc).removeprefix(f"{path}: "))]) from exc
    return parse_acd(text, str(path))
