#!/usr/bin/env python3
"""Synthesise the shipped music on hold, ``hold_music.wav``, into every prompt set.

A gentle loop of four chords (C, A minor, F, G: I-vi-IV-V), each a soft arpeggio over a
held pad, 5 s a chord, 20 s in all, so the loop is long enough not to grate and short enough
to stay small (about 320 kB). Every chord fades in and out with raised-cosine ramps, so the
file starts and ends in silence and PJMEDIA's looping file player (media/moh.py) restarts
it without a click. Written as the prompt sets want it (prompts/README.md): 8 kHz mono
16-bit PCM WAV. Pure numpy (no sox, no randomness): the output is the same bytes on every
run, so ``git status`` stays clean after a rebuild.

Usage::

    python scripts/make_hold_music.py            # writes prompts/<set>/hold_music.wav
    python scripts/make_hold_music.py --out F    # one file elsewhere
"""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE_HZ = 8000
CHORD_S = 5.0
NOTE_S = 0.625  # eight arpeggio notes a chord
PEAK_DBFS = -9.0
PROMPTS = Path(__file__).resolve().parent.parent / "prompts"

# MIDI note numbers; A4 = 69 = 440 Hz (equal temperament).
CHORDS = (
    (48, 60, 64, 67),  # C:  C3 C4 E4 G4
    (45, 57, 60, 64),  # Am: A2 A3 C4 E4
    (41, 57, 60, 65),  # F:  F2 A3 C4 F4
    (43, 55, 59, 62),  # G:  G2 G3 B3 D4
)
ARPEGGIO = (1, 2, 3, 2, 1, 2, 3, 2)  # indices into a chord, one per NOTE_S


def hz(note: int) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def tone(freq_hz: float, n: int) -> npt.NDArray[np.float64]:
    """A soft timbre: the fundamental with two quiet harmonics (under 4 kHz at 8 kHz)."""
    t = np.arange(n, dtype=np.float64) / RATE_HZ
    out = np.sin(2 * np.pi * freq_hz * t)
    for k, gain in ((2, 0.25), (3, 0.08)):
        if k * freq_hz < RATE_HZ / 2 * 0.9:
            out += gain * np.sin(2 * np.pi * k * freq_hz * t)
    return out


def ramp(n: int, attack: int, release: int) -> npt.NDArray[np.float64]:
    """Raised-cosine fade in over ``attack`` samples and out over ``release``."""
    env = np.ones(n, dtype=np.float64)
    env[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    env[n - release:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(release) / release)
    return env


def chord(notes: tuple[int, ...]) -> npt.NDArray[np.float64]:
    n = int(CHORD_S * RATE_HZ)
    pad = sum(tone(hz(x), n) for x in (notes[0], notes[1])) * 0.35
    pad = pad * ramp(n, int(0.8 * RATE_HZ), int(0.8 * RATE_HZ))
    step = int(NOTE_S * RATE_HZ)
    t = np.arange(step, dtype=np.float64) / RATE_HZ
    pluck = np.exp(-t * 3.0) * ramp(step, int(0.01 * RATE_HZ), int(0.05 * RATE_HZ))
    melody = np.concatenate([tone(hz(notes[i] + 12), step) * pluck for i in ARPEGGIO])
    melody = melody * ramp(n, int(0.2 * RATE_HZ), int(0.6 * RATE_HZ))
    return np.asarray(pad + 0.5 * melody)


def hold_music() -> npt.NDArray[np.int16]:
    """The whole loop as 16-bit PCM at RATE_HZ, peak at PEAK_DBFS."""
    music = np.concatenate([chord(c) for c in CHORDS])
    music *= 10 ** (PEAK_DBFS / 20) / np.max(np.abs(music))
    return np.round(music * 32767).astype("<i2")


def write(path: Path, pcm: npt.NDArray[np.int16]) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE_HZ)
        w.writeframes(pcm.tobytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="one file (default: every prompt set)")
    args = parser.parse_args()
    pcm = hold_music()
    targets = [args.out] if args.out else sorted(
        d / "hold_music.wav" for d in PROMPTS.iterdir() if (d / "manifest.yaml").is_file())
    for path in targets:
        write(path, pcm)
        print(f"{path}: {pcm.size / RATE_HZ:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
