"""The agent's own figures for the shift, from what the session saw (pure, ``now`` passed
in): calls handled, calls in the last hour (an agent checks at 11:30 how many since
11:00... or since 10:30: the last 60 minutes), average handle time (talk + hold + wrap-up,
the call-center AHT), and time in each ACD status."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import AcdStatus

HOUR_S = 3600.0


@dataclass(frozen=True)
class Figures:
    calls_handled: int
    calls_last_hour: int
    aht_s: float | None  # None before the first call
    time_in_state_s: dict[str, float]


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
