"""Structured logs: one JSON object per line, one line per call event.

``log_event("call.answered", call_id=..., codec=...)`` writes
``{"ts": "...", "level": "INFO", "logger": "ivr.events", "event": "call.answered", ...}``;
``log_alarm`` the same at ERROR (a process died, a part of the stack had to be restarted).

The stack logs to stderr. If that breaks (the terminal closed: EIO; whatever read it went
away: EPIPE), a process given a ``fallback`` file moves its fd 2 there and says so, so that
nothing after it is lost: its own lines, faulthandler's dumps, tracebacks, PJSIP's output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

LOG_FILE_MODE = 0o600  # the log has callers' numbers in it

events_log = logging.getLogger("ivr.events")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out["event"] = record.getMessage()
            out.update(fields)
        else:
            out["msg"] = record.getMessage()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            base += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return base


def log_fallback_path(var_dir: Path) -> Path:
    """Where the stack's processes log once their stderr is gone: ``var/log/ivr.log``."""
    return var_dir / "log" / "ivr.log"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr, moved to ``fallback`` the first time a write to it fails."""

    def __init__(self, fallback: Path | None) -> None:
        super().__init__(sys.stderr)
        self.fallback = fallback
        self._moved = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            self.stream.write(msg + self.terminator)
            self.flush()
        except OSError as exc:
            if self._moved or not self._move_stderr(exc):
                return  # nowhere left to say it
            with contextlib.suppress(OSError):
                self.stream.write(self.format(record) + self.terminator)
                self.flush()
        except Exception:
            self.handleError(record)

    def _move_stderr(self, exc: OSError) -> bool:
        self._moved = True
        if self.fallback is None:
            return False
        try:
            self.fallback.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.fallback, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
            os.dup2(fd, 2)
            os.close(fd)
        except OSError:
            return False
        # sys.stderr keeps fd 2 (now the file); drop what its buffer held for the old one
        with contextlib.suppress(Exception):
            sys.stderr = open(2, "w", buffering=1, closefd=False,  # noqa: SIM115
                              encoding="utf-8", errors="backslashreplace")
        self.setStream(sys.stderr)
        events_log.error("log.stderr_lost", extra={"fields": {
            "error": f"{type(exc).__name__}: {exc}", "now_in": str(self.fallback),
            "pid": os.getpid()}})
        return True


def setup_logging(level: str = "INFO", fmt: str = "json", fallback: Path | None = None) -> None:
    handler = _StderrHandler(fallback)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request's URL at INFO, and a lookup's URL can carry a caller's
    # account number or PIN ({account} in the template): only its warnings are kept.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def log_event(event: str, **fields: Any) -> None:
    events_log.info(event, extra={"fields": fields})


def log_alarm(event: str, **fields: Any) -> None:
    """An event someone should look at: logged at ERROR."""
    events_log.error(event, extra={"fields": fields})
