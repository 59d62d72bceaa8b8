"""Scenario files: one scripted call in YAML, validated with errors that name file and line.

::

    name: english support
    dial: sip:ivr@127.0.0.1:5060
    dtmf: rfc4733                 # default for press steps: rfc4733 | sip-info | inband
    steps:
      - expect_prompt: {set: en-US, name: language_menu, within_ms: 3000}
      - press: "1"
      - expect_prompt: {text: "press two for support", min_confidence: 0.6}
      - press: {digits: "2", method: sip-info}
      - expect_hangup: {within_s: 30, cause: 200}
      - check: {cdr.end_reason: normal}

Each step is a mapping with one key, its kind. ``docs/harness.md`` is the reference.
:func:`load_scenario` raises :class:`ScenarioError` listing every problem as
``file:line: step N (kind): message``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..yamlsrc import SourceMap, YamlError, load_yaml

DTMF_KEYS = "0123456789*#ABCD"
DtmfMode = Literal["rfc4733", "sip-info", "inband"]


class ScenarioError(Exception):
    """A scenario that cannot run; the message lists every problem with file and line."""


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectPrompt(_Step):
    """Hear a prompt, whole, starting within ``within_ms``: by ``set`` and ``name``, or by
    ``text`` (matched against the prompt sets' texts, then by audio)."""

    set: str | None = None
    name: str | None = None
    text: str | None = None
    min_confidence: float = Field(0.6, gt=0, le=1)
    within_ms: int = Field(5000, gt=0)

    @model_validator(mode="after")
    def _one_way(self) -> ExpectPrompt:
        if self.text is None and self.name is None:
            raise ValueError("give the prompt's name (and set) or its text")
        if self.text is not None and (self.name is not None or self.set is not None):
            raise ValueError("give either text or set/name, not both")
        return self


class Press(_Step):
    digits: str = Field(min_length=1)
    method: DtmfMode | None = None  # default: the scenario's dtmf
    gap_ms: int = Field(200, ge=0)  # between digits

    @model_validator(mode="after")
    def _keys(self) -> Press:
        bad = sorted({c for c in self.digits.upper() if c not in DTMF_KEYS})
        if bad:
            raise ValueError(f"not DTMF keys: {''.join(bad)!r} (keys are {DTMF_KEYS})")
        return self


class Say(_Step):
    text: str = Field(min_length=1)
    voice: str = "en-us"  # espeak-ng voice


class Play(_Step):
    wav: str = Field(min_length=1)


class ExpectSilence(_Step):
    ms: int = Field(gt=0)


class ExpectTone(_Step):
    hz: float = Field(gt=100, lt=3900)
    ms: int = Field(300, gt=0)
    within_ms: int = Field(5000, gt=0)


class ExpectMusic(_Step):
    """Sustained sound that is no known prompt (hold music) for ``ms``."""

    ms: int = Field(2000, gt=0)
    within_ms: int = Field(5000, gt=0)


class Wait(_Step):
    ms: int = Field(gt=0)


class ExpectHangup(_Step):
    within_s: float = Field(30, gt=0)
    cause: int | None = Field(None, ge=200, le=699)  # SIP status of the far end's ending


class Hangup(_Step):
    pass


class Check(_Step):
    """Fields of the stack's record of this call: ``cdr.<column>`` (``ivr call``'s fields),
    ``queue`` (a queue the call reached), ``event`` (an event kind it logged)."""

    fields: dict[str, str | int | float | bool | None]

    @model_validator(mode="after")
    def _known(self) -> Check:
        for key in self.fields:
            if not (key.startswith("cdr.") and len(key) > 4) and key not in ("queue", "event"):
                raise ValueError(f"{key!r}: a check is cdr.<field>, queue or event")
        if not self.fields:
            raise ValueError("a check needs at least one field")
        return self


Step = (ExpectPrompt | Press | Say | Play | ExpectSilence | ExpectTone | ExpectMusic | Wait
        | ExpectHangup | Hangup | Check)

STEP_KINDS: dict[str, type[_Step]] = {
    "expect_prompt": ExpectPrompt, "press": Press, "say": Say, "play": Play,
    "expect_silence": ExpectSilence, "expect_tone": ExpectTone, "expect_music": ExpectMusic,
    "wait": Wait, "expect_hangup": ExpectHangup, "hangup": Hangup, "check": Check,
}
# The one field a step may be given as a plain value: `press: "1"`, `say: "hello"`.
_SHORT = {"press": "digits", "say": "text", "play": "wav", "expect_silence": "ms",
          "wait": "ms"}


class ScenarioHead(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    description: str = ""
    dial: str = Field(pattern=r"^sips?:")
    dtmf: DtmfMode = "rfc4733"
    headers: dict[str, str] = {}
    steps: list[Any] = Field(min_length=1)


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    description: str
    dial: str
    dtmf: DtmfMode
    headers: dict[str, str]
    steps: list[tuple[str, Any]]  # (kind, step model)
    path: str
    lines: list[int]  # the line of each step

    def step_label(self, i: int) -> str:
        return f"step {i + 1} ({self.steps[i][0]}, line {self.lines[i]})"


def _where(smap: SourceMap, loc: Iterable[str | int]) -> str:
    line = smap.line_of(tuple(loc))
    return f"{smap.path}:{line}" if line else smap.path


def _message(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    field = ".".join(str(x) for x in err["loc"])
    return f"{field}: {msg}" if field else msg


def parse_scenario(data: Any, smap: SourceMap, base_dir: Path) -> Scenario:
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ScenarioError(f"{smap.path}: a scenario is a mapping (name, dial, steps)")
    try:
        head = ScenarioHead.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(f"{_where(smap, err['loc'])}: {_message(err)}")
        raise ScenarioError("\n".join(problems)) from None
    steps: list[tuple[str, Any]] = []
    lines: list[int] = []
    for i, item in enumerate(head.steps):
        loc: tuple[str | int, ...] = ("steps", i)
        where = _where(smap, loc)
        if not isinstance(item, dict) or len(item) != 1:
            problems.append(f"{where}: step {i + 1}: a step is a mapping with one key, its kind "
                            f"({', '.join(STEP_KINDS)})")
            continue
        kind, value = next(iter(item.items()))
        if kind not in STEP_KINDS:
            problems.append(f"{where}: step {i + 1}: unknown step {kind!r} "
                            f"(steps are {', '.join(STEP_KINDS)})")
            continue
        if kind == "check" and isinstance(value, dict):
            value = {"fields": value}
        elif kind in _SHORT and not isinstance(value, dict):
            value = {_SHORT[kind]: value}
        elif value is None:
            value = {}
        if kind == "press" and isinstance(value.get("digits"), int):
            value = {**value, "digits": str(value["digits"])}
        try:
            step = STEP_KINDS[kind].model_validate(value)
        except ValidationError as exc:
            for err in exc.errors():
                sub = [x for x in err["loc"] if x != "fields"]
                problems.append(f"{_where(smap, (*loc, kind, *sub))}: step {i + 1} ({kind}): "
                                f"{_message({**err, 'loc': sub})}")
            continue
        if isinstance(step, Play) and not (base_dir / step.wav).is_file():
            problems.append(f"{where}: step {i + 1} (play): no such file {step.wav!r} "
                            f"(relative to {base_dir})")
            continue
        steps.append((kind, step))
        lines.append(smap.line_of(loc) or 0)
    if problems:
        raise ScenarioError("\n".join(problems))
    return Scenario(name=head.name, description=head.description, dial=head.dial,
                    dtmf=head.dtmf, headers=head.headers, steps=steps, path=smap.path,
                    lines=lines)


def load_scenario(path: Path) -> Scenario:
    try:
        data, smap = load_yaml(path)
    except YamlError as exc:
        raise ScenarioError(str(exc)) from exc
    return parse_scenario(data, smap, path.parent)


def scenario_files(target: Path) -> list[Path]:
    """The scenario files a path names: the file itself, or a directory's *.yaml (sorted)."""
    if target.is_dir():
        files = sorted([*target.glob("*.yaml"), *target.glob("*.yml")])
        if not files:
            raise ScenarioError(f"{target}: no scenario files (*.yaml) in this directory")
        return files
    if not target.is_file():
        raise ScenarioError(f"{target}: no such file or directory")
    return [target]


def check_prompts(scenario: Scenario, known: set[str], sets: set[str]) -> list[str]:
    """Problems with the prompts a scenario names (``known``: "set:name" keys)."""
    out = []
    for i, (kind, step) in enumerate(scenario.steps):
        if isinstance(step, ExpectPrompt) and step.name is not None:
            if step.set is not None and step.set not in sets:
                out.append(f"{scenario.path}:{scenario.lines[i]}: step {i + 1} ({kind}): no "
                           f"prompt set {step.set!r} (sets: {', '.join(sorted(sets))})")
            elif step.set is not None and f"{step.set}:{step.name}" not in known:
                out.append(f"{scenario.path}:{scenario.lines[i]}: step {i + 1} ({kind}): set "
                           f"{step.set!r} has no prompt {step.name!r}")
            elif step.set is None and not any(k.endswith(f":{step.name}") for k in known):
                out.append(f"{scenario.path}:{scenario.lines[i]}: step {i + 1} ({kind}): no "
                           f"set has a prompt {step.name!r}")
    return out
