"""Agents' SIP credentials in the store (hashes only; see ivr/agent_credentials.py).
Kamailio reads ``agents_sip`` for digest authentication (ivr/kamailio.cfg.tmpl)."""

from __future__ import annotations

from typing import Any

from ..agent_credentials import AgentError, AgentSip, format_queues, parse_queues
from . import sql
from .base import StoreBase
from .records import StoreError


class AgentRows(StoreBase):
    def add_agent_sip(self, agent: AgentSip) -> None:
        """Raises AgentError if the id is taken (nothing written)."""
        try:
            with self._tx() as db:
                if db.execute(sql.AGENT_EXISTS, (agent.agent_id,)).fetchone():
                    raise AgentError(f"agent {agent.agent_id!r} exists already "
                                     "(ivr agent passwd changes its password)")
                db.execute(sql.INSERT_AGENT,
                           (agent.agent_id, agent.display_name, agent.realm, agent.ha1,
                            agent.ha1b, format_queues(agent.queues), agent.created_at,
                            agent.updated_at))
        except self._error as exc:
            raise StoreError(f"{self.path}: cannot add agent {agent.agent_id}: {exc}") from exc

    def set_agent_sip_hashes(self, agent_id: str, realm: str, ha1: str, ha1b: str,
                             at: float) -> None:
        """A new password's hashes. Raises AgentError for an unknown agent."""
        try:
            with self._tx() as db:
                n = db.execute(sql.SET_AGENT_HASHES, (realm, ha1, ha1b, at, agent_id)).rowcount
        except self._error as exc:
            raise StoreError(f"{self.path}: cannot change agent {agent_id}: {exc}") from exc
        if n == 0:
            raise AgentError(f"no agent {agent_id!r}")

    def remove_agent_sip(self, agent_id: str) -> None:
        """Raises AgentError for an unknown agent. A phone registered with the old
        credentials keeps its binding at the front until it expires or re-registers."""
        try:
            with self._tx() as db:
                n = db.execute(sql.DELETE_AGENT, (agent_id,)).rowcount
        except self._error as exc:
            raise StoreError(f"{self.path}: cannot remove agent {agent_id}: {exc}") from exc
        if n == 0:
            raise AgentError(f"no agent {agent_id!r}")

    def agents_sip(self) -> list[AgentSip]:
        return [_agent_from_row(r) for r in self._db.execute(sql.AGENTS).fetchall()]

    def agent_sip(self, agent_id: str) -> AgentSip | None:
        row = self._db.execute(sql.GET_AGENT, (agent_id,)).fetchone()
        return _agent_from_row(row) if row else None


def _agent_from_row(row: tuple[Any, ...]) -> AgentSip:
    agent_id, name, realm, ha1, ha1b, queues, created, updated = row
    return AgentSip(agent_id, name, realm, ha1, ha1b, parse_queues(queues), created, updated)
