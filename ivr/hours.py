"""Business hours and holidays, for the flow's ``branch`` node.

``hours`` maps day specs to spans: ``{"mon-fri": "09:00-18:00", "sat": "10:00-12:00,13:00-16:00"}``.
A span may cross midnight (``"22:00-06:00"``): it then belongs to the day it starts on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_day_spec(spec: str) -> set[int]:
    """``"mon-fri"``, ``"sat,sun"``, ``"daily"`` -> weekday numbers (Monday = 0)."""
    out: set[int] = set()
    for part in spec.lower().replace(" ", "").split(","):
        if part in ("daily", "all", "*"):
            out.update(range(7))
        elif "-" in part:
            a, b = part.split("-", 1)
            if a not in DAYS or b not in DAYS:
                raise ValueError(f"day range {part!r}: days are {', '.join(DAYS)}")
            i, j = DAYS.index(a), DAYS.index(b)
            out.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        elif part in DAYS:
            out.add(DAYS.index(part))
        else:
            raise ValueError(f"day {part!r}: days are {', '.join(DAYS)} (or daily)")
    return out


def parse_span(span: str) -> tuple[dt.time, dt.time]:
    """``"09:00-18:00"`` -> (09:00, 18:00)."""
    try:
        a, b = span.strip().split("-", 1)
        return dt.time.fromisoformat(a.strip()), dt.time.fromisoformat(b.strip())
    except ValueError as exc:
        raise ValueError(f"hours {span!r} must look like 09:00-18:00") from exc


def is_open(hours: Mapping[str, str], timezone: str, holidays: Sequence[str],
            now: dt.datetime) -> bool:
    """Whether ``now`` (timezone-aware) falls in the opening hours, holidays excluded."""
    local = now.astimezone(ZoneInfo(timezone))
    closed_days = {dt.date.fromisoformat(d) for d in holidays}
    for offset in (0, -1):  # today's spans, and yesterday's spans that cross midnight
        day = local.date() + dt.timedelta(days=offset)
        if day in closed_days:
            continue
        for spec, spans in hours.items():
            if day.weekday() not in parse_day_spec(spec):
                continue
            for part in spans.split(","):
                start, end = parse_span(part)
                begin = dt.datetime.combine(day, start, local.tzinfo)
                finish = dt.datetime.combine(day, end, local.tzinfo)
                if end <= start:
                    finish += dt.timedelta(days=1)
                if begin <= local < finish:
                    return True
    return False
