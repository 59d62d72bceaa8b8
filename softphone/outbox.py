"""The wrap-up outbox on disk, so that quitting (or a crash) while wrap-ups wait loses
none: one JSON file per agent in the user's state dir (``platformdirs``:
``~/.local/state/callcenter-softphone/outbox-AGENT.json`` on Linux), written whole to a
temporary file and renamed over the old one, so a reader sees the old list or the new one,
never half of one. The session core (``session.py``) decides what is in it; this module
only reads and writes it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .model import WrapUp

VERSION = 1


class OutboxError(Exception):
    """The outbox file cannot be read: the message names the file and the problem."""


def state_dir() -> Path:
    from platformdirs import user_state_dir

    from .settings import APP

    return Path(user_state_dir(APP, appauthor=False))


def outbox_path(agent_id: str, directory: Path | None = None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in agent_id)
    return (directory or state_dir()) / f"outbox-{safe}.json"


def save(path: Path, wrapups: list[WrapUp]) -> None:
    """Write ``wrapups`` atomically (temp file in the same dir, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"version": VERSION, "wrapups": [
        {"call_id": w.call_id, "code": w.code, "note": w.note, "typed_at": w.typed_at}
        for w in wrapups]}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> list[WrapUp]:
    """The wrap-ups kept in ``path`` (none when there is no file), numbered from 1 in the
    order they were typed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise OutboxError(f"cannot read the wrap-up outbox {path}: {exc.strerror}") from None
    try:
        body = json.loads(text)
        items = body["wrapups"]
        if body.get("version") != VERSION or not isinstance(items, list):
            raise ValueError(f"version {body.get('version')!r}, expected {VERSION}")
        return [WrapUp(i, str(w["call_id"]), str(w["code"]), str(w.get("note", "")),
                       float(w.get("typed_at", 0.0)))
                for i, w in enumerate(items, start=1)]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OutboxError(f"the wrap-up outbox {path} is not readable ({exc}); move it "
                          "aside to start without it") from None
