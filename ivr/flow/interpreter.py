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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .model import Flow, GotoNode, HangupNode, MenuNode, PlayNode

log = logging.getLogger("ivr.flow")

MAX_JUMPS_WITHOUT_INPUT = 200


class RunState(StrEnum):
    NEW = "new"
    PROMPTING = "prompting"
    WAITING = "waiting"
    PAUSING = "pausing"
    ENDED = "ended"


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
class Hangup(Action):
    reason: str


@dataclass(frozen=True)
class Note(Action):
    """Something the call record should keep (``kind`` is its event name)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


class FlowRun:
    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.state = RunState.NEW
        self.node_name = flow.start
        self.deadline: float | None = None
        self.typeahead: list[str] = []
        self.path: list[str] = []  # menu choices taken, "node:key"
        self._invalid = 0
        self._no_input = 0
        self._out: list[Action] = []

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
                self.deadline = now + node.timeout_ms / 1000
        elif isinstance(node, HangupNode):
            if node.pause_ms:
                self._set_state(RunState.PAUSING)
                self.deadline = now + node.pause_ms / 1000
            else:
                self._end(node.reason)
        return self._flush()

    def on_digit(self, digit: str, now: float) -> list[Action]:
        digit = digit.upper()
        if self.state in (RunState.ENDED, RunState.PAUSING, RunState.NEW):
            return []
        node = self._node
        self._note("dtmf", digit=digit, node=self.node_name)
        if isinstance(node, PlayNode):
            if node.barge_in and self.state is RunState.PROMPTING:
                self._emit(StopPlayback())
                self.typeahead.append(digit)
                self._goto(node.next, now)
        elif isinstance(node, MenuNode):
            if self.state is RunState.PROMPTING and not node.barge_in:
                self.typeahead.append(digit)
            else:
                if self.state is RunState.PROMPTING:
                    self._emit(StopPlayback())
                self._menu_key(node, digit, now)
        return self._flush()

    def on_timer(self, now: float) -> list[Action]:
        if self.deadline is None or now < self.deadline:
            return []
        self.deadline = None
        node = self._node
        if self.state is RunState.WAITING and isinstance(node, MenuNode):
            self._menu_no_input(node, now)
        elif self.state is RunState.PAUSING and isinstance(node, HangupNode):
            self._end(node.reason)
        return self._flush()

    def on_caller_hangup(self, now: float) -> list[Action]:
        if self.state is not RunState.ENDED:
            self._note("flow.abandoned", node=self.node_name, state=self.state.value)
            self._set_state(RunState.ENDED)
            self.deadline = None
        return self._flush()

    # -- internals -------------------------------------------------------------------

    @property
    def _node(self) -> PlayNode | MenuNode | GotoNode | HangupNode:
        return self.flow.nodes[self.node_name]

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
            self.node_name = name
            self.deadline = None
            node = self._node
            self._note("node", node=name, type=node.type)
            if isinstance(node, GotoNode):
                name = node.next
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
                    self._prompt(node.prompts)
            elif isinstance(node, HangupNode):
                self.typeahead.clear()
                if node.prompts:
                    self._prompt(node.prompts)
                elif node.pause_ms:
                    self._set_state(RunState.PAUSING)
                    self.deadline = now + node.pause_ms / 1000
                else:
                    self._end(node.reason)
            return

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
            self._prompt(node.prompts)
            return
        self._invalid += 1
        self.typeahead.clear()
        self._note("menu.invalid", node=self.node_name, key=key, count=self._invalid)
        if self._invalid > node.max_retries:
            self._note("menu.failed", node=self.node_name, why="invalid")
            self._goto(node.on_failure, now)
        else:
            self._prompt([*node.invalid_prompts, *node.prompts])

    def _menu_no_input(self, node: MenuNode, now: float) -> None:
        self._no_input += 1
        self._note("menu.no_input", node=self.node_name, count=self._no_input)
        if self._no_input > node.max_retries:
            self._note("menu.failed", node=self.node_name, why="no_input")
            self._goto(node.on_no_input or node.on_failure, now)
        else:
            self._prompt([*node.no_input_prompts, *node.prompts])

    def _end(self, reason: str) -> None:
        self._set_state(RunState.ENDED)
        self.deadline = None
        self._emit(Hangup(reason))
