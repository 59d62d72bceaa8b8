"""The agent's own figures for the shift (pure, ``now`` passed in): the server's for today
when the softphone has them (``from_server``: they survive a restart of the softphone and
hold the survey scores), else counted from what the session saw: calls handled, calls in
the last hour (an agent checks at 11:30 how many since 11:00... or since 10:30: the last
60 minutes), average handle time (talk + hold + wrap-up, the call-center AHT), and time in
each ACD status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import AcdStatus

HOUR_S = 3600.0


@dataclass(frozen=True)
class Figures:
    calls_handled: int
    calls_last_hour: int
    aht_s: float | None  # None before the first call
    time_in_state_s: dict[str, float]
    survey_count: int = 0  # today's survey answers for the agent's calls (server only)
    survey_mean: float | None = None
    from_server: bool = False  # False: counted by this softphone since it started


def from_server(got: dict[str, Any], fetched_at: float, now: float, status: AcdStatus,
                local: Figures) -> Figures:
    """The server's figures for today (``GET /agents/{id}/figures``, fetched at
    ``fetched_at``) brought up to ``now``: the current status's time keeps counting;
    what the server lacks comes from ``local``."""
    def num(key: str) -> float | None:
        v = got.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    time_in = got.get("time_in_state_s")
    if isinstance(time_in, dict):
        time_in_state = {str(k): float(v) for k, v in time_in.items()}
        time_in_state[status.value] = time_in_state.get(status.value, 0.0) + max(
            0.0, now - fetched_at)
        time_in_state = {k: round(v, 1) for k, v in time_in_state.items()}
    else:
        time_in_state = local.time_in_state_s
    handled, last_hour = num("calls_handled"), num("calls_last_hour")
    aht = num("aht_s") if "aht_s" in got else local.aht_s
    mean = num("survey_mean")
    return Figures(
        calls_handled=int(handled) if handled is not None else local.calls_handled,
        calls_last_hour=int(last_hour) if last_hour is not None else local.calls_last_hour,
        aht_s=round(aht, 1) if aht is not None else None,
        time_in_state_s=time_in_state,
        survey_count=int(num("survey_count") or 0),
        survey_mean=round(mean, 2) if mean is not None else None,
        from_server=True)


@dataclass
class ShiftFigures:
    _status: AcdStatus | None = None
    _since: float = 0.0
    _time_in: dict[AcdStatus, float] = field(default_factory=dict)
    _connected_at: float | None = None
    _handled: list[tuple[float, float]] = field(default_factory=list)  # (ended at, handle s)

    def status(self, status: AcdStatus, at: float) -> None:
        """The ACD status changed at ``at``."""
        if self._status is not None:
            self._time_in[self._status] = self._time_in.get(self._status, 0.0) + max(
                0.0, at - self._since)
        if status is AcdStatus.ON_CALL and self._status is not AcdStatus.ON_CALL:
            self._connected_at = at
        if (self._status is AcdStatus.WRAP_UP and status is not AcdStatus.WRAP_UP
                and self._connected_at is not None):
            self._handled.append((at, at - self._connected_at))
            self._connected_at = None
        self._status, self._since = status, at

    def figures(self, now: float) -> Figures:
        time_in = dict(self._time_in)
        if self._status is not None:
            time_in[self._status] = time_in.get(self._status, 0.0) + max(0.0, now - self._since)
        handled = len(self._handled)
        return Figures(
            calls_handled=handled,
            calls_last_hour=sum(1 for at, _ in self._handled if now - at <= HOUR_S),
            aht_s=sum(s for _, s in self._handled) / handled if handled else None,
            time_in_state_s={s.value: round(t, 1) for s, t in time_in.items()})
