"""PJSIP's log, made safe against hostile input: one short line per message, rate-limited
per source.

PJSIP logs a message it rejects whole (``Error processing packet from ...`` at level 1, with
the packet and ``-- end of packet.``): five minutes of malformed traffic wrote 981 lines,
2.4 MB. :func:`summarize` keeps the first line of an entry, cut to
:data:`LINE_MAX_CHARS`, and finds the address it names; :class:`LogLimiter` lets through
at most ``per_source_per_s`` lines a second for each source (and ``total_per_s`` in all, as
sources can be many or spoofed), and counts what it held back so that the next line let
through says so. Pure: the caller passes ``now``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LINE_MAX_CHARS = 240
PER_SOURCE_PER_S = 5
TOTAL_PER_S = 20
_MAX_SOURCES = 1024  # windows kept at once; past it the oldest are forgotten

# "from 127.0.0.1:5060", "from UDP 127.0.0.1:5060", "from [::1]:5060"
_SOURCE = re.compile(r"\bfrom (?:(?:UDP|TCP|TLS)6? )?(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+?):\d+")
NO_SOURCE = "-"


def summarize(message: str) -> tuple[str, str]:
    """``(first line cut to LINE_MAX_CHARS, source address or NO_SOURCE)``."""
    text = message.strip()
    first = text.split("\n", 1)[0].rstrip()
    more = len(first) < len(text)
    if len(first) > LINE_MAX_CHARS:
        first, more = first[:LINE_MAX_CHARS], True
    if more:
        first += " [...]"
    match = _SOURCE.search(first)
    return first, (match.group(1).strip("[]") if match else NO_SOURCE)


@dataclass
class _Window:
    start_s: float
    lines: int = 0
    held: int = 0


@dataclass
class LogLimiter:
    """Admits at most ``per_source_per_s`` lines per source and ``total_per_s`` in all, in
    windows of one second."""

    per_source_per_s: int = PER_SOURCE_PER_S
    total_per_s: int = TOTAL_PER_S
    _windows: dict[str, _Window] = field(default_factory=dict)
    _total: _Window = field(default_factory=lambda: _Window(start_s=float("-inf")))

    def admit(self, source: str, now: float) -> tuple[bool, int]:
        """Whether a line from ``source`` may be logged at ``now``, and how many lines from
        it were held back since its last one."""
        if now - self._total.start_s >= 1.0:
            self._total = _Window(now)
        window = self._windows.get(source)
        if window is None or now - window.start_s >= 1.0:
            held = window.held if window is not None else 0
            self._windows.pop(source, None)
            if len(self._windows) >= _MAX_SOURCES:
                self._windows.pop(next(iter(self._windows)))
            window = self._windows[source] = _Window(now, held=held)
        if window.lines >= self.per_source_per_s or self._total.lines >= self.total_per_s:
            window.held += 1
            return False, 0
        window.lines += 1
        self._total.lines += 1
        held, window.held = window.held, 0
        return True, held
