"""The headless softphone against a real stack (``ivr run``: Kamailio, controller, a worker),
one stack for the module: it signs in through the agent API, registers through Kamailio
with digest, goes ready; a sipp caller (440 Hz) goes through the flow into the queue; the
softphone rings with the screen pop, answers, and sends 1000 Hz: audio passes both ways,
mute silences the agent's direction, hold gives the caller music; hang-up, wrap-up code in
the store. Then the server is stopped and started again mid-shift: the softphone
reconnects, its state is the server's, and the wrap-up typed meanwhile arrives."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import pulse_sink, sipp
from tests.conftest import StackProcess, start_stack
from tests.raw_sip import RawUac
from tests.softphone_proc import HeadlessSoftphone, start_softphone
from tests.tone_caller import ToneCaller
from tests.tones import measure, tone_share

FLOW = Path(__file__).parent / "flows" / "acd.yaml"  # straight into queue `support`
CALLER_HZ, AGENT_HZ = 440.0, 1000.0
PASSWORD = "softphone-pass-1"
WAIT_S = 30.0
SOFTPHONE_SIP_PORT = 23090  # baresip 22000+ (tests/conftest.py's port plan)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt's QApplication

pytestmark = [pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed")]

ACD = """\
queues:
  support:
    strategy: linear
    ring_timeout_s: 10
    wrapup_s: 60
    announce_every_s: 0
    when_no_agents: wait
    script:
      en: ["Thank you for calling support, job number {job}.", "Please wait a moment."]
  billing:
    strategy: linear
    wrapup_s: 1
    announce_every_s: 0
    when_no_agents: wait
agents:
  "1001": {name: Ann Agent, queues: {support: 5}}
  "1002": {name: Ben Agent, queues: {support: 5}}
