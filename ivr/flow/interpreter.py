"""The flow interpreter: a pure state machine over one call.

It takes what happened (a prompt finished, a key, a timer, the caller left) with ``now`` (a
monotonic time in seconds) and returns what to do as :class:`Action` values; it never reads
the clock or touches the call. The caller of the interpreter runs the actions and calls
:meth:`FlowRun.on_timer` once ``now`` reaches :attr:`FlowRun.deadline`.

States of a run::

    NEW --start()--> PROMPTING --PlaybackDone--> WAITING --key/timer--> (next node)
                        |  ^                        |
                        |  +---- retry prompts -----+
                        +--- key (barge-in) -------> (next node)
    any --Hangup action--> ENDED        any --caller hung up--> ENDED
    hangup node: PROMPTING --done--> PAUSING --timer--> ENDED
    collect:     PROMPTING --key/done--> COLLECTING --#, max digits, inter-digit timer-->
                 (valid: confirm PROMPTING/WAITING or next) (invalid: retry PROMPTING)
    collect, kind yes_no: PROMPTING --yes/no key or utterance--> (unsure: "you said yes?"
                 PROMPTING/WAITING) --> next, var "yes"/"no"   (other key, no-match, silence:
                 retry PROMPTING; ivr/flow/yes_no.py)
    record:      PROMPTING(+beep) --done--> RECORDING --#, silence, max_s--> BUSY
                 --recording done--> (review WAITING or next)
    lookup, queue, transfer: BUSY --result (or timer)--> (next node or its fallback)
    queue (with the ACD):
      BUSY --on_queued--> QUEUED (music; on_announce: position + wait, music again)
      QUEUED --on_offering--> OFFERING (the agent's phone rings; music goes on)
      OFFERING --on_requeued--> QUEUED          QUEUED/OFFERING --on_bridged--> BRIDGED
      BRIDGED --on_agent_hold/on_agent_resume--> BRIDGED (music while held)
      BRIDGED --on_agent_done--> (after_agent, or hang up "completed")
      BUSY/QUEUED/OFFERING --on_queue_exit(target) or an exit key--> (target/on_unavailable)

Nodes that need the outside world emit an action (``Lookup``, ``QueueCall``, ``Transfer``,
``StartRecording``) and wait in BUSY/RECORDING for its result, fed back with ``on_*_result``.
Variables (``vars``) start with what the session knows of the call (``caller``, ``called``,
``call_id``, ``language``) and are filled by ``collect``, ``set``, ``lookup`` and ``record``;
``{name}`` in a template is replaced by the variable's value.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from ..hours import is_open
from . import yes_no
from .callback import PHASES as _CALLBACK_PHASES
from .callback import CallbackDialogue
from .emergency import EmergencyNotices
from .model import (
    BranchCase,
    BranchNode,
    CollectNode,
    Flow,
    GotoNode,
    HangupNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    Node,
    PlayNode,
    QueueNode,
    RecordNode,
    SayNode,
    SetNode,
    SurveyNode,
    TransferNode,
    sensitive_vars,
)
from .speech import NO_PHRASES, VOICE_COLLECT_PHRASES, YES_PHRASES, spoken_digits

log = logging.getLogger("ivr.flow")

MAX_JUMPS_WITHOUT_INPUT = 200
MASK = "X"  # stands for one digit of a sensitive entry ("*" and "#" are keys)


def mask(digits: str) -> str:
    """A sensitive entry as the record keeps it: one ``X`` per key."""
    return MASK * len(digits)


class RunState(StrEnum):
    NEW = "new"
    PROMPTING = "prompting"
    WAITING = "waiting"
    PAUSING = "pausing"
    COLLECTING = "collecting"
    RECORDING = "recording"
    BUSY = "busy"
    QUEUED = "queued"  # in the ACD's queue, hearing music on hold
    OFFERING = "offering"  # an agent's phone rings for this call; still music
    BRIDGED = "bridged"  # talking to the agent
    ENDED = "ended"


_IN_QUEUE = (RunState.BUSY, RunState.QUEUED, RunState.OFFERING)  # exit keys, on_queue_exit


class InvalidStateError(RuntimeError):
    pass


@dataclass(frozen=True)
class Action:
    pass


@dataclass(frozen=True)
class Play(Action):
    prompts: tuple[str, ...]


@dataclass(frozen=True)
class StopPlayback(Action):
    pass


@dataclass(frozen=True)
class Listen(Action):
    """Listen for one utterance (VAD, then recognition against ``phrases``); the session
    answers with ``on_speech_started`` (barge-in) and ``on_speech_result``."""

    phrases: tuple[str, ...]
    language: str
    end_silence_ms: int
    max_utterance_ms: int
    repeat: bool = False  # any sequence of the phrases (digits by voice)


@dataclass(frozen=True)
class StopListening(Action):
    pass


@dataclass(frozen=True)
class Hangup(Action):
    reason: str


@dataclass(frozen=True)
class StartRecording(Action):
    max_s: int
    silence_end_s: float


@dataclass(frozen=True)
class StopRecording(Action):
    pass


@dataclass(frozen=True)
class Lookup(Action):
    url: str
    method: str
    body: dict[str, str]
    timeout_s: float


@dataclass(frozen=True)
class QueueCall(Action):
    queue: str
    skills: tuple[str, ...]
    priority: int


@dataclass(frozen=True)
class StartMusic(Action):
    """Music on hold to the caller, looping until StopMusic (``prompt``: its prompt name)."""

    prompt: str


@dataclass(frozen=True)
class StopMusic(Action):
    pass


@dataclass(frozen=True)
class LeaveQueue(Action):
    """The caller pressed an exit key while queued: tell the ACD (the flow goes on)."""

    key: str


@dataclass(frozen=True)
class RequestCallback(Action):
    """The waiting caller confirmed ``number`` for a callback: ask the ACD
    (``on_callback_taken`` / ``on_callback_refused`` come back)."""

    number: str


@dataclass(frozen=True)
class Transfer(Action):
    uri: str


@dataclass(frozen=True)
class Note(Action):
    """Something the call record should keep (``kind`` is its event name)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


