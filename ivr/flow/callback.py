"""The queue node's callback option: "press 1 to be called back, keeping your place".

Part of the flow interpreter (``FlowRun`` inherits :class:`CallbackDialogue`): a pure state
machine over the caller waiting in a queue (``RunState.QUEUED``), in phases of its own::

    QUEUED(music) --key--> cb_confirm: "we will call you back at" + digits + "press 1 to
        confirm, or key another number and #"
    cb_confirm --1--> cb_asked: RequestCallback(number) (music stays off)
    cb_confirm --another digit--> cb_number --#--> cb_confirm (the new number read back)
    cb_confirm/cb_number --* or no key for timeout_ms--> QUEUED(music)
    cb_asked --on_callback_taken(wait)--> cb_bye: "we will call you back in about" + the
        wait + goodbye --done--> Hangup("callback")
    cb_asked --on_callback_refused--> cb_refused: the refusal prompt --done--> QUEUED(music)

The caller keeps their place while the dialogue lasts (the ACD is asked only at the end);
an agent's phone ringing for the caller ends the dialogue (they are about to be served).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .model import QueueCallbackOption, QueueNode

if TYPE_CHECKING:
    from .interpreter import Action

PHASES = ("cb_offer", "cb_confirm", "cb_number", "cb_asked", "cb_bye", "cb_refused")
_ABORTABLE = ("cb_offer", "cb_confirm", "cb_number", "cb_refused")


def callback_digits(value: str) -> str:
    """A number as keyed or known (``+33 1 23``, ``sip:5550001@host``): its digits."""
    if "@" in value:
        value = value.removeprefix("sip:").removeprefix("tel:").split("@", 1)[0]
    return re.sub(r"\D", "", value)


class CallbackDialogue:
    # FlowRun's, used here
    vars: dict[str, str]
    language: str
    deadline: float | None
    _phase: str
    _digits: list[str]
    node_name: str

    def _emit(self, action: Action) -> None: ...
    def _note(self, kind: str, **data: Any) -> None: ...
    def _music_on(self) -> None: ...
    def _music_off(self) -> None: ...
    def _flush(self) -> list[Action]: raise NotImplementedError
    def _end(self, reason: str) -> None: ...
    def _queued_node(self) -> QueueNode | None: ...

    callback_number = ""  # the number being confirmed or asked for
    _cb_playing = False  # a prompt of the dialogue is playing

    def _cb_play(self, prompts: tuple[str, ...]) -> None:
        from .interpreter import Play

        self._cb_playing = True
        self._emit(Play(prompts))

    def _cb_stop(self) -> None:
        if self._cb_playing:
            from .interpreter import StopPlayback

            self._cb_playing = False
            self._emit(StopPlayback())

    # -- what the interpreter calls ---------------------------------------------------------

    def _callback_offer_prompts(self, node: QueueNode) -> tuple[str, ...]:
        return tuple(node.callback.offer_prompts) if node.callback is not None else ()

    def _callback_play_offer(self, node: QueueNode) -> bool:
        """Just queued: say the option once (music after it)."""
        if node.callback is None or not node.callback.offer_prompts:
            return False
        self._phase = "cb_offer"
        self._cb_play(tuple(node.callback.offer_prompts))
        return True

    def _callback_key(self, node: QueueNode, digit: str, now: float) -> bool:
        """A key while queued; True when the callback dialogue took it."""
        option = node.callback
        if option is None:
            return False
        if self._phase not in PHASES or self._phase == "cb_offer":
            if digit != option.key:
                return False
            if self._phase == "announce":
                from .interpreter import StopPlayback

                self._emit(StopPlayback())
            self._cb_stop()
            self._music_off()
            self._note("queue.callback_option", node=self.node_name, queue=node.queue)
            self.callback_number = callback_digits(self.vars.get(option.number_var, ""))
            if len(self.callback_number) >= 3:
                self._readback(option, now)
            else:
                self._ask_number(option, now, "")
            return True
        if self._phase == "cb_confirm":
            self._cb_stop()
            if digit == "1":
                self._ask_acd(node, now)
            elif digit == "*":
                self._callback_cancel("cancelled")
            elif digit.isdigit():
                self._ask_number(option, now, digit, prompt=False)
            return True
        if self._phase == "cb_number":
            if digit.isdigit() and len(self._digits) < option.max_digits:
                self._digits.append(digit)
                self.deadline = now + option.timeout_ms / 1000
            elif digit == "#":
                self._cb_stop()
                keyed = "".join(self._digits)
                if len(keyed) >= 3:
                    self.callback_number = keyed
                    self._readback(option, now)
                else:
                    self._callback_refusal(option, "too short")
            elif digit == "*":
                self._cb_stop()
                self._callback_cancel("cancelled")
            return True
        return self._phase in PHASES  # asked, saying goodbye: keys are ignored

    def _callback_playback_done(self, node: QueueNode, now: float) -> bool:
        """A prompt of the dialogue ended; True when it was one."""
        option = node.callback
        if option is None or self._phase not in PHASES:
            return False
        self._cb_playing = False
        if self._phase in ("cb_offer", "cb_refused"):
            self._phase = ""
            self._music_on()
        elif self._phase in ("cb_confirm", "cb_number"):
            self.deadline = now + option.timeout_ms / 1000
        elif self._phase == "cb_bye":
            self._end("callback")
        return True

    def _callback_timer(self, node: QueueNode, now: float) -> bool:
        if node.callback is None or self._phase not in ("cb_confirm", "cb_number"):
            return False
        self._callback_cancel("no_input")
        return True

    def _callback_abort(self) -> None:
        """An agent is being rung for the caller: the dialogue ends, they stay in line."""
        if self._phase in _ABORTABLE:
            self._cb_stop()
            self._phase = ""
            self.deadline = None

    # -- results from the ACD ---------------------------------------------------------------

    def on_callback_taken(self, now: float, estimated_wait_s: float) -> list[Action]:
        """The ACD holds the caller's place for a callback: say when, then hang up."""
        from ..say import SayError, say

        node = self._queued_node()
        if node is None or node.callback is None or self._phase != "cb_asked":
            return self._flush()
        option = node.callback
        try:
            wait = say("wait_time", max(0, round(estimated_wait_s)), self.language)
        except SayError:
            wait = []
        self._note("queue.callback_taken", node=self.node_name, queue=node.queue,
                   estimated_wait_s=round(estimated_wait_s))
        self._phase = "cb_bye"
        self._cb_play((*option.taken_prompts, *wait, *option.goodbye_prompts))
        return self._flush()

    def on_callback_refused(self, now: float, reason: str = "") -> list[Action]:
        node = self._queued_node()
        if node is None or node.callback is None or self._phase != "cb_asked":
            return self._flush()
        self._callback_refusal(node.callback, reason)
        return self._flush()

    # -- internals --------------------------------------------------------------------------

    def _readback(self, option: QueueCallbackOption, now: float) -> None:
        from ..say import SayError, say

        try:
            digits = say("digits", self.callback_number, self.language)
        except SayError:
            digits = []
        self._phase = "cb_confirm"
        self.deadline = None
        self._cb_play((*option.readback_prompts, *digits, *option.confirm_prompts))

    def _ask_number(self, option: QueueCallbackOption, now: float, first: str,
                    prompt: bool = True) -> None:
        self._phase = "cb_number"
        self._digits = [first] if first else []
        self.deadline = now + option.timeout_ms / 1000
        if prompt:
            self._cb_play(tuple(option.confirm_prompts))

    def _ask_acd(self, node: QueueNode, now: float) -> None:
        from .interpreter import RequestCallback

        self._phase = "cb_asked"
        self.deadline = None
        self._note("queue.callback_requested", node=self.node_name, queue=node.queue,
                   number=self.callback_number)
        self._emit(RequestCallback(self.callback_number))

    def _callback_refusal(self, option: QueueCallbackOption, reason: str) -> None:
        self._note("queue.callback_refused", node=self.node_name, why=reason)
        self._phase = "cb_refused"
        self.deadline = None
        self._cb_play(tuple(option.refused_prompts))

    def _callback_cancel(self, why: str) -> None:
        self._note("queue.callback_cancelled", node=self.node_name, why=why)
        self._phase = ""
        self.deadline = None
        self._digits = []
        self._music_on()
