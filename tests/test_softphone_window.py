"""The softphone's Qt window (pytest-qt, QT_QPA_PLATFORM=offscreen) over a real session
core: a call driven through the widgets and shortcuts, the server's and the phone's events
fed to the session as the I/O layer would. A screenshot of each state is kept under the
test's tmp dir (the paths are printed: ``pytest -s`` shows them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtCore = pytest.importorskip("PySide6.QtCore")
QtGui = pytest.importorskip("PySide6.QtGui")

from softphone import model as m  # noqa: E402
from softphone.session import AgentSession  # noqa: E402
from softphone.window import SoftphoneWindow  # noqa: E402

T0 = 1_764_590_000.0
CALL = {"call_id": "c-7", "queue": "support", "state": "ringing", "caller": "+15550100",
        "caller_name": "", "wait_s": 42.0, "since": T0,
        "data": {"account": "42", "vip": "yes"}, "ivr_path": ["menu", "support"],
        "language": "en"}


class FakeController:
    """The session core with the I/O left out: actions are recorded."""

    def __init__(self) -> None:
        self.session = AgentSession("1001")
        self.now = T0
        self.actions: list[Any] = []
        self.notices: list[m.Notice] = []
        self.reason_codes = [("support/fixed", "Fixed"), ("support/callback", "Call back"),
                             ("billing/refund", "Refund")]
        self.not_ready_reasons = ["break", "lunch", "training", "meeting"]
        self.script = ["Thank you for calling, my name is Ann, job number {job}.",
                       "Please wait a moment.", "Thank you for your patience."]
        self.banned = ["it's company policy", "you're wrong"]
        self.signed_in_with: tuple[str, ...] = ()
        self.devices = {"microphone": "", "speaker": "", "ring": ""}

    def device_names(self) -> list[str]:
        return ["Built-in Audio Analog Stereo", "Jabra Evolve 40"]

    def chosen_devices(self) -> dict[str, str]:
        return dict(self.devices)

    def choose_devices(self, microphone: str, speaker: str, ring: str) -> None:
        self.devices = {"microphone": microphone, "speaker": speaker, "ring": ring}

    def command(self, name: str, *args: Any) -> None:
        self.actions += getattr(self.session, name)(*args, now=self.now)

    def sign_in(self, server: str, sip: str, agent_id: str, password: str) -> None:
        self.signed_in_with = (server, sip, agent_id, password)
        self.actions += self.session.sign_in(self.now)
        self.actions += self.session.online({"state": "logged_out", "since": T0}, self.now)

    def server(self, event: dict[str, Any]) -> None:
        self.actions += self.session.server_event({"at": self.now, **event}, self.now)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    path = tmp_path / "screenshots"
    path.mkdir()
    return path


def shoot(window: SoftphoneWindow, shots: Path, name: str) -> Path:
    window.refresh()
    path = shots / f"{name}.png"
    assert window.grab().save(str(path)), path
    print(f"screenshot: {path}")
    return path


def click(qtbot: Any, button: Any) -> None:
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)


def test_a_call_through_the_window_from_sign_in_to_wrap_up(qtbot: Any, shots: Path) -> None:
    c = FakeController()
    w = SoftphoneWindow(c, lambda: c.now)
    qtbot.addWidget(w)
    w.resize(720, 900)
    w.show()
    w.device_combos["microphone"].setCurrentText("Jabra Evolve 40")
    w.device_combos["speaker"].setCurrentText("Jabra Evolve 40")
    click(qtbot, w.devices_button)
    assert c.devices == {"microphone": "Jabra Evolve 40", "speaker": "Jabra Evolve 40",
                         "ring": ""}
    assert w.device_combos["speaker"].currentText() == "Jabra Evolve 40"  # shown as chosen
    shoot(w, shots, "1-signed-out")
    assert w.sign_in_box.isVisible() and not w.state_box.isEnabled()
    qtbot.keyClicks(w.agent_edit, "1001")
    qtbot.keyClicks(w.password_edit, "secret-pw")
    click(qtbot, w.sign_in_button)
    assert c.signed_in_with[2:] == ("1001", "secret-pw")
    assert not w.sign_in_box.isVisible()

    w.auto_answer.setValue(5)
    assert c.session.auto_answer_s == 5.0
    w.auto_answer.setValue(0)
    assert c.session.auto_answer_s is None
    click(qtbot, w.ready_button)
    assert c.actions[-1] == m.SendState(m.AcdStatus.READY)
    c.server({"event": "state", "state": "ready", "old": "logged_out"})
    shoot(w, shots, "2-ready")
    assert "ready" in w.status.text()

    c.server({"event": "state", "state": "reserved", "old": "ready"})
    c.server({"event": "offered", "call": CALL})
    c.actions += c.session.incoming_call(True, c.now, "<http://x/api/v1/calls/c-7>")
    w.refresh()
    pop = w.pop.text()
    assert "RINGING" in pop and "+15550100" in pop and "support" in pop and "0:42" in pop
    assert "menu > support" in pop and "account=42" in pop and "vip=yes" in pop
    shoot(w, shots, "3-ringing-with-pop")
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    target = QtGui.QGuiApplication.focusObject() or w
    qtbot.keyClick(target, QtCore.Qt.Key.Key_Return, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert c.actions[-1] == m.AnswerCall()  # the answer shortcut

    c.actions += c.session.call_answered(c.now)
    c.server({"event": "connected", "call": {**CALL, "state": "connected"}})
    c.server({"event": "state", "state": "on_call", "old": "reserved"})
    w.refresh()
    click(qtbot, w.mute_button)
    assert c.actions[-1] == m.SetMute(True) and w.mute_button.text() == "Unmute"
    click(qtbot, w.keys["5"])
    assert c.actions[-1] == m.SendDtmf("5")
    click(qtbot, w.hold_button)
    assert c.actions[-1] == m.SetHold(True)
    c.session.call_held(True, c.now)
    w.refresh()
    assert w.hold_button.text() == "Resume"
    click(qtbot, w.hold_button)
    assert c.actions[-1] == m.SetHold(False)
    c.session.call_held(False, c.now)
    w.next_combo.setCurrentText("not_ready:lunch")
    click(qtbot, w.next_button)
    assert c.actions[-1] == m.SendState(m.AcdStatus.NOT_READY, "lunch")
    w.transfer_edit.setText("queue:billing")
    click(qtbot, w.transfer_button)
    assert c.actions[-1] == m.Transfer("queue:billing")
    shoot(w, shots, "4-on-call")
    assert "muted" in w.status.text() and "next: not_ready" in w.status.text()

    click(qtbot, w.hangup_button)
    assert c.actions[-1] == m.HangUpCall()
    c.now += 95
    c.actions += c.session.call_ended(c.now)
    c.server({"event": "ended", "call_id": "c-7", "by": "agent", "wrapup_s": 30})
    c.server({"event": "state", "state": "wrap_up", "old": "on_call"})
    w.refresh()
    assert w.acw_box.isVisible()
    qtbot.keyClicks(w.code_search, "call back")
    top = w.code_tree.topLevelItem(0)
    assert w.code_tree.topLevelItemCount() == 1 and top.childCount() == 1
    w.code_tree.setCurrentItem(top.child(0))
    w.note_edit.insertPlainText("Told him it’s company policy")  # a curly quote: typed
    assert "it's company policy" in w.note_flag.text()
    shoot(w, shots, "5-acw-with-code-tree")
    click(qtbot, w.wrapup_button)
    sent = [a for a in c.actions if isinstance(a, m.SendWrapUp)]
    assert [(a.wrapup.code, a.wrapup.call_id) for a in sent] == [("support/callback", "c-7")]
    c.now += 5
    c.server({"event": "state", "state": "not_ready", "old": "wrap_up", "reason": "lunch"})
    w.refresh()
    assert not w.acw_box.isVisible()
    assert "calls handled: 1" in w.figures_view.text()
    assert "in the last hour: 1" in w.figures_view.text()
    assert "AHT: 1:40" in w.figures_view.text()  # 95 s talk + 5 s wrap-up
    assert "survey: (from the server once online)" in w.figures_view.text()
    c.session.take_server_figures({"calls_handled": 12, "calls_last_hour": 3, "aht_s": 200,
                                   "time_in_state_s": {"not_ready": 60.0},
                                   "survey_count": 2, "survey_mean": 4.5}, c.now)
    w.refresh()
    shown = w.figures_view.text()
    assert "calls handled: 12" in shown and "in the last hour: 3" in shown
    assert "AHT: 3:20" in shown and "survey: 4.5 of 5 (2 answers)" in shown
    assert "Please wait a moment." in [w.script_view.item(i).text()
                                       for i in range(w.script_view.count())]


def test_a_command_the_session_refuses_shows_why(qtbot: Any) -> None:
    c = FakeController()
    c.sign_in("http://x", "x:5060", "1001", "pw")
    w = SoftphoneWindow(c, lambda: c.now)
    qtbot.addWidget(w)
    w._do("answer")
    assert "cannot answer while the phone is idle" in w.warning.text()


SCALED = """
import sys
from PySide6 import QtWidgets
app = QtWidgets.QApplication([])
from tests.test_softphone_window import CALL, FakeController
from softphone.window import SoftphoneWindow
c = FakeController()
c.sign_in("http://x", "x:5060", "1001", "pw")
c.server({"event": "state", "state": "reserved", "old": "ready"})
c.server({"event": "offered", "call": CALL})
c.session.incoming_call(True, c.now, "c-7")
w = SoftphoneWindow(c, lambda: c.now)
w.show()
w.refresh()
w.adjustSize()
app.processEvents()
img = w.grab()
img.save(sys.argv[1])
hint = w.minimumSizeHint()
print(img.devicePixelRatio(), w.width() >= hint.width(), w.height() >= hint.height())
"""


@pytest.mark.parametrize("scale", ["1.25", "2"])
def test_the_window_renders_at_125_and_200_percent(scale: str, shots: Path) -> None:
    import subprocess
    import sys

    path = shots / f"ringing-at-{scale}x.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": scale}
    done = subprocess.run([sys.executable, "-c", SCALED, str(path)], env=env, timeout=60,
                          capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    ratio, wide_enough, tall_enough = done.stdout.split()
    print(f"screenshot: {path}")
    assert float(ratio) == float(scale) and wide_enough == tall_enough == "True"
