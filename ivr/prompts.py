"""Prompt sets: a manifest of named prompts per language, converted once at load.

``prompts/<set>/manifest.yaml`` lists each prompt's text and file (see ``prompts/README.md``).
At load every file is checked and converted to the media clock rate (mono, 16-bit PCM), its
leading silence cut (``media.pcm.trim_lead``: a caller waits through it), under
``var/cache/prompts/<set>/``; PJMEDIA then plays those files as they are, so no call ever
decodes or resamples a prompt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from media.errors import PromptError
from media.pcm import convert_prompt, wav_info

from .prompt_store import PromptStoreError, active_sets, stored_files
from .yamlsrc import YamlError, load_yaml

log = logging.getLogger("ivr.prompts")


@dataclass(frozen=True)
class PromptSet:
    name: str
    language: str
    source_dir: Path
    files: dict[str, Path]  # prompt name -> converted WAV, ready for PJMEDIA
    durations_s: dict[str, float]

    def path(self, prompt: str) -> Path:
        try:
            return self.files[prompt]
        except KeyError:
            raise PromptError(f"prompt {prompt!r} is not in prompt set {self.name!r}") from None

    def paths(self, prompts: tuple[str, ...] | list[str]) -> list[Path]:
        return [self.path(p) for p in prompts]


def load_prompt_set(source_dir: Path, cache_dir: Path, clock_rate_hz: int) -> PromptSet:
    manifest_path = source_dir / "manifest.yaml"
    try:
        data, smap = load_yaml(manifest_path)
    except YamlError as exc:
        raise PromptError(str(exc)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), dict):
        raise PromptError(f"{manifest_path}: a manifest needs a 'prompts' mapping")
    name = source_dir.name
    language = str(data.get("language", name))
    files: dict[str, Path] = {}
    durations: dict[str, float] = {}
    problems: list[str] = []
    for prompt, entry in data["prompts"].items():
        line = smap.line_of(("prompts", prompt))
        where = f"{manifest_path}:{line}" if line else str(manifest_path)
        if not isinstance(entry, dict) or not entry.get("file"):
            problems.append(f"{where}: prompt {prompt!r} has no 'file'")
            continue
        src = (source_dir / str(entry["file"])).resolve()
        if source_dir.resolve() not in src.parents:
            problems.append(f"{where}: prompt {prompt!r}: file must stay inside {source_dir}")
            continue
        if not src.is_file():
            problems.append(f"{where}: prompt {prompt!r}: {src.name} is missing")
            continue
        dst = cache_dir / name / f"{prompt}.{clock_rate_hz}.wav"
        try:
            info = convert_prompt(src, dst, clock_rate_hz)
        except PromptError as exc:
            problems.append(f"{where}: prompt {prompt!r}: {exc}")
            continue
        files[str(prompt)] = dst
        durations[str(prompt)] = info.duration_s
    if problems:
        raise PromptError(f"prompt set {name!r} cannot be used:\n  " + "\n  ".join(problems))
    log.info("prompt set %s (%s): %d prompts ready at %d Hz", name, language, len(files),
             clock_rate_hz)
    return PromptSet(name, language, source_dir, files, durations)


def load_stored_prompt_set(name: str, version_dir: Path, clock_rate_hz: int) -> PromptSet:
    """A version loaded by ``ivr prompts load`` (``ivr.prompt_store``): its files were
    converted at load, so they are used as they are, after a look at each header."""
    try:
        language, files = stored_files(version_dir, clock_rate_hz)
    except PromptStoreError as exc:
        raise PromptError(str(exc)) from exc
    durations: dict[str, float] = {}
    for prompt, path in files.items():
        info = wav_info(path)
        if (info.sample_rate_hz, info.channels, info.sample_width_bytes) != (clock_rate_hz, 1, 2):
            raise PromptError(f"{path}: not mono 16-bit PCM at {clock_rate_hz} Hz")
        durations[prompt] = info.duration_s
    log.info("prompt set %s (%s): %d prompts ready at %d Hz from %s", name, language,
             len(files), clock_rate_hz, version_dir)
    return PromptSet(name, language, version_dir, files, durations)


def load_prompt_sets(
    prompts_dir: Path, cache_dir: Path, clock_rate_hz: int, store_root: Path | None = None
) -> dict[str, PromptSet]:
    """Every set under ``prompts_dir`` (a folder with a manifest.yaml), by name.

    With ``store_root`` (``var/prompts``), a set with an active version loaded by
    ``ivr prompts load`` comes from there instead of ``prompts_dir``.
    """
    sets = {}
    try:
        active = active_sets(store_root) if store_root is not None else {}
    except PromptStoreError as exc:
        raise PromptError(str(exc)) from exc
    if not prompts_dir.is_dir() and not active:
        raise PromptError(f"{prompts_dir}: no such prompts directory")
    for d in sorted(prompts_dir.iterdir()) if prompts_dir.is_dir() else []:
        if d.name not in active and (d / "manifest.yaml").is_file():
            sets[d.name] = load_prompt_set(d, cache_dir, clock_rate_hz)
    for name, version_dir in active.items():
        sets[name] = load_stored_prompt_set(name, version_dir, clock_rate_hz)
    sets = dict(sorted(sets.items()))
    if not sets:
        raise PromptError(f"{prompts_dir}: holds no prompt set (a folder with manifest.yaml)")
    return sets
