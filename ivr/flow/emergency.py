"""Storm mode in the flow: an emergency message before a queue node's greeting.

Part of the interpreter (``FlowRun`` inherits :class:`EmergencyNotices`). ``emergencies``
is the worker's live map, queue -> ``{prompt, expires_at, outage_key, offer_callback}``
(``ivr/emergency.py`` says how it is switched). A caller entering a queue node whose queue
has one on hears it first::

    (queue node) --notice on--> PROMPTING(emergency: the prompt [+ outage_offer]
                                          [+ the node's callback offer_prompts])
        --done, no key offered--> the node's greeting, then the queue as always
        --done, a key offered--> WAITING(emergency_wait) --no key for OUTAGE_WAIT_S-->
          greeting
        --the outage key (while it plays, or waiting)--> outage_thanks --done-->
          Hangup("outage_report"), with the call event ``queue.outage_report``
        --the callback key (same)--> the queue at once (no greeting; call event
          ``queue.emergency_callback``); once queued, the callback dialogue as if the key
          were pressed then (the number read back ...)

The callback is offered only with ``offer_callback`` and a node with a ``callback:`` option;
a caller who heard the offer with the message is not offered it again once queued.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .model import QueueNode

if TYPE_CHECKING:
    from .interpreter import Action, RunState

OUTAGE_WAIT_S = 4.0  # after the outage offer, how long a key is waited for
_PHASES = ("emergency", "emergency_wait", "outage_thanks")


class EmergencyNotices:
    emergencies: Mapping[str, Mapping[str, Any]] = {}
    _emergency_key = ""
    _emergency_callback = ""  # the callback key offered with the message
    _callback_wanted = False  # that key was pressed: the dialogue starts once queued
    # FlowRun's, used here
    state: RunState
    deadline: float | None
    _phase: str
    node_name: str
    _wall: Callable[[], dt.datetime]

    def _emit(self, action: Action) -> None: ...
    def _note(self, kind: str, **data: Any) -> None: ...
    def _prompt(self, prompts: list[str]) -> None: ...
    def _end(self, reason: str) -> None: ...
    def _set_state(self, new: RunState) -> None: ...
    def _start_queue(self, node: QueueNode) -> None: ...
    def _music_on(self) -> None: ...
    def _callback_key(self, node: QueueNode, digit: str, now: float) -> bool:
        raise NotImplementedError  # CallbackDialogue's

    def _emergency_start(self, node: QueueNode, now: float) -> bool:
        """Entering a queue node: the emergency message first, if one is on."""
        notice = self.emergencies.get(node.queue)
        if not notice:
            return False
        expires_at = notice.get("expires_at")
        if expires_at is not None and self._wall().timestamp() >= float(expires_at):
            return False
        self._emergency_key = str(notice.get("outage_key") or "")
        option = node.callback if notice.get("offer_callback") is True else None
        self._emergency_callback = option.key if option is not None else ""
        self._callback_wanted = False
        self._phase = "emergency"
        self._note("queue.emergency", node=self.node_name, queue=node.queue,
                   prompt=notice["prompt"])
        self._prompt([str(notice["prompt"]),
                      *(["outage_offer"] if self._emergency_key else []),
                      *(option.offer_prompts if option is not None else [])])
        return True

    def _queue_greeting(self, node: QueueNode) -> None:
        if node.prompts:
            self._prompt(node.prompts)
        else:
            self._start_queue(node)

    def _emergency_playback_done(self, node: QueueNode, now: float) -> bool:
        from .interpreter import RunState

        if self._phase == "emergency":
            if self._emergency_key or self._emergency_callback:
                self._phase = "emergency_wait"
                self._set_state(RunState.WAITING)
                self.deadline = now + OUTAGE_WAIT_S
            else:
                self._phase = ""
                self._queue_greeting(node)
            return True
        if self._phase == "outage_thanks":
            self._end("outage_report")
            return True
        return False

    def _emergency_digit(self, node: QueueNode, digit: str, now: float) -> bool:
        """A key before the queue: the outage report, or ignored while the message plays."""
        from .interpreter import RunState, StopPlayback

        if self._phase not in _PHASES:
            return False
        if self._phase != "outage_thanks" and self._emergency_key and digit == self._emergency_key:
            if self.state is RunState.PROMPTING:
                self._emit(StopPlayback())
            self.deadline = None
            self._note("queue.outage_report", node=self.node_name, queue=node.queue)
            self._phase = "outage_thanks"
            self._prompt(["outage_thanks"])
        elif (self._phase != "outage_thanks" and self._emergency_callback
              and digit == self._emergency_callback):
            if self.state is RunState.PROMPTING:
                self._emit(StopPlayback())
            self.deadline = None
            self._note("queue.emergency_callback", node=self.node_name, queue=node.queue)
            self._phase = ""
            self._callback_wanted = True
            self._start_queue(node)  # in line first: a callback keeps the caller's place
        return True

    def _emergency_queued(self, node: QueueNode, now: float) -> bool:
        """Just queued after a message that offered the callback: the dialogue, if its key
        was pressed; otherwise music (the offer is not said again). False: not ours."""
        if not self._emergency_callback:
            return False
        self._emergency_callback = ""
        if self._callback_wanted:
            self._callback_wanted = False
            if self._callback_key(node, node.callback.key if node.callback else "", now):
                return True
        self._music_on()
        return True

    def _emergency_timer(self, node: QueueNode, now: float) -> bool:
        if self._phase != "emergency_wait":
            return False
        self._phase = ""
        self._queue_greeting(node)
        return True
