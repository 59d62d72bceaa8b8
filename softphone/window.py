"""The softphone's Qt window (PySide6) over the session: every widget only sends a command
(``controller.command(name, *args)``) and renders the session's state in ``refresh()``; no
widget calls HTTP or SIP. The real controller (``softphone/desktop.py``) runs the
:class:`~softphone.runner.Softphone` on an asyncio loop in a thread and signals the window
on each change; tests give a controller of their own.

Layout, top to bottom: the status line (connection, ACD status, call, warnings), the sign-in
form (until signed in), the state row (ready / not ready with reason / next state), the
call panel (screen pop, answer, hang up, mute, hold, keypad, transfer), after-call work
(searchable reason-code tree, note with banned-phrase flagging, submit), the script panel
and the shift's figures. Shortcuts: settings.DEFAULT_HOTKEYS.
"""

from __future__ import annotations

from typing import Any, Protocol

from PySide6 import QtCore, QtGui, QtWidgets

from .model import AcdStatus, CallState, InvalidStateError, Link, Notice
from .script import DEFAULT_BANNED, banned_in, reason_tree
from .session import AgentSession
from .settings import DEFAULT_HOTKEYS

NOT_READY_REASONS = ("break", "lunch", "training", "meeting")


class Controller(Protocol):
    session: AgentSession
    notices: list[Notice]
    not_ready_reasons: list[str]

    @property
    def reason_codes(self) -> list[tuple[str, str]]: ...

    @property
    def script(self) -> list[str]: ...

    @property
    def banned(self) -> list[str]: ...

    def command(self, name: str, *args: Any) -> None: ...

    def sign_in(self, server: str, sip: str, agent_id: str, password: str) -> None: ...


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    m, s = divmod(int(seconds), 60)
    return f"{m // 60:d}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m:d}:{s:02d}"


