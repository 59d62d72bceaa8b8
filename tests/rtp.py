"""Build RTP captures (pcap) for sipp's play_pcap_audio: in-band DTMF as G.711 audio."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from media.g711 import ulaw_encode

DTMF_FREQS_HZ = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}


def dtmf_tones(digits: str, tone_ms: int = 100, gap_ms: int = 100, lead_ms: int = 200,
               level_dbfs: float = -10.0, rate_hz: int = 8000) -> np.ndarray:
    """Digits as a dual-tone signal (each tone at ``level_dbfs`` peak), int16."""
    amp = 32767 * 10 ** (level_dbfs / 20)
    parts = [np.zeros(rate_hz * lead_ms // 1000)]
    for d in digits:
        lo, hi = DTMF_FREQS_HZ[d]
        t = np.arange(rate_hz * tone_ms // 1000) / rate_hz
        parts.append(amp * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)))
        parts.append(np.zeros(rate_hz * gap_ms // 1000))
    return np.concatenate(parts).astype(np.int16)


def pcap_file(records: list[tuple[float, bytes]], src_port: int = 49170,
              dst_port: int = 10000) -> bytes:
    """A classic pcap (Ethernet, IPv4 127.0.0.1, UDP) of RTP packets sent at the given times
    (seconds from the start)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for n, (t, rtp) in enumerate(records):
        udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        usec = int(round(t * 1_000_000))
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        out += frame
    return bytes(out)


def write_rtp_pcap(path: Path, pcm: np.ndarray, payload_type: int = 0, ptime_ms: int = 20,
                   src_port: int = 49170, dst_port: int = 10000) -> int:
    """Write ``pcm`` (8 kHz int16) as PCMU RTP packets in a pcap; returns the packet count."""
    samples = 8 * ptime_ms
    n = len(pcm) // samples
    records: list[tuple[float, bytes]] = []
    ssrc = 0x1234ABCD
    for i in range(n):
        payload = ulaw_encode(pcm[i * samples:(i + 1) * samples])
        rtp = struct.pack("!BBHII", 0x80, payload_type | (0x80 if i == 0 else 0),
                          (1000 + i) & 0xFFFF, (160000 + i * samples) & 0xFFFFFFFF, ssrc)
        records.append((i * ptime_ms / 1000, rtp + payload))
    path.write_bytes(pcap_file(records, src_port, dst_port))
    return n


def telephone_event_packets(digit: str, duration_ms: int = 120,
                            ptime_ms: int = 20, volume: int = 10,
                            end_repeats: int = 3) -> list[tuple[bool, bytes]]:
    """RFC 4733 payloads for one key press: ``(marker, payload)`` per ``ptime_ms`` slot.

    The first packet has the marker bit; every packet of the event goes out with the RTP
    timestamp of its start (the caller writes the header); durations grow by one packet time,
    and the last ``end_repeats`` packets have the E bit and the final duration."""
    events = "0123456789*#ABCD"
    code = events.index(digit.upper())
    step = 8 * ptime_ms
    n = max(1, duration_ms // ptime_ms)
    out: list[tuple[bool, bytes]] = []
    for i in range(n):
        out.append((i == 0, struct.pack("!BBH", code, volume & 0x3F, step * (i + 1))))
    for _ in range(end_repeats):
        out.append((False, struct.pack("!BBH", code, 0x80 | (volume & 0x3F), step * n)))
    return out


def write_rtp_pcap_with_dtmf(path: Path, pcm: np.ndarray, digits: list[tuple[float, str]],
                             payload_type: int = 0, event_payload_type: int = 101,
                             ptime_ms: int = 20, digit_ms: int = 120, src_port: int = 49170,
                             dst_port: int = 10000) -> tuple[int, int]:
    """Write ``pcm`` (8 kHz int16) as one continuous PCMU RTP stream in a pcap, with RFC 4733
    telephone-events for ``digits`` (``(start_s, digit)``) taking the place of the audio
    packets of their slots (same SSRC and sequence space, one packet every ``ptime_ms``).
    Returns (packets, event packets)."""
    samples = 8 * ptime_ms
    n = len(pcm) // samples
    slots: dict[int, tuple[int, bool, bytes]] = {}  # slot -> (timestamp slot, marker, payload)
    for start_s, digit in digits:
        first = int(round(start_s * 1000 / ptime_ms))
        for k, (marker, payload) in enumerate(telephone_event_packets(digit, digit_ms, ptime_ms)):
            if 0 <= first + k < n:
                slots[first + k] = (first, marker, payload)
    records: list[tuple[float, bytes]] = []
    ssrc = 0x1234ABCE
    for i in range(n):
        if i in slots:
            ts_slot, marker, payload = slots[i]
            pt = event_payload_type | (0x80 if marker else 0)
            ts = 160000 + ts_slot * samples
        else:
            payload = ulaw_encode(pcm[i * samples:(i + 1) * samples])
            pt = payload_type | (0x80 if i == 0 else 0)
            ts = 160000 + i * samples
        rtp = struct.pack("!BBHII", 0x80, pt, (1000 + i) & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
        records.append((i * ptime_ms / 1000, rtp + payload))
    path.write_bytes(pcap_file(records, src_port, dst_port))
    return n, len(slots)


_EVENT_CODES = {d: i for i, d in enumerate("0123456789*#ABCD")}


def write_call_pcap(path: Path, digits: list[tuple[float, str]],
                    audio: list[tuple[float, np.ndarray]] | None = None,
                    event_ms: int = 120, event_pt: int = 101) -> int:
    """One caller's RTP stream as a pcap for sipp's play_pcap_audio: RFC 4733 telephone-events
    for ``digits`` (start time in s, digit) and PCMU ``audio`` chunks (start time, 8 kHz int16),
    with one SSRC and continuous sequence numbers and timestamps, as a real phone sends them
    (replaying sipp's own per-digit captures in one call sends sequence numbers backwards,
    which RTP receivers rightly drop)."""
    packets: list[tuple[float, int, bool, int, bytes]] = []  # (time, pt, marker, ts, payload)
    for start_s, digit in digits:
        ts = int(start_s * 8000)
        steps = max(1, event_ms // 20)
        for i in range(steps):
            dur = (i + 1) * 160
            payload = struct.pack("!BBH", _EVENT_CODES[digit], 10, dur)
            packets.append((start_s + i * 0.02, event_pt, i == 0, ts, payload))
        end = struct.pack("!BBH", _EVENT_CODES[digit], 0x80 | 10, steps * 160)
        for k in range(3):  # the end packet, sent three times (RFC 4733 section 2.5.1.4)
            packets.append((start_s + steps * 0.02 + k * 0.001, event_pt, False, ts, end))
    for start_s, pcm in audio or []:
        for i in range(len(pcm) // 160):
            t = start_s + i * 0.02
            packets.append((t, 0, i == 0, int(t * 8000), ulaw_encode(pcm[i * 160:(i + 1) * 160])))
    packets.sort(key=lambda p: p[0])
    records = [
        (t, struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), (5000 + seq) & 0xFFFF,
                        (8000 + ts) & 0xFFFFFFFF, 0x55AA1234) + payload)
        for seq, (t, pt, marker, ts, payload) in enumerate(packets)
    ]
    path.write_bytes(pcap_file(records))
    return len(packets)
