"""A yes/no question, the pure parts: ``collect`` with ``kind: yes_no``.

::

    about_order:
      type: collect
      kind: yes_no                     # the answer, "yes" or "no", goes into var
      prompts: [about_last_order]      # "Is this about your last order? Say yes or press 1 ..."
      var: about_order
      speech: {en-US: yes_no}          # spoken yes/no (and synonyms) besides the keys
      yes_key: "1"
      no_key: "2"
      confidence: {confirm_below: 0.5, reject_below: 0.05}
      speech_confirm: {prompts: {"yes": [you_said_yes]}}   # optional: "you said yes, right?"
      no_match_prompts: [didnt_catch]
      next: route_order                # a branch on {about_order}
      on_failure: agent

Which key or utterance means what, how sure the recogniser must be, and which digit-collect
settings a yes/no question refuses (and the other way round) live here; the interpreter
(:mod:`ivr.flow.interpreter`) only asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from .speech import NO_PHRASES, YES_PHRASES, Confidence

Answer = Literal["yes", "no"]
DecisionKind = Literal["accept", "confirm", "no_match"]
YES_NO_PHRASES = (*YES_PHRASES, *NO_PHRASES)
# a spoken yes/no is one short word or two: a shorter pause ends it than a digit string
END_SILENCE_MS = 800
MAX_UTTERANCE_MS = 5000
# set on a yes/no question, these make no sense (and the other way round)
DIGIT_ONLY = ("min_digits", "max_digits", "terminator", "inter_digit_timeout_ms",
              "validate_digits", "confirm", "sensitive")
YES_NO_ONLY = ("yes_key", "no_key", "confidence", "speech_confirm", "no_match_prompts")
_FIELD_NAMES = {"validate_digits": "validate"}


def spoken_answer(text: str) -> Answer | None:
    """"yeah" -> "yes", "nope" -> "no"; anything else None."""
    said = " ".join(text.lower().split()).strip(".,!?")
    if said in YES_PHRASES:
        return "yes"
    if said in NO_PHRASES:
        return "no"
    return None


def key_answer(digit: str, yes_key: str, no_key: str) -> Answer | None:
    if digit == yes_key:
        return "yes"
    if digit == no_key:
        return "no"
    return None


def decide(answer: Answer | None, confidence: float, thresholds: Confidence,
           confirm_prompts: Iterable[str] | None) -> DecisionKind:
    """As a menu decides a spoken choice: below ``reject_below`` (or not a yes/no) a no-match;
    below ``confirm_below`` confirmed if there is a confirmation prompt for that answer;
    otherwise taken."""
    if answer is None or confidence < thresholds.reject_below:
        return "no_match"
    if (confidence < thresholds.confirm_below and confirm_prompts is not None
            and answer in confirm_prompts):
        return "confirm"
    return "accept"


def misplaced_fields(kind: str, given: Iterable[str]) -> list[str]:
    """The settings given on a collect that do not apply to its ``kind``, by their YAML
    names."""
    wrong = DIGIT_ONLY if kind == "yes_no" else YES_NO_ONLY
    return [_FIELD_NAMES.get(f, f) for f in wrong if f in set(given)]


def check_fields(kind: str, given: Iterable[str], speech: dict[str, str], yes_key: str,
                 no_key: str, confirm_answers: Iterable[str]) -> None:
    """Raise ValueError naming what is wrong with a collect's yes/no settings."""
    misplaced = misplaced_fields(kind, given)
    if misplaced:
        other = "a digits collect" if kind == "yes_no" else "a yes/no collect (kind: yes_no)"
        raise ValueError(f"{', '.join(misplaced)}: only for {other}, not kind {kind}")
    for language, spoken in speech.items():
        if spoken != kind:
            raise ValueError(f"speech {language}: {spoken} in a collect of kind {kind} "
                             f"(write {{{language}: {kind}}})")
    if kind != "yes_no":
        return
    if yes_key == no_key:
        raise ValueError(f"yes_key and no_key are both {yes_key!r}: give two keys")
    for answer in confirm_answers:
        if answer not in ("yes", "no"):
            raise ValueError(f"speech_confirm has prompts for {answer!r}: a yes/no question's "
                             "answers are 'yes' and 'no'")
