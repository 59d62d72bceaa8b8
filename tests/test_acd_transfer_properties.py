"""Properties over random sequences of events with transfers, consults and conferences:
no call lost across transfers (each queue visit ends in exactly one final row), every
segment has exactly one agent and one end, an agent's wrap-up starts when they leave the
call, no agent in two calls, and a refused request changes nothing."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.acd import Acd, AcdError, AgentState, EntryState, InvalidStateError
from ivr.acd import events as ev
from ivr.acd import transfer_events as tx
from ivr.acd.consult import ConsultState
from ivr.acd.queue_log import FINAL_EVENTS, QueueEvent

from .acd_util import make_acd

AGENTS = ["a1", "a2", "a3", "a4", "a5"]
QUEUES = ["q1", "q2"]
TARGETS = ["agent:a1", "agent:a2", "agent:a3", "agent:a4", "agent:a5", "queue:q1",
           "queue:q2", "flow:survey", "tel:+4930123", "tel:555", "queue:nope"]
OPS = (["queue"] * 3 + ["agent_state"] * 3 + ["answer"] * 4 + ["tick"] * 2
       + ["transfer"] * 2 + ["consult"] * 3 + ["complete", "cancel"] + ["conference"] * 2
       + ["left", "left", "hangup", "agent_hangup", "fail", "code", "hold"])


def _acd(seed: int) -> Acd:
    q = {"ring_timeout_s": 10, "wrapup_s": 5, "autopause_after": 2, "announce_every_s": 7,
         "max_wait_s": 90, "max_size": 6}
    acd = make_acd({"q1": q, "q2": {**q, "strategy": "round-robin"}},
                   {"a1": {"queues": {"q1": 5}}, "a2": {"queues": {"q1": 3, "q2": 8}},
                    "a3": {"queues": {"q2": 2}}, "a4": {"queues": {"q1": 9, "q2": 4}},
                    "a5": {"queues": {"q2": 5}}},
                   seed=seed, call_reasons={"done": "Done"}, dialplan=["+4930XXX"])
    acd.flow_nodes = frozenset({"survey"})
    return acd


def _snapshot(acd: Acd) -> object:
    return (sorted((a.agent_id, a.state.value) for a in acd.agents.values()),
            sorted((e.call_id, e.queue, e.state.value, e.agent_id)
                   for e in acd.entries.values()),
            sorted(acd.offers), sorted((c, k.state.value) for c, k in acd.consults.items()))


class Ledger:
    """What the actions said so far, checked as they come."""

    def __init__(self, acd: Acd) -> None:
        self.acd = acd
        self.open: dict[tuple[str, str], float] = {}  # (call, agent) -> segment start
        self.segments = 0
        self.enters: Counter[str] = Counter()
        self.finals: Counter[str] = Counter()

    def apply(self, out: list[ev.Action], consult_talkers: set[str]) -> None:
        pending_wrap: list[str] = []
        for action in out:
            if isinstance(action, tx.SegmentStarted):
                assert action.agent_id, action
                key = (action.call_id, action.agent_id)
                assert key not in self.open, f"segment {key} started twice"
                self.open[key] = action.at
                self.segments += 1
            elif isinstance(action, tx.SegmentEnded):
                key = (action.call_id, action.agent_id)
                assert self.open.pop(key) == action.started_at, f"segment {key} not open"
                pending_wrap.append(action.agent_id)
            elif isinstance(action, ev.AgentStateChanged) and action.new == "wrap_up":
                # wrap-up starts when the agent leaves: right after their segment ended
                # (or their consult talk with no caller in it ended)
                if action.agent_id in pending_wrap:
                    pending_wrap.remove(action.agent_id)
                else:
                    assert action.agent_id in consult_talkers, action
            elif isinstance(action, ev.LogQueueEvent):
                row = action.row
                if row.event is QueueEvent.ENTERQUEUE:
                    self.enters[row.call_id] += 1
                elif row.event in FINAL_EVENTS:
                    self.finals[row.call_id] += 1
        assert not pending_wrap, f"segments ended without wrap-up: {pending_wrap}"

    def check(self) -> None:
        acd = self.acd
        # no call lost: a live call has one open queue visit, an ended one none
        for call_id, n in self.enters.items():
            assert n == self.finals[call_id] + (call_id in acd.entries), call_id
        # open segments are the agents with the caller
        with_caller = set()
        for e in acd.entries.values():
            if e.state is EntryState.CONNECTED:
                with_caller.add((e.call_id, e.agent_id))
        for c in acd.consults.values():
            if c.state is ConsultState.CONFERENCE:
                with_caller.add((c.call_id, c.consult_agent))
        assert set(self.open) == with_caller
        # an agent's state matches their rings and calls; no agent in two calls
        ringing = Counter(o.agent_id for o in acd.offers.values())
        talking = Counter(a for _, a in with_caller)
        talking.update(c.consult_agent for c in acd.consults.values()
                       if c.state is ConsultState.TALKING)
        for agent in acd.agents.values():
            assert ringing[agent.agent_id] == (agent.state is AgentState.RESERVED)
            assert talking[agent.agent_id] == (agent.state is AgentState.ON_CALL), agent


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000),
       steps=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50),
                                st.floats(0, 12)), min_size=20, max_size=150))
def test_transfers_never_lose_a_call_and_segments_end_once_with_wrap_up(
        seed: int, steps: list[tuple[str, int, float]]) -> None:
    acd = _acd(seed)
    ledger = Ledger(acd)
    now, n = 0.0, 0
    for agent_id in AGENTS[:4]:
        ledger.apply(acd.handle(ev.AgentStateRequested(agent_id, "ready"), now), set())

    for op, i, dt in steps:
        now += dt
        talking = sorted(c for c, e in acd.entries.items() if e.state is EntryState.CONNECTED)
        call = talking[i % len(talking)] if talking else None
        live = sorted(acd.entries)
        pick = live[i % len(live)] if live else None
        offers = sorted(acd.offers)
        consult_talkers = {c.consult_agent for c in acd.consults.values()
                           if c.state is ConsultState.TALKING}
        event: object | None = None
        if op == "queue":
            n += 1
            event = ev.CallQueued(f"c{n}", QUEUES[i % 2], priority=i % 2)
        elif op == "agent_state":
            state = ["ready", "ready", "not_ready", "logged_out"][i % 4]
            event = ev.AgentStateRequested(AGENTS[i % 5], state,
                                           "break" if state == "not_ready" else "")
        elif op == "answer" and offers:
            consulting = sorted(c.offer_id for c in acd.consults.values()
                                if c.offer_id in acd.offers)
            if consulting and i % 2:  # the consulted agent answers, often
                offers = consulting
            event = ev.OfferAnswered(offers[i % len(offers)])
        elif op == "fail" and offers:
            event = ev.OfferFailed(offers[i % len(offers)], ["no_answer", "rejected"][i % 2])
        elif op == "hangup" and pick:
            event = ev.CallerHungUp(pick) if i % 3 else ev.CallLost(pick)
        elif op == "agent_hangup" and call:
            event = ev.AgentHungUp(call)
        elif op == "transfer" and call:
            event = tx.TransferRequested(call, TARGETS[i % len(TARGETS)])
        elif op == "consult" and call:
            event = tx.ConsultRequested(call, TARGETS[i % len(TARGETS)])
        elif op in ("complete", "cancel", "conference") and call:
            if acd.consults and i % 4:  # mostly a call that has a consult
                call = sorted(acd.consults)[i % len(acd.consults)]
            kind = {"complete": tx.ConsultCompleted, "cancel": tx.ConsultCancelled,
                    "conference": tx.ConferenceRequested}[op]
            event = kind(call)
        elif op == "left" and acd.consults:
            c = acd.consults[sorted(acd.consults)[i % len(acd.consults)]]
            event = tx.AgentLeft(c.call_id, c.agent_id if i % 2 else c.consult_agent)
        elif op == "hold" and call:
            event = ev.CallHeld(call) if i % 2 else ev.CallResumed(call)
        elif op == "code":
            agent = acd.agents[AGENTS[i % 5]]
            if agent.state is AgentState.WRAP_UP and agent.coded_call_id != agent.last_call_id:
                event = ev.WrapUpCoded(agent.agent_id, "done")
        if event is None:
            ledger.apply(acd.tick(now), consult_talkers)
        else:
            before = _snapshot(acd)
            try:
                out = acd.handle(event, now)  # type: ignore[arg-type]
            except (AcdError, InvalidStateError):
                assert _snapshot(acd) == before, f"refused {event} but changed the state"
            else:
                ledger.apply(out, consult_talkers)
        ledger.check()

    for call_id in sorted(acd.entries):  # everyone hangs up
        talkers = {c.consult_agent for c in acd.consults.values()
                   if c.state is ConsultState.TALKING}
        ledger.apply(acd.handle(ev.CallerHungUp(call_id), now), talkers)
    ledger.apply(acd.tick(now + 1000), set())
    ledger.check()
    assert not acd.entries and not acd.offers and not acd.consults and not ledger.open
    assert all(a.state in (AgentState.READY, AgentState.NOT_READY, AgentState.LOGGED_OUT)
               for a in acd.agents.values())