class SoftphoneWindow(QtWidgets.QMainWindow):
    changed = QtCore.Signal()  # from any thread: re-render on the UI thread

    def __init__(self, controller: Controller, clock: Any,
                 hotkeys: dict[str, str] | None = None) -> None:
        super().__init__()
        self.c = controller
        self.clock = clock
        self.setWindowTitle("Softphone")
        self.changed.connect(self.refresh, QtCore.Qt.ConnectionType.QueuedConnection)
        root = QtWidgets.QWidget()
        self.setCentralWidget(root)
        v = QtWidgets.QVBoxLayout(root)
        self.status = QtWidgets.QLabel()
        self.status.setObjectName("status")
        self.warning = QtWidgets.QLabel()
        self.warning.setStyleSheet("color: #b00020; font-weight: bold")
        self.warning.setWordWrap(True)
        v.addWidget(self.status)
        v.addWidget(self.warning)
        v.addWidget(self._sign_in_box())
        v.addWidget(self._devices_box())
        v.addWidget(self._state_box())
        v.addWidget(self._call_box())
        v.addWidget(self._acw_box())
        h = QtWidgets.QHBoxLayout()
        self.script_view = QtWidgets.QListWidget()
        self.script_view.setWordWrap(True)
        self.mic_meter, self.speaker_meter = QtWidgets.QProgressBar(), QtWidgets.QProgressBar()
        meters = QtWidgets.QHBoxLayout()
        for label, bar in (("mic", self.mic_meter), ("speaker", self.speaker_meter)):
            bar.setRange(-60, 0)
            bar.setFormat(f"{label} %v dBFS")
            meters.addWidget(bar)
        v.addLayout(meters)
        self.figures_view = QtWidgets.QLabel()
        self.figures_view.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        for title, w in (("Script", self.script_view), ("My shift", self.figures_view)):
            box = QtWidgets.QGroupBox(title)
            QtWidgets.QVBoxLayout(box).addWidget(w)
            h.addWidget(box)
        v.addLayout(h)
        self._shortcuts(hotkeys or DEFAULT_HOTKEYS)
        self.tray: QtWidgets.QSystemTrayIcon | None = None
        if QtWidgets.QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QtWidgets.QSystemTrayIcon(self.windowIcon(), self)
            self.tray.show()
        timer = QtCore.QTimer(self)
        timer.timeout.connect(self.refresh)  # the figures' clock
        timer.start(1000)
        meter_timer = QtCore.QTimer(self)
        meter_timer.timeout.connect(self._meters)
        meter_timer.start(100)
        self._meters()
        self.refresh()

    # ---- building -----------------------------------------------------------------------

    def _button(self, text: str, slot: Any) -> QtWidgets.QPushButton:
        b = QtWidgets.QPushButton(text)
        b.clicked.connect(slot)
        return b

    def _sign_in_box(self) -> QtWidgets.QGroupBox:
        self.sign_in_box = box = QtWidgets.QGroupBox("Sign in")
        form = QtWidgets.QFormLayout(box)
        self.server_edit = QtWidgets.QLineEdit("http://127.0.0.1:8080")
        self.sip_edit = QtWidgets.QLineEdit("127.0.0.1:5060")
        self.agent_edit = QtWidgets.QLineEdit()
        self.password_edit = QtWidgets.QLineEdit()
        self.password_edit.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
        for label, w in (("Server", self.server_edit), ("SIP", self.sip_edit),
                         ("Agent id", self.agent_edit), ("Password", self.password_edit)):
            form.addRow(label, w)
        self.sign_in_button = self._button("Sign in", self._sign_in)
        form.addRow(self.sign_in_button)
        return box

    def _devices_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Devices")
        h = QtWidgets.QHBoxLayout(box)
        self.device_combos: dict[str, QtWidgets.QComboBox] = {}
        for kind in ("microphone", "speaker", "ring"):
            combo = QtWidgets.QComboBox()
            combo.setToolTip(kind)
            self.device_combos[kind] = combo
            h.addWidget(QtWidgets.QLabel(kind))
            h.addWidget(combo)
        self.devices_button = self._button("Use", self._use_devices)
        h.addWidget(self.devices_button)
        self._list_devices()
        return box

    def _list_devices(self) -> None:
        names: list[str] = getattr(self.c, "device_names", lambda: [])()
        chosen: dict[str, str] = getattr(self.c, "chosen_devices", lambda: {})()
        for kind, combo in self.device_combos.items():
            combo.clear()
            combo.addItems(["(default)", *names])
            if chosen.get(kind) in names:
                combo.setCurrentText(chosen[kind])

    def _use_devices(self) -> None:
        picked = {k: ("" if c.currentIndex() == 0 else c.currentText())
                  for k, c in self.device_combos.items()}
        use = getattr(self.c, "choose_devices", None)
        if use is not None:
            use(picked["microphone"], picked["speaker"], picked["ring"])
        self._list_devices()
        self.refresh()

    def _state_box(self) -> QtWidgets.QGroupBox:
        self.state_box = box = QtWidgets.QGroupBox("My state")
        h = QtWidgets.QHBoxLayout(box)
        self.ready_button = self._button("Ready", lambda: self._do("go_ready"))
        self.reason_combo = QtWidgets.QComboBox()
        self.reason_combo.addItems(list(self.c.not_ready_reasons or NOT_READY_REASONS))
        self.not_ready_button = self._button("Not ready", lambda: self._do(
            "go_not_ready", self.reason_combo.currentText()))
        self.next_combo = QtWidgets.QComboBox()
        self.next_combo.addItems(["ready"] + [f"not_ready:{r}" for r in (
            self.c.not_ready_reasons or NOT_READY_REASONS)] + ["logged_out"])
        self.next_button = self._button("Next state", self._next_state)
        self.auto_answer = QtWidgets.QSpinBox()
        self.auto_answer.setRange(0, 60)
        self.auto_answer.setPrefix("auto-answer ")
        self.auto_answer.setSuffix(" s")
        self.auto_answer.setSpecialValueText("auto-answer off")
        self.auto_answer.setValue(int(self.c.session.auto_answer_s or 0))
        self.auto_answer.valueChanged.connect(lambda v: self._do("set_auto_answer",
                                                                 float(v) or None))
        for w in (self.ready_button, self.reason_combo, self.not_ready_button,
                  self.next_combo, self.next_button, self.auto_answer):
            h.addWidget(w)
        return box

    def _call_box(self) -> QtWidgets.QGroupBox:
        self.call_box = box = QtWidgets.QGroupBox("Call")
        v = QtWidgets.QVBoxLayout(box)
        self.pop = QtWidgets.QLabel("no call")
        self.pop.setObjectName("screen_pop")
        self.pop.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        v.addWidget(self.pop)
        h = QtWidgets.QHBoxLayout()
        self.answer_button = self._button("Answer", lambda: self._do("answer"))
        self.hangup_button = self._button("Hang up", lambda: self._do("hang_up"))
        self.mute_button = self._button("Mute", lambda: self._do(
            "set_mute", not self.c.session.muted))
        self.hold_button = self._button("Hold", self._hold)
        for w in (self.answer_button, self.hangup_button, self.mute_button, self.hold_button):
            h.addWidget(w)
        v.addLayout(h)
        keypad = QtWidgets.QGridLayout()
        self.keys: dict[str, QtWidgets.QPushButton] = {}
        for i, key in enumerate("123456789*0#"):
            b = self._button(key, lambda _=False, k=key: self._do("send_dtmf", k))
            self.keys[key] = b
            keypad.addWidget(b, i // 3, i % 3)
        v.addLayout(keypad)
        t = QtWidgets.QHBoxLayout()
        self.transfer_edit = QtWidgets.QLineEdit()
        self.transfer_edit.setPlaceholderText("queue:billing, agent:1002, tel:+15550100")
        self.transfer_button = self._button("Transfer", lambda: self._do(
            "transfer", self.transfer_edit.text().strip()))
        t.addWidget(self.transfer_edit)
        t.addWidget(self.transfer_button)
        v.addLayout(t)
        return box

    def _acw_box(self) -> QtWidgets.QGroupBox:
        self.acw_box = box = QtWidgets.QGroupBox("After-call work")
        v = QtWidgets.QVBoxLayout(box)
        self.code_search = QtWidgets.QLineEdit()
        self.code_search.setPlaceholderText("search reason codes")
        self.code_search.textChanged.connect(self._fill_codes)
        self.code_tree = QtWidgets.QTreeWidget()
        self.code_tree.setHeaderLabels(["Reason", "Code"])
        self.note_edit = QtWidgets.QPlainTextEdit()
        self.note_edit.setPlaceholderText("note")
        self.note_edit.textChanged.connect(self._check_note)
        self.note_flag = QtWidgets.QLabel()
        self.note_flag.setStyleSheet("color: #b00020")
        self.wrapup_button = self._button("Submit wrap-up", self._submit_wrapup)
        for w in (self.code_search, self.code_tree, self.note_edit, self.note_flag,
                  self.wrapup_button):
            v.addWidget(w)
        self._fill_codes("")
        return box

    def _shortcuts(self, keys: dict[str, str]) -> None:
        actions = {"answer": lambda: self._do("answer"), "hang_up": lambda: self._do("hang_up"),
                   "mute": lambda: self._do("set_mute", not self.c.session.muted),
                   "hold": self._hold, "ready": lambda: self._do("go_ready"),
                   "not_ready": lambda: self._do("go_not_ready",
                                                 self.reason_combo.currentText())}
        self.shortcuts: dict[str, QtGui.QShortcut] = {}
        for name, slot in actions.items():
            sc = QtGui.QShortcut(QtGui.QKeySequence(keys.get(name, DEFAULT_HOTKEYS[name])),
                                 self)
            sc.activated.connect(slot)
            self.shortcuts[name] = sc

    # ---- commands -----------------------------------------------------------------------

    def _do(self, name: str, *args: Any) -> None:
        try:
            self.c.command(name, *args)
        except InvalidStateError as exc:
            self.warning.setText(str(exc))
            return
        self.refresh()

    def _sign_in(self) -> None:
        self.c.sign_in(self.server_edit.text().strip(), self.sip_edit.text().strip(),
                       self.agent_edit.text().strip(), self.password_edit.text())
        self.refresh()

    def _next_state(self) -> None:
        state, _, reason = self.next_combo.currentText().partition(":")
        self._do("choose_next_state", state, reason)

    def _hold(self) -> None:
        self._do("resume" if self.c.session.call is CallState.HELD else "hold")

    def _submit_wrapup(self) -> None:
        item = self.code_tree.currentItem()
        code = item.text(1) if item is not None else ""
        self._do("submit_wrapup", code, self.note_edit.toPlainText())
        if not self.warning.text():
            self.note_edit.clear()

    def _fill_codes(self, search: str) -> None:
        self._codes_shown = list(self.c.reason_codes)
        self.code_tree.clear()
        words = search.lower().split()
        codes = [(c, label) for c, label in self.c.reason_codes
                 if all(w in f"{c} {label}".lower() for w in words)]
        for group, children in reason_tree(codes).items():
            parent = QtWidgets.QTreeWidgetItem([group, ""])
            self.code_tree.addTopLevelItem(parent)
            for code, label in children:
                parent.addChild(QtWidgets.QTreeWidgetItem([label, code]))
            parent.setExpanded(True)

    def _check_note(self) -> None:
        found = banned_in(self.note_edit.toPlainText(), self.c.banned or DEFAULT_BANNED)
        self.note_flag.setText(("avoid: " + "; ".join(f"“{p}”" for p in found))
                               if found else "")

    # ---- rendering ----------------------------------------------------------------------

    def _meters(self) -> None:
        levels = getattr(self.c, "levels", None)
        mic, speaker = levels() if levels else (-120.0, -120.0)
        self.mic_meter.setValue(int(max(-60.0, mic)))
        self.speaker_meter.setValue(int(max(-60.0, speaker)))

    def refresh(self) -> None:
        s = self.c.session
        now = self.clock()
        signed_in = s.link is not Link.SIGNED_OUT
        reason = f" ({s.reason})" if s.reason else ""
        nxt = f", next: {s.next_state[0].value}" if s.next_state else ""
        self.status.setText(f"{s.link.value} · {s.status.value}{reason} · phone "
                            f"{s.call.value}{' · muted' if s.muted else ''}{nxt}"
                            f"{f' · {len(s.outbox)} wrap-up(s) waiting' if s.outbox else ''}")
        warnings = [n.text for n in self.c.notices[-2:] if n.level in ("warning", "error")]
        if warnings and not self.warning.text():
            self.warning.setText(warnings[-1])
        self.sign_in_box.setVisible(not signed_in)
        self.state_box.setEnabled(signed_in)
        talking = s.call in (CallState.TALKING, CallState.HELD)
        self.answer_button.setEnabled(s.call is CallState.RINGING)
        self.hangup_button.setEnabled(s.call is not CallState.IDLE)
        self.mute_button.setEnabled(talking)
        self.mute_button.setText("Unmute" if s.muted else "Mute")
        self.hold_button.setEnabled(talking)
        self.hold_button.setText("Resume" if s.call is CallState.HELD else "Hold")
        for b in self.keys.values():
            b.setEnabled(s.call is CallState.TALKING)
        self.transfer_button.setEnabled(talking)
        self.acw_box.setVisible(s.acw_call_id is not None
                                and s.acw_call_id not in s.coded_call_ids)
        self._render_pop(now)
        if self.c.reason_codes != self._codes_shown:  # they came from the server
            self._fill_codes(self.code_search.text())
        self.script_view.clear()
        self.script_view.addItems(self.c.script or ["(no guided script for this queue)"])
        f = s.shift_figures(now)
        per_state = "\n".join(f"  {k}: {_fmt_s(v)}" for k, v in sorted(
            f.time_in_state_s.items()))
        since = "" if f.from_server else "\n(counted since this softphone started)"
        survey = (f"{f.survey_mean:.1f} of 5 ({f.survey_count} answers)" if f.survey_count
                  else "none yet" if f.from_server else "(from the server once online)")
        self.figures_view.setText(f"calls handled: {f.calls_handled}\n"
                                  f"in the last hour: {f.calls_last_hour}\n"
                                  f"AHT: {_fmt_s(f.aht_s)}\nsurvey: {survey}\n"
                                  f"time in state:\n{per_state}{since}")
        if self.tray is not None:
            self.tray.setToolTip(f"Softphone: {s.status.value}{reason}")

    def _render_pop(self, now: float) -> None:
        s = self.c.session
        o = s.offer
        if o is None or (s.call is CallState.IDLE and s.status in (AcdStatus.READY,
                                                                    AcdStatus.NOT_READY)):
            self.pop.setText("no call")
            return
        data = ", ".join(f"{k}={v}" for k, v in sorted(o.data.items())
                         if k not in ("ivr_path", "language")) or "-"
        path = " > ".join(o.ivr_path) or "-"
        self.pop.setText(f"{'RINGING: ' if s.call is CallState.RINGING else ''}"
                         f"{o.caller_name or o.caller} · queue {o.queue} · waited "
                         f"{_fmt_s(o.wait_s)}\nIVR: {path}\ncollected: {data}"
                         f"{f' · language {o.language}' if o.language else ''}")
        if s.call is CallState.RINGING:
            self.raise_()
            self.activateWindow()
