"""Settings of a harness process's phone."""

from __future__ import annotations

from media.phone import PhoneConfig

CALLS_PER_PROCESS = 4


def harness_phone_config(sip_port: int, rtp_port: int, calls: int = CALLS_PER_PROCESS
                         ) -> PhoneConfig:
    """A caller's phone: UDP on loopback, no taps of its own (the ear takes the tap slot),
    no RTP timeout (an IVR may stay silent), session timer only if the far end asks."""
    return PhoneConfig(bind_address="127.0.0.1", sip_port=sip_port, transports=("udp",),
                       rtp_port=rtp_port, rtp_port_range=8 * calls, max_calls=calls,
                       inband_dtmf="never", user_agent="ivr-harness", local_user="harness",
                       rtp_timeout_s=0, session_expires_s=0, srtp="off",
                       codecs=("PCMU/8000", "PCMA/8000"))
