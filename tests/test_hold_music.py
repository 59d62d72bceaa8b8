"""The shipped music on hold: one file per prompt set, in the prompt sets' format, a loop
that restarts without a click, and the same bytes as scripts/make_hold_music.py makes."""

from __future__ import annotations

import importlib.util
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SETS = sorted(d for d in (ROOT / "prompts").iterdir() if (d / "manifest.yaml").is_file())


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_hold_music",
                                                  ROOT / "scripts" / "make_hold_music.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("prompt_set", SETS, ids=[d.name for d in SETS])
def test_every_prompt_set_has_hold_music_as_the_script_makes_it(prompt_set: Path) -> None:
    manifest = yaml.safe_load((prompt_set / "manifest.yaml").read_text(encoding="utf-8"))
    entry = manifest["prompts"]["hold_music"]
    assert entry == {"generator": "recorded", "file": "hold_music.wav"}
    path = prompt_set / "hold_music.wav"
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert 15 * 8000 <= pcm.size <= 30 * 8000
    assert np.array_equal(pcm, _script().hold_music())


def test_the_loop_starts_and_ends_in_silence_and_is_never_clipped() -> None:
    pcm = _script().hold_music().astype(np.int32)
    assert abs(pcm[0]) < 50 and abs(pcm[-1]) < 50  # the file player's restart is silent
    assert np.max(np.abs(pcm)) < 32700
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) / 32768)
    assert -30 < rms_dbfs < -12  # within the prompt loader's level window (-40..-6)
