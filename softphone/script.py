"""The queue's guided script and the phrases an agent must not use (pure)."""

from __future__ import annotations

import re

# used when the server gives none (docs/softphone.md)
DEFAULT_BANNED = ("it's company policy", "you're wrong", "calm down", "that's not my job")


def _norm(text: str) -> str:
    text = text.lower().replace("\u2019", "'")
    return re.sub(r"\s+", " ", text)


def banned_in(note: str, banned: tuple[str, ...] | list[str] = DEFAULT_BANNED) -> list[str]:
    """The banned phrases ``note`` contains (case, curly quotes and spacing ignored)."""
    text = _norm(note)
    return [p for p in banned if _norm(p) in text]


def reason_tree(codes: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """``billing/refund`` codes grouped by their first part, for the code tree."""
    tree: dict[str, list[tuple[str, str]]] = {}
    for code, label in sorted(codes):
        tree.setdefault(code.split("/", 1)[0], []).append((code, label))
    return tree
