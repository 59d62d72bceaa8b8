"""A queued callback's call, in the worker the controller chose (one with a free slot):
ring the agent, then dial the customer, then bridge the two.

There is no caller's leg: the worker creates this for an ``acd.callback_offer`` and routes
the callback's messages to it by its id (``cb-<call>``), as for a call's session. It reads
both legs' events and the controller's messages from one inbox::

    RINGING_AGENT --agent answers--> AGENT_UP (acd.answered; waits for acd.dial_customer)
        --dial--> DIALING --customer answers--> [SCREENING] --> CUSTOMER_UP
        (acd.customer_answered)
        --acd.connect--> BRIDGED --either hangs up--> ENDED (acd.agent_gone / caller_gone)
    RINGING_AGENT --refused/no answer--> ENDED (acd.offer_failed)
    RINGING_AGENT --acd.cancel--> ENDED (CANCEL)
    DIALING --busy / no answer / no_answer_s / failure--> ENDED (acd.customer_not_reached;
        the agent leg is hung up: the agent is free at once)
    DIALING --answered sooner than voicemail_answer_s after ringing began--> ENDED
        (not reached: voicemail)
    SCREENING (voicemail_greeting_s > 0: the customer's first seconds listened to, the legs
        not yet bridged) --a person--> CUSTOMER_UP; --continuous speech (a greeting)-->
        ENDED (not reached: voicemail); ivr/voicemail_detect.py decides
    AGENT_UP/DIALING --agent hangs up--> ENDED (acd.agent_gone; the customer leg goes too)

The customer's leg is the bridge's "caller" (left channel of a recording), the agent's the
agent (right channel). A callback has no call of its own in the store: its recording
(``<cb-id>-<agent>.wav``) is linked, as a ``recording`` call event with the agent, to the
call the callback came from (``cb-<call>``: ``<call>``), so the recording follows the call.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from media import CallLeg, LegAnswered, LegFailed, LegHungUp, LegRinging, MediaError

from . import callback_messages as cm
from . import messages as m
from .queue_call import AcdLink, AcdMedia, ControllerLost, Recording, failure_reason
from .store import StoreError
from .voicemail_detect import GreetingDetector, Verdict, answered_too_soon

log = logging.getLogger("ivr.callback_call")

BUSY_CODES = frozenset({486, 600, 603})
NO_ANSWER_CODES = frozenset({408, 480, 487})


class CbState(enum.Enum):
    RINGING_AGENT = "ringing_agent"
    AGENT_UP = "agent_up"
    DIALING = "dialing"
    SCREENING = "screening"
    CUSTOMER_UP = "customer_up"
    BRIDGED = "bridged"
    ENDED = "ended"


def customer_outcome(status_code: int) -> str:
    """acd.customer_not_reached's outcome for the customer leg's final answer."""
    if status_code in BUSY_CODES:
        return "busy"
    if status_code in NO_ANSWER_CODES or status_code == 0:
        return "no_answer"
    return "failed"


class CallbackCall:
    def __init__(self, offer: cm.CallbackOffer, link: AcdLink, media: AcdMedia,
                 recordings_dir: Path, info_url: str = "", recorder: Any = None,
                 wall: Callable[[], float] = time.time,
                 now: Callable[[], float] = time.monotonic) -> None:
        """``recorder``: the worker's call records (``call_event``), where the recording
        is linked; None links nothing (a test without a store)."""
        self.call_id = offer.call_id
        self.offer = offer
        self.link = link
        self.media = media
        self.recordings_dir = recordings_dir
        self.info_url = info_url
        self.recorder = recorder
        self._wall = wall
        self._now = now
        self._dialled: cm.DialCustomer | None = None
        self._ringing_since: float | None = None  # the customer's phone: dialled, ringing
        self._greeting: GreetingDetector | None = None
        self._greeting_timer: asyncio.TimerHandle | None = None
        self.state = CbState.RINGING_AGENT
        self.agent: CallLeg | None = None
        self.customer: CallLeg | None = None
        self.recording: Recording | None = None
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._pumps: list[asyncio.Task[None]] = []
        self._no_answer: asyncio.TimerHandle | None = None

    @property
    def ended(self) -> bool:
        return self.state is CbState.ENDED

    def deliver(self, msg: m.Message | ControllerLost) -> None:
        self._inbox.put_nowait(msg)

    def _set_state(self, new: CbState) -> None:
        log.debug("callback %s: %s -> %s", self.call_id, self.state.value, new.value)
        self.state = new

    def _send(self, msg: m.Message) -> None:
        if not self.link.lost:
            self.link.send_message(msg)

    async def run(self) -> None:
        """Ring the agent, then take events until the callback's call is over."""
        headers = {"X-Callback": self.offer.number, "X-Queue": self.offer.queue,
                   "X-Wait-S": str(int(self.offer.wait_s)), "X-Call-Id": self.call_id}
        if self.info_url:
            headers["Call-Info"] = f"<{self.info_url}/{self.call_id}>;purpose=info"
        try:
            self.agent = await self.media.place_call(self.offer.uri, headers)
        except (MediaError, ValueError) as exc:
            log.warning("callback %s: cannot call agent %s: %s", self.call_id,
                        self.offer.agent_id, exc)
            self._send(m.OfferFailed(self.call_id, self.offer.offer_id, "error"))
            self._set_state(CbState.ENDED)
            return
        self._pump(self.agent)
        try:
            while self.state is not CbState.ENDED:
                await self._on(await self._inbox.get())
        finally:
            await self._close()

    def _pump(self, leg: CallLeg) -> None:
        async def pump() -> None:
            while True:
                event = await leg.next_event()
                self._inbox.put_nowait((leg, event))
                if isinstance(event, LegHungUp):
                    return

        self._pumps.append(asyncio.get_running_loop().create_task(pump()))

    async def _on(self, item: Any) -> None:
        if isinstance(item, tuple):
            leg, event = item
            if leg is self.agent:
                await self._agent_event(event)
            else:
                await self._customer_event(event)
        elif isinstance(item, m.CancelOffer):
            if self.state is CbState.RINGING_AGENT:
                await self._hang_up(self.agent)
                self._set_state(CbState.ENDED)
            elif self.state is not CbState.BRIDGED:
                await self._end_both()
        elif isinstance(item, cm.DialCustomer):
            await self._dial(item)
        elif isinstance(item, m.Connect):
            await self._bridge()
        elif isinstance(item, ControllerLost):
            if self.state is not CbState.BRIDGED:  # nobody to report to: a talk goes on
                await self._end_both()
        elif item == "no_answer":
            if self.state is CbState.DIALING:
                await self._not_reached("no_answer", 0)
        elif item == "greeting":
            if self.state is CbState.SCREENING:
                await self._screened()

    async def _agent_event(self, event: Any) -> None:
        offer_id = self.offer.offer_id
        if isinstance(event, LegRinging) and self.state is CbState.RINGING_AGENT:
            self._send(m.OfferRinging(self.call_id, offer_id))
        elif isinstance(event, LegAnswered) and self.state is CbState.RINGING_AGENT:
            self._set_state(CbState.AGENT_UP)
            self._send(m.OfferAnswered(self.call_id, offer_id))
        elif isinstance(event, LegFailed) and self.state is CbState.RINGING_AGENT:
            self._send(m.OfferFailed(self.call_id, offer_id, failure_reason(event.status_code),
                                     event.status_code))
            self._set_state(CbState.ENDED)
        elif isinstance(event, LegHungUp) and self.state is not CbState.ENDED:
            if self.state is CbState.RINGING_AGENT:
                self._send(m.OfferFailed(self.call_id, offer_id, "no_answer", event.status_code))
            else:
                self._send(m.AgentGone(self.call_id))
            await self._end_both()

    async def _dial(self, msg: cm.DialCustomer) -> None:
        if self.state is not CbState.AGENT_UP:
            log.warning("callback %s: dial while %s, ignored", self.call_id, self.state.value)
            return
        headers = {"X-Call-Id": self.call_id, "X-Callback-Customer": "1"}  # route: Kamailio
        try:
            self.customer = await self.media.place_call(msg.uri, headers)
        except (MediaError, ValueError) as exc:
            log.warning("callback %s: cannot dial %s: %s", self.call_id, msg.uri, exc)
            await self._not_reached("failed", 0)
            return
        self._set_state(CbState.DIALING)
        self._dialled, self._ringing_since = msg, self._now()
        self._pump(self.customer)
        loop = asyncio.get_running_loop()
        self._no_answer = loop.call_later(msg.no_answer_s, self._inbox.put_nowait, "no_answer")

    async def _customer_event(self, event: Any) -> None:
        if isinstance(event, LegRinging) and self.state is CbState.DIALING:
            self._ringing_since = self._now()  # ringing began (reported once)
        elif isinstance(event, LegAnswered) and self.state is CbState.DIALING:
            self._cancel_timer()
            await self._customer_answered()
        elif isinstance(event, LegFailed) and self.state is CbState.DIALING:
            await self._not_reached(customer_outcome(event.status_code), event.status_code)
        elif isinstance(event, LegHungUp) and self.state is not CbState.ENDED:
            if self.state in (CbState.DIALING, CbState.SCREENING):
                await self._not_reached(customer_outcome(event.status_code), event.status_code)
            else:
                self._send(m.CallerGone(self.call_id))
                await self._end_both()

    async def _customer_answered(self) -> None:
        """Answered: a person, or voicemail suspected (ivr/voicemail_detect.py)?"""
        dial, customer = self._dialled, self.customer
        assert dial is not None and customer is not None
        since = self._ringing_since if self._ringing_since is not None else self._now()
        if answered_too_soon(self._now() - since, dial.voicemail_answer_s):
            log.info("callback %s: answered %.2f s after ringing began: voicemail suspected",
                     self.call_id, self._now() - since)
            await self._not_reached("voicemail", 0)
            return
        if dial.voicemail_greeting_s <= 0:
            self._reached()
            return
        detector = GreetingDetector(dial.voicemail_greeting_s)
        call = self

        class Sink:
            def feed(self, samples: Any, now_s: float) -> None:
                detector.feed(samples, now_s)
                if detector.verdict is not Verdict.UNDECIDED:
                    call._inbox.put_nowait("greeting")

        try:
            await customer.listen(Sink())
        except (MediaError, AttributeError) as exc:  # cannot listen: taken for a person
            log.warning("callback %s: cannot listen for a greeting: %s", self.call_id, exc)
            self._reached()
            return
        self._greeting = detector
        self._set_state(CbState.SCREENING)
        self._greeting_timer = asyncio.get_running_loop().call_later(
            dial.voicemail_greeting_s, self._inbox.put_nowait, "greeting")

    async def _screened(self) -> None:
        detector, self._greeting = self._greeting, None
        await self._stop_listening()
        if detector is not None and detector.decide() is Verdict.VOICEMAIL:
            log.info("callback %s: a greeting (continuous speech): voicemail suspected",
                     self.call_id)
            await self._not_reached("voicemail", 0)
        else:
            self._reached()

    async def _stop_listening(self) -> None:
        if self._greeting_timer is not None:
            self._greeting_timer.cancel()
            self._greeting_timer = None
        if self.customer is not None and self.customer.ended is None:
            try:
                await self.customer.listen(None)
            except MediaError as exc:
                log.info("callback %s: listening not stopped: %s", self.call_id, exc)

    def _reached(self) -> None:
        self._set_state(CbState.CUSTOMER_UP)
        self._send(cm.CustomerAnswered(self.call_id))

    async def _not_reached(self, outcome: str, sip_code: int) -> None:
        self._cancel_timer()
        if self._greeting_timer is not None:
            self._greeting_timer.cancel()
            self._greeting_timer = None
        self._send(cm.CustomerNotReached(self.call_id, outcome, sip_code))
        await self._end_both()  # the agent is released at once

    async def _bridge(self) -> None:
        if self.state is not CbState.CUSTOMER_UP or self.agent is None or self.customer is None:
            log.warning("callback %s: connect while %s, ignored", self.call_id,
                        self.state.value)
            return
        try:
            await self.media.bridge(self.customer, self.agent)
        except MediaError as exc:
            log.error("callback %s: cannot bridge: %s", self.call_id, exc)
            self._send(m.AgentGone(self.call_id))
            await self._end_both()
            return
        self._set_state(CbState.BRIDGED)
        if self.offer.record:
            self.recordings_dir.mkdir(parents=True, exist_ok=True)
            path = self.recordings_dir / f"{self.call_id}-{self.offer.agent_id}.wav"
            try:
                self.recording = await self.media.start_recording(self.customer, self.agent,
                                                                  path)
            except MediaError as exc:
                log.error("callback %s: cannot record: %s", self.call_id, exc)

    @property
    def source_call_id(self) -> str:
        """The call this callback came from (its id is ``cb-<call>``)."""
        return self.call_id.removeprefix("cb-")

    def _link_recording(self, rec: Recording, duration_s: float) -> None:
        if self.recorder is None:
            return
        data = {"path": str(rec.path), "agent_id": self.offer.agent_id,
                "queue": self.offer.queue, "duration_s": round(duration_s, 2),
                "channels": 2, "callback_id": self.call_id}
        try:
            self.recorder.call_event(self.source_call_id, self._wall(), "recording", data)
        except StoreError as exc:
            log.error("callback %s: recording %s not linked to call %s: %s", self.call_id,
                      rec.path, self.source_call_id, exc)

    def _cancel_timer(self) -> None:
        if self._no_answer is not None:
            self._no_answer.cancel()
            self._no_answer = None

    async def _hang_up(self, leg: CallLeg | None) -> None:
        if leg is None or leg.ended is not None:
            return
        try:
            await leg.hangup()
        except MediaError as exc:
            log.info("callback %s: leg already gone: %s", self.call_id, exc)

    async def _end_both(self) -> None:
        self._set_state(CbState.ENDED)
        await self._hang_up(self.customer)
        await self._hang_up(self.agent)

    async def _close(self) -> None:
        self._cancel_timer()
        if self.recording is not None:
            rec, self.recording = self.recording, None
            try:
                duration_s = await rec.stop()
            except MediaError as exc:
                log.error("callback %s: recording not finished: %s", self.call_id, exc)
            else:
                self._link_recording(rec, duration_s)
        if self.customer is not None and self.agent is not None:
            try:
                await self.media.unbridge(self.customer, self.agent)
            except MediaError:
                pass
        for task in self._pumps:
            task.cancel()
