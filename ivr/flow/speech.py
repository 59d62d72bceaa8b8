"""Speech in menus, the flow language's side: a menu's phrases per language and target,
barge-in by voice, confidence thresholds, the "did you say ...?" confirmation, and the
checks ``ivr flow check`` makes against the recogniser (unknown words, missing models).

::

    main_menu:
      type: menu
      prompts: [main_menu]
      choices: {"1": sales, "2": support}          # DTMF keeps working in the same menu
      speech:
        en-US:                                     # phrases per language; zh-CN: DTMF only
          sales: ["sales", "buy something"]
          support: ["support", "technical support", "help"]
      barge_in: both                               # speech | dtmf | both | none
      confidence: {confirm_below: 0.5, reject_below: 0.05}
      speech_confirm: {prompts: {sales: [did_you_say_sales]}}
      no_match_prompts: [sorry_didnt_catch]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..yamlsrc import SourceMap

BargeIn = Literal["speech", "dtmf", "both", "none"]
YES_PHRASES = ("yes", "yeah", "yes please", "correct", "right")
# collect by voice, digits (en-US): "four one five five", "oh" for zero as people say it
DIGIT_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
               "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
NO_PHRASES = ("no", "nope", "no thanks", "wrong")
VOICE_COLLECT_PHRASES = {"digits": tuple(DIGIT_WORDS), "yes_no": (*YES_PHRASES, *NO_PHRASES)}


def spoken_digits(text: str) -> str:
    """"four one five five" -> "4155"; words that are not digits are skipped."""
    return "".join(DIGIT_WORDS[w] for w in text.split() if w in DIGIT_WORDS)


class _Sub(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Confidence(_Sub):
    """At or above ``confirm_below``: taken. From ``reject_below`` up to it: confirmed
    ("did you say billing?") if the menu has ``speech_confirm``, else taken. Below
    ``reject_below``: a no-match (counted as an invalid choice)."""

    confirm_below: float = Field(default=0.5, ge=0.0, le=1.0)
    reject_below: float = Field(default=0.05, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Confidence:
        if self.reject_below > self.confirm_below:
            raise ValueError(f"reject_below ({self.reject_below}) is above confirm_below "
                             f"({self.confirm_below}): nothing could be accepted unconfirmed")
        return self


class SpeechConfirm(_Sub):
    """"Did you say billing?" then yes/no spoken, or ``yes_key`` / ``no_key``."""

    prompts: dict[str, list[str]] = Field(min_length=1)  # target node -> its question
    yes_key: str = "1"
    no_key: str = "2"
    timeout_ms: int = Field(default=5000, ge=500, le=60000)


def normalise_barge_in(value: object) -> object:
    """``true``/``false`` as before speech (keys barge in or not) stay accepted."""
    if value is True:
        return "both"
    if value is False:
        return "none"
    return value


class MenuSpeechFields(BaseModel):
    """Mixed into :class:`ivr.flow.model.MenuNode`: its speech fields."""

    speech: dict[str, dict[str, list[str]]] = {}  # language -> target node -> phrases
    barge_in: BargeIn = "both"
    confidence: Confidence = Confidence()
    speech_confirm: SpeechConfirm | None = None
    no_match_prompts: list[str] = []  # default: invalid_prompts
    end_silence_ms: int = Field(default=800, ge=200, le=5000)
    max_utterance_ms: int = Field(default=10000, ge=1000, le=60000)

    @field_validator("barge_in", mode="before")
    @classmethod
    def _bool_barge_in(cls, v: object) -> object:
        return normalise_barge_in(v)

    @field_validator("speech")
    @classmethod
    def _phrases(cls, v: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
        for language, targets in v.items():
            for target, phrases in targets.items():
                if not phrases or not all(p.strip() for p in phrases):
                    raise ValueError(f"speech {language} {target}: give one or more "
                                     "non-empty phrases")
        return v

    def speech_targets(self) -> Iterable[str]:
        for targets in self.speech.values():
            yield from targets

    def speech_prompt_names(self) -> Iterable[str]:
        yield from self.no_match_prompts
        if self.speech_confirm is not None:
            for prompts in self.speech_confirm.prompts.values():
                yield from prompts

    def phrases_for(self, language: str) -> dict[str, str]:
        """Normalised phrase -> target node, for the call's language (empty: DTMF only)."""
        out: dict[str, str] = {}
        for target, phrases in self.speech.get(language, {}).items():
            for phrase in phrases:
                out[" ".join(phrase.lower().split()).strip(".,!?")] = target
        return out

    def listens_during_prompt(self) -> bool:
        return self.barge_in in ("speech", "both")

    def keys_during_prompt(self) -> bool:
        return self.barge_in in ("dtmf", "both")


