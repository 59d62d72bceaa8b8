"""tests/tones.py: the tone WAVs phones play and the measure that tells which tone a
recording holds (per channel), through G.711 and with lost packets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media.g711 import ulaw_decode, ulaw_encode
from tests.tones import (
    describe,
    measure,
    read_wav,
    tone_pcm,
    tone_share,
    write_tone_wav,
    write_wav,
)


def test_a_tone_wav_is_8khz_mono_16bit_at_the_level_asked(tmp_path: Path) -> None:
    path = write_tone_wav(tmp_path / "a.wav", 1000, 2.0, level_dbfs=-6)
    rate, channels = read_wav(path)
    assert rate == 8000 and len(channels) == 1 and channels[0].size == 16000
    peak = int(np.abs(channels[0]).max())
    assert abs(peak - 32767 * 10 ** (-6 / 20)) <= 2


def test_a_tone_through_g711_is_its_own_frequency_and_not_the_other() -> None:
    heard = ulaw_decode(ulaw_encode(tone_pcm(1000, 3.0)))
    assert tone_share(heard, 1000) > 0.9
    assert tone_share(heard, 1500) < 0.01
    assert tone_share(heard, 440) < 0.01


def test_silence_and_noise_hold_no_tone() -> None:
    assert tone_share(np.zeros(8000, dtype=np.int16), 1000) == 0.0
    noise = np.random.default_rng(7).normal(0, 3000, 16000).astype(np.int16)
    assert tone_share(noise, 1000) < 0.05


def test_two_tones_mixed_share_the_energy() -> None:
    mix = (tone_pcm(1000, 2.0, -12).astype(np.int32) + tone_pcm(1500, 2.0, -12)).astype(
        np.int16)
    assert 0.4 < tone_share(mix, 1000) < 0.6
    assert 0.4 < tone_share(mix, 1500) < 0.6


def test_a_tone_with_lost_packets_and_a_phase_jump_still_counts() -> None:
    pcm = tone_pcm(1000, 4.0).copy()
    for start in range(800, pcm.size, 4000):  # 20 ms lost every half second
        pcm[start:start + 160] = 0
    jumped = np.concatenate([pcm[:10000], pcm[10037:]])  # a jitter buffer skipped samples
    assert tone_share(jumped, 1000) > 0.85


def test_each_channel_of_a_two_channel_recording_is_measured_apart(tmp_path: Path) -> None:
    left, right = tone_pcm(1000, 3.0), tone_pcm(1500, 3.0, -20)
    path = write_wav(tmp_path / "rec.wav", [left, right])
    caller, agent = measure(path, (1000, 1500))
    assert caller.holds(1000, absent_hz=1500), describe([caller, agent])
    assert agent.holds(1500, absent_hz=1000), describe([caller, agent])
    assert not caller.holds(1500)
    assert agent.level_dbfs < caller.level_dbfs - 9
    assert caller.seconds == pytest.approx(3.0)


def test_the_first_seconds_can_be_left_out(tmp_path: Path) -> None:
    pcm = np.concatenate([tone_pcm(1500, 2.0), tone_pcm(1000, 2.0)])
    path = write_wav(tmp_path / "late.wav", pcm)
    (whole,) = measure(path, (1000, 1500))
    (after,) = measure(path, (1000, 1500), skip_s=2.0)
    assert not whole.holds(1000, absent_hz=1500)
    assert after.holds(1000, absent_hz=1500) and after.seconds == pytest.approx(2.0)


@pytest.mark.parametrize(("args", "problem"), [
    ((5000, 1.0), "cannot be sampled at 8000 Hz"),
    ((1000, 0.0), "give a duration above 0"),
    ((1000, 1.0, 3.0), "would clip"),
])
def test_a_tone_that_cannot_be_made_is_refused_with_the_reason(
        args: tuple[float, ...], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        tone_pcm(*args)


def test_channels_of_different_lengths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="different lengths"):
        write_wav(tmp_path / "x.wav", [tone_pcm(1000, 1.0), tone_pcm(1000, 2.0)])
    assert not (tmp_path / "x.wav").exists()
