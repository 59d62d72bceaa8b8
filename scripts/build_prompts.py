#!/usr/bin/env python3
"""Build (or check) the shipped IVR prompt sets under ``prompts/``.

Every directory ``prompts/<set>/`` with a ``manifest.yaml`` is one prompt set (one language).
For each manifest entry this script writes ``prompts/<set>/<file>`` as an 8 kHz (the
manifest's ``sample_rate_hz``) mono 16-bit PCM WAV:

* ``generator: tts`` (the default when the entry has ``text``): espeak-ng speaks ``tts_text``
  (or ``text``) with the set's ``voice`` and ``speed_wpm`` into a temporary WAV; sox then trims
  leading and trailing silence, resamples, pads 50 ms of silence at each end and normalises the
  peak to -3 dBFS.
* ``generator: tone``: sox synthesises a sine of ``frequency_hz`` for ``duration_ms`` with a
  peak of ``level_dbfs``.
* ``generator: recorded``: a human recording that is checked in as is; never overwritten.

Usage::

    python scripts/build_prompts.py                # rebuild every set
    python scripts/build_prompts.py --set zh-CN    # rebuild one set
    python scripts/build_prompts.py --check        # only verify; exit 1 listing the problems
    python scripts/build_prompts.py --check --set en-US

``--check`` needs neither espeak-ng nor sox: it verifies that every manifest entry's file exists
and is a PCM WAV of the manifest's sample rate, mono, 16-bit and not empty.  Building needs the
``espeak-ng`` and ``sox`` programs on PATH.  Only the standard library and PyYAML are used.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMPTS_DIR = ROOT / "prompts"

DEFAULT_SPEED_WPM = 150
# espeak-ng's default amplitude (100) clips a few samples in some Mandarin prompts; the peak is
# normalised afterwards anyway, so synthesise with headroom.
ESPEAK_AMPLITUDE = 60
PEAK_DBFS = -3.0
# Silence kept (added back) at each end after trimming, in seconds.
EDGE_PAD_S = 0.05
# Anything quieter than this (percent of full scale, about -60 dBFS) counts as silence.
SILENCE_THRESHOLD = "0.1%"
GENERATORS = ("tts", "tone", "recorded")


class ManifestError(Exception):
    """A manifest that cannot be used."""


@dataclass(frozen=True)
class Prompt:
    name: str
    file: str
    generator: str
    text: str | None = None
    tts_text: str | None = None
    frequency_hz: float = 1000.0
    duration_ms: int = 400
    level_dbfs: float = -12.0


@dataclass(frozen=True)
class PromptSet:
    name: str
    directory: Path
    language: str
    voice: str
    speed_wpm: int
    sample_rate_hz: int
    prompts: tuple[Prompt, ...]


def _get_str(entry: dict[str, Any], key: str, where: str, *, required: bool) -> str | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise ManifestError(f"{where}: missing '{key}'")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def _get_number(entry: dict[str, Any], key: str, where: str, default: float) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"{where}: '{key}' must be a number")
    return float(value)


def _get_int(entry: dict[str, Any], key: str, where: str, default: int) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ManifestError(f"{where}: '{key}' must be a positive integer")
    return value


def _parse_prompt(name: Any, entry: Any, where: str) -> Prompt:
    if not isinstance(name, str):
        raise ManifestError(f"{where}: prompt name {name!r} must be a string (quote it)")
    where = f"{where}: prompt '{name}'"
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: must be a mapping")
    file = _get_str(entry, "file", where, required=True)
    assert file is not None
    if Path(file).name != file or not file.endswith(".wav"):
        raise ManifestError(f"{where}: 'file' must be a plain '<name>.wav' file name")
    text = _get_str(entry, "text", where, required=False)
    tts_text = _get_str(entry, "tts_text", where, required=False)
    generator = _get_str(entry, "generator", where, required=False) or "tts"
    if generator not in GENERATORS:
        raise ManifestError(f"{where}: 'generator' must be one of {', '.join(GENERATORS)}")
    if generator == "tts" and text is None and tts_text is None:
        raise ManifestError(f"{where}: a tts prompt needs 'text'")
    if generator != "tone":
        return Prompt(name=name, file=file, generator=generator, text=text, tts_text=tts_text)
    frequency = _get_number(entry, "frequency_hz", where, 1000.0)
    level = _get_number(entry, "level_dbfs", where, -12.0)
    if frequency <= 0 or level > 0:
        raise ManifestError(f"{where}: need frequency_hz > 0 and level_dbfs <= 0")
    return Prompt(
        name=name,
        file=file,
        generator=generator,
        text=text,
        frequency_hz=frequency,
        duration_ms=_get_int(entry, "duration_ms", where, 400),
        level_dbfs=level,
    )


def load_manifest(path: Path) -> PromptSet:
    """Read and validate one ``manifest.yaml``."""
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{where}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: top level must be a mapping")
    language = _get_str(data, "language", where, required=True)
    voice = _get_str(data, "voice", where, required=True)
    assert language is not None and voice is not None
    raw_prompts = data.get("prompts")
    if not isinstance(raw_prompts, dict) or not raw_prompts:
        raise ManifestError(f"{where}: 'prompts' must be a non-empty mapping")
    prompts = tuple(_parse_prompt(k, v, where) for k, v in raw_prompts.items())
    files = [p.file for p in prompts]
    duplicates = sorted({f for f in files if files.count(f) > 1})
    if duplicates:
        raise ManifestError(f"{where}: several prompts share file(s) {', '.join(duplicates)}")
    return PromptSet(
        name=path.parent.name,
        directory=path.parent,
        language=language,
        voice=voice,
        speed_wpm=_get_int(data, "speed_wpm", where, DEFAULT_SPEED_WPM),
        sample_rate_hz=_get_int(data, "sample_rate_hz", where, 8000),
        prompts=prompts,
    )


def find_manifests(only: str | None) -> list[Path]:
    manifests = sorted(PROMPTS_DIR.glob("*/manifest.yaml"))
    if only is not None:
        manifests = [m for m in manifests if m.parent.name == only]
        if not manifests:
            raise ManifestError(f"no prompt set '{only}' (expected {PROMPTS_DIR}/{only}/)")
    if not manifests:
        raise ManifestError(f"no manifests found under {PROMPTS_DIR}")
    return manifests


def _run(cmd: list[str], stdin: str | None = None) -> None:
    result = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, encoding="utf-8", check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")


def _sox_output_args(rate: int, out: Path) -> list[str]:
    return ["-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(out)]


def build_tts(pset: PromptSet, prompt: Prompt, out: Path, tmpdir: Path) -> None:
    text = prompt.tts_text or prompt.text
    assert text is not None
    raw = tmpdir / f"{prompt.name}.raw.wav"
    # Text goes through stdin so that a leading '-' is never taken for an option.
    _run(
        ["espeak-ng", "-v", pset.voice, "-s", str(pset.speed_wpm), "-a", str(ESPEAK_AMPLITUDE)]
        + ["-w", str(raw), "--stdin"],
        stdin=text,
    )
    trim = ["silence", "1", "0.005", SILENCE_THRESHOLD]
    # -D: no dither and -R: repeatable, so a rebuild gives byte-identical files.
    _run(
        ["sox", "-D", "-R", "-V1", str(raw), *_sox_output_args(pset.sample_rate_hz, out)]
        + ["remix", "-", *trim, "reverse", *trim, "reverse"]
        + ["rate", "-v", str(pset.sample_rate_hz)]
        + ["pad", str(EDGE_PAD_S), str(EDGE_PAD_S)]
        + ["gain", "-n", str(PEAK_DBFS)]
    )


def build_tone(pset: PromptSet, prompt: Prompt, out: Path) -> None:
    seconds = prompt.duration_ms / 1000
    _run(
        ["sox", "-D", "-R", "-V1", "-n", *_sox_output_args(pset.sample_rate_hz, out)]
        + ["synth", f"{seconds:g}", "sine", f"{prompt.frequency_hz:g}"]
        # 5 ms raised-cosine ramps so the tone starts and stops without a click.
        + ["fade", "h", "0.005", f"{seconds:g}", "0.005"]
        + ["gain", "-n", f"{prompt.level_dbfs:g}"]
    )


def build_set(pset: PromptSet) -> int:
    """Generate every tts/tone prompt of one set; return how many files were written."""
    written = 0
    with tempfile.TemporaryDirectory(prefix="prompts-") as tmp:
        for prompt in pset.prompts:
            out = pset.directory / prompt.file
            if prompt.generator == "recorded":
                print(f"  {pset.name}/{prompt.file}: recorded, left as is")
                continue
            if prompt.generator == "tone":
                build_tone(pset, prompt, out)
            else:
                build_tts(pset, prompt, out, Path(tmp))
            written += 1
    return written


def check_file(path: Path, rate: int) -> str | None:
    """Return why ``path`` is not a usable prompt file, or None if it is."""
    if not path.is_file():
        return "missing"
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, framerate, frames = (
                wav.getnchannels(),
                wav.getsampwidth(),
                wav.getframerate(),
                wav.getnframes(),
            )
    except (wave.Error, EOFError, OSError) as exc:
        return f"not a plain PCM WAV file ({exc}); convert it as prompts/README.md shows"
    problems = []
    if framerate != rate:
        problems.append(f"{framerate} Hz, want {rate} Hz")
    if channels != 1:
        problems.append(f"{channels} channels, want mono")
    if width != 2:
        problems.append(f"{8 * width}-bit, want 16-bit")
    if frames == 0:
        problems.append("no audio")
    return "; ".join(problems) or None


def check_set(pset: PromptSet) -> list[str]:
    """Return one line per problem in a set; also warn about files no manifest entry names."""
    problems = []
    for prompt in pset.prompts:
        reason = check_file(pset.directory / prompt.file, pset.sample_rate_hz)
        if reason is not None:
            problems.append(f"{pset.name}/{prompt.file} (prompt '{prompt.name}'): {reason}")
    known = {p.file for p in pset.prompts}
    for extra in sorted(pset.directory.glob("*.wav")):
        if extra.name not in known:
            print(f"warning: {pset.name}/{extra.name} is in no manifest entry", file=sys.stderr)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--set", dest="only", metavar="NAME", help="only this set, e.g. en-US")
    parser.add_argument(
        "--check", action="store_true", help="only verify the files; exit 1 listing problems"
    )
    args = parser.parse_args(argv)
    try:
        sets = [load_manifest(m) for m in find_manifests(args.only)]
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if not args.check:
        missing_tools = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
        if missing_tools:
            print(f"error: not on PATH: {', '.join(missing_tools)}", file=sys.stderr)
            return 2
        for pset in sets:
            print(f"{pset.name}: building {len(pset.prompts)} prompts (voice {pset.voice})")
            try:
                written = build_set(pset)
            except RuntimeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"{pset.name}: wrote {written} files")

    problems = [line for pset in sets for line in check_set(pset)]
    if problems:
        print(f"{len(problems)} prompt file problem(s):", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    for pset in sets:
        print(f"ok: {pset.name}: {len(pset.prompts)} prompts, {pset.sample_rate_hz} Hz mono 16-bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
