"""The sipp scenarios shipped for users in ``scripts/sipp/``, built with ``tests/sipp.py``.

``python -m tests.sipp_scenarios`` writes them; ``tests/test_sipp_scenarios.py`` checks that
the shipped files are what this renders and runs each against the default flow.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from tests import sipp

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DIR = ROOT / "scripts" / "sipp"
MESSAGE_PCAP = sipp.PCAP_DIR / "g711a.pcap"  # 7 s of speech, PCMA, shipped with sip-tester


def _keys(caller: sipp.Caller, digits: str, gap_ms: int = 400) -> sipp.Caller:
    """Digits from sip-tester's pcaps. Each pcap carries fixed RTP timestamps, so the same
    key twice in a row looks like one event retransmitted (RFC 4733 2.5.1.3) and is taken
    once: a scenario never repeats a key back to back."""
    for a, b in zip(digits, digits[1:], strict=False):
        if a == b:
            raise ValueError(f"{digits!r}: the same key twice in a row is heard once")
    for digit in digits:
        caller.rfc2833(digit).pause(gap_ms)
    return caller


def english_support() -> sipp.Caller:
    c = sipp.Caller("english-support", description=(
        "The default flow's support path: 1 for English, 2 for support, the account number "
        "4152 and #, 1 to confirm the read-back (\"you entered 4 1 5 2 ...\"), then it listens "
        "to the support queue and the voicemail prompt and hangs up. Offers PCMU with "
        "RFC 4733 digits."))
    c.pause(1000).rfc2833("1").pause(1500).rfc2833("2").pause(2500)
    _keys(c, "4152#")
    return c.pause(5000).rfc2833("1").pause(8000).caller_hangs_up()


def english_voicemail() -> sipp.Caller:
    c = sipp.Caller("english-voicemail", codecs=["PCMA"], description=(
        "The default flow's sales path while no agent can answer: it lets the language menu "
        "time out (English), presses 1 for sales, then it leaves sip-tester's 7 s speech "
        "sample as a voicemail after the beep "
        "and waits in silence until the IVR ends the message, says goodbye and hangs up. "
        "Offers PCMA (the sample's codec) with RFC 4733 digits."))
    c.pause(8000).rfc2833("1").pause(9000)
    return c.play_pcap(MESSAGE_PCAP).pause(7500).ivr_hangs_up(30000)


def listen_10s() -> sipp.Caller:
    return sipp.Caller("listen-10s", description=(
        "A caller who presses nothing: it listens for 10 s and hangs up. Offers PCMU with "
        "RFC 4733 digits.")).pause(10000).caller_hangs_up()


SCENARIOS: dict[str, Callable[[], sipp.Caller]] = {
    "english-support.xml": english_support,
    "english-voicemail.xml": english_voicemail,
    "listen-10s.xml": listen_10s,
}


def render_all() -> dict[str, str]:
    return {name: build().render() for name, build in SCENARIOS.items()}


def main() -> int:
    for name, text in render_all().items():
        (SHIPPED_DIR / name).write_text(text)
        print(f"wrote {SHIPPED_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
