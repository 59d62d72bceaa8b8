"""Prompt uploads for ops staff (``ivr prompts load``): good sets are converted, stored as a
new active version and picked up by the worker; every bad upload is refused with its reason
and leaves the store exactly as it was.

The audio is made here: numpy writes WAVs, ffmpeg makes the MP3/OGG/FLAC versions.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import wave
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ivr.prompt_store import (
    MAX_EDGE_SILENCE_S,
    MAX_LEAD_SILENCE_S,
    RATES_HZ,
    PromptStoreError,
    PromptUploadError,
    activate,
    active_dir,
    active_version,
    flows_for_set,
    list_versions,
    load_upload,
    rollback,
)
from ivr.prompts import load_prompt_sets
from media.pcm import read_wav_mono16, wav_info

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

Audio = npt.NDArray[np.float64]
SET = "en-US"
FLOW = """\
name: t
language: en-US
start: hello
nodes:
  hello: {type: play, prompts: [welcome, beep], next: menu}
  menu:
    type: menu
    prompts: [main_menu]
    choices: {"1": bye}
    on_failure: bye
  bye: {type: hangup, prompts: [goodbye]}
"""
# prompt name -> file in the good upload (one of each format)
GOOD = {"welcome": "welcome.wav", "main_menu": "main_menu.mp3", "goodbye": "goodbye.ogg",
        "beep": "beep.flac"}
WAVS = {name: f"{name}.wav" for name in GOOD}  # the base of the bad uploads


# --- making audio ------------------------------------------------------------------------


def speech(rate: int, seconds: float = 0.8, peak: float = 0.4, lead_s: float = 0.5,
           tail_s: float = 0.3) -> Audio:
    """Speech-like sound: syllables of a few harmonics with gaps, between silences."""
    t = np.arange(int(rate * seconds)) / rate
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * 4 * t)  # 4 syllables a second
    voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((220, 440, 660, 880), 1))
    x = syllables * voice
    x = peak * x / np.max(np.abs(x))
    return np.concatenate([np.zeros(int(rate * lead_s)), x, np.zeros(int(rate * tail_s))])


def write_wav(path: Path, x: Audio, rate: int, width: int = 2, channels: int = 1) -> Path:
    """PCM WAV of ``x`` (floats in [-1, 1]); 2 or 3 bytes a sample; the channels are copies."""
    full = 2 ** (8 * width - 1)
    ints = np.clip(np.round(x * full), -full, full - 1).astype(np.int32)
    ints = np.repeat(ints, channels)
    if width == 2:
        data = ints.astype("<i2").tobytes()
    else:
        data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def encode(src: Path, dst: Path) -> Path:
    """ffmpeg picks the codec from the extension (MP3, Vorbis, FLAC)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), str(dst)], check=True)
    return dst


def write_manifest(d: Path, files: dict[str, str], **top: object) -> None:
    lines = [f"language: {top.pop('language', SET)}"]
    lines += [f"{k}: {v}" for k, v in top.items()]
    lines.append("prompts:")
    for name, fname in files.items():
        lines += [f"  {name}:", f'    text: "{name}"', f"    file: {fname}"]
    (d / "manifest.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def good_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One good upload directory, made once: a studio WAV (48 kHz, 24-bit, stereo, with
    0.5 s of leading silence), an MP3, an OGG and a FLAC."""
    d = tmp_path_factory.mktemp("good")
    work = tmp_path_factory.mktemp("work")
    write_wav(d / "welcome.wav", speech(48000), 48000, width=3, channels=2)
    encode(write_wav(work / "m.wav", speech(44100, 1.2), 44100), d / "main_menu.mp3")
    encode(write_wav(work / "g.wav", speech(22050, 0.6), 22050), d / "goodbye.ogg")
    tone = 0.25 * np.sin(2 * np.pi * 1000 * np.arange(6400) / 16000)
    encode(write_wav(work / "b.wav", np.concatenate([tone, np.zeros(800)]), 16000),
           d / "beep.flac")
    write_manifest(d, GOOD)
    return d


@pytest.fixture(scope="module")
def wav_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good upload of plain WAVs (quick to check), made once."""
    d = tmp_path_factory.mktemp("wavs")
    for i, fname in enumerate(WAVS.values()):
        write_wav(d / fname, speech(16000, 0.5 + 0.1 * i), 16000)
    write_manifest(d, WAVS)
    return d