_TEMPLATE_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, variables: Mapping[str, str]) -> str:
    """Replace each ``{name}`` by the variable's value (an unknown variable is empty)."""
    return _TEMPLATE_REF.sub(lambda m: variables.get(m.group(1), ""), template)


def render_url(template: str, variables: Mapping[str, str]) -> str:
    """As :func:`render`, with each value percent-encoded (a caller's ``+86...`` stays one
    path segment or query value)."""
    from urllib.parse import quote

    head, sep, rest = template.partition("}")
    if template.startswith("{") and sep:  # a leading {base_url} is a URL, not a value
        return render(head + sep, variables) + _TEMPLATE_REF.sub(
            lambda m: quote(variables.get(m.group(1), ""), safe=""), rest)
    return _TEMPLATE_REF.sub(lambda m: quote(variables.get(m.group(1), ""), safe=""), template)


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) checksum of card and account numbers (ISO/IEC 7812-1)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _case_holds(case: BranchCase, value: str) -> bool:
    if case.equals is not None and value != case.equals:
        return False
    if case.one_of is not None and value not in case.one_of:
        return False
    if case.prefix is not None and not value.startswith(case.prefix):
        return False
    if case.matches is not None and re.fullmatch(case.matches, value) is None:
        return False
    return case.empty is None or (value == "") == case.empty


