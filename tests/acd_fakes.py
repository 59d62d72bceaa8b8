"""Fakes for the ACD part of a call's session (ivr/queue_call.py): call legs that follow the
CallLeg protocol, the controller link, the phone's agent side; and a driver that runs a
real CallSession over them. No network, no PJSIP."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr import messages as m
from ivr.flow import Flow
from ivr.session import CallSession
from media import (
    HangupSide,
    LegAnswered,
    LegFailed,
    LegGoneError,
    LegHeld,
    LegHungUp,
    LegResumed,
    LegRinging,
    MediaError,
    MediaReady,
    PlaybackFinished,
)

CALLER_URI = '"Ada Caller" <sip:+15550100@127.0.0.1>'


class FakeLeg:
    """A CallLeg whose commands are written to ``log`` and whose events the test sends.
    Prompts play to their end at once (a PlaybackFinished follows every play)."""

    def __init__(self, leg_id: int, remote_uri: str = CALLER_URI, inbound: bool = True) -> None:
        self.leg_id = leg_id
        self.remote_uri = remote_uri
        self.local_uri = "<sip:ivr@127.0.0.1>"
        self.sip_call_id = f"fake-{leg_id}"
        self.media: MediaReady | None = None
        self.ended: LegHungUp | None = None
        self.heard_voice = False
        self.trailing_silence_s = 0.0
        self.recording: Path | None = None
        self.current_playback_id = 0
        self.listener: Any = None
        self.inbound = inbound
        self.answered = inbound
        self.log: list[str] = []
        self._events: asyncio.Queue[Any] = asyncio.Queue()

    def send(self, event: Any) -> None:
        if self.ended is not None:
            return
        if isinstance(event, MediaReady):
            self.media = event
        elif isinstance(event, LegHungUp):
            self.ended = event
        elif isinstance(event, LegAnswered):
            self.answered = True
        self._events.put_nowait(event)

    # the far end -----------------------------------------------------------------------

    def rings(self) -> None:
        self.send(LegRinging(self.leg_id, 180, "Ringing"))

    def picks_up(self, media: bool = True) -> None:
        self.send(LegAnswered(self.leg_id))
        if media:
            self.audio_up()

    def audio_up(self) -> None:
        self.send(MediaReady(self.leg_id, "PCMU", 8000, True, False))

    def refuses(self, code: int, reason: str = "Busy Here") -> None:
        self.send(LegFailed(self.leg_id, code, reason))
        self.send(LegHungUp(self.leg_id, HangupSide.REMOTE, code, reason, False))

    def hangs_up(self) -> None:
        self.send(LegHungUp(self.leg_id, HangupSide.REMOTE, 200, "BYE", self.answered))

    def holds(self, on: bool = True) -> None:
        self.send(LegHeld(self.leg_id) if on else LegResumed(self.leg_id))

    # CallLeg ---------------------------------------------------------------------------

    async def next_event(self) -> Any:
        return await self._events.get()

    def pending_events(self) -> int:
        return self._events.qsize()

    async def answer(self, status_code: int = 200) -> None:
        self.log.append(f"answer {status_code}")
        self.audio_up()

    async def play(self, files: Any) -> int:
        self.current_playback_id += 1
        self.log.append("play " + ",".join(Path(f).stem for f in files))
        self.send(PlaybackFinished(self.leg_id, self.current_playback_id))
        return self.current_playback_id

    async def stop_playback(self) -> None:
        self.log.append("stop")
        self.current_playback_id = 0

    async def hangup(self, status_code: int | None = None) -> None:
        if self.ended is not None:
            return
        self.log.append("bye" if self.answered else "cancel")
        if not self.answered:
            self.send(LegFailed(self.leg_id, 487, "Request Terminated"))
        self.send(LegHungUp(self.leg_id, HangupSide.LOCAL, 200, "OK", self.answered))

    async def cancel(self) -> None:
        await self.hangup()

    async def start_moh(self, path: Path) -> None:
        self.log.append(f"moh {path.stem}")

    async def stop_moh(self) -> None:
        self.log.append("moh off")

    async def send_dtmf(self, digits: str, method: Any = None) -> None:
        self.log.append(f"dtmf {digits}")

    async def start_recording(self, path: Path) -> None:
        raise MediaError("not in these tests")

    async def stop_recording(self) -> float:
        raise MediaError("not in these tests")

    async def listen(self, sink: Any) -> None:
        self.listener = sink
        self.log.append("listen" if sink is not None else "unlisten")

    async def watch_level(self, on: bool = True) -> None:
        pass

    async def transfer(self, uri: str) -> None:
        raise MediaError("not in these tests")

    @property
    def music(self) -> bool:
        """Whether music on hold plays now, from the log."""
        moh = [e for e in self.log if e.startswith("moh")]
        return bool(moh) and moh[-1] != "moh off"


class FakeLink:
    def __init__(self) -> None:
        self.lost = False
        self.sent: list[m.Message] = []

    def send_message(self, msg: m.Message) -> None:
        assert not self.lost
        m.from_wire(__import__("json").loads(m.to_wire(msg)))  # it survives the wire
        self.sent.append(msg)

    def of(self, cls: type[Any]) -> list[Any]:
        return [x for x in self.sent if isinstance(x, cls)]


@dataclass
class FakeRecording:
    path: Path
    stopped: bool = False

    async def stop(self) -> float:
        self.stopped = True
        return 12.5


@dataclass
class FakeMedia:
    agents: list[FakeLeg] = field(default_factory=list)
    placed: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    recordings: list[FakeRecording] = field(default_factory=list)
    free_legs: int = 2

    async def place_call(self, uri: str, headers: dict[str, str]) -> FakeLeg:
        if self.free_legs <= 0:
            raise MediaError("no free call slot")
        self.free_legs -= 1
        leg = FakeLeg(100 + len(self.agents), f"<{uri}>", inbound=False)
        self.agents.append(leg)
        self.placed.append((uri, headers))
        return leg

    async def bridge(self, caller: FakeLeg, agent: FakeLeg) -> None:
        if agent.ended is not None or caller.ended is not None:
            raise LegGoneError("a bridged leg has ended")
        self.log.append(f"bridge {caller.leg_id}-{agent.leg_id}")

    async def unbridge(self, caller: FakeLeg, agent: FakeLeg) -> None:
        self.log.append(f"unbridge {caller.leg_id}-{agent.leg_id}")

    async def connect(self, caller: FakeLeg, a: FakeLeg, b: FakeLeg, level_ab: float,
                      level_ba: float) -> None:
        self.log.append(f"link {a.leg_id}>{b.leg_id} {level_ab:g}")
        self.log.append(f"link {b.leg_id}>{a.leg_id} {level_ba:g}")

    async def disconnect(self, caller: FakeLeg, leg: FakeLeg) -> None:
        self.log.append(f"disconnect {leg.leg_id}")

    async def start_recording(self, left: FakeLeg, right: FakeLeg, path: Path) -> FakeRecording:
        rec = FakeRecording(path)
        self.recordings.append(rec)
        return rec

    @property
    def bridged(self) -> bool:
        last = [e for e in self.log if "bridge" in e]
        return bool(last) and last[-1].startswith("bridge")


class Recorder:
    """The call store's interface, kept as a list."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.ops.append((name, args, kwargs))

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [args[3] for name, args, _ in self.ops
                if name == "call_event" and args[2] == kind]

    def kinds(self) -> list[str]:
        return [args[2] for name, args, _ in self.ops if name == "call_event"]

    def ended(self) -> dict[str, Any] | None:
        ends = [kw for name, _, kw in self.ops if name == "call_ended"]
        return ends[0] if ends else None


