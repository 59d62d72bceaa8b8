"""Supervision (listen, whisper, barge): the controller's checks and messages, the API's
routes (in-process, over the real desk), and the worker's bridge directions per mode with
fake legs and phone (tests/acd_fakes.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from ivr import messages as m
from ivr import supervision_messages as sm
from ivr.acd import parse_acd
from ivr.acd_service import AcdService
from ivr.agent_credentials import AgentSip, make_hashes
from ivr.agent_desk import Desk
from ivr.api.app import make_app
from ivr.desk import DeskError
from tests.test_queue_call import bridged, runs_in_loop

ACD = """
queues:
  sales: {ring_timeout_s: 10, wrapup_s: 5, announce_every_s: 0}
agents:
  "1001": {name: Alice, queues: {sales: 5}}
  "1003": {name: Sue, queues: {sales: 1}}
supervision: {supervisors: [1003], tell_agent_on_listen: false}
"""


class Rig:
    def __init__(self, acd: str = ACD) -> None:
        self.sent: list[m.Message] = []
        self.events: list[tuple[str, dict[str, object]]] = []
        self.service = AcdService(parse_acd(acd), send=lambda c, x: self.sent.append(x) or True,
                                  log_rows=lambda rows: None,
                                  agent_uri=lambda a: f"sip:{a}@cc.test",
                                  on_agent_event=lambda a, e: self.events.append((a, e)),
                                  clock=lambda: 1000.0)
        ha1, ha1b = make_hashes("1003", "callcenter", "cc.test", "sup-pass-1")
        cred = AgentSip("1003", "Sue", "callcenter", ha1, ha1b, (("sales", 1),), 0, 0)
        self.desk = Desk(self.service, lambda a: cred if a == "1003" else None,
                         clock=lambda: 1000.0)

    def connect(self) -> None:
        self.desk.set_state("1001", "ready")
        self.service.on_message(m.Join("c1", "sales"))
        offer = next(x for x in self.sent if isinstance(x, m.Offer))
        self.service.on_message(m.OfferAnswered("c1", offer.offer_id))
        self.sent.clear()

    def told(self) -> list[str]:
        return [str(e["mode"]) for a, e in self.events if e["event"] == "supervised"]


def test_listen_rings_the_supervisor_switch_keeps_the_leg_and_the_agent_is_told_of_whisper(
        ) -> None:
    rig = Rig()
    rig.connect()
    out = rig.desk.supervise("1003", "c1", "listen")
    assert out == {"call_id": "c1", "mode": "listen", "phone": "1003", "agent_id": "1001"}
    assert rig.sent == [sm.Supervise("c1", "1003", "sip:1003@cc.test", "listen")]
    assert rig.told() == []  # a listen is not told (tell_agent_on_listen: false)
    rig.desk.supervise("1003", "c1", "whisper", action="switch")
    assert rig.sent[-1] == sm.SuperviseMode("c1", "whisper")
    assert rig.told() == ["whisper"]
    rig.desk.supervise("1003", "c1", "", action="end")
    assert rig.sent[-1] == sm.SuperviseEnd("c1") and rig.told() == ["whisper", ""]


def test_a_listen_is_told_when_the_acd_file_says_so() -> None:
    rig = Rig(ACD.replace("tell_agent_on_listen: false", "tell_agent_on_listen: true"))
    rig.connect()
    rig.desk.supervise("1003", "c1", "listen")
    assert rig.told() == ["listen"]


@pytest.mark.parametrize(("by", "call", "mode", "phone", "status", "text"), [
    ("1001", "c1", "listen", "", 403, "agent 1001 may not supervise"),
    ("1003", "nope", "listen", "", 404, "no call 'nope'"),
    ("1003", "c1", "spy", "", 422, "mode 'spy': one of listen, whisper, barge"),
    ("1003", "c1", "listen", "9999", 422, "no phone '9999'"),
    ("1003", "c1", "listen", "1001", 422, "is the call's own agent"),
])
def test_refusals_name_the_problem(by: str, call: str, mode: str, phone: str, status: int,
                                   text: str) -> None:
    rig = Rig()
    rig.connect()
    with pytest.raises(DeskError, match=text) as err:
        rig.desk.supervise(by, call, mode, phone)
    assert err.value.status == status and rig.sent == []


def test_supervising_twice_or_switching_nothing_is_409() -> None:
    rig = Rig()
    rig.connect()
    with pytest.raises(DeskError, match="is not supervised"):
        rig.desk.supervise("1003", "c1", "barge", action="switch")
    rig.desk.supervise("1003", "c1", "barge")
    with pytest.raises(DeskError, match="already supervised by 1003") as err:
        rig.desk.supervise("1003", "c1", "listen")
    assert err.value.status == 409
    rig.service.on_message(sm.SupervisorGone("c1", "1003", "hangup"))  # they hung up
    assert "c1" not in rig.service.supervision.active


def test_the_api_routes() -> None:
    rig = Rig()
    rig.connect()
    app = make_app(rig.desk, clock=lambda: 1000.0)

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api") as http:
            r = await http.post("/api/v1/sessions",
                                json={"agent_id": "1003", "password": "sup-pass-1"})
            auth = {"Authorization": f"Bearer {r.json()['token']}"}
            url = "/api/v1/calls/c1/supervise"
            r = await http.post(url, json={"mode": "whisper", "phone": "1003"}, headers=auth)
            assert r.status_code == 202, r.text
            r = await http.put(url, json={"mode": "barge"}, headers=auth)
            assert r.status_code == 200 and r.json()["mode"] == "barge"
            r = await http.put(url, json={"mode": "loud"}, headers=auth)
            assert r.status_code == 422
            r = await http.delete(url, headers=auth)
            assert r.status_code == 200
            r = await http.delete(url, headers=auth)
            assert r.status_code == 409

    asyncio.run(run())


@runs_in_loop
async def test_the_worker_connects_the_supervisor_with_each_modes_directions(
        tmp_path: Path) -> None:
    d, agent = await bridged(tmp_path)
    await d.tell(sm.Supervise(d.call_id, "1003", "sip:1003@cc.test", "listen"))
    sup = d.media.agents[-1]
    assert d.media.placed[-1][0] == "sip:1003@cc.test"
    sup.picks_up()
    await d.settle()
    c, a, s = 1, agent.leg_id, sup.leg_id
    links = [e for e in d.media.log if e.startswith("link")]
    # listen: the supervisor hears both; neither hears the supervisor
    assert links == [f"link {c}>{s} 1", f"link {s}>{c} 0", f"link {a}>{s} 1",
                     f"link {s}>{a} 0"]
    await d.tell(sm.SuperviseMode(d.call_id, "whisper"))  # the same leg: no new call
    links = [e for e in d.media.log if e.startswith("link")][4:]
    assert links == [f"link {c}>{s} 1", f"link {s}>{c} 0", f"link {a}>{s} 1",
                     f"link {s}>{a} 1"]
    await d.tell(sm.SuperviseMode(d.call_id, "barge"))
    links = [e for e in d.media.log if e.startswith("link")][8:]
    assert f"link {s}>{c} 1" in links and f"link {s}>{a} 1" in links
    assert len(d.media.agents) == 2
    sup.hangs_up()
    await d.settle()
    assert d.link.of(sm.SupervisorGone) == [sm.SupervisorGone(d.call_id, "1003", "hangup")]
    assert not d.link.of(m.AgentGone)  # the call goes on


@runs_in_loop
async def test_after_a_transfer_the_supervisor_hears_the_next_agent(tmp_path: Path) -> None:
    from ivr import transfer_messages as tm

    d, agent = await bridged(tmp_path)
    await d.tell(sm.Supervise(d.call_id, "1003", "sip:1003@cc.test", "whisper"))
    sup = d.media.agents[-1]
    sup.picks_up()
    await d.settle()
    await d.tell(tm.Release(d.call_id, "1001", "transferred"))
    d.media.free_legs += 1  # the fake phone's slots: caller's agent, supervisor, next agent
    nxt = await d.agent("o2", agent_id="1002")
    nxt.picks_up()
    await d.settle()
    await d.tell(m.Connect(d.call_id, "o2", "1002"))
    links = d.media.log[d.media.log.index(f"bridge 1-{nxt.leg_id}"):]
    assert f"link {nxt.leg_id}>{sup.leg_id} 1" in links  # hears the new agent
    assert f"link {sup.leg_id}>{nxt.leg_id} 1" in links  # and still whispers to them
