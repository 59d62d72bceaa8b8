"""The ``say`` grammars: values to prompt names, per language, checked against the shipped sets.

Expected sequences are written as text for reading: English names become words ("digit_5" ->
"five", "num_20" -> "twenty"; other names stay as they are), Mandarin number and money names
become characters ("thousand" -> 千) and any other name is written ``<name>``. Both renderings
are one-to-one, so a matching text means a matching name list.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivr.say import (
    KINDS,
    EnglishUS,
    MandarinCN,
    SayError,
    SayGrammar,
    grammar_for,
    languages,
    missing,
    say,
)

ROOT = Path(__file__).resolve().parent.parent


def manifest_names(language: str) -> frozenset[str]:
    data = yaml.safe_load((ROOT / "prompts" / language / "manifest.yaml").read_text("utf-8"))
    return frozenset(data["prompts"])


EN_SET = manifest_names("en-US")
ZH_SET = manifest_names("zh-CN")

# --- renderings -------------------------------------------------------------------------------

_EN_WORDS = dict(
    zip(
        [f"digit_{d}" for d in range(10)]
        + [f"num_{n}" for n in range(10, 20)]
        + [f"num_{n}" for n in range(20, 100, 10)],
        "zero one two three four five six seven eight nine "
        "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen "
        "twenty thirty forty fifty sixty seventy eighty ninety".split(),
        strict=True,
    )
)
_ZH_CHARS = {
    **{f"digit_{d}": c for d, c in enumerate("零一二三四五六七八九")},
    "num_10": "十",
    "hundred": "百",
    "thousand": "千",
    "ten_thousand": "万",
    "hundred_million": "亿",
    "liang": "两",
    "yuan": "元",
    "jiao": "角",
    "fen": "分",
    "point": "点",
    "minus": "负",
    "nian": "年",
    "ri": "日",
    "hao": "号",
}


def en(names: list[str]) -> str:
    return " ".join(_EN_WORDS.get(n, n) for n in names)


def zh(names: list[str]) -> str:
    return "".join(_ZH_CHARS.get(n, f"<{n}>") for n in names)


# --- English ----------------------------------------------------------------------------------

EN_CASES: list[tuple[str, Any, dict[str, Any], str]] = [
    # numbers
    ("number", 0, {}, "zero"),
    ("number", 7, {}, "seven"),
    ("number", 10, {}, "ten"),
    ("number", 13, {}, "thirteen"),
    ("number", 19, {}, "nineteen"),
    ("number", 20, {}, "twenty"),
    ("number", 21, {}, "twenty one"),
    ("number", 45, {}, "forty five"),
    ("number", 99, {}, "ninety nine"),
    ("number", 100, {}, "one hundred"),
    ("number", 101, {}, "one hundred one"),
    ("number", 110, {}, "one hundred ten"),
    ("number", 120, {}, "one hundred twenty"),
    ("number", 999, {}, "nine hundred ninety nine"),
    ("number", 1000, {}, "one thousand"),
    ("number", 1001, {}, "one thousand one"),
    ("number", 1010, {}, "one thousand ten"),
    ("number", 1100, {}, "one thousand one hundred"),
    ("number", 2026, {}, "two thousand twenty six"),
    ("number", 12345, {}, "twelve thousand three hundred forty five"),
    ("number", 100000, {}, "one hundred thousand"),
    ("number", 1000000, {}, "one million"),
    ("number", 1000001, {}, "one million one"),
    ("number", 1234567,
     {}, "one million two hundred thirty four thousand five hundred sixty seven"),
    ("number", 999999999,
     {}, "nine hundred ninety nine million nine hundred ninety nine thousand "
     "nine hundred ninety nine"),
    ("number", "42", {}, "forty two"),
    ("number", " 17 ", {}, "seventeen"),
    ("number", Decimal("3.14"), {}, "three point one four"),
    ("number", Decimal("3.140"), {}, "three point one four"),
    ("number", 2.5, {}, "two point five"),
    ("number", "0.05", {}, "zero point zero five"),
    ("number", Decimal("1E+3"), {}, "one thousand"),
    ("number", 12.0, {}, "twelve"),
    # digits
    ("digits", "1234", {}, "one two three four"),
    ("digits", "007", {}, "zero zero seven"),
    ("digits", "*72#", {}, "star seven two pound"),
    ("digits", "0#", {}, "zero pound"),
    ("digits", 905, {}, "nine zero five"),
    # money
    ("money", "12.05", {}, "twelve dollars and five cents"),
    ("money", 12.05, {}, "twelve dollars and five cents"),
    ("money", 1, {}, "one dollar"),
    ("money", "1.01", {}, "one dollar and one cent"),
    ("money", "1.00", {}, "one dollar"),
    ("money", 0, {}, "zero dollars"),
    ("money", "0.00", {}, "zero dollars"),
    ("money", "0.01", {}, "one cent"),
    ("money", "0.99", {}, "ninety nine cents"),
    ("money", "100.10", {}, "one hundred dollars and ten cents"),
    ("money", 2.5, {}, "two dollars and fifty cents"),
    ("money", "12.345", {}, "twelve dollars and thirty five cents"),
    ("money", "12.344", {}, "twelve dollars and thirty four cents"),
    ("money", "0.004", {}, "zero dollars"),
    ("money", 1000000, {}, "one million dollars"),
    ("money", "21.21", {"currency": "usd"}, "twenty one dollars and twenty one cents"),
    # dates (the shipped set has no ordinals: the day is a cardinal)
    ("date", date(2026, 1, 5), {}, "monday january five"),
    ("date", "2026-12-31", {}, "thursday december thirty one"),
    ("date", date(2026, 1, 5), {"weekday": False}, "january five"),
    ("date", date(2026, 1, 5), {"year": True}, "monday january five twenty twenty six"),
    ("date", datetime(2026, 3, 21, 9, 30), {}, "saturday march twenty one"),
    ("date", date(2000, 2, 29), {"year": True, "weekday": False},
     "february twenty nine two thousand"),
    ("date", date(2005, 7, 4), {"year": True, "weekday": False}, "july four two thousand five"),
    ("date", date(1999, 5, 1), {"year": True, "weekday": False}, "may one nineteen ninety nine"),
    ("date", date(1900, 6, 2), {"year": True, "weekday": False}, "june two nineteen hundred"),
    ("date", date(1905, 8, 3), {"year": True, "weekday": False},
     "august three nineteen hundred five"),
    ("date", date(2010, 9, 9), {"year": True, "weekday": False}, "september nine twenty ten"),
    ("date", date(2100, 10, 10), {"year": True, "weekday": False},
     "october ten twenty one hundred"),
    ("date", date(999, 11, 11), {"year": True, "weekday": False},
     "november eleven nine hundred ninety nine"),
    # times (the shipped set has no a.m./p.m.: 24-hour)
    ("time", time(14, 30), {}, "fourteen thirty"),
    ("time", time(14, 0), {}, "fourteen hundred"),
    ("time", time(9, 5), {}, "nine zero five"),
    ("time", time(0, 0), {}, "zero hundred"),
    ("time", time(0, 30), {}, "zero thirty"),
    ("time", time(23, 59), {}, "twenty three fifty nine"),
    ("time", time(12, 15, 42), {}, "twelve fifteen"),
    ("time", "08:45", {}, "eight forty five"),
    ("time", datetime(2026, 1, 5, 17, 10), {"clock": 24}, "seventeen ten"),
    ("datetime", "2026-01-05T14:30", {}, "monday january five fourteen thirty"),
    ("datetime", datetime(2026, 1, 6, 7, 0), {"weekday": False, "year": True},
     "january six twenty twenty six seven hundred"),
    # queue position and wait time
    ("queue_position", 1, {}, "you_are_caller one in_queue"),
    ("queue_position", 23, {}, "you_are_caller twenty three in_queue"),
    ("queue_position", "100", {}, "you_are_caller one hundred in_queue"),
    ("wait_time", 0, {}, "est_wait less_than_a_minute"),
    ("wait_time", 59, {}, "est_wait less_than_a_minute"),
    ("wait_time", 59.9, {}, "est_wait less_than_a_minute"),
    ("wait_time", 60, {}, "est_wait one minute"),
    ("wait_time", 61, {}, "est_wait two minutes"),
    ("wait_time", 120, {}, "est_wait two minutes"),
    ("wait_time", "121", {}, "est_wait three minutes"),
    ("wait_time", Decimal("90.5"), {}, "est_wait two minutes"),
    ("wait_time", 3600, {}, "est_wait sixty minutes"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "value", "options", "expected"), EN_CASES)
def test_english(kind: str, value: Any, options: dict[str, Any], expected: str) -> None:
    names = say(kind, value, "en-US", **options)
    assert en(names) == expected
    assert not missing(names, EN_SET)
    # Passing the shipped set as `available` changes nothing.
    assert say(kind, value, "en-US", available=EN_SET, **options) == names


EN_ORDINALS = {f"ordinal_{n}" for n in (*range(1, 20), 20, 30)}
EN_EXTRA_CASES: list[tuple[str, Any, dict[str, Any], set[str], str]] = [
    ("date", date(2026, 1, 1), {}, EN_ORDINALS, "thursday january ordinal_1"),
    ("date", date(2026, 1, 12), {}, EN_ORDINALS, "monday january ordinal_12"),
    ("date", date(2026, 1, 20), {}, EN_ORDINALS, "tuesday january ordinal_20"),
    ("date", date(2026, 1, 21), {}, EN_ORDINALS, "wednesday january twenty ordinal_1"),
    ("date", date(2026, 1, 30), {}, EN_ORDINALS, "friday january ordinal_30"),
    ("date", date(2026, 1, 31), {}, EN_ORDINALS, "saturday january thirty ordinal_1"),
    # an incomplete ordinal set is not used (no mixing of styles)
    ("date", date(2026, 1, 1), {}, {"ordinal_1"}, "thursday january one"),
    ("time", time(14, 30), {}, {"am", "pm"}, "two thirty pm"),
    ("time", time(14, 0), {}, {"am", "pm"}, "two pm"),
    ("time", time(0, 0), {}, {"am", "pm"}, "twelve am"),
    ("time", time(12, 0), {}, {"am", "pm"}, "twelve pm"),
    ("time", time(11, 59), {}, {"am", "pm"}, "eleven fifty nine am"),
    ("time", time(9, 5), {}, {"am", "pm", "oh"}, "nine oh five am"),
    ("time", time(9, 5), {}, {"oh"}, "nine oh five"),
    ("time", time(14, 30), {"clock": 24}, {"am", "pm"}, "fourteen thirty"),
    ("date", date(1905, 8, 3), {"year": True, "weekday": False}, {"oh"},
     "august three nineteen oh five"),
    ("number", -5, {}, {"minus"}, "minus five"),
    ("number", Decimal("-0.5"), {}, {"minus"}, "minus zero point five"),
    ("number", "-0", {}, set(), "zero"),
    ("money", "-3.50", {}, {"minus"}, "minus three dollars and fifty cents"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "value", "options", "extra", "expected"), EN_EXTRA_CASES)
def test_english_optional_fragments(
    kind: str, value: Any, options: dict[str, Any], extra: set[str], expected: str
) -> None:
    names = say(kind, value, "en-US", available=EN_SET | extra, **options)
    assert en(names) == expected


# --- Mandarin ---------------------------------------------------------------------------------

ZH_CASES: list[tuple[str, Any, dict[str, Any], str]] = [
    # numbers: 十 at the start, 一十 inside
    ("number", 0, {}, "零"),
    ("number", 1, {}, "一"),
    ("number", 2, {}, "二"),
    ("number", 10, {}, "十"),
    ("number", 11, {}, "十一"),
    ("number", 12, {}, "十二"),
    ("number", 15, {}, "十五"),
    ("number", 20, {}, "二十"),
    ("number", 22, {}, "二十二"),
    ("number", 99, {}, "九十九"),
    ("number", 100, {}, "一百"),
    ("number", 101, {}, "一百零一"),
    ("number", 110, {}, "一百一十"),
    ("number", 111, {}, "一百一十一"),
    ("number", 115, {}, "一百一十五"),
    # 两 before 百/千/万/亿, 二 in the tens and units
    ("number", 200, {}, "两百"),
    ("number", 210, {}, "两百一十"),
    ("number", 222, {}, "两百二十二"),
    ("number", 1200, {}, "一千两百"),
    ("number", 2000, {}, "两千"),
    ("number", 2002, {}, "两千零二"),
    ("number", 2020, {}, "两千零二十"),
    ("number", 20000, {}, "两万"),
    ("number", 22000, {}, "两万两千"),
    ("number", 120000, {}, "十二万"),
    ("number", 1020000, {}, "一百零二万"),
    ("number", 20000000, {}, "两千万"),
    ("number", 200000000, {}, "两亿"),
    ("number", 2200000000, {}, "二十二亿"),
    ("number", 220000, {}, "二十二万"),
    # zeros: one 零 for a run of missing places, none at the end
    ("number", 1000, {}, "一千"),
    ("number", 1005, {}, "一千零五"),
    ("number", 1050, {}, "一千零五十"),
    ("number", 1500, {}, "一千五百"),
    ("number", 10000, {}, "一万"),
    ("number", 10005, {}, "一万零五"),
    ("number", 10010, {}, "一万零一十"),
    ("number", 10100, {}, "一万零一百"),
    ("number", 11000, {}, "一万一千"),
    ("number", 100000, {}, "十万"),
    ("number", 100500, {}, "十万零五百"),
    ("number", 150000, {}, "十五万"),
    ("number", 1000000, {}, "一百万"),
    ("number", 10000000, {}, "一千万"),
    ("number", 12345678, {}, "一千两百三十四万五千六百七十八"),
    ("number", 100000000, {}, "一亿"),
    ("number", 100000005, {}, "一亿零五"),
    ("number", 100010000, {}, "一亿零一万"),
    ("number", 100001000, {}, "一亿零一千"),
    ("number", 110000000, {}, "一亿一千万"),
    ("number", 1000100000, {}, "十亿零一十万"),
    ("number", 1500000000, {}, "十五亿"),
    ("number", 1234567890, {}, "十二亿三千四百五十六万七千八百九十"),
    ("number", 999999999999, {}, "九千九百九十九亿九千九百九十九万九千九百九十九"),
    ("number", Decimal("3.14"), {}, "三点一四"),
    ("number", 10.5, {}, "十点五"),
    ("number", "0.02", {}, "零点零二"),
    # digits
    ("digits", "110", {}, "一一零"),
    ("digits", "*1#", {}, "<star>一<pound>"),
    ("digits", 2026, {}, "二零二六"),
    # money: N元 M角 P分
    ("money", "12.05", {}, "十二元零五分"),
    ("money", "12.50", {}, "十二元五角"),
    ("money", "12.55", {}, "十二元五角五分"),
    ("money", "12", {}, "十二元"),
    ("money", "0.05", {}, "五分"),
    ("money", "0.5", {}, "五角"),
    ("money", "0.55", {}, "五角五分"),
    ("money", 0, {}, "零元"),
    ("money", 2, {}, "两元"),
    ("money", "0.2", {}, "两角"),
    ("money", "0.02", {}, "两分"),
    ("money", "10.2", {}, "十元两角"),
    ("money", "100.01", {}, "一百元零一分"),
    ("money", 2000, {}, "两千元"),
    ("money", 10005, {}, "一万零五元"),
    ("money", 22, {}, "二十二元"),
    ("money", "3.999", {}, "四元"),
    ("money", "8.8", {"currency": "RMB"}, "八元八角"),
    # dates (shipped: no 年/日/号 prompts; month words; weekday last)
    ("date", date(2026, 1, 5), {}, "<january>五<monday>"),
    ("date", date(2026, 10, 10), {}, "<october>十<saturday>"),
    ("date", date(2026, 12, 22), {}, "<december>二十二<tuesday>"),
    ("date", date(2026, 2, 2), {"weekday": False}, "<february>二"),
    ("date", "2026-11-30", {}, "<november>三十<monday>"),
    # times: N点M分 (fen = 分), 两点, 零点
    ("time", time(14, 30), {}, "十四点三十分"),
    ("time", time(14, 5), {}, "十四点零五分"),
    ("time", time(14, 0), {}, "十四点"),
    ("time", time(2, 0), {}, "两点"),
    ("time", time(2, 2), {}, "两点零二分"),
    ("time", time(0, 0), {}, "零点"),
    ("time", time(10, 10), {}, "十点十分"),
    ("time", time(12, 2), {}, "十二点零二分"),
    ("time", time(20, 45), {}, "二十点四十五分"),
    ("time", time(22, 22), {}, "二十二点二十二分"),
    ("datetime", "2026-01-05 09:30", {}, "<january>五<monday>九点三十分"),
    # queue position: ordinal 第N位 keeps 二
    ("queue_position", 1, {}, "<you_are_caller>一<in_queue>"),
    ("queue_position", 2, {}, "<you_are_caller>二<in_queue>"),
    ("queue_position", 12, {}, "<you_are_caller>十二<in_queue>"),
    ("queue_position", 20, {}, "<you_are_caller>二十<in_queue>"),
    ("queue_position", 200, {}, "<you_are_caller>两百<in_queue>"),
    # wait time: N分钟, 两分钟
    ("wait_time", 30, {}, "<est_wait><less_than_a_minute>"),
    ("wait_time", 60, {}, "<est_wait>一<minute>"),
    ("wait_time", 90, {}, "<est_wait>两<minutes>"),
    ("wait_time", 125, {}, "<est_wait>三<minutes>"),
    ("wait_time", 600, {}, "<est_wait>十<minutes>"),
    ("wait_time", 1200, {}, "<est_wait>二十<minutes>"),
    ("wait_time", 1320, {}, "<est_wait>二十二<minutes>"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "value", "options", "expected"), ZH_CASES)
def test_mandarin(kind: str, value: Any, options: dict[str, Any], expected: str) -> None:
    names = say(kind, value, "zh-CN", **options)
    assert zh(names) == expected
    assert not missing(names, ZH_SET)
    assert say(kind, value, "zh-CN", available=ZH_SET, **options) == names


ZH_EXTRA_CASES: list[tuple[str, Any, dict[str, Any], set[str], str]] = [
    ("date", date(2026, 1, 5), {"year": True}, {"nian"}, "二零二六年<january>五<monday>"),
    ("date", date(2026, 1, 5), {}, {"ri"}, "<january>五日<monday>"),
    ("date", date(2026, 1, 5), {}, {"hao"}, "<january>五号<monday>"),
    ("date", date(2026, 1, 5), {}, {"ri", "hao"}, "<january>五日<monday>"),
    ("date", date(2000, 10, 1), {"year": True, "weekday": False}, {"nian", "ri"},
     "二零零零年<october>一日"),
    ("datetime", datetime(2026, 1, 5, 14, 30), {"year": True}, {"nian", "ri"},
     "二零二六年<january>五日<monday>十四点三十分"),
    ("time", time(14, 30), {}, {"am", "pm"}, "<pm>两点三十分"),
    ("time", time(9, 0), {}, {"am", "pm"}, "<am>九点"),
    ("time", time(0, 5), {}, {"am", "pm"}, "<am>十二点零五分"),
    ("time", time(14, 30), {"clock": 24}, {"am", "pm"}, "十四点三十分"),
    ("number", -10, {}, {"minus"}, "负十"),
    ("number", -2, {}, {"minus"}, "负二"),
    ("money", "-12.05", {}, {"minus"}, "负十二元零五分"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "value", "options", "extra", "expected"), ZH_EXTRA_CASES)
def test_mandarin_optional_fragments(
    kind: str, value: Any, options: dict[str, Any], extra: set[str], expected: str
) -> None:
    assert zh(say(kind, value, "zh-CN", available=ZH_SET | extra, **options)) == expected


# --- errors -----------------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, Any, str, dict[str, Any], str]] = [
    ("number", 1, "fr-FR", {}, "no say grammar for language 'fr-FR'; available: en-US, zh-CN"),
    ("sing", 1, "en-US", {},
     "unknown say kind 'sing'; expected one of: number, digits, money, date, time, datetime, "
     "queue_position, wait_time"),
    ("number", 1_000_000_000, "en-US", {},
     "en-US cannot say 1000000000: the largest number it can say is 999,999,999"),
    ("number", 1_0000_0000_0000, "zh-CN", {},
     "zh-CN cannot say 1000000000000: the largest number it can say is 999,999,999,999"),
    ("number", -5, "en-US", {},
     "en-US cannot say the negative value -5: the prompt set has no 'minus' prompt"),
    ("number", "-1.5", "zh-CN", {},
     "zh-CN cannot say the negative value -1.5: the prompt set has no 'minus' prompt"),
    ("number", "1,000", "en-US", {},
     "cannot say '1,000' as number: expected a plain number such as 42, -7 or 12.05"),
    ("number", "twelve", "en-US", {},
     "cannot say 'twelve' as number: expected a plain number such as 42, -7 or 12.05"),
    ("number", float("nan"), "en-US", {}, "cannot say nan as number: not a finite number"),
    ("number", Decimal("Infinity"), "en-US", {},
     "cannot say Decimal('Infinity') as number: not a finite number"),
    ("number", True, "en-US", {}, "cannot say True as number: expected a number"),
    ("number", date(2026, 1, 5), "en-US", {},
     "cannot say datetime.date(2026, 1, 5) as number: expected a number"),
    ("digits", "12a4", "en-US", {},
     "cannot say '12a4' as digits: only 0-9, * and # can be said, not 'a'"),
    ("digits", "1 2-3", "zh-CN", {},
     "cannot say '1 2-3' as digits: only 0-9, * and # can be said, not ' ', '-'"),
    ("digits", "", "en-US", {}, "cannot say digits: the value is empty"),
    ("digits", 1.5, "en-US", {},
     "cannot say 1.5 as digits: expected a string of 0-9, * and #"),
    ("digits", -12, "en-US", {},
     "cannot say -12 as digits: expected a string of 0-9, * and #"),
    ("money", 5, "en-US", {"currency": "EUR"},
     "en-US cannot say money in 'EUR': its prompts only cover USD"),
    ("money", 5, "zh-CN", {"currency": "USD"},
     "zh-CN cannot say money in 'USD': its prompts only cover CNY / RMB"),
    ("money", 5, "en-US", {"currency": 840},
     "say option 'currency' must be a currency code, not 840"),
    ("money", "-1", "en-US", {},
     "en-US cannot say the negative value -1: the prompt set has no 'minus' prompt"),
    ("money", "1000000000", "en-US", {},
     "en-US cannot say money 1000000000: the largest amount it can say is 999,999,999.99"),
    ("money", 1, "en-US", {"year": True},
     "say money does not take option(s) year (accepted: currency)"),
    ("number", 1, "en-US", {"currency": "USD"},
     "say number does not take option(s) currency (accepted: none)"),
    ("date", "tomorrow", "en-US", {},
     "cannot say 'tomorrow' as date: expected a date or 'YYYY-MM-DD'"),
    ("date", time(9, 0), "en-US", {},
     "cannot say datetime.time(9, 0) as date: expected a date or 'YYYY-MM-DD'"),
    ("date", date(2026, 1, 5), "en-US", {"weekday": "yes"},
     "say option 'weekday' must be true or false, not 'yes'"),
    ("date", date(2026, 1, 5), "zh-CN", {"year": True},
     "zh-CN cannot say a year: the prompt set has no 'nian' (年) prompt"),
    ("time", date(2026, 1, 5), "en-US", {},
     "cannot say datetime.date(2026, 1, 5) as time: expected a time or 'HH:MM'"),
    ("time", "25:00", "en-US", {}, "cannot say '25:00' as time: expected a time or 'HH:MM'"),
    ("time", time(9, 0), "en-US", {"clock": 12},
     "en-US cannot say a 12-hour time: the prompt set has no 'am'/'pm' prompts"),
    ("time", time(9, 0), "zh-CN", {"clock": 13}, "say option 'clock' must be 12 or 24, not 13"),
    ("datetime", date(2026, 1, 5), "en-US", {},
     "cannot say datetime.date(2026, 1, 5) as datetime: expected a datetime or "
     "'YYYY-MM-DD HH:MM'"),
    ("queue_position", 0, "en-US", {}, "cannot say queue position 0: positions start at 1"),
    ("queue_position", "2.5", "zh-CN", {},
     "cannot say '2.5' as queue_position: expected a whole number"),
    ("queue_position", 10**9, "en-US", {},
     "cannot say queue position 1,000,000,000: larger than 999,999,999"),
    ("wait_time", -1, "en-US", {}, "cannot say a wait time of -1 seconds: it is negative"),
    ("wait_time", "soon", "zh-CN", {},
     "cannot say 'soon' as wait_time: expected a plain number such as 42, -7 or 12.05"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "value", "language", "options", "message"), ERROR_CASES)
def test_errors(
    kind: str, value: Any, language: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(SayError) as info:
        say(kind, value, language, **options)
    assert str(info.value) == message


def test_say_error_is_a_value_error() -> None:
    assert issubclass(SayError, ValueError)


# --- registry and helpers ---------------------------------------------------------------------


def test_registry() -> None:
    assert languages() == ["en-US", "zh-CN"]
    assert isinstance(grammar_for("en-US"), EnglishUS)
    assert isinstance(grammar_for("zh_cn"), MandarinCN)
    assert isinstance(grammar_for(" EN-us "), SayGrammar)
    assert grammar_for("zh-CN", available={"x"}).available == frozenset({"x"})
    assert grammar_for("zh-CN").available == MandarinCN.base


def test_grammar_methods_directly() -> None:
    g = grammar_for("en-US")
    assert en(g.number(21)) == "twenty one"
    assert en(g.money(Decimal("1.5"), "USD")) == "one dollar and fifty cents"
    assert en(g.queue_position(3)) == "you_are_caller three in_queue"
    assert en(g.wait_time(61)) == "est_wait two minutes"
    z = grammar_for("zh-CN")
    assert zh(z.number(10010)) == "一万零一十"
    assert zh(z.digits("12#")) == "一二<pound>"
    assert zh(z.datetime(datetime(2026, 1, 5, 2, 0), weekday=False)) == "<january>五两点"


def test_missing() -> None:
    assert missing([], set()) == []
    assert missing(["a", "b", "a", "c"], {"b"}) == ["a", "c"]
    assert missing(say("time", "14:30", "en-US"), EN_SET) == []
    assert missing(say("time", "14:30", "en-US", available={"am", "pm"}), EN_SET) == ["pm"]


def test_every_kind_has_a_method() -> None:
    for kind in KINDS:
        assert callable(getattr(SayGrammar, kind))


# --- round trips: read the words back as a number ---------------------------------------------

_ZH_DIGIT = {f"digit_{d}": d for d in range(10)} | {"liang": 2}
_ZH_PLACE = {"num_10": 10, "hundred": 100, "thousand": 1000}
_ZH_GROUP = {"ten_thousand": 10**4, "hundred_million": 10**8}


def read_zh(names: list[str]) -> int:
    total = section = digit = 0
    group_total = 0  # value below the current 亿
    for n in names:
        if n in _ZH_DIGIT:
            digit = _ZH_DIGIT[n]
        elif n in _ZH_PLACE:
            section += (digit or 1) * _ZH_PLACE[n]
            digit = 0
        elif n == "ten_thousand":
            group_total += (section + digit) * 10**4
            section = digit = 0
        elif n == "hundred_million":
            total += (group_total + section + digit) * 10**8
            group_total = section = digit = 0
        else:
            raise AssertionError(n)
    return total + group_total + section + digit


_EN_VALUE = {f"digit_{d}": d for d in range(10)} | {f"num_{n}": n for n in range(10, 100)}


def read_en(names: list[str]) -> int:
    total = chunk = 0
    for n in names:
        if n in _EN_VALUE:
            chunk += _EN_VALUE[n]
        elif n == "hundred":
            chunk *= 100
        else:
            total += chunk * {"thousand": 1000, "million": 1_000_000}[n]
            chunk = 0
    return total + chunk


def sample_numbers(top: int, seed: int) -> Iterator[int]:
    yield from range(0, 2001)
    rng = random.Random(seed)
    for exp in range(3, len(str(top))):
        p = 10**exp
        for base in (p, 2 * p, 10 * p if 10 * p <= top else p, p + 1, p - 1, 2 * p + 2, top):
            for delta in (0, 1, 10, 100, 1000, 10000):
                if 0 <= base + delta <= top:
                    yield base + delta
    for _ in range(5000):
        digits = rng.randint(1, len(str(top)))
        n = int("".join(rng.choice("0000123456789") for _ in range(digits)))
        if n <= top:
            yield n
    yield top


def test_zh_numbers_read_back() -> None:
    g = MandarinCN()
    for n in sample_numbers(MandarinCN.max_number, 1):
        names = g.integer(n)
        assert read_zh(names) == n, (n, zh(names))
        text = zh(names)
        assert "零零" not in text and not (n and text.endswith("零")), (n, text)
        assert not text.startswith("一十"), (n, text)
        assert "两十" not in text and not text.endswith("两"), (n, text)


def test_en_numbers_read_back() -> None:
    g = EnglishUS()
    for n in sample_numbers(EnglishUS.max_number, 2):
        names = g.integer(n)
        assert read_en(names) == n, (n, en(names))
        assert n == 0 or "digit_0" not in names, (n, en(names))


# --- everything any grammar says is in its shipped prompt set ---------------------------------


def sweep(language: str, top: int, extra: frozenset[str] = frozenset()) -> set[str]:
    """Every name said for a broad sweep of values of every kind."""
    g = grammar_for(language, (EN_SET if language == "en-US" else ZH_SET) | extra)
    said: set[str] = set()
    for n in sample_numbers(top, 3):
        said.update(g.number(n))
    for n in range(0, 1001):
        said.update(g.number(Decimal(n) / 100))
        said.update(g.money(Decimal(n) / 100))
        said.update(g.money(Decimal(n * 1001)))
    said.update(g.money(Decimal(top) + Decimal("0.99")))
    said.update(g.digits("0123456789*#"))
    day = date(2024, 1, 1)
    while day.year in (2024, 2025):
        said.update(g.date(day, year=language == "en-US" or "nian" in extra))
        day += timedelta(days=1)
    for y in range(1, 10000, 7):
        said.update(g.date(date(y, 1, 1), year=language == "en-US" or "nian" in extra))
    for minute in range(24 * 60):
        said.update(g.time(time(minute // 60, minute % 60)))
        if {"am", "pm"} <= extra:
            said.update(g.time(time(minute // 60, minute % 60), clock=24))
    for n in range(1, 1001):
        said.update(g.queue_position(n))
    for s in (*range(0, 7201, 7), 60):
        said.update(g.wait_time(s))
    if "minus" in extra:
        said.update(g.number(-12))
    return said


@pytest.mark.parametrize(
    ("language", "shipped", "grammar"),
    [("en-US", EN_SET, EnglishUS), ("zh-CN", ZH_SET, MandarinCN)],
)
def test_every_name_said_is_shipped(
    language: str, shipped: frozenset[str], grammar: type[SayGrammar]
) -> None:
    said = sweep(language, grammar.max_number)
    assert missing(sorted(said), shipped) == []
    # The sweep reaches every base fragment, and the base is exactly what is shipped and used.
    assert said == set(grammar.base)
    assert grammar.base <= shipped


@pytest.mark.parametrize(
    ("language", "shipped", "grammar"),
    [("en-US", EN_SET, EnglishUS), ("zh-CN", ZH_SET, MandarinCN)],
)
def test_optional_fragments_are_all_that_is_missing(
    language: str, shipped: frozenset[str], grammar: type[SayGrammar]
) -> None:
    said = sweep(language, grammar.max_number, extra=grammar.optional)
    assert said <= grammar.vocabulary()
    assert set(missing(sorted(said), shipped)) <= grammar.optional
    # Not one optional fragment is shipped yet (update when prompts are recorded).
    assert not (grammar.optional & shipped)


def test_optional_fragment_lists() -> None:
    assert EnglishUS.optional == {"minus", "oh", "am", "pm"} | EN_ORDINALS
    assert MandarinCN.optional == {"minus", "am", "pm", "nian", "ri", "hao"}