class Prompts:
    def path(self, name: str) -> Path:
        return Path(f"/prompts/{name}.wav")


class Driver:
    """A CallSession over a FakeLeg caller, a FakeLink and a FakeMedia."""

    def __init__(self, flow: Flow, tmp: Path, link: FakeLink | None = None,
                 media: FakeMedia | None = None) -> None:
        self.caller = FakeLeg(1)
        self.link = FakeLink() if link is None else link
        self.media = FakeMedia() if media is None else media
        self.store = Recorder()
        self.session = CallSession(
            self.caller, flow, {"en-US": Prompts()}, self.store, "w1",  # type: ignore[arg-type]
            recordings_dir=tmp, acd_link=self.link, acd_media=self.media,  # type: ignore[arg-type]
            info_base_url="http://127.0.0.1:8080", wall_clock=lambda: 1_780_000_000.0)
        self.call_id = self.session.call_id
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Driver:
        self.task = asyncio.ensure_future(self.session.run_call())
        await self.settle()
        return self

    async def settle(self) -> None:
        """Let the session take everything in its inbox (and what that caused)."""
        for _ in range(60):
            await asyncio.sleep(0)

    async def tell(self, msg: Any) -> None:
        self.session.deliver(msg)
        await self.settle()

    async def agent(self, offer_id: str = "o1", record: bool = False,
                    agent_id: str = "1001") -> FakeLeg:
        """Offer the call to an agent; returns the agent's leg."""
        await self.tell(m.Offer(self.call_id, offer_id, agent_id, f"sip:{agent_id}@cc.test",
                                "support", 42.7, 20.0, record))
        return self.media.agents[-1]

    async def finish(self) -> None:
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)
