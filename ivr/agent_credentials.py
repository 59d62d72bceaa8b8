"""Agents' SIP credentials: who may register a phone at the front, and how it proves it.

Only digest hashes are kept (RFC 2617 3.2.2.2, RFC 3261 22.4): ``HA1 = MD5(id:realm:password)``
and ``HA1B = MD5(id@domain:realm:password)`` (for phones that put the domain in the digest
username). The password itself is never stored, logged or echoed. Kamailio reads the hashes
from the store's ``agents_sip`` table when an agent's phone registers (docs/kamailio.md,
"Agents"). Pure: no I/O here; :class:`ivr.store.CallStore` keeps the rows.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# SIP user part and a SQL literal both safe: Kamailio puts the id into a query (it refuses
# any other character before asking the store)
AGENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSWORD_LEN = 8
PROFICIENCY_MIN, PROFICIENCY_MAX = 1, 10
_QUEUE_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")


class AgentError(ValueError):
    """Bad agent input; the message names the problem (never the password)."""


@dataclass(frozen=True)
class AgentSip:
    """One agent's row in ``agents_sip``. ``queues``: (queue, proficiency 1-10) pairs."""

    agent_id: str
    display_name: str
    realm: str
    ha1: str
    ha1b: str
    queues: tuple[tuple[str, int], ...]
    created_at: float
    updated_at: float


def check_agent_id(agent_id: str) -> str:
    if not AGENT_ID_RE.fullmatch(agent_id):
        raise AgentError(
            f"agent id {agent_id!r}: 1-64 characters, letters, digits and . _ - "
            "(starting with a letter or digit): it is the user part of sip:ID@domain")
    return agent_id


def check_password(password: str, agent_id: str) -> str:
    """A password a phone can keep but a guesser cannot: at least 8 characters, not the id,
    not one character repeated. The message never repeats the password."""
    if not password:
        raise AgentError("the password is empty")
    if len(password) < MIN_PASSWORD_LEN:
        raise AgentError(f"the password is too short: at least {MIN_PASSWORD_LEN} characters")
    if password.lower() == agent_id.lower() or len(set(password)) < 3:
        raise AgentError("the password is too weak (the agent id, or fewer than three "
                         "different characters)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        raise AgentError("the password holds a control character")
    return password


def check_display_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 128 or any(ord(c) < 0x20 or c in '"\\' for c in name):
        raise AgentError(f"name {name!r}: 1-128 characters, no quotes, backslashes or "
                         "control characters")
    return name


def parse_queues(text: str) -> tuple[tuple[str, int], ...]:
    """``support:5,sales:2`` -> (("support", 5), ("sales", 2)); a queue without a level has
    proficiency 5. Errors name the piece that is wrong."""
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        name, sep, level_text = piece.partition(":")
        name = name.strip()
        if not _QUEUE_RE.fullmatch(name):
            raise AgentError(f"queue {name!r} in {piece!r}: lower-case letters, digits, _ -")
        level = 5
        if sep:
            try:
                level = int(level_text)
            except ValueError:
                raise AgentError(f"{piece!r}: the proficiency must be a whole number "
                                 f"{PROFICIENCY_MIN}-{PROFICIENCY_MAX}") from None
            if not PROFICIENCY_MIN <= level <= PROFICIENCY_MAX:
                raise AgentError(f"{piece!r}: proficiency {level} is outside "
                                 f"{PROFICIENCY_MIN}-{PROFICIENCY_MAX}")
        if name in seen:
            raise AgentError(f"queue {name!r} is given twice")
        seen.add(name)
        out.append((name, level))
    return tuple(out)


def format_queues(queues: tuple[tuple[str, int], ...]) -> str:
    return ",".join(f"{name}:{level}" for name, level in queues)


def digest_ha1(user: str, realm: str, password: str) -> str:
    """MD5(user:realm:password), lower-case hex, as digest authentication checks it."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324


def make_hashes(agent_id: str, realm: str, domain: str, password: str) -> tuple[str, str]:
    """(HA1, HA1B) of an agent; HA1B is for digest usernames written ``id@domain``."""
    return (digest_ha1(agent_id, realm, password),
            digest_ha1(f"{agent_id}@{domain}", realm, password))