def flow_listens(nodes: Iterable[object]) -> bool:
    """Whether any node listens to the caller: a speech menu or a collect by voice (digits,
    yes/no). Then the stack needs the speech service and ``ivr flow check`` the recogniser."""
    return any(getattr(n, "speech", None) for n in nodes)


def check_speech(
    nodes: Mapping[str, object],
    smap: SourceMap,
    flow_languages: list[str],
    model_languages: set[str] | None,
    unknown_words: Callable[[list[str], str], list[str]] | None,
) -> list[tuple[int | None, str, str]]:
    """Problems with the flow's speech menus, as (line, node, message). ``model_languages``
    None: the recogniser was not consulted (only the flow's own consistency is checked)."""
    issues: list[tuple[int | None, str, str]] = []
    for name, node in nodes.items():
        collect_speech = getattr(node, "type", "") == "collect" and getattr(node, "speech", {})
        if collect_speech:
            line = smap.line_of(("nodes", name, "speech"))
            for language, kind in collect_speech.items():
                phrases = list(VOICE_COLLECT_PHRASES[kind])
                if language != "en-US":
                    words = "digit words" if kind == "digits" else "yes/no words"
                    issues.append((line, name, f"collect by voice ({kind}) is in en-US only "
                                   f"({words} of other languages are not built in), "
                                   f"not {language}"))
                elif language not in flow_languages:
                    issues.append((line, name, f"speech in {language}, a language this "
                                   f"flow never speaks ({', '.join(flow_languages)})"))
                elif model_languages is not None and language not in model_languages:
                    issues.append((line, name, f"collect by voice in {language}, but no "
                                   f"recogniser model for {language} is configured "
                                   "(speech.models)"))
                elif unknown_words is not None:
                    for word in unknown_words(phrases, language):
                        issues.append((line, name, f"{'digit' if kind == 'digits' else 'yes/no'} "
                                       f"word {word!r} ({language}) is not in the "
                                       "recogniser's dictionary"))
            continue
        if not isinstance(node, MenuSpeechFields) or not node.speech:
            continue
        line = smap.line_of(("nodes", name, "speech"))
        for language, targets in node.speech.items():
            if language not in flow_languages:
                issues.append((line, name, f"speech phrases in {language}, a language this "
                               f"flow never speaks ({', '.join(flow_languages)})"))
                continue
            if model_languages is not None and language not in model_languages:
                hint = (" (Mandarin has no recogniser model in any registry: its menus stay "
                        "DTMF unless a Vosk Mandarin model is configured)"
                        if language.startswith("zh") else "")
                issues.append((line, name, f"a speech menu in {language}, but no recogniser "
                               f"model for {language} is configured (speech.models){hint}"))
                continue
            if unknown_words is not None:
                phrases = [p for ps in targets.values() for p in ps]
                if node.speech_confirm is not None:
                    phrases += [*YES_PHRASES, *NO_PHRASES]
                for word in unknown_words(phrases, language):
                    issues.append((line, name, f"speech phrase word {word!r} ({language}) "
                                   "is not in the recogniser's dictionary"))
        if node.speech_confirm is not None:
            known = set(node.speech_targets())
            for target in node.speech_confirm.prompts:
                if target not in known:
                    issues.append((smap.line_of(("nodes", name, "speech_confirm")), name,
                                   f"speech_confirm has prompts for {target!r}, which no "
                                   "speech phrase leads to"))
    return issues