def _json_path(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


class FlowRun(CallbackDialogue, EmergencyNotices):
    def __init__(self, flow: Flow, variables: Mapping[str, str] | None = None,
                 wall: Callable[[], dt.datetime] | None = None) -> None:
        self.flow = flow
        self.state = RunState.NEW
        self.node_name = flow.start
        self.deadline: float | None = None
        self.typeahead: list[str] = []
        self.path: list[str] = []  # menu choices taken, "node:key"
        self.language = flow.language
        self.vars: dict[str, str] = {"language": flow.language, **(variables or {})}
        self._wall = wall or (lambda: dt.datetime.now(dt.UTC))
        self._invalid = 0
        self._no_input = 0
        self._phase = ""
        self._digits: list[str] = []
        self._out: list[Action] = []
        # Variables that hold a sensitive collect's digits (and copies): never in a Note.
        self.sensitive = sensitive_vars(flow)
        # Whether the last key given to on_digit must be masked wherever it is recorded: a
        # sensitive collect took it, or (in a flow with one) it waits as type-ahead.
        self.digit_masked = False
        self._took_sensitive = False
        self.music = False  # StartMusic given and not stopped since
        self.listening = False  # Listen given, no result or StopListening since
        self._spoken_target = ""  # a low-confidence choice waiting for "did you say ...?"
        self._answer = ""  # a yes/no collect's answer, while it is confirmed

    # -- public --------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.state is RunState.ENDED

    def start(self, now: float) -> list[Action]:
        if self.state is not RunState.NEW:
            raise InvalidStateError(f"start() in state {self.state.value}")
        self._enter(self.flow.start, now)
        return self._flush()

    def on_playback_done(self, now: float) -> list[Action]:
        queued = self._queued_node()
        if queued is not None and self._callback_playback_done(queued, now):
            return self._flush()
        if self.state is RunState.QUEUED and self._phase == "announce":
            self._phase = ""
            self._music_on()
            return self._flush()
        if self.state is not RunState.PROMPTING:
            return []  # a stale end of a prompt that was already stopped
        node = self._node
        if isinstance(node, PlayNode):
            self._goto(node.next, now)
        elif isinstance(node, MenuNode):
            if self.typeahead:
                self._menu_key(node, self.typeahead.pop(0), now)
            else:
                self._set_state(RunState.WAITING)
                confirm = node.speech_confirm
                timeout_ms = (confirm.timeout_ms if self._phase == "confirm" and confirm
                              else node.timeout_ms)
                self.deadline = now + timeout_ms / 1000
                self._listen(node)
        elif isinstance(node, HangupNode):
            if node.pause_ms:
                self._set_state(RunState.PAUSING)
                self.deadline = now + node.pause_ms / 1000
            else:
                self._end(node.reason)
        elif isinstance(node, SayNode):
            self._goto(node.next, now)
        elif isinstance(node, CollectNode):
            self._collect_prompt_done(node, now)
        elif isinstance(node, SurveyNode):
            if self._phase == "thanks":
                self._goto(node.next, now)
            else:
                self._wait_key(node.timeout_ms, now)
        elif isinstance(node, RecordNode):
            if self._phase == "review":
                self._wait_key(5000, now)
            else:
                self._set_state(RunState.RECORDING)
                self._phase = "recording"
                self.deadline = now + node.max_s
                self._emit(StartRecording(node.max_s, node.silence_end_s))
        elif isinstance(node, QueueNode):
            if not self._emergency_playback_done(node, now):
                self._start_queue(node)
        elif isinstance(node, TransferNode):
            self._start_transfer(node, now)
        return self._flush()

    def on_digit(self, digit: str, now: float) -> list[Action]:
        digit = digit.upper()
        self.digit_masked = False
        if self.state in (RunState.ENDED, RunState.PAUSING, RunState.NEW):
            return []
        node, name = self._node, self.node_name
        self._took_sensitive = False
        dtmf_note = len(self._out)
        self._note("dtmf", digit=digit, node=name)
        self._on_digit(node, digit, now)
        self.digit_masked = self._took_sensitive or bool(self.sensitive and self.typeahead)
        if self.digit_masked:
            self._out[dtmf_note] = Note("dtmf", {"digit": MASK, "node": name})
        return self._flush()

    def _on_digit(self, node: Node, digit: str, now: float) -> None:
        if isinstance(node, PlayNode):
            if node.barge_in and self.state is RunState.PROMPTING:
                self._emit(StopPlayback())
                self.typeahead.append(digit)
                self._goto(node.next, now)
        elif isinstance(node, MenuNode) and self._phase == "confirm":
            confirm = node.speech_confirm
            if confirm is not None and digit in (confirm.yes_key, confirm.no_key):
                if self.state is RunState.PROMPTING:
                    self._emit(StopPlayback())
                self._confirmed(node, digit == confirm.yes_key, now)
        elif isinstance(node, MenuNode):
            if self.state is RunState.PROMPTING and not node.keys_during_prompt():
                self.typeahead.append(digit)
            else:
                if self.state is RunState.PROMPTING:
                    self._emit(StopPlayback())
                self._menu_key(node, digit, now)
        elif isinstance(node, CollectNode):
            self._collect_key(node, digit, now)
        elif isinstance(node, SurveyNode):
            if self._phase == "thanks":
                return
            if self.state is RunState.PROMPTING:
                self._emit(StopPlayback())
            self._survey_key(node, digit, now)
        elif isinstance(node, QueueNode):
            if self._emergency_digit(node, digit, now):
                return
            if self.state is RunState.QUEUED and self._callback_key(node, digit, now):
                return
            target = node.exit_keys.get(digit)
            if target is not None and self.state in _IN_QUEUE:
                self._emit(LeaveQueue(digit))
                self._note("queue.exit_key", node=self.node_name, queue=node.queue, key=digit,
                           target=target)
                self._leave_queue(target, now)
        elif isinstance(node, RecordNode):
            if self.state is RunState.RECORDING and digit == node.terminator:
                self._stop_recording()
            elif (self.state in (RunState.WAITING, RunState.PROMPTING) and self._phase == "review"
                  and digit in ("1", "2")):
                if self.state is RunState.PROMPTING:
                    self._emit(StopPlayback())
                self._review_key(node, digit, now)

    def on_timer(self, now: float) -> list[Action]:
        if self.deadline is None or now < self.deadline:
            return []
        self.deadline = None
        node = self._node
        if self.state is RunState.WAITING and isinstance(node, MenuNode):
            if self._phase == "confirm":  # no answer to "did you say ...?": ask the menu again
                self._confirmed(node, False, now)
            else:
                self._menu_no_input(node, now)
        elif self.state is RunState.PAUSING and isinstance(node, HangupNode):
            self._end(node.reason)
        elif isinstance(node, CollectNode):
            self._collect_timer(node, now)
        elif self.state is RunState.WAITING and isinstance(node, SurveyNode):
            self._survey_retry(node, now, why="no_input")
        elif isinstance(node, RecordNode):
            if self.state is RunState.RECORDING:
                self._stop_recording()
            elif self.state is RunState.WAITING:  # no answer to "keep or re-record": keep
                self._goto(node.next, now)
        elif self.state is RunState.QUEUED and isinstance(node, QueueNode):
            self._callback_timer(node, now)
        elif self.state is RunState.WAITING and isinstance(node, QueueNode):
            self._emergency_timer(node, now)
        elif self.state is RunState.BUSY and isinstance(node, TransferNode):
            self._note("transfer.failed", node=self.node_name, why="no answer to REFER")
            self._goto(node.on_failure, now)
        return self._flush()

    def on_silence(self, now: float) -> list[Action]:
        """The caller has been silent for the record node's ``silence_end_s``."""
        if self.state is RunState.RECORDING:
            self._stop_recording()
        return self._flush()

    def on_recording_done(self, now: float, path: str, duration_s: float,
                          heard_voice: bool) -> list[Action]:
        node = self._node
        if not isinstance(node, RecordNode) or self.state not in (RunState.BUSY,
                                                                     RunState.RECORDING):
            return []
        self._note("record.done", node=self.node_name, path=path,
                   duration_s=round(duration_s, 2), heard_voice=heard_voice)
        if not heard_voice:
            self._goto(node.on_failure, now)
        else:
            self.vars[node.var] = path
            if node.review:
                self._phase = "review"
                self._prompt(node.review_prompts)
            else:
                self._goto(node.next, now)
        return self._flush()

    def on_lookup_result(self, now: float, ok: bool, data: Any, error: str = "") -> list[Action]:
        node = self._node
        if self.state is not RunState.BUSY or not isinstance(node, LookupNode):
            return []
        if not ok:
            self._note("lookup.failed", node=self.node_name, error=error)
            self._goto(node.on_failure, now)
            return self._flush()
        found = {}
        for var, path in node.result.items():
            value = _json_path(data, path)
            # JSON spelling (true, not Python's True); an object or a list as JSON text
            self.vars[var] = ("" if value is None else value if isinstance(value, str)
                              else json.dumps(value, ensure_ascii=False))
            found[var] = self.vars[var]
        self._note("lookup.done", node=self.node_name, vars=self._shown(found))
        self._goto(node.next, now)
        return self._flush()

    def on_queue_result(self, now: float, accepted: bool, reason: str = "") -> list[Action]:
        """The ACD took the call (``on_queued``), or there is none to take it."""
        node = self._node
        if self.state is not RunState.BUSY or not isinstance(node, QueueNode):
            return []
        if accepted:
            return self.on_queued(now)
        self._note("queue.unavailable", node=self.node_name, queue=node.queue, why=reason)
        self._goto(node.on_unavailable, now)
        return self._flush()

    # -- the queue node with the ACD (docstring: "queue (with the ACD)") ---------------

    def _queued_node(self) -> QueueNode | None:
        return self._queue_node(RunState.QUEUED)

    def _queue_node(self, *states: RunState) -> QueueNode | None:
        node = self._node
        if self.state in states and isinstance(node, QueueNode):
            return node
        return None

    def on_queued(self, now: float) -> list[Action]:
        """The call waits in the ACD's queue: music on hold."""
        node = self._queue_node(RunState.BUSY)
        if node is not None:
            self._note("queue.accepted", node=self.node_name, queue=node.queue)
            self._set_state(RunState.QUEUED)
            self.deadline = None
            if not self._emergency_queued(node, now) and not self._callback_play_offer(node):
                self._music_on()
        return self._flush()

    def on_announce(self, now: float, position: int, estimated_wait_s: float) -> list[Action]:
        """Say the caller's position and estimated wait (music stops meanwhile)."""
        from ..say import SayError, say

        node = self._queue_node(RunState.QUEUED)
        if node is None or self._phase in _CALLBACK_PHASES:
            return []  # not while the caller is choosing a callback
        try:
            prompts = [*say("queue_position", position, self.language),
                       *say("wait_time", max(0, round(estimated_wait_s)), self.language)]
        except SayError as exc:
            self._note("say.error", node=self.node_name, value=str(position), error=str(exc))
            return self._flush()
        self._note("queue.announced", node=self.node_name, position=position,
                   estimated_wait_s=round(estimated_wait_s))
        self._music_off()
        self._phase = "announce"
        self._emit(Play((*prompts, *self._callback_offer_prompts(node))))
        return self._flush()

    def on_offering(self, now: float) -> list[Action]:
        """An agent's phone rings for the call: no announcement now; music goes on."""
        if self._queue_node(RunState.QUEUED) is not None:
            self._end_announcement()
            self._callback_abort()
            self._set_state(RunState.OFFERING)
            self._music_on()
        return self._flush()

    def on_requeued(self, now: float) -> list[Action]:
        """The agent did not answer: back to waiting, music on hold."""
        if self._queue_node(RunState.OFFERING, RunState.QUEUED) is not None:
            self._set_state(RunState.QUEUED)
            self._music_on()
        return self._flush()

    def on_bridged(self, now: float) -> list[Action]:
        """The caller talks to the agent: music and announcements stop."""
        if self._queue_node(RunState.QUEUED, RunState.OFFERING) is not None:
            self._end_announcement(music=False)
            self._callback_abort()
            self._phase = ""
            self._music_off()
            self._set_state(RunState.BRIDGED)
        return self._flush()

    def on_agent_hold(self, now: float) -> list[Action]:
        if self._queue_node(RunState.BRIDGED) is not None:
            self._music_on()
        return self._flush()

    def on_agent_resume(self, now: float) -> list[Action]:
        if self._queue_node(RunState.BRIDGED) is not None:
            self._music_off()
        return self._flush()

    def on_transfer_wait(self, now: float) -> list[Action]:
        """The agent transferred the call and left: the caller waits again (music) for
        the next agent, queue or flow node the ACD sends them to."""
        if self._queue_node(RunState.BRIDGED) is not None:
            self._set_state(RunState.QUEUED)
            self._music_on()
        return self._flush()

    def on_agent_done(self, now: float) -> list[Action]:
        """The agent hung up: on to ``after_agent``, or the end (``completed``)."""
        node = self._queue_node(RunState.BRIDGED)
        if node is None:
            return []
        self._music_off()
        self._note("queue.agent_done", node=self.node_name, queue=node.queue,
                   target=node.after_agent or "")
        if node.after_agent:
            self._goto(node.after_agent, now)
        else:
            self._end("completed")
        return self._flush()

    def on_queue_exit(self, now: float, target: str = "", reason: str = "") -> list[Action]:
        """The ACD sends the call on without an agent: to ``target`` (a node of the flow), or
        the queue node's ``on_unavailable`` when it is empty or not a node."""
        node = self._queue_node(*_IN_QUEUE)
        if node is None:
            return []
        if target and target not in self.flow.nodes:
            self._note("flow.error", node=self.node_name,
                       error=f"the ACD's exit target {target!r} is not a node of this flow")
            target = ""
        self._note("queue.exit", node=self.node_name, queue=node.queue, reason=reason,
                   target=target or node.on_unavailable)
        self._leave_queue(target or node.on_unavailable, now)
        return self._flush()

    def _leave_queue(self, target: str, now: float) -> None:
        self._end_announcement(music=False)
        self._callback_abort()
        if self._phase in _CALLBACK_PHASES:
            self._phase = ""
        self._music_off()
        self._goto(target, now)

    def _end_announcement(self, music: bool = True) -> None:
        if self._phase == "announce":
            self._phase = ""
            self._emit(StopPlayback())
            if music:
                self._music_on()

    def _music_on(self) -> None:
        node = self._node
        if not self.music and isinstance(node, QueueNode):
            self.music = True
            self._emit(StartMusic(node.moh))

    def _music_off(self) -> None:
        if self.music:
            self.music = False
            self._emit(StopMusic())

    def on_transfer_result(self, now: float, accepted: bool, status_code: int) -> list[Action]:
        node = self._node
        if self.state is not RunState.BUSY or not isinstance(node, TransferNode):
            return []
        if accepted:
            self._note("transfer.done", node=self.node_name, status_code=status_code)
            self._end("transferred")
        else:
            self._note("transfer.failed", node=self.node_name, status_code=status_code)
            self._goto(node.on_failure, now)
        return self._flush()

    def on_caller_hangup(self, now: float) -> list[Action]:
        self.music = False
        if self.state is not RunState.ENDED:
            self._note("flow.abandoned", node=self.node_name, state=self.state.value)
            self._set_state(RunState.ENDED)
            self.deadline = None
        return self._flush()

    # -- internals -------------------------------------------------------------------

    @property
    def _node(self) -> Node:
        return self.flow.nodes[self.node_name]

    def _shown(self, names: Mapping[str, Any]) -> dict[str, str]:
        """The variables' values as a Note may show them: sensitive ones masked."""
        return {k: mask(self.vars[k]) if k in self.sensitive else self.vars[k] for k in names}

    def _emit(self, action: Action) -> None:
        self._out.append(action)

    def _note(self, kind: str, **data: Any) -> None:
        self._out.append(Note(kind, data))

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _set_state(self, new: RunState) -> None:
        if new is not self.state:
            log.debug("flow %s node %s: %s -> %s", self.flow.name, self.node_name,
                      self.state.value, new.value)
            self.state = new

    def _goto(self, target: str, now: float) -> None:
        self._enter(target, now)

    def _enter(self, name: str, now: float) -> None:
        jumps = 0
        while True:
            jumps += 1
            if jumps > MAX_JUMPS_WITHOUT_INPUT:
                self._note("flow.error", node=name, error="loop without input")
                self._end("flow_error")
                return
            if self.listening:
                self.listening = False
                self._emit(StopListening())
            self.node_name = name
            self.deadline = None
            self._phase = ""
            node = self._node
            self._note("node", node=name, type=node.type)
            if isinstance(node, GotoNode):
                name = node.next
                continue
            jump = self._jump_target(node)
            if jump is not None:
                name = jump
                continue
            if isinstance(node, PlayNode):
                self._prompt(node.prompts)
            elif isinstance(node, MenuNode):
                self._invalid = 0
                self._no_input = 0
                if self.typeahead:
                    key = self.typeahead.pop(0)
                    target = self._menu_target(node, key)
                    if target is not None:
                        name = target
                        continue
                    self._menu_key(node, key, now)
                else:
                    self._menu_prompt(node, node.prompts)
            elif isinstance(node, HangupNode):
                self.typeahead.clear()
                if node.prompts:
                    self._prompt(node.prompts)
                elif node.pause_ms:
                    self._set_state(RunState.PAUSING)
                    self.deadline = now + node.pause_ms / 1000
                else:
                    self._end(node.reason)
            elif isinstance(node, SayNode):
                names = self._say(node)
                if names is None:
                    name = node.next
                    continue
                self._prompt([*node.prompts, *names])
            elif isinstance(node, CollectNode):
                self._invalid = 0
                self._no_input = 0
                self._collect_begin(node, now)
            elif isinstance(node, SurveyNode):
                self._no_input = 0
                self.typeahead.clear()
                self._prompt(node.prompts)
            elif isinstance(node, RecordNode):
                self.typeahead.clear()
                prompts = [*node.prompts, *(["beep"] if node.beep else [])]
                if prompts:
                    self._prompt(prompts)
                else:
                    self._set_state(RunState.RECORDING)
                    self._phase = "recording"
                    self.deadline = now + node.max_s
                    self._emit(StartRecording(node.max_s, node.silence_end_s))
            elif isinstance(node, LookupNode):
                self._set_state(RunState.BUSY)
                body = {k: render(v, self.vars) for k, v in node.body.items()}
                self._emit(Lookup(render_url(node.url, self.vars), node.method, body,
                                  node.timeout_ms / 1000))
            elif isinstance(node, QueueNode):
                if not self._emergency_start(node, now):
                    self._queue_greeting(node)
            elif isinstance(node, TransferNode):
                if node.prompts:
                    self._prompt(node.prompts)
                else:
                    self._start_transfer(node, now)
            elif isinstance(node, BranchNode):  # no case held, no default: a dead end
                self._end("flow_error")
            return

    def _jump_target(self, node: Node) -> str | None:
        """Nodes that decide at once, without the caller: set, branch, language."""
        if isinstance(node, SetNode):
            for var, template in node.vars.items():
                self.vars[var] = render(template, self.vars)
            self._note("vars.set", node=self.node_name, vars=self._shown(node.vars))
            return node.next
        if isinstance(node, LanguageNode):
            self.language = node.language
            self.vars["language"] = node.language
            self._note("language", node=self.node_name, language=node.language)
            return node.next
        if isinstance(node, BranchNode):
            for case in node.cases:
                if _case_holds(case, self.vars.get(case.var, "")):
                    self._note("branch", node=self.node_name, var=case.var, target=case.goto)
                    return case.goto
            if node.hours is not None:
                h = node.hours
                open_now = is_open(h.hours, h.timezone, h.holidays, self._wall())
                target = node.open if open_now else node.closed
                if target is not None:
                    self._note("branch", node=self.node_name, hours="open" if open_now
                               else "closed", target=target)
                    return target
            if node.default is None:
                self._note("flow.error", node=self.node_name, error="no case held, no default")
                return None
            self._note("branch", node=self.node_name, target=node.default)
            return node.default
        return None

    def _say(self, node: SayNode) -> list[str] | None:
        from ..say import SayError, say

        raw = render(node.value, self.vars)
        try:
            value: Any
            if node.kind in ("number", "queue_position", "wait_time"):
                value = raw  # the grammar reads numbers itself: 3.5, or 90.5 seconds
            elif node.kind == "money":
                value = Decimal(raw)
            elif node.kind == "date":
                value = dt.date.fromisoformat(raw)
            elif node.kind == "time":
                value = dt.time.fromisoformat(raw)
            elif node.kind == "datetime":
                value = dt.datetime.fromisoformat(raw)
            else:
                value = raw
            return list(say(node.kind, value, self.language))
        except (ValueError, InvalidOperation, SayError) as exc:
            self._note("say.error", node=self.node_name, value=raw, error=str(exc))
            return None

    def _wait_key(self, timeout_ms: int, now: float) -> None:
        self._set_state(RunState.WAITING)
        self.deadline = now + timeout_ms / 1000

    # -- collect ---------------------------------------------------------------------

    def _collect_begin(self, node: CollectNode, now: float) -> None:
        self._digits = []
        self._phase = "digits"
        typed = [d for d in self.typeahead]
        self.typeahead.clear()
        if typed:
            self._set_state(RunState.COLLECTING)
            for d in typed:
                self._collect_key(node, d, now)
                if self._phase != "digits" or self._node is not node:
                    return
        else:
            self._prompt(node.prompts)
            if node.barge_in:
                self._collect_listen(node)

    def _collect_prompt_done(self, node: CollectNode, now: float) -> None:
        if self._phase == "confirm":
            confirm = node.confirm or node.speech_confirm
            assert confirm is not None
            self._wait_key(confirm.timeout_ms, now)
            self._collect_listen(node)
            return
        self._set_state(RunState.COLLECTING)
        timeout = node.inter_digit_timeout_ms if self._digits else node.first_digit_timeout_ms
        self.deadline = now + timeout / 1000
        if not self._digits:
            self._collect_listen(node)
        typed, self.typeahead = self.typeahead, []  # keys held while the prompt played
        for d in typed:
            self._collect_key(node, d, now)
            if self.state is not RunState.COLLECTING or self._node is not node:
                return

    def _collect_key(self, node: CollectNode, digit: str, now: float) -> None:
        if node.kind == "yes_no":
            self._yes_no_key(node, digit, now)
            return
        if node.sensitive:
            self._took_sensitive = True
        if self._phase == "confirm":
            assert node.confirm is not None
            if digit not in (node.confirm.yes_key, node.confirm.no_key):
                return  # another key neither cuts the confirmation nor answers it
            if self.state is RunState.PROMPTING:
                self._emit(StopPlayback())
            if digit == node.confirm.yes_key:
                self._collect_accept(node, now)
            elif digit == node.confirm.no_key:
                self._note("collect.rejected", node=self.node_name)
                self._collect_retry(node, now, why="not_confirmed", prompts=[])
            return
        if self.state is RunState.PROMPTING:
            if not node.barge_in:
                self.typeahead.append(digit)
                return
            self._emit(StopPlayback())
            self._set_state(RunState.COLLECTING)
        if digit == node.terminator:
            self._collect_finish(node, now)
            return
        self._digits.append(digit)
        if self.listening:  # keys, not voice: stop listening
            self.listening = False
            self._emit(StopListening())
        if len(self._digits) >= node.max_digits:
            self._collect_finish(node, now)
        else:
            self._set_state(RunState.COLLECTING)
            self.deadline = now + node.inter_digit_timeout_ms / 1000

    def _collect_timer(self, node: CollectNode, now: float) -> None:
        if self.state is RunState.WAITING and self._phase == "confirm":
            self._collect_retry(node, now, why="no_input", prompts=node.no_input_prompts)
        elif self.state is RunState.COLLECTING:
            if self._digits:
                self._collect_finish(node, now)
            else:
                self._collect_retry(node, now, why="no_input", prompts=node.no_input_prompts)

    def _collect_finish(self, node: CollectNode, now: float) -> None:
        digits = "".join(self._digits)
        self.deadline = None
        problem = None
        if len(digits) < node.min_digits:
            problem = f"{len(digits)} digits, at least {node.min_digits} wanted"
        elif node.validate_digits is not None:
            v = node.validate_digits
            if v.regex is not None and re.fullmatch(v.regex, digits) is None:
                problem = "does not match the pattern"
            elif v.luhn and not luhn_ok(digits):
                problem = "fails the Luhn check"
        if problem is not None:
            self._collect_retry(node, now, why="invalid", prompts=node.invalid_prompts,
                                digits=mask(digits) if node.sensitive else digits,
                                problem=problem)
            return
        if node.confirm is not None:
            self._phase = "confirm"
            spoken = [f"digit_{d}" if d.isdigit() else {"*": "star", "#": "pound"}.get(d, d)
                      for d in digits]
            self._prompt([*node.confirm.prompts, *spoken, *node.confirm.after_prompts])
            return
        self._collect_accept(node, now)

    def _collect_accept(self, node: CollectNode, now: float) -> None:
        if node.kind == "yes_no":
            answer, self._answer = self._answer, ""
            self.vars[node.var] = answer
            self._note("collect.done", node=self.node_name, var=node.var, answer=answer)
            self._goto(node.next, now)
            return
        digits = "".join(self._digits)
        self.vars[node.var] = digits
        self._note("collect.done", node=self.node_name, var=node.var,
                   digits=mask(digits) if node.sensitive else digits)
        self._goto(node.next, now)

    def _collect_retry(self, node: CollectNode, now: float, why: str,
                       prompts: list[str], **details: str) -> None:
        if why == "no_input":
            self._no_input += 1
            count = self._no_input
        else:
            self._invalid += 1
            count = self._invalid
        self._note(f"collect.{why}", node=self.node_name, count=count, **details)
        self._digits = []
        self._answer = ""
        self._phase = "digits"
        if count > node.max_retries:
            self._note("collect.failed", node=self.node_name, why=why)
            self._goto(node.on_failure, now)
        else:
            self._prompt([*prompts, *node.prompts])
            if node.barge_in:
                self._collect_listen(node)

    # -- survey, record, queue, transfer ----------------------------------------------

    def _survey_key(self, node: SurveyNode, digit: str, now: float) -> None:
        if digit in "12345" and len(digit) == 1:
            self._note("survey", node=self.node_name, question=node.question, score=int(digit))
            self._phase = "thanks"
            if node.thanks_prompts:
                self._prompt(node.thanks_prompts)
            else:
                self._goto(node.next, now)
        else:
            self._survey_retry(node, now, why="invalid")

    def _survey_retry(self, node: SurveyNode, now: float, why: str) -> None:
        self._no_input += 1
        if self._no_input > node.max_retries:
            self._note("survey.no_answer", node=self.node_name, question=node.question,
                       why=why)
            self._goto(node.next, now)
        else:
            self._prompt(node.prompts)

    def _review_key(self, node: RecordNode, digit: str, now: float) -> None:
        if digit == "1":
            self._goto(node.next, now)
        elif digit == "2":
            self._note("record.again", node=self.node_name)
            self._enter(self.node_name, now)

    def _stop_recording(self) -> None:
        self._set_state(RunState.BUSY)
        self.deadline = None
        self._emit(StopRecording())

    def _start_queue(self, node: QueueNode) -> None:
        self._set_state(RunState.BUSY)
        self._emit(QueueCall(node.queue, tuple(node.skills), node.priority))

    def _start_transfer(self, node: TransferNode, now: float) -> None:
        self._set_state(RunState.BUSY)
        self.deadline = now + node.timeout_ms / 1000
        self._emit(Transfer(render(node.to, self.vars)))

    def _prompt(self, prompts: list[str]) -> None:
        self._set_state(RunState.PROMPTING)
        self._emit(Play(tuple(prompts)))

    def _menu_target(self, node: MenuNode, key: str) -> str | None:
        target = node.choices.get(key)
        if target is not None:
            self.path.append(f"{self.node_name}:{key}")
            self._note("menu.choice", node=self.node_name, key=key, target=target)
        return target

    def _menu_key(self, node: MenuNode, key: str, now: float) -> None:
        target = self._menu_target(node, key)
        if target is not None:
            self._goto(target, now)
            return
        if node.repeat_key is not None and key == node.repeat_key:
            self._note("menu.repeat", node=self.node_name)
            self.typeahead.clear()
            self._menu_prompt(node, node.prompts)
            return
        self._invalid += 1
        self.typeahead.clear()
        self._note("menu.invalid", node=self.node_name, key=key, count=self._invalid)
        if self._invalid > node.max_retries:
            self._note("menu.failed", node=self.node_name, why="invalid")
            self._goto(node.on_failure, now)
        else:
            self._menu_prompt(node, [*node.invalid_prompts, *node.prompts])

    def _menu_no_input(self, node: MenuNode, now: float) -> None:
        self._no_input += 1
        self._note("menu.no_input", node=self.node_name, count=self._no_input)
        if self._no_input > node.max_retries:
            self._note("menu.failed", node=self.node_name, why="no_input")
            self._goto(node.on_no_input or node.on_failure, now)
        else:
            self._menu_prompt(node, [*node.no_input_prompts, *node.prompts])

    # -- speech in menus (ivr/flow/speech.py) ----------------------------------------

    def on_speech_started(self, now: float) -> list[Action]:
        """The caller began speaking in a listening menu: barge-in, and the no-input timer
        waits for the result."""
        node = self._node
        if not self.listening or not isinstance(node, MenuNode | CollectNode):
            return []
        self._note("speech.started", node=self.node_name)
        if isinstance(node, CollectNode):
            if self.state is RunState.PROMPTING:
                self._emit(StopPlayback())
            self._set_state(RunState.COLLECTING)
            self.deadline = None
            return self._flush()
        if self.state is RunState.PROMPTING:
            self._emit(StopPlayback())
            self._set_state(RunState.WAITING)
        self.deadline = None
        return self._flush()

    def on_speech_result(self, now: float,
                         hypotheses: list[tuple[str, float]]) -> list[Action]:
        """The recogniser's n-best (text, confidence) for the utterance, best first; empty
        when nothing in the grammar was heard (or recognition failed)."""
        node = self._node
        if not self.listening or not isinstance(node, MenuNode | CollectNode):
            return []
        self.listening = False
        text, confidence = hypotheses[0] if hypotheses else ("", 0.0)
        if isinstance(node, CollectNode):
            self._collect_spoken(node, text, confidence, now)
            return self._flush()
        if self.state is RunState.PROMPTING:
            self._emit(StopPlayback())
        if self._phase == "confirm":
            said_yes = text in YES_PHRASES
            if said_yes or text in NO_PHRASES:
                self._note("speech.confirm", node=self.node_name, text=text,
                           confidence=round(confidence, 3))
                self._confirmed(node, said_yes, now)
            else:
                self._confirmed(node, False, now)
            return self._flush()
        target = node.phrases_for(self.language).get(text)
        thresholds = node.confidence
        decision = ("no_match" if target is None or confidence < thresholds.reject_below
                    else "confirm" if (confidence < thresholds.confirm_below
                                       and node.speech_confirm is not None
                                       and target in node.speech_confirm.prompts)
                    else "accept")
        self._note("speech.result", node=self.node_name, text=text,
                   confidence=round(confidence, 3), target=target or "", decision=decision)
        if decision == "accept" and target is not None:
            self.path.append(f"{self.node_name}:speech:{text}")
            self._note("menu.choice", node=self.node_name, key=f"speech:{text}", target=target)
            self._goto(target, now)
        elif decision == "confirm" and target is not None and node.speech_confirm is not None:
            self._spoken_target = target
            self._phase = "confirm"
            self._set_state(RunState.PROMPTING)
            self._emit(Play(tuple(node.speech_confirm.prompts[target])))
            self._listen(node, confirming=True)
        else:
            self._speech_no_match(node, now)
        return self._flush()

    def _listen(self, node: MenuNode, confirming: bool = False) -> None:
        confirming = confirming or self._phase == "confirm"
        phrases = (tuple([*YES_PHRASES, *NO_PHRASES]) if confirming
                   else tuple(node.phrases_for(self.language)))
        if self.listening or not phrases:
            return
        self.listening = True
        self._emit(Listen(phrases, self.language, node.end_silence_ms, node.max_utterance_ms))

    def _collect_listen(self, node: CollectNode) -> None:
        kind = node.speech.get(self.language)
        if kind is None or self.listening or self._phase not in ("digits", "confirm"):
            return
        if self._phase == "confirm" and kind != "yes_no":
            return  # a digits read-back is answered with keys
        self.listening = True
        end_silence_ms, max_utterance_ms = node.listen_ms()
        self._emit(Listen(VOICE_COLLECT_PHRASES[kind], self.language, end_silence_ms,
                          max_utterance_ms, repeat=kind == "digits"))

    def _collect_spoken(self, node: CollectNode, text: str, confidence: float,
                        now: float) -> None:
        if node.kind == "yes_no":
            self._yes_no_spoken(node, text, confidence, now)
            return
        if self._phase != "digits" or self._digits:
            return  # keys came first: they win
        digits = spoken_digits(text)[: node.max_digits]
        self._note("speech.result", node=self.node_name, text=text,
                   confidence=round(confidence, 3), digits=digits)
        if not digits:
            self._collect_retry(node, now, why="invalid", prompts=node.invalid_prompts,
                                digits="", problem="no digits heard")
            return
        self._digits = list(digits)
        self._collect_finish(node, now)

    # -- a yes/no question: collect with kind yes_no (ivr/flow/yes_no.py) --------------

    def _yes_no_key(self, node: CollectNode, digit: str, now: float) -> None:
        if self._phase == "confirm":
            assert node.speech_confirm is not None
            confirm = node.speech_confirm
            if digit in (confirm.yes_key, confirm.no_key):
                if self.state is RunState.PROMPTING:
                    self._emit(StopPlayback())
                self._yes_no_confirmed(node, digit == confirm.yes_key, "key", now)
            return  # another key neither cuts the confirmation nor answers it
        if self.state is RunState.PROMPTING:
            if not node.barge_in:
                self.typeahead.append(digit)
                return
            self._emit(StopPlayback())
        answer = yes_no.key_answer(digit, node.yes_key, node.no_key)
        if answer is None:
            self._collect_retry(node, now, why="invalid", prompts=node.invalid_prompts,
                                key=digit, problem=f"neither {node.yes_key} (yes) nor "
                                f"{node.no_key} (no)")
            return
        self._answer = answer
        self._collect_accept(node, now)

    def _yes_no_spoken(self, node: CollectNode, text: str, confidence: float,
                       now: float) -> None:
        answer = yes_no.spoken_answer(text)
        if self._phase == "confirm":  # "you said yes, right?": anything but a yes is a no
            self._note("speech.confirm", node=self.node_name, text=text,
                       confidence=round(confidence, 3))
            if self.state is RunState.PROMPTING:
                self._emit(StopPlayback())
            self._yes_no_confirmed(node, answer == "yes", "speech", now)
            return
        if self._phase != "digits":
            return
        confirm = node.speech_confirm
        decision = yes_no.decide(answer, confidence, node.confidence,
                                 confirm.prompts if confirm is not None else None)
        self._note("speech.result", node=self.node_name, text=text,
                   confidence=round(confidence, 3), answer=answer or "", decision=decision)
        if self.state is RunState.PROMPTING:
            self._emit(StopPlayback())
        if decision == "no_match" or answer is None:
            self._collect_retry(node, now, why="no_match",
                                prompts=node.no_match_prompts or node.invalid_prompts)
        elif decision == "confirm" and confirm is not None:
            self._answer = answer
            self._phase = "confirm"
            self.deadline = None
            self._prompt(confirm.prompts[answer])
            if node.barge_in:
                self._collect_listen(node)
        else:
            self._answer = answer
            self._collect_accept(node, now)

    def _yes_no_confirmed(self, node: CollectNode, yes: bool, how: str, now: float) -> None:
        if self.listening:
            self.listening = False
            self._emit(StopListening())
        if yes:
            self._collect_accept(node, now)
        else:
            self._note("collect.rejected", node=self.node_name, answer=self._answer, by=how)
            self._collect_retry(node, now, why="not_confirmed", prompts=[])

    def _menu_prompt(self, node: MenuNode, prompts: list[str]) -> None:
        self._prompt(prompts)
        if node.listens_during_prompt():
            self._listen(node)

    def _confirmed(self, node: MenuNode, yes: bool, now: float) -> None:
        target, self._spoken_target = self._spoken_target, ""
        self._phase = ""
        if self.listening:
            self.listening = False
            self._emit(StopListening())
        if yes and target:
            self.path.append(f"{self.node_name}:speech:{target}")
            self._note("menu.choice", node=self.node_name, key=f"speech:confirmed:{target}",
                       target=target)
            self._goto(target, now)
        else:
            self._note("speech.rejected", node=self.node_name, target=target)
            self._menu_prompt(node, list(node.prompts))

    def _speech_no_match(self, node: MenuNode, now: float) -> None:
        self._invalid += 1
        self._note("menu.no_match", node=self.node_name, count=self._invalid)
        if self._invalid > node.max_retries:
            self._note("menu.failed", node=self.node_name, why="no_match")
            self._goto(node.on_failure, now)
        else:
            self._menu_prompt(node, [*(node.no_match_prompts or node.invalid_prompts),
                                     *node.prompts])

    def _end(self, reason: str) -> None:
        self._set_state(RunState.ENDED)
        self.deadline = None
        self._emit(Hangup(reason))
