"""Say a value as a sequence of prompt names: the grammar behind the flow language's ``say`` node.

``say("number", 1234, "en-US")`` gives ``["digit_1", "thousand", "digit_2", "hundred",
"num_30", "digit_4"]``: the names of recorded fragments in the ``en-US`` prompt set, to be
played back to back. Everything here is pure: no files, no clock, no prompt loading.

Each language is a :class:`SayGrammar` registered under its BCP 47 tag (``en-US``, ``zh-CN``).
A grammar uses its language's *base* fragments (all shipped in ``prompts/<tag>/manifest.yaml``)
and, when the caller passes the prompt set's names as ``available``, a few *optional* fragments
that the shipped sets do not have yet (``minus``, ``am``/``pm``, English ordinals, ``oh``,
Chinese 年/日/号). Without them the grammar falls back as documented on each method, or raises
:class:`SayError` when there is no sensible fallback (a negative number without ``minus``).
:func:`missing` tells a flow checker which names a prompt set lacks.

Kinds (``say`` node ``kind``) and options:

========================  ==========================================  =========================
kind                      value                                       options
========================  ==========================================  =========================
``number``                int, Decimal, float, numeric str            --
``digits``                str of 0-9 * #, or a non-negative int       --
``money``                 int, Decimal, float, numeric str            ``currency``
``date``                  date, datetime, ISO str                     ``weekday``, ``year``
``time``                  time, datetime, ISO str                     ``clock`` (12 or 24)
``datetime``              datetime, ISO str                           all of date and time
``queue_position``        positive int or digit str                   --
``wait_time``             seconds (int, Decimal, float, str)          --
========================  ==========================================  =========================
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from datetime import date, datetime, time
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import ClassVar

__all__ = [
    "KINDS",
    "SayError",
    "SayGrammar",
    "SayValue",
    "EnglishUS",
    "MandarinCN",
    "grammar_for",
    "languages",
    "missing",
    "register_grammar",
    "say",
]

SayValue = str | int | float | Decimal | date | time | datetime

KINDS = ("number", "digits", "money", "date", "time", "datetime", "queue_position", "wait_time")

_OPTIONS: dict[str, frozenset[str]] = {
    "number": frozenset(),
    "digits": frozenset(),
    "money": frozenset({"currency"}),
    "date": frozenset({"weekday", "year"}),
    "time": frozenset({"clock"}),
    "datetime": frozenset({"weekday", "year", "clock"}),
    "queue_position": frozenset(),
    "wait_time": frozenset(),
}

DIGITS = tuple(f"digit_{d}" for d in range(10))
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_KEYS = {**{str(d): f"digit_{d}" for d in range(10)}, "*": "star", "#": "pound"}
_NUMERIC = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_CENT = Decimal("0.01")


class SayError(ValueError):
    """A value, kind, option or language that cannot be said; the message says which and why."""


def missing(names: Iterable[str], available: Collection[str]) -> list[str]:
    """The names not in ``available``, each once, in first-seen order (empty: all present)."""
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        if name not in available and name not in seen:
            seen.add(name)
            out.append(name)
    return out


# --- value coercion ---------------------------------------------------------------------------


def _decimal(value: SayValue, kind: str) -> Decimal:
    if isinstance(value, bool) or isinstance(value, date | time):
        raise SayError(f"cannot say {value!r} as {kind}: expected a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SayError(f"cannot say {value!r} as {kind}: not a finite number")
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise SayError(f"cannot say {value!r} as {kind}: not a finite number")
        return value
    text = value.strip()
    if not _NUMERIC.fullmatch(text):
        raise SayError(
            f"cannot say {value!r} as {kind}: expected a plain number such as 42, -7 or 12.05"
        )
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
        raise SayError(f"cannot say {value!r} as {kind}: not a number") from None


def _whole(value: SayValue, kind: str) -> int:
    d = _decimal(value, kind)
    if d != d.to_integral_value():
        raise SayError(f"cannot say {value!r} as {kind}: expected a whole number")
    return int(d)


def _as_date(value: SayValue) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise SayError(f"cannot say {value!r} as date: expected a date or 'YYYY-MM-DD'")


def _as_time(value: SayValue) -> time:
    if isinstance(value, datetime):
        return value.time()
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            pass
    raise SayError(f"cannot say {value!r} as time: expected a time or 'HH:MM'")


def _as_datetime(value: SayValue) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise SayError(f"cannot say {value!r} as datetime: expected a datetime or 'YYYY-MM-DD HH:MM'")


def _flag(options: dict[str, object], name: str, default: bool) -> bool:
    v = options.get(name, default)
    if not isinstance(v, bool):
        raise SayError(f"say option {name!r} must be true or false, not {v!r}")
    return v


def _clock(options: dict[str, object]) -> int | None:
    v = options.get("clock")
    if v is None:
        return None
    if isinstance(v, bool) or v not in (12, 24):
        raise SayError(f"say option 'clock' must be 12 or 24, not {v!r}")
    assert isinstance(v, int)
    return v


# --- grammars ---------------------------------------------------------------------------------


class SayGrammar:
    """One language's way of saying values with its prompt set's fragments.

    ``available`` is the prompt set's names; it only decides whether the optional fragments
    (:attr:`optional`) are used. ``None`` means the shipped set, i.e. :attr:`base` alone.
    """

    language: ClassVar[str] = ""
    base: ClassVar[frozenset[str]] = frozenset()
    optional: ClassVar[frozenset[str]] = frozenset()
    max_number: ClassVar[int] = 0
    currencies: ClassVar[tuple[str, ...]] = ()  # the first is the default

    def __init__(self, available: Collection[str] | None = None) -> None:
        self.available: frozenset[str] = self.base if available is None else frozenset(available)

    @classmethod
    def vocabulary(cls) -> frozenset[str]:
        """Every name this grammar can produce, base and optional."""
        return cls.base | cls.optional

    def has(self, *names: str) -> bool:
        return all(n in self.available for n in names)

    # --- dispatch -----------------------------------------------------------------------------

    def say(self, kind: str, value: SayValue, **options: object) -> list[str]:
        allowed = _OPTIONS.get(kind)
        if allowed is None:
            raise SayError(f"unknown say kind {kind!r}; expected one of: {', '.join(KINDS)}")
        unknown = sorted(set(options) - allowed)
        if unknown:
            accepted = ", ".join(sorted(allowed)) or "none"
            raise SayError(
                f"say {kind} does not take option(s) {', '.join(unknown)} (accepted: {accepted})"
            )
        if kind == "number":
            d = _decimal(value, kind)
            return self.number(int(d) if d == d.to_integral_value() else d)
        if kind == "digits":
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return self.digits(str(value))
            if not isinstance(value, str):
                raise SayError(f"cannot say {value!r} as digits: expected a string of 0-9, * and #")
            return self.digits(value)
        if kind == "money":
            currency = options.get("currency")
            if currency is not None and not isinstance(currency, str):
                raise SayError(f"say option 'currency' must be a currency code, not {currency!r}")
            return self.money(_decimal(value, kind), currency)
        if kind == "date":
            return self.date(
                _as_date(value),
                weekday=_flag(options, "weekday", True),
                year=_flag(options, "year", False),
            )
        if kind == "time":
            return self.time(_as_time(value), clock=_clock(options))
        if kind == "datetime":
            return self.datetime(
                _as_datetime(value),
                weekday=_flag(options, "weekday", True),
                year=_flag(options, "year", False),
                clock=_clock(options),
            )
        if kind == "queue_position":
            return self.queue_position(_whole(value, kind))
        return self.wait_time(_decimal(value, kind))

    # --- shared building blocks ---------------------------------------------------------------

    def integer(self, n: int) -> list[str]:
        """A whole number 0..max_number (no sign)."""
        raise NotImplementedError

    def _minus(self, what: object) -> list[str]:
        if not self.has("minus"):
            raise SayError(
                f"{self.language} cannot say the negative value {what}: the prompt set has no "
                "'minus' prompt"
            )
        return ["minus"]

    def _checked(self, n: int, what: object) -> list[str]:
        if n > self.max_number:
            raise SayError(
                f"{self.language} cannot say {what}: the largest number it can say is "
                f"{self.max_number:,}"
            )
        return self.integer(n)

    def number(self, n: int | Decimal) -> list[str]:
        """A cardinal number; a fraction is read digit by digit after ``point`` (3.14 is "three
        point one four"; trailing zeros of the fraction are dropped). Negative numbers need a
        ``minus`` prompt."""
        out = self._minus(n) if n < 0 else []
        if isinstance(n, int):
            return out + self._checked(abs(n), n)
        whole, _, frac = format(abs(n).normalize(), "f").partition(".")
        out += self._checked(int(whole), n)
        if frac:
            out += ["point", *(f"digit_{c}" for c in frac)]
        return out

    def digits(self, s: str) -> list[str]:
        """One fragment per key: ``digit_0``..``digit_9``, ``star`` for *, ``pound`` for #."""
        if not s:
            raise SayError("cannot say digits: the value is empty")
        bad = sorted({c for c in s if c not in _KEYS})
        if bad:
            raise SayError(
                f"cannot say {s!r} as digits: only 0-9, * and # can be said, not "
                + ", ".join(repr(c) for c in bad)
            )
        return [_KEYS[c] for c in s]

    def _currency(self, currency: str | None) -> str:
        code = (currency or self.currencies[0]).strip().upper()
        if code not in self.currencies:
            raise SayError(
                f"{self.language} cannot say money in {currency!r}: its prompts only cover "
                + " / ".join(self.currencies)
            )
        return code

    def _money_parts(self, amount: Decimal, currency: str | None) -> tuple[list[str], int, int]:
        """(sign prefix, whole units, hundredths), rounded half up to the cent."""
        self._currency(currency)
        cents_total = int(abs(amount).quantize(_CENT, rounding=ROUND_HALF_UP) * 100)
        units, cents = divmod(cents_total, 100)
        sign = self._minus(amount) if amount < 0 and cents_total else []
        if units > self.max_number:
            raise SayError(
                f"{self.language} cannot say money {amount}: the largest amount it can say is "
                f"{self.max_number:,}.99"
            )
        return sign, units, cents

    def money(self, amount: Decimal, currency: str | None = None) -> list[str]:
        raise NotImplementedError

    def date(self, d: date, *, weekday: bool = True, year: bool = False) -> list[str]:
        raise NotImplementedError

    def time(self, t: time, *, clock: int | None = None) -> list[str]:
        raise NotImplementedError

    def datetime(
        self, dt: datetime, *, weekday: bool = True, year: bool = False, clock: int | None = None
    ) -> list[str]:
        """The date, then the time (the wall-clock time as given; a time zone is not said)."""
        return self.date(dt.date(), weekday=weekday, year=year) + self.time(dt.time(), clock=clock)

    def _twelve_hour(self, clock: int | None) -> bool:
        """12-hour clock when ``am`` and ``pm`` prompts exist (or when asked for), else 24."""
        if clock == 12 and not self.has("am", "pm"):
            raise SayError(
                f"{self.language} cannot say a 12-hour time: the prompt set has no 'am'/'pm' "
                "prompts"
            )
        return clock == 12 or (clock is None and self.has("am", "pm"))

    def _queue_check(self, n: int) -> None:
        if n < 1:
            raise SayError(f"cannot say queue position {n}: positions start at 1")
        if n > self.max_number:
            raise SayError(f"cannot say queue position {n:,}: larger than {self.max_number:,}")

    def _wait_minutes(self, seconds: Decimal) -> int | None:
        """Whole minutes rounded up, or None for under a minute."""
        if seconds < 0:
            raise SayError(f"cannot say a wait time of {seconds} seconds: it is negative")
        if seconds < 60:
            return None
        minutes = int((seconds / 60).to_integral_value(rounding=ROUND_CEILING))
        if minutes > self.max_number:
            raise SayError(f"cannot say a wait time of {seconds} seconds: too long")
        return minutes

    def queue_position(self, n: int) -> list[str]:
        """``you_are_caller`` + n + ``in_queue``."""
        self._queue_check(n)
        return ["you_are_caller", *self.integer(n), "in_queue"]

    def wait_time(self, seconds: Decimal | int | float) -> list[str]:
        raise NotImplementedError


_GRAMMARS: dict[str, type[SayGrammar]] = {}


def register_grammar(cls: type[SayGrammar]) -> type[SayGrammar]:
    """Class decorator: make ``cls`` the grammar for ``cls.language``."""
    if not cls.language:
        raise ValueError(f"{cls.__name__} has no language tag")
    _GRAMMARS[cls.language.lower()] = cls
    return cls


def languages() -> list[str]:
    """The registered language tags."""
    return sorted(cls.language for cls in _GRAMMARS.values())


def grammar_for(language: str, available: Collection[str] | None = None) -> SayGrammar:
    """The grammar for a language tag (case-insensitive, ``_`` accepted for ``-``)."""
    cls = _GRAMMARS.get(language.strip().replace("_", "-").lower())
    if cls is None:
        raise SayError(
            f"no say grammar for language {language!r}; available: {', '.join(languages())}"
        )
    return cls(available)


def say(
    kind: str,
    value: SayValue,
    language: str,
    *,
    available: Collection[str] | None = None,
    **options: object,
) -> list[str]:
    """The prompt names that say ``value`` as ``kind`` in ``language``.

    ``available`` is the prompt set's names (lets optional fragments be used); ``options`` are
    the kind's options (see the module doc). Raises :class:`SayError`.
    """
    return grammar_for(language, available).say(kind, value, **options)


# --- US English -------------------------------------------------------------------------------

_EN_ORDINALS = tuple(f"ordinal_{i}" for i in (*range(1, 20), 20, 30))


@register_grammar
class EnglishUS(SayGrammar):
    """US English.

    * Numbers: 0 ``digit_0``; 1-9 ``digit_N``; 10-19 ``num_N``; tens ``num_20``..``num_90``
      then the unit; hundreds without "and" (120 = one hundred twenty); ``thousand``,
      ``million``; up to 999,999,999.
    * Money (USD): "twelve dollars and five cents"; ``dollar``/``cent`` for exactly 1; cents
      left out when 0; "five cents" alone when there are no dollars; 0 is "zero dollars".
    * Dates: [weekday] month day [year]. The day is an ordinal when the set has
      ``ordinal_1``..``ordinal_19``, ``ordinal_20``, ``ordinal_30`` (21st = ``num_20`` +
      ``ordinal_1``); the shipped set has none, so the day is a cardinal ("january five").
      Years in pairs: 2026 "twenty twenty six", 1900 "nineteen hundred", 1905 "nineteen oh five"
      with an ``oh`` prompt else "nineteen hundred five", 2000-2009 "two thousand (five)".
    * Times: 12-hour with ``am``/``pm`` prompts when the set has them ("two thirty p m",
      "two p m"); the shipped set has none, so 24-hour: "fourteen thirty", "fourteen hundred",
      "nine zero five" ("nine oh five" with an ``oh`` prompt), midnight "zero hundred".
    """

    language = "en-US"
    max_number = 999_999_999
    currencies = ("USD",)
    base = frozenset(
        {
            *DIGITS,
            *(f"num_{n}" for n in range(10, 20)),
            *(f"num_{n}" for n in range(20, 100, 10)),
            "hundred", "thousand", "million", "point", "star", "pound",
            "dollar", "dollars", "cent", "cents", "and",
            *WEEKDAYS, *MONTHS,
            "you_are_caller", "in_queue", "est_wait", "minute", "minutes", "less_than_a_minute",
        }
    )  # fmt: skip
    optional = frozenset({"minus", "oh", "am", "pm", *_EN_ORDINALS})

    def _below_100(self, n: int) -> list[str]:
        if n < 10:
            return [f"digit_{n}"]
        if n < 20:
            return [f"num_{n}"]
        tens, unit = divmod(n, 10)
        return [f"num_{tens * 10}"] + ([f"digit_{unit}"] if unit else [])

    def _below_1000(self, n: int) -> list[str]:
        hundreds, rest = divmod(n, 100)
        out = [f"digit_{hundreds}", "hundred"] if hundreds else []
        return out + (self._below_100(rest) if rest else [])

    def integer(self, n: int) -> list[str]:
        if n == 0:
            return ["digit_0"]
        out: list[str] = []
        for scale, name in ((1_000_000, "million"), (1000, "thousand")):
            if n >= scale:
                out += [*self._below_1000(n // scale), name]
                n %= scale
        return out + (self._below_1000(n) if n else [])

    def money(self, amount: Decimal, currency: str | None = None) -> list[str]:
        sign, dollars, cents = self._money_parts(amount, currency)
        out = list(sign)
        if dollars or not cents:
            out += [*self.integer(dollars), "dollar" if dollars == 1 else "dollars"]
        if cents:
            if dollars:
                out.append("and")
            out += [*self.integer(cents), "cent" if cents == 1 else "cents"]
        return out

    def _oh(self) -> str:
        return "oh" if self.has("oh") else "digit_0"

    def year(self, y: int) -> list[str]:
        hi, lo = divmod(y, 100)
        if y < 1000 or y % 1000 < 10:
            return self.integer(y)
        if lo == 0:
            return [*self._below_100(hi), "hundred"]
        if lo < 10:
            return [*self._below_100(hi), "oh" if self.has("oh") else "hundred", f"digit_{lo}"]
        return self._below_100(hi) + self._below_100(lo)

    def day(self, n: int) -> list[str]:
        if not self.has(*_EN_ORDINALS):
            return self.integer(n)
        if n < 20 or n % 10 == 0:
            return [f"ordinal_{n}"]
        return [f"num_{n // 10 * 10}", f"ordinal_{n % 10}"]

    def date(self, d: date, *, weekday: bool = True, year: bool = False) -> list[str]:
        out = [WEEKDAYS[d.weekday()]] if weekday else []
        out += [MONTHS[d.month - 1], *self.day(d.day)]
        return out + (self.year(d.year) if year else [])

    def time(self, t: time, *, clock: int | None = None) -> list[str]:
        twelve = self._twelve_hour(clock)
        hour = (t.hour % 12 or 12) if twelve else t.hour
        out = self.integer(hour)
        if t.minute == 0:
            out += [] if twelve else ["hundred"]
        elif t.minute < 10:
            out += [self._oh(), f"digit_{t.minute}"]
        else:
            out += self._below_100(t.minute)
        if twelve:
            out.append("am" if t.hour < 12 else "pm")
        return out

    def wait_time(self, seconds: Decimal | int | float) -> list[str]:
        """``est_wait`` + ``less_than_a_minute`` under 60 s, else minutes rounded up."""
        minutes = self._wait_minutes(_decimal(seconds, "wait_time"))
        if minutes is None:
            return ["est_wait", "less_than_a_minute"]
        return ["est_wait", *self.integer(minutes), "minute" if minutes == 1 else "minutes"]


# --- Mandarin Chinese -------------------------------------------------------------------------

_ZH_PLACES = ((3, "thousand"), (2, "hundred"), (1, "num_10"), (0, ""))


@register_grammar
class MandarinCN(SayGrammar):
    """Mandarin (zh-CN).

    * Numbers: 零一二…九 (``digit_N``), 十 ``num_10``, 百 ``hundred``, 千 ``thousand``,
      万 ``ten_thousand``, 亿 ``hundred_million``, 两 ``liang``; up to 9999,9999,9999.
      十 (not 一十) when the number starts with it (10 十, 15 十五, 100000 十万), 一十 inside
      (110 一百一十). 两 before 百/千 (200 两百, 1200 一千两百) and for a bare 2 before 万/亿
      (20000 两万); 二 in the tens and units places (二十二, 十二, 十二万). One 零 for any
      run of missing places inside the number, none at the end (1005 一千零五, 1050 一千零五十,
      10005 一万零五, 100500 十万零五百, 100010000 一亿零一万).
    * Counts before a measure word (元, 角, 分 of money, 分钟, the hour 点) say a bare 2 as 两
      (两元, 两分钟, 两点); an ordinal such as the queue position keeps 二 (第二位).
    * Money (CNY): N元 M角 P分; 零 before 分 when 角 is 0 and there are 元 (12.05 十二元零五分);
      元 left out when only 角/分 (0.05 五分); 0 is 零元; no 整.
    * Dates: [year 年] month [day 日/号] [weekday]: the year digit by digit (二零二六年) only
      with a ``nian`` (年) prompt (``year=True`` without it is a SayError); month words
      ``january``..``december`` (一月…十二月); the day + ``ri`` (日) or else ``hao`` (号); the
      shipped set has neither, so the day is the bare number; weekday 星期X last.
    * Times: 24-hour N点M分 with ``point`` (点) and ``fen`` (分: the shipped ``minute`` is 分钟,
      a duration, wrong for a clock time): 14:30 十四点三十分, 14:05 十四点零五分, 14:00 十四点,
      0:00 零点. 12-hour with ``am``/``pm`` (上午/下午) prompts before the hour when present.
    * Queue: 您是排队中的第 + N + 位来电者 (``you_are_caller`` N ``in_queue``). Wait: 您的预计
      等待时间是 + N + 分钟 (``est_wait`` N ``minutes``), or 不到一分钟.
    """

    language = "zh-CN"
    max_number = 9999_9999_9999
    currencies = ("CNY", "RMB")
    base = frozenset(
        {
            *DIGITS,
            "num_10", "hundred", "thousand", "ten_thousand", "hundred_million", "liang",
            "point", "star", "pound", "yuan", "jiao", "fen",
            *WEEKDAYS, *MONTHS,
            "you_are_caller", "in_queue", "est_wait", "minute", "minutes", "less_than_a_minute",
        }
    )  # fmt: skip
    optional = frozenset({"minus", "am", "pm", "nian", "ri", "hao"})

    def _section(self, v: int, leading: bool) -> list[str]:
        """1..9999 without its group word; ``leading``: first words of the whole number."""
        out: list[str] = []
        zero = False
        for power, place in _ZH_PLACES:
            d = v // 10**power % 10
            if d == 0:
                zero = zero or bool(out)
                continue
            if zero:
                out.append("digit_0")
                zero = False
            if place == "num_10":
                if not (d == 1 and leading and not out):
                    out.append(f"digit_{d}")
                out.append(place)
            elif place:
                out += ["liang" if d == 2 else f"digit_{d}", place]
            else:
                out.append(f"digit_{d}")
        return out

    def integer(self, n: int) -> list[str]:
        if n == 0:
            return ["digit_0"]
        groups = ((n // 10**8, "hundred_million"), (n // 10**4 % 10**4, "ten_thousand"),
                  (n % 10**4, ""))  # fmt: skip
        out: list[str] = []
        zero = False
        for v, word in groups:
            if v == 0:
                zero = zero or bool(out)
                continue
            if out and (zero or v < 1000):
                out.append("digit_0")
            zero = False
            out += ["liang"] if v == 2 and word else self._section(v, leading=not out)
            if word:
                out.append(word)
        return out

    def count(self, n: int) -> list[str]:
        """A number before a measure word: a bare 2 is 两."""
        return ["liang"] if n == 2 else self.integer(n)

    def money(self, amount: Decimal, currency: str | None = None) -> list[str]:
        sign, yuan, cents = self._money_parts(amount, currency)
        jiao, fen = divmod(cents, 10)
        out = list(sign)
        if yuan or not cents:
            out += [*self.count(yuan), "yuan"]
        if jiao:
            out += [*self.count(jiao), "jiao"]
        if fen:
            if yuan and not jiao:
                out.append("digit_0")
            out += [*self.count(fen), "fen"]
        return out

    def date(self, d: date, *, weekday: bool = True, year: bool = False) -> list[str]:
        out: list[str] = []
        if year:
            if not self.has("nian"):
                raise SayError("zh-CN cannot say a year: the prompt set has no 'nian' (年) prompt")
            out += [*(f"digit_{c}" for c in str(d.year)), "nian"]
        out += [MONTHS[d.month - 1], *self.integer(d.day)]
        suffix = next((s for s in ("ri", "hao") if self.has(s)), None)
        if suffix:
            out.append(suffix)
        return out + ([WEEKDAYS[d.weekday()]] if weekday else [])

    def time(self, t: time, *, clock: int | None = None) -> list[str]:
        twelve = self._twelve_hour(clock)
        out = ["am" if t.hour < 12 else "pm"] if twelve else []
        out += [*self.count((t.hour % 12 or 12) if twelve else t.hour), "point"]
        if t.minute:
            out += (["digit_0"] if t.minute < 10 else []) + [*self.integer(t.minute), "fen"]
        return out

    def wait_time(self, seconds: Decimal | int | float) -> list[str]:
        """``est_wait`` + ``less_than_a_minute`` under 60 s, else N分钟 rounded up."""
        minutes = self._wait_minutes(_decimal(seconds, "wait_time"))
        if minutes is None:
            return ["est_wait", "less_than_a_minute"]
        return ["est_wait", *self.count(minutes), "minute" if minutes == 1 else "minutes"]