call_reasons:
  support: {label: Support, children: {fixed: Fixed, callback: Call back}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    tmp = tmp_path_factory.mktemp("softphone")
    acd = tmp / "acd.yaml"
    acd.write_text(ACD)
    stack = start_stack(tmp, workers=1, flow=FLOW, env={"IVR_PATHS_ACD": str(acd)})
    try:
        for agent_id in ("1001", "1002"):
            added = stack.ivr("agent", "add", agent_id, "--name", "Ann", "--password",
                              PASSWORD)
            assert added.returncode == 0, added.stderr
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def phone(stack: StackProcess, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[HeadlessSoftphone]:
    tmp = tmp_path_factory.mktemp("softphone-agent")
    sp = start_agent_softphone(stack, tmp)
    try:
        sp.wait("online and registered", lambda s: s["link"] == "online" and s["registered"])
        yield sp
    finally:
        assert sp.stop() == 0


def start_agent_softphone(stack: StackProcess, tmp: Path) -> HeadlessSoftphone:
    return start_softphone(api_url(stack), f"127.0.0.1:{stack.port}", "1001", PASSWORD,
                           "--tone-hz", str(AGENT_HZ), "--rtp-port", "23000",
                           "--sip-port", str(SOFTPHONE_SIP_PORT), "--state-dir",
                           str(tmp / "state"), "--reconnect-max-s", "1",
                           log_path=tmp / f"softphone-{time.monotonic_ns()}.log")


def api_url(stack: StackProcess) -> str:
    return f"http://127.0.0.1:{stack.env['IVR_HTTP_PORT']}"


def queue_log(stack: StackProcess, call_id: str) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        return list(db.execute("SELECT event, agent_id, code FROM queue_log WHERE call_id = ? "
                               "ORDER BY id", (call_id,)))


def wait_until(what: str, check: Any, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


def share(pcm: np.ndarray, hz: float) -> float:
    return tone_share(pcm.astype(np.int16), hz)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0


def heard_for(caller: ToneCaller, seconds: float) -> np.ndarray:
    time.sleep(seconds)
    return caller.heard(since_s=time.monotonic() - seconds + 0.3)


def take_a_call(stack: StackProcess, phone: HeadlessSoftphone, tmp: Path, name: str,
                talk_ms: int, ivr_hangs_up: bool = True) -> tuple[ToneCaller, str]:
    phone.send("ready")
    phone.wait("ready", lambda s: s["status"] == "ready")
    caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp, CALLER_HZ, talk_ms=talk_ms,
                        name=name, ivr_hangs_up=ivr_hangs_up).start()
    rung = phone.wait("ringing with the screen pop",
                      lambda s: s["call"] == "ringing" and s["offer"] is not None)
    phone.send("answer")
    phone.wait("talking", lambda s: s["call"] == "talking" and s["status"] == "on_call")
    return caller, rung["offer"]["call_id"]


def test_a_queued_call_rings_is_answered_talks_both_ways_mutes_holds_and_is_wrapped_up(
        stack: StackProcess, phone: HeadlessSoftphone, tmp_path: Path) -> None:
    caller, call_id = take_a_call(stack, phone, tmp_path, "sp_caller", 40000)
    phone.wait("the queue's script", lambda s: s["script"] == [
        "Thank you for calling support, job number {job}.", "Please wait a moment."])
    offer = phone.state["offer"]
    assert offer["queue"] == "support" and offer["caller"] == "+15550100"  # sipp's From
    talking = heard_for(caller, 2.0)
    phone.send("mute on")
    phone.wait("muted", lambda s: s["muted"])
    muted = heard_for(caller, 1.5)
    phone.send("mute off")
    phone.wait("not muted", lambda s: not s["muted"])
    phone.send("hold")
    phone.wait("held", lambda s: s["call"] == "held")
    wait_until("the HOLD row", lambda: any(e == "HOLD" for e, _, _ in queue_log(stack,
                                                                                 call_id)))
    on_hold = heard_for(caller, 2.0)
    phone.send("resume")
    phone.wait("resumed", lambda s: s["call"] == "talking")
    resumed = heard_for(caller, 1.5)
    phone.send(f"save {tmp_path / 'agent-heard.wav'}")
    phone.send("hangup")
    phone.wait("in after-call work", lambda s: s["call"] == "idle" and s["status"] ==
               "wrap_up")
    assert caller.wait().ok
    phone.send("wrapup support/fixed reset the router")
    phone.wait("the wrap-up delivered", lambda s: s["outbox"] == 0 and s["status"] == "ready")
    rows = wait_until("the WRAPUP row", lambda: [r for r in queue_log(stack, call_id)
                                                 if r[0] == "WRAPUP"])
    assert rows == [("WRAPUP", "1001", "support/fixed")]
    figures = phone.wait("the server's figures after the call", lambda s: s["figures"][
        "from_server"] and s["figures"]["calls_handled"] >= 1)["figures"]
    assert figures["calls_last_hour"] >= 1 and figures["aht_s"] > 0
    assert figures["time_in_state_s"]["on_call"] > 0
    assert (figures["survey_count"], figures["survey_mean"]) == (0, None)  # no survey here
    assert share(talking, AGENT_HZ) > 0.5, "the caller does not hear the agent's tone"
    assert share(muted, AGENT_HZ) < 0.05 and rms(muted) < 100, "mute lets the agent through"
    assert share(on_hold, AGENT_HZ) < 0.1 and rms(on_hold) > 300, "no music on hold"
    assert share(resumed, AGENT_HZ) > 0.5, "after resume the caller should hear the agent"
    [heard] = measure(wait_until("the saved WAV", lambda: (tmp_path / "agent-heard.wav")
                                 .exists() and tmp_path / "agent-heard.wav"),
                      (CALLER_HZ, AGENT_HZ), skip_s=1.0)
    assert heard.holds(CALLER_HZ), f"the agent does not hear the caller: {heard}"


def test_a_blind_transfer_to_another_queue_ends_the_agents_part(
        stack: StackProcess, phone: HeadlessSoftphone, tmp_path: Path) -> None:
    caller, call_id = take_a_call(stack, phone, tmp_path, "sp_transfer", 8000,
                                  ivr_hangs_up=False)
    phone.send("transfer queue:billing")
    phone.wait("the agent's leg ended", lambda s: s["call"] == "idle", timeout_s=WAIT_S)
    wait_until("the caller in billing", lambda: ("ENTERQUEUE", "", "transfer") in [
        r for r in queue_log_of_queue(stack, call_id, "billing")])
    caller.wait()
    phone.send("wrapup support/fixed transferred to billing")
    phone.wait("the wrap-up delivered", lambda s: s["outbox"] == 0)


def queue_log_of_queue(stack: StackProcess, call_id: str, queue: str
                       ) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        return list(db.execute("SELECT event, agent_id, code FROM queue_log WHERE call_id = ?"
                               " AND queue = ? ORDER BY id", (call_id, queue)))


def test_an_invite_that_does_not_come_from_the_server_is_refused(
        stack: StackProcess, phone: HeadlessSoftphone) -> None:
    uac = RawUac(f"127.0.0.1:{SOFTPHONE_SIP_PORT}")
    try:
        dialog, invite = uac.invite(rtp_port=23180)
        uac.send(invite)
        answer = uac.final_response(dialog, "INVITE")
        uac.send(uac.ack(dialog))
    finally:
        uac.close()
    assert answer.status == 403
    assert phone.state["call"] == "idle"


def test_the_server_restarts_mid_shift_and_the_wrap_up_typed_meanwhile_arrives(
        stack: StackProcess, phone: HeadlessSoftphone, tmp_path: Path) -> None:
    """... even though the softphone was killed (no goodbye) while it waited, and started
    again: the wrap-up was kept on disk."""
    caller, call_id = take_a_call(stack, phone, tmp_path, "sp_restart", 30000)
    time.sleep(1.0)
    phone.send("hangup")
    phone.wait("in after-call work", lambda s: s["status"] == "wrap_up")
    caller.wait()
    assert stack.stop() == 0
    phone.wait("offline", lambda s: s["link"] in ("offline", "connecting"))
    phone.send("wrapup support/callback typed while the server was down")
    phone.wait("kept in the outbox", lambda s: s["outbox"] == 1)
    state_dir = Path(phone.proc.args[phone.proc.args.index("--state-dir") + 1])
    phone.proc.kill()  # the agent's laptop dies: nothing is flushed at exit
    phone.stop()
    started = start_agent_softphone(stack, state_dir.parent)
    phone.proc, phone.states, phone.errors, phone.lines, phone._q, phone.log_file = (
        started.proc, started.states, started.errors, started.lines, started._q,
        started.log_file)
    phone.wait("the kept wrap-up back in the outbox", lambda s: s["outbox"] == 1)
    again = start_stack(tmp_path, same_as=stack)
    stack.proc, stack.lines, stack._q, stack._reader = (again.proc, again.lines, again._q,
                                                       again._reader)
    state = phone.wait("back online, the wrap-up delivered",
                       lambda s: s["link"] == "online" and s["outbox"] == 0, timeout_s=60)
    assert state["status"] in ("ready", "wrap_up"), state
    rows = wait_until("the WRAPUP row", lambda: [r for r in queue_log(stack, call_id)
                                                 if r[0] == "WRAPUP"])
    assert rows == [("WRAPUP", "1001", "support/callback")]
    phone.wait("registered again", lambda s: s["registered"])


def test_the_window_takes_a_queued_call_through_its_widgets_on_a_virtual_headset(
        stack: StackProcess, phone: HeadlessSoftphone, tmp_path: Path, qtbot: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The real window path: PySide6 widgets, the Softphone on its loop, the SIP UA and
    PortAudio streams on a PulseAudio null sink, against the same stack."""
    pytest.importorskip("PySide6.QtWidgets")
    sd = pytest.importorskip("sounddevice")
    from PySide6 import QtCore

    from softphone.desktop import ThreadedSoftphone
    from softphone.model import CallState, Link
    from softphone.settings import Settings
    from softphone.window import SoftphoneWindow

    phone.send("not_ready break")  # the headless agent steps aside: 1002 takes this one
    phone.wait("the headless agent not ready", lambda s: s["status"] == "not_ready")
    with pulse_sink.pulse_null_sink(tmp_path) as server:
        if server is None:
            pytest.skip("pulseaudio not installed")
        monkeypatch.setenv("PULSE_SERVER", server)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        sd._terminate()
        sd._initialize()
        holder: list[SoftphoneWindow] = []
        settings = Settings(speaker="pulse", microphone="pulse")
        controller = ThreadedSoftphone(lambda: holder[0].changed.emit() if holder else None,
                                       settings)
        window = SoftphoneWindow(controller, time.time)
        holder.append(window)
        qtbot.addWidget(window)
        window.show()
        try:
            window.server_edit.setText(api_url(stack))
            window.sip_edit.setText(f"127.0.0.1:{stack.port}")
            window.agent_edit.setText("1002")
            window.password_edit.setText(PASSWORD)
            qtbot.mouseClick(window.sign_in_button, QtCore.Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: controller.session.link is Link.ONLINE
                            and controller.phone.registered, timeout=20000)
            qtbot.mouseClick(window.ready_button, QtCore.Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: controller.session.status.value == "ready", timeout=10000)
            caller = ToneCaller(f"127.0.0.1:{stack.port}", tmp_path, CALLER_HZ,
                                talk_ms=30000, name="sp_window", ivr_hangs_up=True).start()
            qtbot.waitUntil(window.answer_button.isEnabled, timeout=20000)
            qtbot.waitUntil(lambda: "queue support" in window.pop.text(), timeout=10000)
            window.grab().save(str(tmp_path / "window-ringing.png"))
            print(f"screenshot: {tmp_path / 'window-ringing.png'}")
            qtbot.mouseClick(window.answer_button, QtCore.Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: controller.session.call is CallState.TALKING,
                            timeout=10000)
            qtbot.wait(1500)
            assert controller.audio.speaker_level.frames > 0  # PortAudio plays the call
            qtbot.mouseClick(window.hangup_button, QtCore.Qt.MouseButton.LeftButton)
            qtbot.waitUntil(window.acw_box.isVisible, timeout=10000)
            window.code_search.setText("fixed")
            window.code_tree.setCurrentItem(window.code_tree.topLevelItem(0).child(0))
            qtbot.mouseClick(window.wrapup_button, QtCore.Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: not controller.session.outbox and
                            controller.session.status.value == "ready", timeout=10000)
            assert caller.wait().ok
        finally:
            controller.stop()
    rows = [r for r in queue_log_all(stack) if r[0] == "WRAPUP" and r[1] == "1002"]
    assert rows == [("WRAPUP", "1002", "support/fixed")]
    phone.send("ready")


def queue_log_all(stack: StackProcess) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(stack.db)) as db:
        return list(db.execute("SELECT event, agent_id, code FROM queue_log ORDER BY id"))
