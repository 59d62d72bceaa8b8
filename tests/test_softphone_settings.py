"""The softphone's settings per user (a JSON file in the platform's config location), the
password only in a keyring, and the shift's own figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from softphone import settings as st
from softphone.figures import ShiftFigures, from_server
from softphone.model import AcdStatus
from softphone.script import banned_in, reason_tree
from softphone.session import AgentSession

T0 = 1_764_590_000.0


def test_settings_round_trip_and_keep_the_chosen_headset(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert st.load(path) == st.Settings()
    mine = st.Settings(agent_id="1001", microphone="Jabra Evolve 40", speaker="Jabra Evolve 40",
                       ring_device="Built-in Audio", auto_answer_s=3.0)
    mine.hotkeys["answer"] = "F5"
    st.save(mine, path)
    back = st.load(path)
    assert back == mine and "password" not in path.read_text()


def test_bad_settings_files_give_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    assert st.load(path) == st.Settings()
    path.write_text('{"agent_id": "1002", "colour": "red"}')
    assert st.load(path).agent_id == "1002"  # unknown keys are ignored


def test_the_settings_live_in_the_platforms_config_dir(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert st.config_dir() == tmp_path / "callcenter-softphone"


def test_without_a_keyring_the_password_is_not_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = pytest.importorskip("keyring")
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    assert st.store_password("1001", "http://x", "pw") is False
    assert st.stored_password("1001", "http://x") is None


def test_with_a_keyring_the_password_goes_there(monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = pytest.importorskip("keyring")
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1  # type: ignore[assignment]
        kept: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.kept.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.kept[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.kept.pop((service, username), None)

    ring = Memory()
    monkeypatch.setattr(keyring, "get_keyring", lambda: ring)
    monkeypatch.setattr(keyring, "get_password", ring.get_password)
    monkeypatch.setattr(keyring, "set_password", ring.set_password)
    assert st.store_password("1001", "http://x", "pw")
    assert st.stored_password("1001", "http://x") == "pw"


def test_shift_figures_count_calls_the_last_hour_aht_and_time_per_state() -> None:
    f = ShiftFigures()
    f.status(AcdStatus.READY, T0)
    at = T0
    for talk_s in (100.0, 200.0):  # two calls, 10 s wrap-up each
        f.status(AcdStatus.RESERVED, at + 10)
        f.status(AcdStatus.ON_CALL, at + 15)
        f.status(AcdStatus.WRAP_UP, at + 15 + talk_s)
        f.status(AcdStatus.READY, at + 25 + talk_s)
        at += 3000
    got = f.figures(T0 + 3000 + 3700)
    assert got.calls_handled == 2 and got.calls_last_hour == 1  # the first ended > 1 h ago
    assert got.aht_s == pytest.approx(160.0)  # (110 + 210) / 2
    assert got.time_in_state_s["on_call"] == 300.0 and got.time_in_state_s["wrap_up"] == 20.0
    assert ShiftFigures().figures(T0).aht_s is None


def test_the_panel_takes_the_servers_figures_once_it_has_them_and_keeps_the_clock_going(
        ) -> None:
    s = AgentSession("1001")
    s.sign_in(T0)
    s.online({"id": "1001", "state": "ready", "since": T0}, T0)
    local = s.shift_figures(T0 + 10)
    assert not local.from_server and local.survey_count == 0  # counted here until then
    s.take_server_figures({"calls_handled": 7, "calls_last_hour": 2, "aht_s": 181.25,
                           "time_in_state_s": {"ready": 600.0, "on_call": 1200.0},
                           "survey_count": 3, "survey_mean": 4.333333}, T0 + 10)
    got = s.shift_figures(T0 + 70)
    assert got.from_server and (got.calls_handled, got.calls_last_hour) == (7, 2)
    assert got.aht_s == pytest.approx(181.2, abs=0.1)
    assert (got.survey_count, got.survey_mean) == (3, 4.33)
    # the agent is ready: that state's time goes on from the server's figure
    assert got.time_in_state_s == {"ready": 660.0, "on_call": 1200.0}


def test_figures_the_server_lacks_come_from_the_softphones_own_count() -> None:
    local = ShiftFigures()
    local.status(AcdStatus.READY, T0)
    got = from_server({"calls_handled": 1}, T0, T0 + 5, AcdStatus.READY,
                      local.figures(T0 + 5))
    assert got.calls_handled == 1 and got.calls_last_hour == 0 and got.aht_s is None
    assert got.time_in_state_s == {"ready": 5.0} and got.survey_mean is None


def test_banned_phrases_are_found_whatever_the_quotes_and_case() -> None:
    assert banned_in("Well, It’s  company policy, sir") == ["it's company policy"]
    assert banned_in("thank you for your patience") == []


def test_reason_codes_group_into_a_tree() -> None:
    assert reason_tree([("support/fixed", "Fixed"), ("billing/refund", "Refund")]) == {
        "billing": [("billing/refund", "Refund")], "support": [("support/fixed", "Fixed")]}
