"""Sign-in tokens: who is calling the API, and what they may do.

A token is 32 random bytes (URL-safe base64), kept only in memory with the agent id, a role
and an expiry; a controller restart signs everyone out. Pure: ``now`` (Unix seconds) is
passed in, nothing here reads the clock.

Roles: ``agent`` acts only as itself (``/agents/{id}`` with its own id). ``supervisor`` is
reserved for the ops half of the API (a later issue): no token carries it yet, and
:func:`may_act_for` gives it nothing more than an agent until that issue says what.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass

TOKEN_BYTES = 32


class Role(enum.Enum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"  # not issued yet (ops API)


@dataclass(frozen=True)
class Session:
    token: str
    agent_id: str
    role: Role
    issued_at: float
    expires_at: float

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


def may_act_for(session: Session, agent_id: str) -> bool:
    """Whether this session may read or change agent ``agent_id``."""
    return session.agent_id == agent_id


class TokenStore:
    """Live sessions by token. Expired ones are dropped when next looked up or issued."""

    def __init__(self, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError(f"token ttl {ttl_s} s: must be above 0")
        self.ttl_s = ttl_s
        self._sessions: dict[str, Session] = {}

    def issue(self, agent_id: str, now: float, role: Role = Role.AGENT) -> Session:
        self._sweep(now)
        session = Session(token=secrets.token_urlsafe(TOKEN_BYTES), agent_id=agent_id,
                          role=role, issued_at=now, expires_at=now + self.ttl_s)
        self._sessions[session.token] = session
        return session

    def lookup(self, token: str, now: float) -> Session | None:
        session = self._sessions.get(token)
        if session is None:
            return None
        if session.expired(now):
            del self._sessions[token]
            return None
        return session

    def revoke(self, token: str) -> Session | None:
        return self._sessions.pop(token, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _sweep(self, now: float) -> None:
        for token in [t for t, s in self._sessions.items() if s.expired(now)]:
            del self._sessions[token]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
