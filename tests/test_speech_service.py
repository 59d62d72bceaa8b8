"""The speech service (ivr/speech/service.py): a prefork process holding the recogniser,
answering workers' utterances over a Unix socket."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.speech.recognizer import Grammar
from ivr.speech.service import SpeechClient, SpeechServiceError
from tests import speech_audio as sa

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox synthesise the speech",
)

MENU = Grammar.of(["billing", "technical support", "talk to an agent", "operator"])


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True)
    return {int(p) for p in out.stdout.split()}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    sock = tmp_path_factory.mktemp("speech") / "speech.sock"
    proc = subprocess.Popen([sys.executable, "-m", "ivr.speech.service", "--socket", str(sock),
                             "--processes", "2"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert "ready" in proc.stdout.readline()
    yield sock, proc.pid
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    proc.stdout.close()


def test_a_worker_gets_the_spoken_phrase_back(service: tuple[Path, int]) -> None:
    pcm = sa.concat(sa.silence(0.3), sa.speech("talk to an agent"), sa.silence(0.3))
    hyps = asyncio.run(SpeechClient(service[0]).recognize(pcm, MENU, "en-US"))
    assert hyps[0].text == "talk to an agent"


def test_several_workers_at_once_each_get_their_answer(service: tuple[Path, int]) -> None:
    said = ["technical support", "operator", "talk to an agent", "technical support"]
    audio = [sa.concat(sa.silence(0.3), sa.speech(t), sa.silence(0.3)) for t in said]

    async def all_at_once() -> list[str]:
        client = SpeechClient(service[0])
        results = await asyncio.gather(*(client.recognize(a, MENU, "en-US") for a in audio))
        return [r[0].text if r else "" for r in results]

    assert asyncio.run(all_at_once()) == said
    assert len(children_of(service[1])) == 2  # the prefork children, nothing more


def test_a_language_without_a_model_is_an_error_naming_the_setting(
    service: tuple[Path, int],
) -> None:
    with pytest.raises(SpeechServiceError, match=r"no model for zh-CN.*speech.models.zh-CN"):
        asyncio.run(SpeechClient(service[0]).recognize(sa.speech("hello"), MENU, "zh-CN"))


def test_no_service_is_an_error_naming_the_socket(tmp_path: Path) -> None:
    missing = tmp_path / "none.sock"
    with pytest.raises(SpeechServiceError, match=f"speech service at {missing} unreachable"):
        asyncio.run(SpeechClient(missing).recognize(sa.speech("hello"), MENU, "en-US"))


def test_a_bad_model_directory_stops_the_service_with_a_message(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ivr.speech.service", "--socket",
                           str(tmp_path / "s.sock"), "--backend", "vosk", "--model",
                           f"ko-KR={tmp_path}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "speech.models.ko-KR" in proc.stderr and "is not a Vosk model" in proc.stderr


def test_sigterm_stops_the_service_and_its_children(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    proc = subprocess.Popen([sys.executable, "-m", "ivr.speech.service", "--socket", str(sock),
                             "--processes", "2"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and "ready" in proc.stdout.readline()
    kids = children_of(proc.pid)
    assert len(kids) == 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    proc.stdout.close()
    for kid in kids:
        with pytest.raises(ProcessLookupError):
            os.kill(kid, 0)
    assert not sock.exists()


def test_ctrl_c_on_its_process_group_stops_it_quietly(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    proc = subprocess.Popen([sys.executable, "-m", "ivr.speech.service", "--socket", str(sock),
                             "--processes", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None and "ready" in proc.stdout.readline()
    kids = children_of(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, err = proc.communicate(timeout=10)
    proc.stdout.close()
    assert proc.returncode == 0
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    for kid in kids:
        with pytest.raises(ProcessLookupError):
            os.kill(kid, 0)
    assert not sock.exists()


def test_a_request_whose_worker_gave_up_waiting_is_skipped_not_recognised(
        tmp_path: Path) -> None:
    """Under overload a request can wait in the queue past the worker's timeout; the service
    drops it unrecognised (its CPU goes to answers someone waits for) and serves the next."""
    import json
    import socket
    import struct

    sock = tmp_path / "s.sock"
    proc = subprocess.Popen([sys.executable, "-m", "ivr.speech.service", "--socket", str(sock),
                             "--processes", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and "ready" in proc.stdout.readline()
        # all audio made first: nothing slow between the long request and the one given up
        long_one = sa.concat(*[sa.speech("technical support") for _ in range(10)])
        operator = sa.concat(sa.silence(0.3), sa.speech("operator"), sa.silence(0.3))

        def request(pcm: sa.Pcm) -> bytes:  # the wire format SpeechClient writes
            header = json.dumps({"phrases": list(MENU.phrases), "language": "en-US",
                                 "n_best": 1, "samples": int(pcm.size)}).encode()
            return struct.pack("!I", len(header)) + header + pcm.astype("<i2").tobytes()

        async def scenario() -> str:
            client = SpeechClient(sock, timeout_s=60)
            busy = asyncio.ensure_future(client.recognize(long_one, MENU, "en-US"))
            await asyncio.sleep(0.2)  # the one process is recognising the long utterance
            gave_up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            gave_up.connect(str(sock))
            gave_up.sendall(request(operator))
            gave_up.close()  # as a worker whose timeout expired while this waited
            after = await client.recognize(operator, MENU, "en-US")
            await busy
            return after[0].text if after else ""

        assert asyncio.run(scenario()) == "operator"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.stderr is not None
    log = proc.stderr.read()
    proc.stderr.close()
    assert proc.stdout is not None
    proc.stdout.close()
    assert log.count("the worker gave up waiting before recognition began") == 1, log
