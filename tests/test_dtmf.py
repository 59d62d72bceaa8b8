"""Tests of the in-band DTMF detector (media.dtmf) against the ITU-T Q.24 reception figures.

All signals are synthesised here with numpy at 8 kHz, int16, the way the media tap delivers
them: 160-sample (20 ms) chunks unless a test says otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.dtmf import DTMF_DIGITS, DetectedDigit, InbandDtmfDetector, goertzel_power

FS_HZ = 8000
ROWS_HZ = (697.0, 770.0, 852.0, 941.0)
COLS_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
# Mean power (full scale = 1.0) of a 0 dBm0 sine: G.711 mu-law's full-scale sine is +3.17 dBm0.
DBM0_REF_POWER = 0.5 * 10.0 ** (-3.17 / 10.0)
NOMINAL_DBM0 = -10.0  # per tone: amplitude ~0.22 of full scale

Signal = npt.NDArray[np.float64]


# --- signal helpers --------------------------------------------------------------------------


def amplitude(dbm0: float) -> float:
    return float(np.sqrt(2.0 * DBM0_REF_POWER * 10.0 ** (dbm0 / 10.0)))


def pair_freqs_hz(digit: str) -> tuple[float, float]:
    i = DTMF_DIGITS.index(digit)
    return ROWS_HZ[i // 4], COLS_HZ[i % 4]


def n_samples(ms: float) -> int:
    return int(round(ms * FS_HZ / 1000.0))


def sine(freq_hz: float, ms: float, dbm0: float, phase: float = 0.0) -> Signal:
    t = np.arange(n_samples(ms)) / FS_HZ
    return amplitude(dbm0) * np.sin(2.0 * np.pi * freq_hz * t + phase)


def tone(
    digit: str,
    ms: float,
    low_dbm0: float = NOMINAL_DBM0,
    high_dbm0: float = NOMINAL_DBM0,
    low_dev: float = 0.0,
    high_dev: float = 0.0,
) -> Signal:
    """A DTMF tone pair; ``*_dev`` are relative frequency deviations (0.015 = +1.5 %)."""
    low_hz, high_hz = pair_freqs_hz(digit)
    return sine(low_hz * (1.0 + low_dev), ms, low_dbm0, 0.4) + sine(
        high_hz * (1.0 + high_dev), ms, high_dbm0, 1.3
    )


def silence(ms: float) -> Signal:
    return np.zeros(n_samples(ms))


def sequence(digits: str, tone_ms: float, pause_ms: float, **kw: float) -> Signal:
    parts = [silence(pause_ms)]
    for d in digits:
        parts += [tone(d, tone_ms, **kw), silence(pause_ms)]
    return np.concatenate(parts)


def to_int16(x: Signal) -> npt.NDArray[np.int16]:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def detect(
    x: Signal | npt.NDArray[np.int16], chunk: int = 160, offset: int = 0
) -> list[DetectedDigit]:
    """Run a fresh detector over ``x`` (preceded by ``offset`` zero samples) and flush it."""
    pcm = x.astype(np.int16) if x.dtype == np.int16 else to_int16(x.astype(np.float64))
    if offset:
        pcm = np.concatenate([np.zeros(offset, dtype=np.int16), pcm])
    det = InbandDtmfDetector(FS_HZ)
    found: list[DetectedDigit] = []
    for i in range(0, pcm.size, chunk):
        found += det.process(pcm[i : i + chunk])
    return found + det.flush()


def digits_of(x: Signal | npt.NDArray[np.int16], chunk: int = 160, offset: int = 0) -> str:
    return "".join(d.digit for d in detect(x, chunk, offset))


def white_noise(ms: float, dbm0: float, seed: int) -> Signal:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, np.sqrt(DBM0_REF_POWER * 10.0 ** (dbm0 / 10.0)), n_samples(ms))


def mulaw_encode(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """G.711 mu-law, segment by segment (bias 0x84, clip 32635), as the codec does."""
    x = pcm.astype(np.int32)
    sign = (x < 0).astype(np.int32)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    code: npt.NDArray[np.uint8] = (~((sign << 7) | (exponent << 4) | mantissa) & 0xFF).astype(
        np.uint8
    )
    return code


def mulaw_decode(code: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    c = (~code.astype(np.int32)) & 0xFF
    exponent = (c >> 4) & 0x07
    mag = (((c & 0x0F) << 3) + 0x84) << exponent
    mag -= 0x84
    return np.where(c & 0x80, -mag, mag).astype(np.int16)


# --- Goertzel --------------------------------------------------------------------------------


def test_goertzel_power_equals_the_goertzel_recursion() -> None:
    rng = np.random.default_rng(7)
    block = rng.normal(0.0, 1000.0, 105)
    freqs = np.array(ROWS_HZ + COLS_HZ + (1000.0, 2345.6))
    expected = []
    for f in freqs:  # the textbook recursion, one sample at a time
        coeff = 2.0 * np.cos(2.0 * np.pi * f / FS_HZ)
        s1 = s2 = 0.0
        for v in block:
            s1, s2 = v + coeff * s1 - s2, s1
        expected.append(s1 * s1 + s2 * s2 - coeff * s1 * s2)
    got = goertzel_power(block, freqs, FS_HZ)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_goertzel_power_is_vectorised_over_blocks_and_peaks_on_the_tone() -> None:
    x = sine(1000.0, 20.0, NOMINAL_DBM0)  # 160 samples: 1000 Hz falls on bin 20
    blocks = np.stack([x, 0.5 * x])
    power = goertzel_power(blocks, np.array([900.0, 1000.0, 1100.0, 1336.0]), FS_HZ)
    assert power.shape == (2, 4)
    assert np.argmax(power[0]) == 1
    np.testing.assert_allclose(power[1], 0.25 * power[0])
    # a sine of amplitude A on a bin reads (A N / 2)^2, neighbouring bins read (near) zero
    assert power[0, 1] == pytest.approx((amplitude(NOMINAL_DBM0) * 160 / 2) ** 2, rel=1e-6)
    assert power[0, 0] < 1e-6 * power[0, 1]


# --- basic recognition -----------------------------------------------------------------------


@pytest.mark.parametrize(("tone_ms", "pause_ms"), [(40, 40), (50, 50), (100, 100)])
def test_all_16_digits_detected_in_order(tone_ms: int, pause_ms: int) -> None:
    assert digits_of(sequence(DTMF_DIGITS, tone_ms, pause_ms)) == DTMF_DIGITS


@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_each_digit_reports_its_start_and_duration(digit: str) -> None:
    x = np.concatenate([silence(100), tone(digit, 120), silence(100)])
    (found,) = detect(x)
    assert found.digit == digit
    assert abs(found.start_sample - n_samples(100)) <= n_samples(4)
    assert found.duration_ms == pytest.approx(120.0, abs=4.0)


def test_digit_is_returned_when_the_tone_ends_not_before() -> None:
    det = InbandDtmfDetector()
    pcm = to_int16(np.concatenate([tone("7", 300), silence(100)]))
    returned_at: list[int] = []
    for i in range(0, pcm.size, 160):
        if det.process(pcm[i : i + 160]):
            returned_at.append(i + 160)
    assert len(returned_at) == 1
    # reported in the chunk where the end (300 ms) was confirmed, not while the tone was on
    assert n_samples(300) < returned_at[0] <= n_samples(300 + 40)


def test_flush_reports_a_tone_still_on_and_reset_restarts_the_time_base() -> None:
    det = InbandDtmfDetector()
    pcm = to_int16(np.concatenate([silence(40), tone("#", 200)]))
    assert det.process(pcm) == []
    (found,) = det.flush()
    assert found.digit == "#"
    assert det.flush() == []
    det.reset()
    (again,) = det.process(to_int16(np.concatenate([tone("0", 60), silence(60)])))
    assert again.digit == "0"
    assert again.start_sample <= n_samples(4)  # counted from the reset, not from creation


def test_float_input_is_taken_as_normalised_full_scale() -> None:
    x = sequence("159D", 50, 50)
    det = InbandDtmfDetector()
    assert "".join(d.digit for d in det.process(x) + det.flush()) == "159D"


# --- frequency deviation (Q.24: operate at +-1.5 %, do not operate at +-3.5 %) ----------------


@pytest.mark.parametrize("dev", [0.015, -0.015])
@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_both_tones_off_by_1_5_percent_detected(digit: str, dev: float) -> None:
    x = np.concatenate([silence(50), tone(digit, 60, low_dev=dev, high_dev=dev), silence(50)])
    assert digits_of(x) == digit


@pytest.mark.parametrize(("low_dev", "high_dev"), [(0.015, -0.015), (-0.015, 0.015)])
def test_tones_off_by_1_5_percent_in_opposite_directions_detected(
    low_dev: float, high_dev: float
) -> None:
    x = sequence(DTMF_DIGITS, 60, 60, low_dev=low_dev, high_dev=high_dev)
    assert digits_of(x) == DTMF_DIGITS


@pytest.mark.parametrize("dev", [0.035, -0.035])
@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_both_tones_off_by_3_5_percent_rejected(digit: str, dev: float) -> None:
    x = np.concatenate([silence(50), tone(digit, 200, low_dev=dev, high_dev=dev), silence(50)])
    assert digits_of(x) == ""


@pytest.mark.parametrize("dev", [0.035, -0.035])
@pytest.mark.parametrize("group", ["low", "high"])
def test_one_tone_off_by_3_5_percent_rejected(group: str, dev: float) -> None:
    kw = {"low_dev": dev} if group == "low" else {"high_dev": dev}
    assert digits_of(sequence(DTMF_DIGITS, 200, 50, **kw)) == ""


# --- twist -----------------------------------------------------------------------------------


@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_high_group_8_db_above_low_detected(digit: str) -> None:
    x = np.concatenate([silence(50), tone(digit, 60, low_dbm0=-14.0, high_dbm0=-6.0), silence(50)])
    assert digits_of(x) == digit


@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_low_group_4_db_above_high_detected(digit: str) -> None:
    x = np.concatenate([silence(50), tone(digit, 60, low_dbm0=-8.0, high_dbm0=-12.0), silence(50)])
    assert digits_of(x) == digit


@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_low_group_8_db_above_high_detected(digit: str) -> None:
    # The other reading of "+8 dB / -4 dB" (reverse twist on the low group): accepted too.
    x = np.concatenate([silence(50), tone(digit, 60, low_dbm0=-6.0, high_dbm0=-14.0), silence(50)])
    assert digits_of(x) == digit


@pytest.mark.parametrize(
    ("low_dbm0", "high_dbm0"), [(-17.0, -3.0), (-3.0, -17.0), (-16.0, -4.0), (-4.0, -16.0)]
)
def test_excessive_twist_rejected(low_dbm0: float, high_dbm0: float) -> None:
    x = sequence(DTMF_DIGITS, 100, 50, low_dbm0=low_dbm0, high_dbm0=high_dbm0)
    assert digits_of(x) == ""


# --- level -----------------------------------------------------------------------------------


@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_low_level_minus_25_dbm0_per_tone_detected(digit: str) -> None:
    x = np.concatenate([silence(50), tone(digit, 50, low_dbm0=-25.0, high_dbm0=-25.0)])
    assert digits_of(np.concatenate([x, silence(50)])) == digit


def test_tones_far_below_the_operating_level_ignored() -> None:
    assert digits_of(sequence(DTMF_DIGITS, 100, 50, low_dbm0=-45.0, high_dbm0=-45.0)) == ""


# --- duration (Q.24: a 40 ms signal must be recognised, a 20 ms one must not) ----------------


@pytest.mark.parametrize("seed", range(4))
def test_40_ms_tone_detected_at_any_alignment(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for digit in rng.choice(list(DTMF_DIGITS), 4, replace=False):
        x = np.concatenate([silence(30), tone(str(digit), 40), silence(60)])
        for offset in rng.integers(0, 160, 10):
            assert digits_of(x, offset=int(offset)) == digit, f"offset {offset}"


@pytest.mark.parametrize("digit", ["1", "5", "9", "D"])
def test_40_ms_tone_detected_at_every_offset_within_a_chunk(digit: str) -> None:
    x = np.concatenate([silence(30), tone(digit, 40), silence(60)])
    missed = [off for off in range(160) if digits_of(x, offset=off) != digit]
    assert missed == []


@pytest.mark.parametrize("digit", ["1", "5", "9", "D", "*", "#"])
def test_20_ms_tone_never_detected(digit: str) -> None:
    x = np.concatenate([silence(30), tone(digit, 20), silence(60)])
    detected = [off for off in range(160) if digits_of(x, offset=off)]
    assert detected == []


def test_20_ms_tones_in_a_train_never_detected() -> None:
    assert digits_of(sequence(DTMF_DIGITS * 2, 20, 20)) == ""


@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_same_digit_twice_with_40_ms_pause_gives_two_digits(digit: str) -> None:
    x = np.concatenate([silence(30), tone(digit, 40), silence(40), tone(digit, 40), silence(60)])
    for offset in (0, 17, 80, 131):
        assert digits_of(x, offset=offset) == digit * 2, f"offset {offset}"


def test_different_digits_back_to_back_without_pause_all_reported() -> None:
    x = np.concatenate([silence(30)] + [tone(d, 60) for d in "1593"] + [silence(60)])
    for offset in (0, 50, 100, 150):
        assert digits_of(x, offset=offset) == "1593", f"offset {offset}"


def test_other_sample_rates_work_the_same() -> None:
    fs_hz = 16000
    t = np.arange(n_samples(50) * 2) / fs_hz
    parts = []
    for d in DTMF_DIGITS:
        low_hz, high_hz = pair_freqs_hz(d)
        a = amplitude(NOMINAL_DBM0)
        parts += [a * np.sin(2 * np.pi * low_hz * t) + a * np.sin(2 * np.pi * high_hz * t)]
        parts += [np.zeros(t.size)]
    pcm = to_int16(np.concatenate(parts))
    det = InbandDtmfDetector(fs_hz)
    found = [d for i in range(0, pcm.size, 320) for d in det.process(pcm[i : i + 320])]
    assert "".join(d.digit for d in found + det.flush()) == DTMF_DIGITS
    assert found[1].start_sample == pytest.approx(2 * t.size, abs=fs_hz * 0.004)


def test_long_tone_gives_one_digit() -> None:
    x = np.concatenate([silence(30), tone("8", 2000), silence(60)])
    (found,) = detect(x)
    assert found.digit == "8"
    assert found.duration_ms == pytest.approx(2000.0, abs=4.0)


# --- noise -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_all_16_digits_detected_in_white_noise_at_15_db_snr(seed: int) -> None:
    x = sequence(DTMF_DIGITS, 40, 40)
    tone_pair_dbm0 = NOMINAL_DBM0 + 10.0 * np.log10(2.0)  # power of both tones together
    x = x + white_noise(1000.0 * x.size / FS_HZ, tone_pair_dbm0 - 15.0, seed)
    assert digits_of(x) == DTMF_DIGITS


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_low_level_digits_detected_in_white_noise_at_15_db_snr(seed: int) -> None:
    x = sequence(DTMF_DIGITS, 50, 50, low_dbm0=-25.0, high_dbm0=-25.0)
    x = x + white_noise(1000.0 * x.size / FS_HZ, -25.0 + 10.0 * np.log10(2.0) - 15.0, seed)
    assert digits_of(x) == DTMF_DIGITS


# --- chunking --------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 37, 160, 1000])
def test_chunk_size_does_not_change_the_result(chunk: int) -> None:
    x = sequence(DTMF_DIGITS, 45, 45) + white_noise(45 * 33, -40.0, 5)
    reference = detect(x, chunk=x.size)
    assert "".join(d.digit for d in reference) == DTMF_DIGITS
    assert detect(x, chunk=chunk) == reference


# --- talk-off: speech, music, noise ----------------------------------------------------------

SPEECH_TEXTS = (
    "One two three four five six seven eight nine zero, please hold, your call is important to us.",
    "Thank you for calling. Press one for sales, two for support, or stay on the line "
    "for the next available operator.",
    "Your account number is four seven seven, nine one two, eight eight zero six, "
    "and the balance is three hundred and twelve dollars and forty cents.",
    "Hello? Hello, can you hear me? Yes, I would like to speak to somebody about my bill. "
    "Ooooh. Eeeee. Aaaaah. La la la la laaa.",
)
SPEECH_VOICES = ("en", "en-us+f3", "en+m3")


def espeak_8k(text: str, voice: str, pitch: int, tmp: Path) -> Signal:
    raw, out = tmp / "raw.wav", tmp / "8k.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["sox", "-V1", str(raw), "-r", str(FS_HZ), "-b", "16", "-c", "1", str(out)],
        check=True,
        capture_output=True,
    )
    with wave.open(str(out), "rb") as w:
        assert w.getframerate() == FS_HZ
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float64) / 32768.0


def at_rms_dbm0(x: Signal, dbm0: float) -> Signal:
    gain = float(np.sqrt(DBM0_REF_POWER * 10.0 ** (dbm0 / 10.0) / np.mean(x**2)))
    return x * gain


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are needed to synthesise the speech",
)
@pytest.mark.parametrize("voice", SPEECH_VOICES)
def test_speech_gives_no_digits(voice: str, tmp_path: Path) -> None:
    for text in SPEECH_TEXTS:
        for pitch in (30, 70):
            speech = espeak_8k(text, voice, pitch, tmp_path)
            assert speech.size > FS_HZ  # at least a second of speech
            for level_dbm0 in (-20.0, -10.0):  # normal and loud talker
                found = digits_of(at_rms_dbm0(speech, level_dbm0))
                assert found == "", (text[:30], pitch, level_dbm0)


def notes(freqs_hz: Sequence[float], ms: float, dbm0: float, harmonics: int = 3) -> Signal:
    """A chord: each note with ``harmonics`` partials falling 6 dB each."""
    x = np.zeros(n_samples(ms))
    for i, f in enumerate(freqs_hz):
        for h in range(1, harmonics + 1):
            if h * f < FS_HZ / 2:
                x += sine(h * f, ms, dbm0 - 6.0 * (h - 1), phase=0.7 * i + 0.3 * h)
    return x


A_MAJOR = (440.0, 554.37, 659.26)
MUSIC: dict[str, Signal] = {
    "A major triad with harmonics": notes(A_MAJOR, 1000, -15.0),
    "A major triad, octave up": notes([2 * f for f in A_MAJOR], 1000, -15.0),
    "A major triad, octave down": notes([f / 2 for f in A_MAJOR], 1000, -15.0),
    # G5 (784 Hz) and E6 (1318.5 Hz) are within 2 % of the '5' pair, amid other partials
    "C major triad with harmonics": notes((523.25, 659.26, 783.99), 1000, -15.0),
    "G7 chord with harmonics": notes((392.0, 493.88, 587.33, 698.46), 1000, -15.0),
    "A major arpeggio": np.concatenate([notes((f,), 250, -12.0) for f in A_MAJOR * 4]),
    "single 1000 Hz tone": sine(1000.0, 1000, -10.0),
    "single 697 Hz tone": sine(697.0, 1000, -10.0),
    "single 1336 Hz tone": sine(1336.0, 1000, -10.0),
    "two tones near but not a DTMF pair": sine(730.0, 1000, -10.0) + sine(1270.0, 1000, -10.0),
    "two tones 5 % low": sine(697.0 * 0.95, 1000, -10.0) + sine(1477.0 * 0.95, 1000, -10.0),
    "two row tones": sine(697.0, 1000, -10.0) + sine(852.0, 1000, -10.0),
    "two column tones": sine(1209.0, 1000, -10.0) + sine(1477.0, 1000, -10.0),
    "row tone with a non-DTMF high tone": sine(852.0, 1000, -10.0) + sine(1100.0, 1000, -10.0),
    "three tones": sine(697.0, 1000, -10) + sine(1209.0, 1000, -10) + sine(1800.0, 1000, -10),
}


def sweep(f0_hz: float, f1_hz: float, ms: float, dbm0: float, log: bool = False) -> Signal:
    t = np.arange(n_samples(ms)) / FS_HZ
    dur = ms / 1000.0
    if log:
        k = np.log(f1_hz / f0_hz) / dur
        phase = 2.0 * np.pi * f0_hz * (np.exp(k * t) - 1.0) / k
    else:
        phase = 2.0 * np.pi * (f0_hz * t + 0.5 * (f1_hz - f0_hz) / dur * t**2)
    out: Signal = amplitude(dbm0) * np.sin(phase)
    return out


MUSIC["linear sweep 300-3400 Hz"] = sweep(300.0, 3400.0, 3000, -10.0)
MUSIC["log sweep 200-3000 Hz"] = sweep(200.0, 3000.0, 3000, -10.0, log=True)
# A note and its octave: f and 2 f pass within 2.5 % of the '2', '6' and 'C' pairs on the way
# (683 + 1366 Hz is 2 % off 697 + 1336 Hz); the second-harmonic guard refuses them.
MUSIC["slow sweep with its octave"] = sweep(500.0, 1000.0, 4000, -12.0) + sweep(
    1000.0, 2000.0, 4000, -18.0
)
MUSIC["note with its octave near a DTMF pair"] = sine(683.0, 1000, -10) + sine(1366.0, 1000, -14)


@pytest.mark.parametrize("name", list(MUSIC))
def test_music_like_signals_give_no_digits(name: str) -> None:
    assert digits_of(MUSIC[name]) == ""


@pytest.mark.parametrize(
    "signal",
    [silence(3000), white_noise(3000, -50.0, 1), white_noise(3000, -30.0, 2)],
    ids=["silence", "noise -50 dBm0", "noise -30 dBm0"],
)
def test_silence_and_noise_give_no_digits(signal: Signal) -> None:
    assert digits_of(signal) == ""


# --- G.711 -----------------------------------------------------------------------------------


def test_mulaw_compander_round_trip_is_close() -> None:
    pcm = to_int16(np.linspace(-1.0, 1.0, 5001))
    back = mulaw_decode(mulaw_encode(pcm)).astype(np.int32)
    err = np.abs(back - pcm.astype(np.int32))
    assert np.all(err <= np.maximum(8, np.abs(pcm.astype(np.int32)) // 16))


@pytest.mark.parametrize("dbm0", [NOMINAL_DBM0, -25.0])
def test_digits_detected_through_mulaw_g711(dbm0: float) -> None:
    x = sequence(DTMF_DIGITS, 40, 40, low_dbm0=dbm0, high_dbm0=dbm0)
    companded = mulaw_decode(mulaw_encode(to_int16(x)))
    assert digits_of(companded) == DTMF_DIGITS


def test_twisted_and_shifted_digits_detected_through_mulaw_g711() -> None:
    x = sequence(DTMF_DIGITS, 50, 50, low_dbm0=-16.0, high_dbm0=-8.0, low_dev=0.015)
    assert digits_of(mulaw_decode(mulaw_encode(to_int16(x)))) == DTMF_DIGITS


# --- long input --------------------------------------------------------------------------
# Speed is measured by bench/bench_dtmf.py, never asserted here.


def test_sixty_seconds_of_mixed_audio_give_exactly_the_digits_in_it() -> None:
    rng = np.random.default_rng(3)
    x = np.tile(sequence(DTMF_DIGITS, 60, 60), 4)
    x = np.concatenate([x, rng.normal(0.0, 0.05, 60 * FS_HZ - x.size)])
    pcm = to_int16(x)
    det = InbandDtmfDetector()
    found = [d for i in range(0, pcm.size, 160) for d in det.process(pcm[i : i + 160])]
    assert "".join(d.digit for d in found) == DTMF_DIGITS * 4
