"""Key press -> next prompt, on the wire: what the IVR takes, apart from the harness.

    scripts/in-netns .venv/bin/python bench/bench_key_to_prompt.py --calls 20 \\
        --out bench/results/key-to-prompt.txt

Starts one ``ivr run`` stack (Kamailio, the pool, the default flow), captures loopback with
tcpdump, and places ``--calls`` harness calls one after the other
(``bench/scenarios/language_menu.yaml``: hear the language menu, press 1, hear the welcome).
From the capture, per call:

* **wire**: the key's first RFC 4733 packet (caller -> IVR) to the RTP packet back that
  carries the first 20 ms of the prompt (the file the stack plays, found by content); to
  the one that carries the start of its sound (the first 10 ms above -50 dBFS,
  ``media.pcm.sound_start``: what the harness times); and to its first *voiced* 20 ms
  (above -40 dBFS);
* **harness**: the call's ``key_to_prompt_ms`` as ``ivr-harness`` reported it, and its
  ``jitter_buffer_ms``.

Run it inside a loopback-only network namespace (``scripts/in-netns``); never from pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from media.pcm import read_wav_mono16, sound_start  # noqa: E402
from tests.conftest import start_stack  # noqa: E402

SCENARIO = ROOT / "bench" / "scenarios" / "language_menu.yaml"
PROMPT = ROOT / "prompts" / "en-US" / "welcome.wav"  # the prompt after the key
_ULAW_ZEROS = {0xFF, 0x7F}
_VOICED_DBFS = -40.0


@dataclass(frozen=True)
class Packet:
    at_s: float  # capture time (CLOCK_REALTIME)
    src: tuple[str, int]
    dst: tuple[str, int]
    payload_type: int
    marker: bool
    payload: bytes


def read_rtp(pcap: Path) -> list[Packet]:
    """RTP-looking UDP datagrams of a tcpdump capture on lo (Ethernet link type)."""
    data = pcap.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian, nano = ("<", False) if magic in (0xA1B2C3D4, 0xA1B23C4D) else (">", False)
    nano = magic == 0xA1B23C4D
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_len = {1: 14, 113: 16, 276: 20}.get(linktype)
    if link_len is None:
        raise SystemExit(f"unexpected link type {linktype} in {pcap}")
    out: list[Packet] = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = frame[link_len:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        udp = ip[ihl:]
        sport, dport = struct.unpack("!HH", udp[:4])
        rtp = udp[8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2:
            continue
        pt = rtp[1] & 0x7F
        if pt >= 72 and pt <= 76:  # RTCP
            continue
        cc = rtp[0] & 15
        body = rtp[12 + 4 * cc:]
        src = (".".join(map(str, ip[12:16])), sport)
        dst = (".".join(map(str, ip[16:20])), dport)
        at = sec + frac / (1e9 if nano else 1e6)
        out.append(Packet(at, src, dst, pt, bool(rtp[1] & 0x80), bytes(body)))
    return out


def prompt_frames(wav: Path) -> list[bytes]:
    """The prompt as the IVR sends it: µ-law, 20 ms (160 samples at 8 kHz) a packet."""
    import numpy as np

    from media.g711 import ulaw_encode
    from media.pcm import read_wav_mono16

    pcm, rate = read_wav_mono16(wav)
    if rate != 8000:
        raise SystemExit(f"{wav}: {rate} Hz, expected 8000")
    pcm = np.asarray(pcm, dtype=np.int16)
    return [ulaw_encode(pcm[i:i + 160]) for i in range(0, len(pcm) - 159, 160)]


def _same(a: bytes, b: bytes) -> bool:
    return len(a) == len(b) and sum(x == y for x, y in zip(a, b, strict=True)) >= 0.8 * len(a)


def _voiced(frame: bytes) -> bool:
    import numpy as np

    from media.g711 import ulaw_decode

    pcm = ulaw_decode(frame).astype(np.float64)
    rms = float(np.sqrt(np.mean(pcm * pcm))) if pcm.size else 0.0
    return 20 * np.log10(max(rms, 1e-9) / 32768) > _VOICED_DBFS


def key_to_prompt(packets: list[Packet], prompt: list[bytes], sound_frame: int
                  ) -> list[tuple[float, list[float | None]]]:
    """Per key: (key sent at, [arrival of the packet carrying the prompt's frame 0, its
    ``sound_frame`` (where its sound begins, media.pcm.sound_start), its first voiced
    frame]). The key is the first packet of an RFC 4733 event (4-byte payload, marker bit:
    RFC 4733 section 2.5.1.3). The prompt is found by content: the first packet back whose
    payload is the prompt's first frame that is not digital silence; the packet carrying
    frame k is k packets after frame 0's in the stream."""
    k0 = next(i for i, f in enumerate(prompt) if any(b not in _ULAW_ZEROS for b in f))
    kv = next(i for i, f in enumerate(prompt) if _voiced(f))
    out: list[tuple[float, list[float | None]]] = []
    for i, p in enumerate(packets):
        if len(p.payload) != 4 or p.payload_type < 96 or not p.marker:
            continue
        back = [q for q in packets[i + 1:] if q.src == p.dst and q.dst == p.src
                and len(q.payload) == 160][:500]
        times: list[float | None] = [None, None, None]
        for j, q in enumerate(back):
            if j >= k0 and _same(q.payload, prompt[k0]):
                first = j - k0
                times = [back[first + k].at_s if first + k < len(back) else None
                         for k in (0, sound_frame, kv)]
                break
        out.append((p.at_s, times))
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def summary(name: str, xs: list[float]) -> str:
    if not xs:
        return f"{name:34} -"
    return (f"{name:34} n {len(xs):3}  p50 {pct(xs, 50):6.1f}  p90 {pct(xs, 90):6.1f}  "
            f"max {max(xs):6.1f}  mean {statistics.fmean(xs):6.1f} ms")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--env", action="append", default=[], help="IVR_X=value for the stack")
    ap.add_argument("--keep", type=Path, help="copy the capture here")
    args = ap.parse_args(argv)
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise SystemExit("tcpdump is needed (apt-get install tcpdump)")
    env = dict(kv.split("=", 1) for kv in args.env)
    out = [f"# bench/bench_key_to_prompt.py {' '.join(argv)}",
           f"# {time.strftime('%Y-%m-%d %H:%M:%S')} on {os.cpu_count()} cores"]
    with tempfile.TemporaryDirectory(prefix="bench-k2p-") as tmp_s:
        tmp = Path(tmp_s)
        stack = start_stack(tmp, workers=2, env=env)
        pcap = tmp / "lo.pcap"
        dump = subprocess.Popen([tcpdump, "-i", "lo", "-n", "-s", "256", "-w", str(pcap),
                                 "udp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness: list[float] = []
        jb: list[float] = []
        try:
            time.sleep(1.0)
            for i in range(args.calls):
                res = tmp / f"r{i}.json"
                subprocess.run([sys.executable, "-m", "ivr.harness.cli", "run", str(SCENARIO),
                                "--dial", f"sip:ivr@127.0.0.1:{stack.port}", "--json",
                                str(res), "--sip-port", "19600", "--rtp-port", "39000"],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
                if res.is_file():
                    for call in json.loads(res.read_text()).get("calls", []):
                        harness.extend(call.get("key_to_prompt_ms") or [])
                        if call.get("jitter_buffer_ms") is not None:
                            jb.append(call["jitter_buffer_ms"])
            time.sleep(0.5)
        finally:
            dump.terminate()
            dump.wait(timeout=10)
            stack.stop()
        if args.keep:
            shutil.copy(pcap, args.keep)
        # the prompt as the stack plays it (converted at load, its lead trimmed)
        played = tmp / "var" / "cache" / "prompts" / PROMPT.parent.name / \
            f"{PROMPT.stem}.8000.wav"
        played = played if played.is_file() else PROMPT
        pcm, _ = read_wav_mono16(played)
        keys = key_to_prompt(read_rtp(pcap), prompt_frames(played),
                             sound_start(pcm, 8000) // 160)
        wire = [[(t - k) * 1000 for k, times in keys if (t := times[i]) is not None]
                for i in range(3)]
    out.append(f"# stack env: {env or 'defaults'}; {args.calls} calls, one at a time")
    out.append(summary("wire key -> prompt's first packet", wire[0]))
    out.append(summary("wire key -> prompt's first sound", wire[1]))
    out.append(summary("wire key -> prompt's first voiced", wire[2]))
    out.append(summary("harness key_to_prompt_ms", harness))
    if len(harness) == len(keys):  # one key a call, in order: the harness's error per call
        paired = [h - (t - k) * 1000 for h, (k, times) in zip(harness, keys, strict=True)
                  if (t := times[1]) is not None]
        out.append(summary("harness - wire (first sound)", paired))
    out.append(summary("harness jitter_buffer_ms", jb))
    print("\n".join(out))
    if args.out:
        args.out.write_text("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