@pytest.fixture
def upload(tmp_path: Path, wav_files: Path) -> Path:
    """A fresh copy of a good upload, to spoil."""
    return Path(shutil.copytree(wav_files, tmp_path / "upload"))


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    p = tmp_path / "flow.yaml"
    p.write_text(FLOW, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def loaded_store(tmp_path_factory: pytest.TempPathFactory, good_files: Path) -> Path:
    """A store holding one good version (v1, active), made once."""
    root = tmp_path_factory.mktemp("store") / "prompts"
    flow = tmp_path_factory.mktemp("flow") / "flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    load_upload(good_files, SET, [flow], root)
    return root


@pytest.fixture
def store(tmp_path: Path, loaded_store: Path) -> Path:
    return Path(shutil.copytree(loaded_store, tmp_path / "var" / "prompts"))


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a digest of its content (directories as 'dir')."""
    out = {}
    for p in sorted(root.rglob("*")) if root.exists() else []:
        rel = p.relative_to(root).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def zip_dir(d: Path, dst: Path, top: str | None = None,
            extra: Sequence[tuple[zipfile.ZipInfo, bytes]] = ()) -> Path:
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(d.iterdir()):
            zf.write(p, f"{top}/{p.name}" if top else p.name)
        for info, data in extra:
            zf.writestr(info, data)
    return dst


# --- good uploads ------------------------------------------------------------------------


def test_good_set_in_every_format_is_converted_stored_and_activated(
        tmp_path: Path, good_files: Path, flow: Path) -> None:
    root = tmp_path / "var" / "prompts"
    report = load_upload(good_files, SET, [flow], root)

    assert (report.version, report.previous) == (1, None)
    assert active_version(SET, root) == 1
    assert (root / SET / "ACTIVE").read_text() == "v1\n"
    assert report.path == root / SET / "v1" == active_dir(SET, root)
    by_name = {p.name: p for p in report.prompts}
    assert set(by_name) == set(GOOD)
    assert {p.format for p in report.prompts} == {"WAV", "MP3", "OGG", "FLAC"}
    welcome = by_name["welcome"]
    assert (welcome.source_rate_hz, welcome.channels) == (48000, 2)
    # 0.5 s of digital silence before goes (a caller would wait through it; of the sound's
    # quiet ramp at most MAX_LEAD_SILENCE_S stays), 0.3 s after is trimmed to
    # MAX_EDGE_SILENCE_S (0.2 s)
    assert 0.5 - MAX_LEAD_SILENCE_S <= welcome.trimmed_start_s <= 0.5 + 0.02
    assert welcome.trimmed_end_s == pytest.approx(0.3 - MAX_EDGE_SILENCE_S, abs=0.02)
    assert welcome.duration_s == pytest.approx(0.8 + 0.2, abs=0.03)
    for p in report.prompts:
        assert -40 <= p.level_dbfs <= -6
        for rate in RATES_HZ:
            info = wav_info(report.path / f"{p.name}.{rate}.wav")
            assert (info.sample_rate_hz, info.channels, info.sample_width_bytes) == (rate, 1, 2)
            assert info.duration_s == pytest.approx(p.duration_s, abs=0.01)
    samples, _ = read_wav_mono16(report.path / "welcome.8000.wav")
    assert np.max(np.abs(samples)) == pytest.approx(0.4 * 32768, rel=0.05)  # level kept
    assert (report.path / "source-manifest.yaml").read_text() == \
        (good_files / "manifest.yaml").read_text()
    assert not list(root.glob(".upload-*"))


def test_new_version_keeps_the_previous_one_and_rollback_and_activate_switch(
        tmp_path: Path, good_files: Path, flow: Path) -> None:
    root = tmp_path / "var" / "prompts"
    v1 = load_upload(good_files, SET, [flow], root)
    v1_files = snapshot(v1.path)
    # the same set again, as a zip of its folder (the one top-level folder is stripped)
    v2 = load_upload(zip_dir(good_files, tmp_path / "set.zip", top="en-US"), SET, [flow], root)
    assert (v2.version, v2.previous) == (2, 1)
    assert active_dir(SET, root) == root / SET / "v2"
    assert snapshot(v1.path) == v1_files  # the previous version is left as it was

    versions = list_versions(SET, root)
    assert [(v.version, v.active, v.prompts) for v in versions] == [(1, False, 4), (2, True, 4)]

    assert rollback(SET, root).version == 1
    assert active_version(SET, root) == 1
    with pytest.raises(PromptStoreError, match="oldest version"):
        rollback(SET, root)
    assert activate(SET, "v2", root, [flow]).version == 2
    with pytest.raises(PromptStoreError, match="no version v9"):
        activate(SET, 9, root)
    assert active_version(SET, root) == 2
    assert not (root / SET / "ACTIVE.tmp").exists()


def test_rollback_from_the_first_upload_returns_to_the_shipped_set(
        tmp_path: Path, good_files: Path, flow: Path) -> None:
    root = tmp_path / "var" / "prompts"
    shipped = tmp_path / "prompts"
    (shipped / SET).mkdir(parents=True)
    write_wav(shipped / SET / "welcome.wav", speech(8000, lead_s=0.05), 8000)
    write_manifest(shipped / SET, {"welcome": "welcome.wav"}, language=SET)
    cache = tmp_path / "var" / "cache" / "prompts"
    load_upload(good_files, SET, [flow], root)

    back = rollback(SET, root, [flow], shipped_dir=shipped)
    assert (back.version, back.path) == (0, shipped / SET)
    assert active_version(SET, root) is None
    assert (root / SET / "ACTIVE").read_text() == "shipped\n"
    sets = load_prompt_sets(shipped, cache, 8000, store_root=root)
    assert sets[SET].files["welcome"] == cache / SET / "welcome.8000.wav"  # the shipped one
    with pytest.raises(PromptStoreError, match="shipped set is in use"):
        rollback(SET, root, shipped_dir=shipped)
    assert activate(SET, "v1", root, [flow]).version == 1  # and forward again
    assert activate(SET, "shipped", root, shipped_dir=shipped).version == 0
    assert active_version(SET, root) is None
    with pytest.raises(PromptStoreError, match="no shipped set"):
        activate("fr-FR", "shipped", root, shipped_dir=shipped)


def test_activate_refuses_a_version_without_a_prompt_the_flow_uses(
        tmp_path: Path, store: Path, flow: Path) -> None:
    bigger = tmp_path / "flow2.yaml"
    bigger.write_text(FLOW.replace("[goodbye]", "[goodbye, sorry_wait]"), encoding="utf-8")
    before = snapshot(store)
    with pytest.raises(PromptStoreError) as err:
        activate(SET, 1, store, [bigger])
    assert "has no prompt 'sorry_wait'" in str(err.value)
    assert snapshot(store) == before


def test_worker_loads_the_active_version_as_converted(
        tmp_path: Path, store: Path, good_files: Path, flow: Path) -> None:
    shipped = tmp_path / "prompts"
    for name in (SET, "fr-FR"):
        (shipped / name).mkdir(parents=True)
        write_wav(shipped / name / "welcome.wav", speech(8000, lead_s=0.05), 8000)
        write_manifest(shipped / name, {"welcome": "welcome.wav"}, language=name)
    cache = tmp_path / "var" / "cache" / "prompts"

    plain = load_prompt_sets(shipped, cache, 8000)  # no store: the shipped sets
    assert plain[SET].files["welcome"] == cache / SET / "welcome.8000.wav"

    v2 = load_upload(good_files, SET, [flow], store)
    for rate in RATES_HZ:
        sets = load_prompt_sets(shipped, cache, rate, store_root=store)
        assert sorted(sets) == [SET, "fr-FR"]
        assert sets[SET].files == {n: v2.path / f"{n}.{rate}.wav" for n in GOOD}
        assert sets[SET].source_dir == v2.path
        assert sets[SET].durations_s["welcome"] == pytest.approx(0.8 + 0.2, abs=0.03)
        assert sets["fr-FR"].files["welcome"] == cache / "fr-FR" / f"welcome.{rate}.wav"
    assert not (cache / SET / "main_menu.8000.wav").exists()  # nothing converted again

    rollback(SET, store)
    sets = load_prompt_sets(shipped, cache, 8000, store_root=store)
    assert sets[SET].files["welcome"] == store / SET / "v1" / "welcome.8000.wav"


def test_default_flow_is_the_configured_one_if_it_uses_the_set(flow: Path) -> None:
    assert flows_for_set("en-US", flow) == [flow]
    assert flows_for_set("zh-CN", flow) == []


# --- bad uploads ---------------------------------------------------------------------------

Spoil = Callable[[Path, Path], Path]  # (upload dir, tmp dir) -> the path to load


def corrupt_wav(d: Path, tmp: Path) -> Path:
    (d / "welcome.wav").write_bytes(np.random.default_rng(1).bytes(4000))
    return d


def truncated_mp3(d: Path, tmp: Path) -> Path:
    mp3 = encode(d / "main_menu.wav", d / "main_menu.mp3")
    (d / "main_menu.wav").unlink()
    mp3.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 3])
    write_manifest(d, {**WAVS, "main_menu": "main_menu.mp3"})
    return d


def truncated_wav(d: Path, tmp: Path) -> Path:
    data = (d / "welcome.wav").read_bytes()
    (d / "welcome.wav").write_bytes(data[: len(data) // 2])
    return d


def clipped(d: Path, tmp: Path) -> Path:
    write_wav(d / "welcome.wav", np.clip(4 * speech(16000), -1, 1), 16000)
    return d


def too_quiet(d: Path, tmp: Path) -> Path:
    write_wav(d / "welcome.wav", speech(16000, peak=0.01), 16000)
    return d


def silence_only(d: Path, tmp: Path) -> Path:
    write_wav(d / "welcome.wav", np.zeros(16000) + 1e-4, 16000)  # 1 s at -80 dBFS
    return d


def empty_file(d: Path, tmp: Path) -> Path:
    (d / "goodbye.wav").unlink()
    (d / "goodbye.ogg").write_bytes(b"")
    write_manifest(d, {**WAVS, "goodbye": "goodbye.ogg"})
    return d


def ten_minutes(d: Path, tmp: Path) -> Path:
    x = np.zeros(8000 * 600)
    x[8000:16000] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    write_wav(d / "welcome.wav", x, 8000)
    return d


def missing_prompt(d: Path, tmp: Path) -> Path:
    (d / "goodbye.wav").unlink()
    write_manifest(d, {k: v for k, v in WAVS.items() if k != "goodbye"})
    return d


def missing_file(d: Path, tmp: Path) -> Path:
    (d / "goodbye.wav").unlink()
    return d


def unknown_file(d: Path, tmp: Path) -> Path:
    shutil.copy(d / "welcome.wav", d / "welcome_old.wav")
    return d


def wrong_rate(d: Path, tmp: Path) -> Path:
    write_wav(d / "welcome.wav", speech(44100), 44100)
    write_manifest(d, WAVS, sample_rate_hz=8000)
    return d


def wrong_language(d: Path, tmp: Path) -> Path:
    write_manifest(d, WAVS, language="zh-CN")
    return d


def no_manifest(d: Path, tmp: Path) -> Path:
    (d / "manifest.yaml").unlink()
    return d


def zip_traversal(d: Path, tmp: Path) -> Path:
    return zip_dir(d, tmp / "up.zip", extra=[(zipfile.ZipInfo("../../x"), b"owned")])


def zip_absolute(d: Path, tmp: Path) -> Path:
    return zip_dir(d, tmp / "up.zip", extra=[(zipfile.ZipInfo("/tmp/x.wav"), b"owned")])


def zip_symlink(d: Path, tmp: Path) -> Path:
    link = zipfile.ZipInfo("beep2.wav")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zip_dir(d, tmp / "up.zip", extra=[(link, b"/etc/passwd")])


def zip_bomb(d: Path, tmp: Path) -> Path:
    """A member whose central directory declares 3.75 GB once unpacked."""
    z = zip_dir(d, tmp / "up.zip", extra=[(zipfile.ZipInfo("filler.wav"), b"\0" * 1000)])
    data = bytearray(z.read_bytes())
    entry = data.rindex(b"PK\x01\x02")  # the last central directory entry: filler.wav
    assert data[entry + 46: entry + 46 + 10] == b"filler.wav"
    struct.pack_into("<I", data, entry + 24, 0xF0000000)  # its uncompressed size
    z.write_bytes(bytes(data))
    return z


def not_an_upload(d: Path, tmp: Path) -> Path:
    p = tmp / "prompts.tar"
    p.write_bytes(b"not a zip")
    return p


# (id, spoil, the file named in the problem, words of the reason)
BAD: list[tuple[str, Spoil, str, str]] = [
    ("corrupt_wav", corrupt_wav, "welcome.wav", "cannot be decoded as audio"),
    ("truncated_mp3", truncated_mp3, "main_menu.mp3", "truncated or damaged"),
    ("truncated_wav", truncated_wav, "welcome.wav", "truncated or damaged"),
    ("clipped", clipped, "welcome.wav", "clipped:"),
    ("too_quiet", too_quiet, "welcome.wav", "too quiet: level"),
    ("silence_only", silence_only, "welcome.wav", "silent: no sound above -50 dBFS"),
    ("empty_file", empty_file, "goodbye.ogg", "empty file (0 bytes)"),
    ("ten_minutes", ten_minutes, "welcome.wav", "600.0 s long; a prompt may last at most 120 s"),
    ("missing_prompt", missing_prompt, "manifest.yaml",
     "prompt 'goodbye' is missing: flow"),
    ("missing_file", missing_file, "manifest.yaml:",
     "prompt 'goodbye': file goodbye.wav is missing from the upload"),
    ("unknown_file", unknown_file, "welcome_old.wav", "unknown file"),
    ("wrong_rate", wrong_rate, "welcome.wav",
     "sample rate 44100 Hz, but manifest.yaml declares sample_rate_hz: 8000"),
    ("wrong_language", wrong_language, "manifest.yaml:1", "language 'zh-CN' is not the set"),
    ("no_manifest", no_manifest, "manifest.yaml", "missing: an upload needs a manifest.yaml"),
    ("zip_traversal", zip_traversal, "../../x", "'..'"),
    ("zip_absolute", zip_absolute, "/tmp/x.wav", "an absolute path"),
    ("zip_symlink", zip_symlink, "beep2.wav", "a symbolic link"),
    ("zip_bomb", zip_bomb, "up.zip", "a zip bomb"),
    ("not_an_upload", not_an_upload, "prompts.tar", "an upload is a directory or a zip file"),
]


@pytest.mark.parametrize(("spoil", "file", "reason"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_upload_is_refused_with_its_reason_and_nothing_changes(
        tmp_path: Path, store: Path, upload: Path, flow: Path,
        spoil: Spoil, file: str, reason: str) -> None:
    path = spoil(upload, tmp_path)
    before = snapshot(store)
    with pytest.raises(PromptUploadError) as err:
        load_upload(path, SET, [flow], store)
    problems = [str(p) for p in err.value.problems]
    assert any(p.startswith(file) and reason in p for p in problems), problems
    assert snapshot(store) == before  # ACTIVE, every version, nothing left over
    assert active_version(SET, store) == 1
    assert not list(store.glob(".upload-*"))
    assert not (tmp_path / "x").exists() and not Path("/tmp/x.wav").exists()


def test_every_problem_is_listed_at_once(tmp_path: Path, store: Path, upload: Path,
                                         flow: Path) -> None:
    clipped(upload, tmp_path)
    empty_file(upload, tmp_path)
    unknown_file(upload, tmp_path)
    with pytest.raises(PromptUploadError) as err:
        load_upload(upload, SET, [flow], store)
    files = sorted({p.file for p in err.value.problems})
    assert files == ["goodbye.ogg", "welcome.wav", "welcome_old.wav"]


def test_refused_first_upload_leaves_no_store_behind(tmp_path: Path, upload: Path,
                                                      flow: Path) -> None:
    root = tmp_path / "var" / "prompts"
    silence_only(upload, tmp_path)
    with pytest.raises(PromptUploadError):
        load_upload(upload, SET, [flow], root)
    assert not (tmp_path / "var").exists()


def test_a_flow_for_another_language_is_refused(tmp_path: Path, store: Path, upload: Path
                                                ) -> None:
    zh = tmp_path / "zh.yaml"
    zh.write_text(FLOW.replace("language: en-US", "language: zh-CN"), encoding="utf-8")
    with pytest.raises(PromptUploadError, match="does not use prompt set 'en-US'"):
        load_upload(upload, SET, [zh], store)


def test_bad_set_name_is_refused(tmp_path: Path, upload: Path) -> None:
    with pytest.raises(PromptStoreError, match="not a prompt set name"):
        load_upload(upload, "../etc", [], tmp_path / "prompts")
    assert not (tmp_path / "prompts").exists()


# --- through the command line ----------------------------------------------------------------


def ivr(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env["IVR_PATHS_VAR_DIR"] = str(tmp_path / "var")
    env["IVR_PATHS_FLOW"] = str(tmp_path / "flow.yaml")
    return subprocess.run([sys.executable, "-m", "ivr.cli", "prompts", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)


def test_cli_load_good_then_bad_then_rollback(tmp_path: Path, good_files: Path, upload: Path,
                                              flow: Path) -> None:
    root = tmp_path / "var" / "prompts"
    ok = ivr(tmp_path, "load", str(good_files), "--set", SET)  # default: the configured flow
    assert ok.returncode == 0, ok.stderr
    assert "prompt set en-US: v1 loaded and active (first upload); 4 prompts" in ok.stdout
    assert f"flows checked: {flow}" in ok.stdout
    assert "welcome.wav (WAV 48000 Hz 2 ch)" in ok.stdout
    assert re.search(r"welcome .* silence trimmed: 0\.[45]. s at the start, 0\.1. s at the end",
                     ok.stdout), ok.stdout

    clipped(upload, tmp_path)
    before = snapshot(root)
    bad = ivr(tmp_path, "load", str(upload), "--set", SET, "--flow", str(flow))
    assert bad.returncode == 1
    assert "refused; nothing changed" in bad.stderr
    assert "\nwelcome.wav: clipped: " in bad.stderr
    assert snapshot(root) == before

    assert ivr(tmp_path, "load", str(good_files), "--set", SET).returncode == 0
    listed = ivr(tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert "en-US: in use: v2" in listed.stdout and "* active" in listed.stdout
    back = ivr(tmp_path, "rollback", SET)
    assert back.returncode == 0, back.stderr
    assert "rolled back to v1" in back.stdout
    assert "ivr reload" in back.stdout and "restart" not in back.stdout
    assert active_version(SET, root) == 1
