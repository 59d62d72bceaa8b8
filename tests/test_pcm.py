"""Prompt audio helpers (media.pcm) and G.711 mu-law companding (media.g711)."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import media.pcm
from media.errors import PromptError
from media.g711 import ulaw_decode, ulaw_encode
from media.pcm import (
    LEAD_KEEP_S,
    convert_prompt,
    read_wav_mono16,
    resample,
    sound_start,
    trim_lead,
    wav_info,
    write_wav_mono16,
)

Pcm16 = npt.NDArray[np.int16]
EDGE = 64  # samples at each end where the resampling kernel runs off the signal


def tone(freq_hz: float, rate_hz: int, seconds: float, amplitude: float = 0.5) -> Pcm16:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def rms_db(x: Pcm16) -> float:
    core = x[EDGE:-EDGE].astype(np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(core**2))))


def peak_hz(x: Pcm16, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate_hz / x.size)


def write_wav(path: Path, frames: bytes, rate_hz: int = 8000, width: int = 2,
              channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate_hz)
        w.writeframes(frames)
    return path


# --- resampling --------------------------------------------------------------------------------


def test_resample_8k_to_16k_and_back_keeps_a_1khz_tone() -> None:
    x = tone(1000, 8000, 1.0)
    up = resample(x, 8000, 16000)
    back = resample(up, 16000, 8000)

    assert up.dtype == np.int16 and back.dtype == np.int16
    assert (up.size, back.size) == (16000, 8000)
    assert peak_hz(up, 16000) == pytest.approx(1000, abs=1)
    assert peak_hz(back, 8000) == pytest.approx(1000, abs=1)
    assert abs(rms_db(up) - rms_db(x)) < 0.5
    assert abs(rms_db(back) - rms_db(x)) < 0.5


def test_resample_down_removes_a_tone_above_the_new_nyquist() -> None:
    x = tone(6000, 16000, 0.5)  # above 4 kHz: must not alias into the 8 kHz output
    down = resample(x, 16000, 8000)
    assert down.size == 4000
    assert rms_db(down) < rms_db(x) - 20


def test_resample_same_rate_or_empty_returns_a_copy() -> None:
    x = tone(440, 8000, 0.1)
    same = resample(x, 8000, 8000)
    assert np.array_equal(same, x) and same is not x
    assert resample(np.zeros(0, dtype=np.int16), 8000, 16000).size == 0


# --- converting prompts ------------------------------------------------------------------------


def test_convert_prompt_writes_mono_16bit_at_the_target_rate(tmp_path: Path) -> None:
    left = tone(1000, 8000, 0.5)
    stereo = np.stack([left, left], axis=1).astype("<i2").tobytes()
    src = write_wav(tmp_path / "hello.wav", stereo, channels=2)
    dst = tmp_path / "cache" / "hello.16000.wav"

    info = convert_prompt(src, dst, 16000)

    assert info == wav_info(dst)
    assert (info.sample_rate_hz, info.channels, info.sample_width_bytes) == (16000, 1, 2)
    assert info.frames == 8000
    assert info.duration_s == pytest.approx(0.5)
    samples, rate = read_wav_mono16(dst)
    assert rate == 16000
    assert peak_hz(samples, 16000) == pytest.approx(1000, abs=2)
    assert not (tmp_path / "cache" / "hello.16000.wav.tmp").exists()


def test_convert_prompt_trims_leading_silence_to_20_ms_and_keeps_the_sound_whole(
        tmp_path: Path) -> None:
    # 300 ms of digital silence, 100 ms of hiss under the -50 dBFS silence rule, a tone,
    # 100 ms of silence after: a caller would wait the first 400 ms as if the IVR were slow
    hiss = np.full(800, 80, dtype=np.int16) * np.where(np.arange(800) % 2, 1, -1)
    sound = tone(1000, 8000, 0.5)
    pcm = np.concatenate([np.zeros(2400, np.int16), hiss.astype(np.int16), sound,
                          np.zeros(800, np.int16)])
    src = write_wav(tmp_path / "hello.wav", pcm.astype("<i2").tobytes())
    dst = tmp_path / "cache" / "hello.8000.wav"

    convert_prompt(src, dst, 8000)

    out, _ = read_wav_mono16(dst)
    keep = int(LEAD_KEEP_S * 8000)
    assert sound_start(out, 8000) == keep  # 20 ms of the silence before the sound
    assert out.size == keep + sound.size + 800  # the sound and the trailing silence stay
    assert np.array_equal(out[keep: keep + sound.size], sound)


def test_trim_lead_keeps_a_soft_onset_and_a_clip_with_no_silence() -> None:
    soft = tone(300, 8000, 0.1, amplitude=10 ** (-45 / 20) * 1.5)  # about -45 dBFS RMS
    loud = tone(1000, 8000, 0.3)
    hiss = (np.where(np.arange(800) % 2, 1, -1) * 60).astype(np.int16)  # ~ -55 dBFS
    pcm = np.concatenate([np.zeros(800, np.int16), hiss, soft, loud])
    trimmed = trim_lead(pcm, 8000)  # 20 ms of the hiss before the soft onset stay
    assert trimmed.size == int(LEAD_KEEP_S * 8000) + soft.size + loud.size
    assert np.array_equal(trimmed[-(soft.size + loud.size):], np.concatenate([soft, loud]))
    assert np.array_equal(trim_lead(loud, 8000), loud)
    # digital silence (the prompt build's 50 ms pad) goes whole: it cannot hold an onset
    assert np.array_equal(trim_lead(np.concatenate([np.zeros(400, np.int16), loud]), 8000),
                          loud)
    quiet = np.zeros(800, np.int16)
    assert np.array_equal(trim_lead(quiet, 8000), quiet)  # all silence: not ours to refuse


def test_convert_prompt_skips_work_when_the_output_is_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = write_wav(tmp_path / "a.wav", tone(1000, 8000, 0.2).tobytes())
    dst = tmp_path / "out" / "a.16000.wav"
    convert_prompt(src, dst, 16000)
    os.utime(src, ns=(1_000_000_000, 1_000_000_000))
    os.utime(dst, ns=(2_000_000_000, 2_000_000_000))
    calls: list[tuple[int, int]] = []

    def counting_resample(samples: Pcm16, from_hz: int, to_hz: int) -> Pcm16:
        calls.append((from_hz, to_hz))
        return resample(samples, from_hz, to_hz)

    monkeypatch.setattr(media.pcm, "resample", counting_resample)

    info = convert_prompt(src, dst, 16000)
    assert calls == []
    assert info.sample_rate_hz == 16000
    assert dst.stat().st_mtime_ns == 2_000_000_000  # not rewritten

    os.utime(src, ns=(3_000_000_000, 3_000_000_000))  # the source changed since
    convert_prompt(src, dst, 16000)
    assert calls == [(8000, 16000)]

    os.utime(dst, ns=(4_000_000_000, 4_000_000_000))
    convert_prompt(src, dst, 8000)  # newer, but at another rate: converted again
    assert calls == [(8000, 16000), (8000, 8000)]
    assert wav_info(dst).sample_rate_hz == 8000

    # a cache written before leading silence was trimmed: converted again, trimmed
    write_wav_mono16(dst, np.concatenate([np.zeros(400, np.int16), tone(1000, 8000, 0.2)]),
                     8000)
    os.utime(dst, ns=(5_000_000_000, 5_000_000_000))
    convert_prompt(src, dst, 8000)
    assert calls == [(8000, 16000), (8000, 8000), (8000, 8000)]
    assert sound_start(read_wav_mono16(dst)[0], 8000) == 0


def test_write_and_read_wav_mono16_round_trip(tmp_path: Path) -> None:
    x = tone(300, 8000, 0.05)
    path = tmp_path / "x.wav"
    write_wav_mono16(path, x, 8000)
    samples, rate = read_wav_mono16(path)
    assert rate == 8000
    assert np.array_equal(samples, x)


def test_an_8bit_wav_is_refused_naming_the_file(tmp_path: Path) -> None:
    src = write_wav(tmp_path / "old.wav", bytes([128] * 800), width=1)
    with pytest.raises(PromptError) as info:
        convert_prompt(src, tmp_path / "out.wav", 8000)
    assert str(info.value) == f"{src}: 8-bit samples; prompts must be 16-bit PCM"


def test_a_file_that_is_not_wav_is_refused_naming_the_file(tmp_path: Path) -> None:
    src = tmp_path / "notes.wav"
    src.write_text("these are not audio samples\n")
    with pytest.raises(PromptError) as info:
        convert_prompt(src, tmp_path / "out.wav", 8000)
    assert str(info.value).startswith(f"{src}: not a readable PCM WAV file (")


def test_an_empty_wav_is_refused_naming_the_file(tmp_path: Path) -> None:
    src = write_wav(tmp_path / "silent.wav", b"")
    dst = tmp_path / "out.wav"
    with pytest.raises(PromptError) as info:
        convert_prompt(src, dst, 8000)
    assert str(info.value) == f"{src}: the file holds no audio"
    assert not dst.exists()


def test_a_missing_wav_is_refused_naming_the_file(tmp_path: Path) -> None:
    src = tmp_path / "gone.wav"
    with pytest.raises(PromptError, match="gone.wav: not a readable PCM WAV file"):
        convert_prompt(src, tmp_path / "out.wav", 8000)


# --- G.711 mu-law ------------------------------------------------------------------------------


@pytest.mark.parametrize(("linear", "code"), [
    (0, 0xFF), (-1, 0x7F), (1, 0xFF), (8, 0xFE), (100, 0xF2), (-100, 0x72),
    (32767, 0x80), (-32768, 0x00), (-32767, 0x00),
])
def test_ulaw_encode_known_values(linear: int, code: int) -> None:
    assert ulaw_encode(np.array([linear], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize(("code", "linear"), [
    (0xFF, 0), (0x7F, 0), (0xFE, 8), (0x7E, -8), (0x80, 32124), (0x00, -32124),
    (0xF2, 104), (0x72, -104),
])
def test_ulaw_decode_known_values(code: int, linear: int) -> None:
    assert ulaw_decode(bytes([code])).tolist() == [linear]


def test_ulaw_round_trip_error_is_within_half_a_step_across_the_range() -> None:
    x = np.arange(-32768, 32768, dtype=np.int32)
    y = ulaw_decode(ulaw_encode(x.astype(np.int16))).astype(np.int32)
    assert y.dtype == np.int32 and y.size == x.size
    err = np.abs(y - x)
    # A segment's step is 1/16 of its span: the error stays below ~1/16 of the magnitude
    # (at least 8 near zero), including the clipped ends.
    assert np.all(err <= np.maximum(8, np.abs(x) / 16))
    assert int(err[np.abs(x) < 32000].max()) <= 512


def test_ulaw_sine_keeps_a_telephone_grade_snr() -> None:
    x = tone(1000, 8000, 0.5, amplitude=0.3)
    y = ulaw_decode(ulaw_encode(x))
    noise = (y.astype(np.float64) - x).std()
    snr_db = 20 * np.log10(x.astype(np.float64).std() / noise)
    assert snr_db > 35


def test_ulaw_decode_is_monotonic_and_every_code_but_negative_zero_round_trips() -> None:
    codes = bytes(range(256))
    values = ulaw_decode(codes)
    assert np.all(np.diff(values[:128].astype(np.int32)) > 0)  # 0x00..0x7F: -32124 .. 0
    assert np.all(np.diff(values[128:].astype(np.int32)) < 0)  # 0x80..0xFF: 32124 .. 0
    again = ulaw_encode(values)
    assert [c for c in range(256) if again[c] != c] == [0x7F]  # -0 encodes as +0 (0xFF)


def test_ulaw_empty_input() -> None:
    assert ulaw_encode(np.zeros(0, dtype=np.int16)) == b""
    assert ulaw_decode(b"").size == 0
