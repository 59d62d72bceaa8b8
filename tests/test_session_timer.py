"""SIP session timers (RFC 4028) on a real worker: a call nobody refreshes does not stay up.

PJSIP (and the RFC) refuse a session interval under 90 s, so the expiry test waits about a
minute: the worker ends an unrefreshed session at 2/3 of it (RFC 4028 section 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import sipp
from tests.conftest import FLOWS, WorkerProcess, start_worker
from tests.test_calls_sipp import wait_ended

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(sipp.SIPP is None, reason="sipp (sip-tester) not installed"),
]

_ASKS_FOR_A_TIMER = """      User-Agent: sipp-test
      Supported: timer
      Session-Expires: {se};refresher=uac
      Min-SE: 90"""


def _with_200_check(text: str, regexp: str) -> str:
    """Make sipp fail the call unless the 200 OK's Session-Expires matches ``regexp``."""
    check = (f'<recv response="200" rtd="true" rrs="true"><action><ereg regexp="{regexp}" '
             'search_in="hdr" header="Session-Expires:" check_it="true" assign_to="se"/>'
             '</action></recv>')
    text = text.replace('<recv response="200" rtd="true" rrs="true"/>', check, 1)
    return text.replace("</scenario>", '  <Reference variables="se"/>\n</scenario>')


def test_a_caller_without_session_timers_gets_one_refreshed_by_the_ivr(
        worker: WorkerProcess, tmp_path: Path) -> None:
    caller = sipp.Caller("timer_by_ivr").pause(500).caller_hangs_up()
    scenario = _with_200_check(caller.render(), "1800;refresher=uas")
    result = sipp.run(scenario, worker.target, tmp_path)
    assert result.ok, result.output + result.errors
    assert wait_ended(worker.db)["end_reason"] == "caller_hangup"


def test_a_session_the_caller_never_refreshes_is_ended_by_the_ivr(tmp_path: Path) -> None:
    wp = start_worker(tmp_path, flow=FLOWS / "patient.yaml",
                      env={"IVR_MEDIA_RTP_TIMEOUT_S": "0"})
    try:
        # The caller asks for a 90 s session and to refresh it itself, then never does (nor
        # sends RTP, nor a key: the flow would wait; the RTP timeout is off here).
        caller = sipp.Caller("timer_never_refreshed").ivr_hangs_up(120000)
        text = caller.render().replace("      User-Agent: sipp-test",
                                       _ASKS_FOR_A_TIMER.format(se=90), 1)
        scenario = _with_200_check(text, "90;refresher=uac")
        result = sipp.run(scenario, wp.target, tmp_path, timeout_s=150)
        assert result.ok, result.output + result.errors
        row = wait_ended(wp.db)
    finally:
        wp.stop()
    assert (row["end_reason"], row["hangup_by"]) == ("session_expired", "system")
    assert row["ended_at"] - row["answered_at"] >= 90 * 2 / 3 - 1  # not before its time
