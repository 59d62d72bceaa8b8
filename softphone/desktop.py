"""The softphone on the agent's desktop: :class:`ThreadedSoftphone` runs the
:class:`~softphone.runner.Softphone` on an asyncio loop in its own thread, with the sound
devices (PortAudio) and the user's settings, as the window's controller; ``run_window`` is
``softphone`` without ``--headless``."""

from __future__ import annotations

import argparse
import asyncio
import threading
from typing import Any

from PySide6 import QtCore, QtWidgets

from .model import CallState, InvalidStateError, Notice
from .session import AgentSession
from .settings import Settings, load, save, store_password, stored_password
from .window import NOT_READY_REASONS, SoftphoneWindow


class ThreadedSoftphone:
    """The real controller: the Softphone on an asyncio loop in its own thread."""

    def __init__(self, window_changed: Any, settings: Settings) -> None:
        self._changed = window_changed
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.phone: Any = None
        self.audio: Any = None
        self._ring_playing = False
        self.session = AgentSession("")
        self.notices: list[Notice] = []
        self.not_ready_reasons = list(NOT_READY_REASONS)
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    @property
    def script(self) -> list[str]:
        return list(self.phone.script) if self.phone else []

    @property
    def reason_codes(self) -> list[tuple[str, str]]:
        return list(self.phone.reason_codes) if self.phone else []

    @property
    def banned(self) -> list[str]:
        return list(self.phone.banned) if self.phone else []

    def sign_in(self, server: str, sip: str, agent_id: str, password: str) -> None:
        from .devices import DeviceAudio, choose, list_devices
        from .outbox import outbox_path
        from .runner import Softphone, SoftphoneConfig

        st = self.settings
        st.server, st.sip, st.agent_id = server, sip, agent_id
        save(st)
        store_password(agent_id, server, password)  # only where there is a keyring
        devices = list_devices()
        mic, spk = choose(devices, st.microphone, "input"), choose(devices, st.speaker, "output")
        audio = DeviceAudio(mic.device.index if mic.device else None,
                            spk.device.index if spk.device else None)
        audio.start()
        self.audio = audio
        phone = Softphone(SoftphoneConfig(server, sip, agent_id, password,
                                          auto_answer_s=st.auto_answer_s,
                                          outbox_path=outbox_path(agent_id)),
                          audio.to_call.read, audio.from_call.write,
                          on_change=self._on_change)
        phone.notices.extend(Notice(w) for w in (mic.warning, spk.warning) if w)
        self.phone, self.session, self.notices = phone, phone.session, phone.notices

        async def start() -> None:
            await phone.start()

        asyncio.run_coroutine_threadsafe(start(), self.loop)

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.phone is not None:
            asyncio.run_coroutine_threadsafe(self.phone.stop(), self.loop).result(timeout_s)
        if self.audio is not None:
            self.audio.close()
        self.loop.call_soon_threadsafe(self.loop.stop)

    def levels(self) -> tuple[float, float]:
        if self.audio is None:
            return -120.0, -120.0
        return self.audio.mic_level.dbfs, self.audio.speaker_level.dbfs

    def _on_change(self) -> None:
        """On the softphone's loop: the ring tone on the ring device, then the window."""
        ringing = bool(self.phone and self.phone.ringing)
        if ringing != self._ring_playing:
            self._ring_playing = ringing
            self._ring(ringing)
        self._changed()

    def _ring(self, on: bool) -> None:
        import numpy as np
        import sounddevice as sd

        from .devices import choose, list_devices

        if not on:
            sd.stop()
            return
        rate = 8000
        t = np.arange(rate * 3) / rate  # 1 s of 425 Hz, 2 s of silence (ETSI TR 101 041)
        tone = (0.3 * np.sin(2 * np.pi * 425 * t) * (t < 1.0)).astype(np.float32)
        ring = choose(list_devices(), self.settings.ring_device or self.settings.speaker,
                      "output")
        try:
            sd.play(tone, rate, device=ring.device.index if ring.device else None, loop=True)
        except Exception as exc:  # the call still rings on screen
            self.notices.append(Notice(f"cannot ring on {ring.device}: {exc}"))

    def device_names(self) -> list[str]:
        from .devices import list_devices

        try:
            return [d.name for d in list_devices()]
        except RuntimeError:  # no PortAudio
            return []

    def chosen_devices(self) -> dict[str, str]:
        st = self.settings
        return {"microphone": st.microphone, "speaker": st.speaker, "ring": st.ring_device}

    def choose_devices(self, microphone: str, speaker: str, ring: str) -> None:
        """The agent's pick (remembered): taken at once, mid-call too (the streams are
        reopened on the same ring buffers: a gap of the reopening, the call goes on)."""
        st = self.settings
        st.microphone, st.speaker, st.ring_device = microphone, speaker, ring
        save(st)
        if self.audio is not None:
            self._reopen()

    def poll_devices(self) -> None:
        """Between calls: PortAudio's list again; the remembered devices if they are back
        (a headset plugged in), a visible fallback if they went."""
        if self.audio is None or self.session.call is not CallState.IDLE:
            return
        self._reopen()

    def _reopen(self) -> None:
        from .devices import choose, rescan

        self.audio.close()
        devices = rescan()
        mic = choose(devices, self.settings.microphone, "input")
        spk = choose(devices, self.settings.speaker, "output")
        self.audio.open(mic.device.index if mic.device else None,
                        spk.device.index if spk.device else None)
        self.audio.start()
        for warning in (mic.warning, spk.warning):
            if warning and all(n.text != warning for n in self.notices):
                self.notices.append(Notice(warning))

    def command(self, name: str, *args: Any) -> None:
        if name == "set_auto_answer":  # remembered for the next shift too
            self.settings.auto_answer_s = args[0]
            save(self.settings)
            if self.phone is None:
                return  # taken at sign-in
        if self.phone is None:
            raise InvalidStateError("sign in first")
        done = asyncio.run_coroutine_threadsafe(self._command(name, *args), self.loop)
        done.result(timeout=5)  # InvalidStateError comes back here, for the window

    async def _command(self, name: str, *args: Any) -> None:
        self.phone.command(name, *args)


def run_window(args: argparse.Namespace) -> int:
    import time

    app = QtWidgets.QApplication([])
    settings = load()
    if args.agent:
        settings.agent_id = args.agent
    holder: list[SoftphoneWindow] = []
    controller = ThreadedSoftphone(lambda: holder[0].changed.emit() if holder else None,
                                   settings)
    window = SoftphoneWindow(controller, time.time, settings.hotkeys)
    window.server_edit.setText(settings.server)
    window.sip_edit.setText(settings.sip)
    window.agent_edit.setText(settings.agent_id)
    window.password_edit.setText(stored_password(settings.agent_id, settings.server) or "")
    window.auto_answer.setValue(int(settings.auto_answer_s or 0))
    holder.append(window)
    devices_timer = QtCore.QTimer(window)
    devices_timer.timeout.connect(controller.poll_devices)
    devices_timer.start(10_000)
    window.show()
    try:
        return app.exec()
    finally:
        controller.stop()
