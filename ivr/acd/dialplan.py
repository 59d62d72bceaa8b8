"""The dial plan: which outside numbers an agent may transfer a caller to. An allow-list of
patterns in the ACD file (``dialplan:``); any other number is refused with the reason.

A pattern is matched against the whole number (spaces, dashes, dots and brackets in the
number are ignored; a leading ``+`` must match a ``+``)::

    0-9 +   that character
    X       any digit           N   2-9         Z   1-9
    [1-5]   a digit in a set or range ([13579], [0-36-9])
    .       (last only) one or more further digits

    "+4930XXXXXXX"   Berlin numbers with 7 digits after the area code
    "1800NXXXXXX"    toll-free
    "+44."           any UK number
"""

from __future__ import annotations

import re

_CLASSES = {"X": "[0-9]", "N": "[2-9]", "Z": "[1-9]"}
_SEPARATORS = re.compile(r"[\s\-.()/]")
_NUMBER = re.compile(r"\+?[0-9]+")


class DialPlanError(ValueError):
    """A pattern that cannot be read; the message names the pattern and the place."""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    if not pattern:
        raise DialPlanError("an empty dial plan pattern matches nothing")
    while i < len(pattern):
        c = pattern[i]
        if c.isdigit():
            out.append(c)
        elif c == "+" and i == 0:
            out.append(r"\+")
        elif c.upper() in _CLASSES:
            out.append(_CLASSES[c.upper()])
        elif c == "[":
            end = pattern.find("]", i)
            body = pattern[i + 1:end] if end > i else ""
            if end < 0 or not re.fullmatch(r"(?:[0-9](?:-[0-9])?)+", body):
                raise DialPlanError(f"dial plan pattern {pattern!r}: a set at position "
                                    f"{i + 1} is not like [1-5] or [13579]")
            out.append(f"[{body}]")
            i = end
        elif c == "." and i == len(pattern) - 1 and i > 0:
            out.append("[0-9]+")
        else:
            raise DialPlanError(f"dial plan pattern {pattern!r}: {c!r} at position {i + 1} "
                                "is not a digit, +, X, N, Z, [set] or a final '.'")
        i += 1
    return re.compile("".join(out))


def normalise(number: str) -> str:
    """The number without separators; raises ValueError when it is not a phone number."""
    clean = _SEPARATORS.sub("", number)
    if not _NUMBER.fullmatch(clean):
        raise ValueError(f"{number!r} is not a phone number (digits, optionally a leading +)")
    return clean


class DialPlan:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns = list(patterns)
        self._compiled = [compile_pattern(p) for p in patterns]

    def check(self, number: str) -> str:
        """The normalised number if allowed; else ValueError saying why."""
        clean = normalise(number)
        if not self._compiled:
            raise ValueError(f"outside number {number!r} refused: the ACD file's dial plan "
                             "(dialplan:) allows no outside numbers")
        if not any(p.fullmatch(clean) for p in self._compiled):
            raise ValueError(f"outside number {number!r} refused: no pattern of the dial plan "
                             f"allows it ({', '.join(self.patterns)})")
        return clean
