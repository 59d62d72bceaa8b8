"""A fake driver for the flow interpreter: runs a FlowRun the way ``ivr/session.py`` does,
with a fake monotonic ``now`` and a fake wall clock, from a script of tokens."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ivr.flow import Flow, FlowRun, Hangup, Note, Play, StopPlayback
from ivr.flow.interpreter import (
    Action,
    LeaveQueue,
    Lookup,
    QueueCall,
    RequestCallback,
    StartMusic,
    StartRecording,
    StopMusic,
    StopRecording,
    Transfer,
)

T0 = 1000.0  # the fake monotonic clock at the start of every call
WALL = dt.datetime(2026, 3, 4, 2, 0, tzinfo=dt.UTC)  # Wednesday 10:00 in Shanghai


def show(action: Action) -> str:
    """An action as a short string for tables."""
    if isinstance(action, Play):
        return "play " + ",".join(action.prompts)
    if isinstance(action, StopPlayback):
        return "stop"
    if isinstance(action, Hangup):
        return f"hangup {action.reason}"
    if isinstance(action, StartRecording):
        return f"record {action.max_s} {action.silence_end_s}"
    if isinstance(action, StopRecording):
        return "stop_recording"
    if isinstance(action, Lookup):
        return f"lookup {action.method} {action.url}"
    if isinstance(action, QueueCall):
        return f"queue {action.queue} {','.join(action.skills)} {action.priority}"
    if isinstance(action, Transfer):
        return f"transfer {action.uri}"
    if isinstance(action, StartMusic):
        return f"music {action.prompt}"
    if isinstance(action, StopMusic):
        return "music off"
    if isinstance(action, LeaveQueue):
        return f"leave {action.key}"
    if isinstance(action, RequestCallback):
        return f"callback {action.number}"
    if isinstance(action, Note):
        return f"note {action.kind}"
    raise AssertionError(f"unexpected action {action!r}")


@dataclass
class FakeCall:
    """Drives a FlowRun like the session, with a fake ``now`` and a fake wall clock.

    Script tokens: ``start``; ``done`` (the prompt playing now ends: there must be one); a
    single DTMF key; ``fire`` (time jumps to the deadline, the timer fires); ``+S`` (S seconds
    pass, then the timer is checked); ``bye`` (the caller hangs up); ``silence`` (the caller
    has been silent for ``silence_end_s`` while recording); ``voice``/``mute`` (the recording
    is finished, with or without the caller's voice in it); ``queued``/``noagent`` (the ACD's
    answer); ``refer_ok``/``refer_486`` (the answer to the REFER); with the ACD:
    ``announce`` (position 2, 90 s), ``offering``, ``requeued``, ``bridged``, ``held``,
    ``resumed``, ``agent_done``, ``exit`` (on_unavailable) or ``exit:NODE``; callbacks:
    ``cb_taken`` (the ACD took it, 300 s estimated) or ``cb_refused``.
    """

    flow: Flow
    variables: dict[str, str] = field(default_factory=dict)
    wall: dt.datetime = WALL  # what the branch node's business hours read
    now: float = T0
    run: FlowRun = field(init=False)
    actions: list[Action] = field(default_factory=list)
    playing: bool = False  # a Play is under way and will report its end
    recording: bool = False  # a StartRecording is under way
    recordings: int = 0
    strict: bool = True  # ``done`` only while a prompt plays (False: send stale ends too)
    times: list[float] = field(default_factory=list)  # ``now`` of each recorded action

    def __post_init__(self) -> None:
        self.run = FlowRun(self.flow, dict(self.variables), wall=lambda: self.wall)

    def _record(self, actions: list[Action]) -> list[Action]:
        for action in actions:
            if isinstance(action, Play):
                self.playing = True  # a new playback replaces the one under way
            elif isinstance(action, StopPlayback):
                assert self.playing, "StopPlayback while nothing plays"
                self.playing = False
            elif isinstance(action, StartRecording):
                assert not self.recording, "StartRecording while recording"
                self.recording = True
            elif isinstance(action, StopRecording):
                assert self.recording, "StopRecording while not recording"
                self.recording = False
        self.actions.extend(actions)
        self.times.extend([self.now] * len(actions))
        return actions

    def start(self) -> list[Action]:
        return self._record(self.run.start(self.now))

    def done(self) -> list[Action]:
        assert self.playing or not self.strict, "no prompt is playing"
        self.playing = False
        return self._record(self.run.on_playback_done(self.now))

    def key(self, digit: str) -> list[Action]:
        return self._record(self.run.on_digit(digit, self.now))

    def fire(self) -> list[Action]:
        assert self.run.deadline is not None, "no timer is due"
        self.now = self.run.deadline
        return self._record(self.run.on_timer(self.now))

    def wait(self, seconds: float) -> list[Action]:
        self.now += seconds
        return self._record(self.run.on_timer(self.now))

    def bye(self) -> list[Action]:
        return self._record(self.run.on_caller_hangup(self.now))

    def silence(self) -> list[Action]:
        return self._record(self.run.on_silence(self.now))

    def recorded(self, heard_voice: bool = True, duration_s: float = 4.25) -> list[Action]:
        self.recordings += 1
        self.recording = False
        path = f"/rec/{self.recordings}.wav"
        return self._record(self.run.on_recording_done(self.now, path, duration_s, heard_voice))

    def looked_up(self, ok: bool, data: Any = None, error: str = "") -> list[Action]:
        return self._record(self.run.on_lookup_result(self.now, ok, data, error))

    def queued(self, accepted: bool, reason: str = "") -> list[Action]:
        return self._record(self.run.on_queue_result(self.now, accepted, reason))

    def transferred(self, accepted: bool, status_code: int) -> list[Action]:
        return self._record(self.run.on_transfer_result(self.now, accepted, status_code))

    def play(self, script: str) -> FakeCall:
        words = {
            "start": self.start, "done": self.done, "fire": self.fire, "bye": self.bye,
            "silence": self.silence, "voice": lambda: self.recorded(True),
            "mute": lambda: self.recorded(False), "queued": lambda: self.queued(True),
            "noagent": lambda: self.queued(False, "no agent"),
            "refer_ok": lambda: self.transferred(True, 202),
            "refer_486": lambda: self.transferred(False, 486),
            "announce": lambda: self._record(self.run.on_announce(self.now, 2, 90)),
            "offering": lambda: self._record(self.run.on_offering(self.now)),
            "requeued": lambda: self._record(self.run.on_requeued(self.now)),
            "bridged": lambda: self._record(self.run.on_bridged(self.now)),
            "held": lambda: self._record(self.run.on_agent_hold(self.now)),
            "resumed": lambda: self._record(self.run.on_agent_resume(self.now)),
            "agent_done": lambda: self._record(self.run.on_agent_done(self.now)),
            "exit": lambda: self._record(self.run.on_queue_exit(self.now, "", "timeout")),
            "cb_taken": lambda: self._record(self.run.on_callback_taken(self.now, 300)),
            "cb_refused": lambda: self._record(self.run.on_callback_refused(self.now, "no")),
        }
        for token in script.split():
            if token in words:
                words[token]()
            elif token.startswith("exit:"):
                self._record(self.run.on_queue_exit(self.now, token[5:], "overflow"))
            elif token.startswith("+"):
                self.wait(float(token[1:]))
            elif len(token) == 1:
                self.key(token)
            else:
                raise AssertionError(f"bad script token {token!r}")
        return self

    @property
    def visible(self) -> list[str]:
        """Everything but notes, rendered."""
        return [show(a) for a in self.actions if not isinstance(a, Note)]

    def notes(self, kind: str) -> list[dict[str, object]]:
        return [a.data for a in self.actions if isinstance(a, Note) and a.kind == kind]

    def hangups(self) -> list[Hangup]:
        return [a for a in self.actions if isinstance(a, Hangup)]
