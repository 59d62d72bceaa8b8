"""The softphone's audio: ring buffers sized in ms, levels, headless sources, choosing a
device with a visible fallback, hot-plug, and the real PortAudio path on a PulseAudio null
sink (device list and a stream that plays)."""

from __future__ import annotations

import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from softphone.audio import RingBuffer, ToneSource, WavSink, WavSource, level_dbfs
from softphone.devices import Choice, Device, HotplugWatch, choose
from tests import pulse_sink

FRAME_BYTES = 320  # 20 ms at 8 kHz, 16-bit


def test_a_ring_buffer_holds_its_size_in_ms_and_drops_the_oldest_past_it() -> None:
    rb = RingBuffer(60)  # 3 frames
    for n in range(5):
        rb.write(bytes([n]) * FRAME_BYTES)
    assert rb.buffered_ms == 60.0 and rb.overruns == 2
    assert rb.read(FRAME_BYTES) == bytes([2]) * FRAME_BYTES  # 0 and 1 were dropped


def test_a_ring_buffer_read_past_its_content_gets_silence_and_counts_it() -> None:
    rb = RingBuffer(100)
    rb.write(b"\x01\x02" * 10)
    assert rb.read(40) == b"\x01\x02" * 10 + bytes(20)
    assert rb.underruns == 1
    with pytest.raises(ValueError, match="size in ms"):
        RingBuffer(0)


def test_levels_are_in_dbfs() -> None:
    sine = ToneSource(1000, dbfs=-3.0)(8000)
    assert level_dbfs(sine) == pytest.approx(-3.0, abs=0.1)
    assert level_dbfs(bytes(320)) == -120.0


def test_a_tone_source_is_continuous_across_frames() -> None:
    tone = ToneSource(440)
    joined = tone(FRAME_BYTES) + tone(FRAME_BYTES)
    whole = ToneSource(440)(2 * FRAME_BYTES)
    assert joined == whole


def test_wav_source_loops_and_refuses_other_formats(tmp_path: Path) -> None:
    sink = WavSink()
    sink(b"\x01\x00\x02\x00")
    path = sink.save(tmp_path / "x.wav")
    assert WavSource(path)(12) == b"\x01\x00\x02\x00" * 3
    with wave.open(str(tmp_path / "st.wav"), "wb") as w:
        w.setsampwidth(2)
        w.setnchannels(2)
        w.setframerate(8000)
        w.writeframes(bytes(8))
    with pytest.raises(ValueError, match="need 16-bit mono at 8000 Hz, got 16-bit, 2 channel"):
        WavSource(tmp_path / "st.wav")


DEVICES = [Device(0, "Built-in Audio Analog Stereo", 2, 2, 48000.0),
           Device(1, "Jabra Evolve 40", 1, 2, 48000.0),
           Device(2, "HDMI 1", 0, 8, 48000.0)]


def test_the_remembered_headset_is_chosen_when_present() -> None:
    assert choose(DEVICES, "Jabra Evolve 40", "output") == Choice(DEVICES[1])
    assert choose(DEVICES, "Jabra Evolve 40", "input") == Choice(DEVICES[1])


def test_a_missing_headset_falls_back_with_a_warning_naming_the_laptop_speaker() -> None:
    c = choose(DEVICES[:1] + DEVICES[2:], "Jabra Evolve 40", "output", default_index=0)
    assert c.device == DEVICES[0] and c.speaker_risk
    assert "'Jabra Evolve 40' is missing" in c.warning and "own speaker" in c.warning
    c = choose(DEVICES[2:], "", "output")
    assert c.device == DEVICES[2] and "no output device chosen" in c.warning
    assert not c.speaker_risk
    c = choose(DEVICES[2:], "Jabra Evolve 40", "input")
    assert c.device is None and "no input device at all" in c.warning


def test_hotplug_reports_a_headset_plugged_in_and_out() -> None:
    now = [DEVICES[:1]]
    seen: list[list[str]] = []
    watch = HotplugWatch(lambda ds: seen.append([d.name for d in ds]), lambda: now[0])
    assert not watch.poll()  # the first look is the start, not a change
    now[0] = DEVICES[:2]
    assert watch.poll()
    assert not watch.poll()
    now[0] = DEVICES[:1]
    assert watch.poll()
    assert seen == [["Built-in Audio Analog Stereo", "Jabra Evolve 40"],
                    ["Built-in Audio Analog Stereo"]]


@pytest.fixture
def pulse_null_sink(tmp_path: Path) -> Iterator[str]:
    with pulse_sink.pulse_null_sink(tmp_path) as server:
        if server is None:
            pytest.skip("pulseaudio not installed")
        yield server


def test_portaudio_lists_the_null_sink_and_a_stream_plays_the_call_into_it(
        pulse_null_sink: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_SERVER", pulse_null_sink)
    sd = pytest.importorskip("sounddevice")
    from softphone.devices import DeviceAudio, list_devices, rescan

    devices = rescan(sd)
    assert devices == list_devices(sd)
    pulse = choose(devices, "pulse", "output")
    assert pulse.device is not None and pulse.warning == "", devices
    audio = DeviceAudio(None, pulse.device.index, sd=sd, microphone=False)
    tone = ToneSource(1000, dbfs=-12.0)
    audio.start()
    try:
        deadline = time.monotonic() + 10
        while audio.speaker_level.frames < 25 and time.monotonic() < deadline:
            audio.from_call.write(tone(FRAME_BYTES))
            time.sleep(0.02)
    finally:
        audio.close()
    assert audio.speaker_level.frames >= 25, "PortAudio never asked for audio"
    assert audio.speaker_level.peak_dbfs == pytest.approx(-12.0, abs=1.0)
    assert audio.mic_level.frames == 0  # no microphone asked for
