"""The controller's speech room (ivr/controller_speech.py): the speech service is started for
a flow with speech menus, stopped with the stack, and a failed start leaves menus DTMF-only
rather than stopping the stack."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from ivr.config import load_settings
from ivr.controller_speech import SpeechServiceRunner, flow_has_speech
from ivr.speech.recognizer import Grammar
from ivr.speech.service import SpeechClient
from tests import speech_audio as sa

ROOT = Path(__file__).resolve().parent.parent


def settings(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_settings(None, env={"IVR_PATHS_VAR_DIR": str(tmp_path / "var"), **env})


def test_the_default_flow_has_speech_menus_and_the_basic_test_flow_has_none(
        tmp_path: Path) -> None:
    assert flow_has_speech(settings(tmp_path))
    assert not flow_has_speech(settings(tmp_path, IVR_PATHS_FLOW=str(
        ROOT / "tests" / "flows" / "basic.yaml")))


def test_a_flow_whose_only_listening_node_is_a_yes_no_question_gets_the_service(
        tmp_path: Path) -> None:
    flow = tmp_path / "ask.yaml"
    flow.write_text("""
name: ask
language: en-US
start: ask
nodes:
  ask: {type: collect, kind: yes_no, prompts: [welcome], var: ok, speech: {en-US: yes_no},
        next: bye, on_failure: bye}
  bye: {type: hangup}
""")
    assert flow_has_speech(settings(tmp_path, IVR_PATHS_FLOW=str(flow)))


def test_the_service_starts_answers_on_the_run_dir_socket_and_stops(tmp_path: Path) -> None:
    s = settings(tmp_path, IVR_SPEECH_PROCESSES="1")

    async def scenario() -> tuple[bool, str, bool]:
        runner = SpeechServiceRunner(s)
        started = await runner.start()
        assert runner.proc is not None  # its own session: a terminal's Ctrl-C skips it
        assert os.getsid(runner.proc.pid) == runner.proc.pid != os.getsid(0)
        pcm = sa.concat(sa.silence(0.3), sa.speech("technical support"), sa.silence(0.3))
        hyps = await SpeechClient(runner.socket_path).recognize(
            pcm, Grammar.of(["sales", "technical support"]), "en-US")
        await runner.stop()
        return started, hyps[0].text, runner.socket_path.exists()

    started, text, socket_left = asyncio.run(scenario())
    assert started and text == "technical support"
    assert not socket_left


def test_a_service_that_cannot_start_is_reported_and_not_fatal(tmp_path: Path) -> None:
    s = settings(tmp_path, IVR_SPEECH_BACKEND="vosk",
                 IVR_SPEECH_MODELS=f"{{ko-KR: {tmp_path}}}")

    async def scenario() -> bool:
        runner = SpeechServiceRunner(s)
        ok = await runner.start()
        await runner.stop()
        return ok

    assert asyncio.run(scenario()) is False


def test_supervision_knows_the_speech_service_socket_name() -> None:
    from ivr import supervise
    from ivr.speech import service

    assert supervise.SPEECH_SOCKET == service.SPEECH_SOCKET


def test_the_service_stops_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from ivr.supervise import find_stack_processes

    run_dir = tmp_path / "run"
    starter = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-m', "
        f"'ivr.speech.service', '--socket', '{run_dir / 'speech.sock'}', '--processes', '1']);"
        " time.sleep(60)")])
    try:
        # the socket is up before the service has forked its child: wait for both
        deadline = time.monotonic() + 30
        found = find_stack_processes(run_dir)
        while time.monotonic() < deadline and len(found) < 2:
            time.sleep(0.1)
            found = find_stack_processes(run_dir)
        assert [p.role for p in found] == ["speech", "speech"]  # the service and its child
    finally:
        os.kill(starter.pid, signal.SIGKILL)  # also when the check failed: no process left
        starter.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and find_stack_processes(run_dir):
        time.sleep(0.1)
    assert find_stack_processes(run_dir) == []
