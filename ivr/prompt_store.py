"""The prompt library: prompt sets uploaded by ops staff, checked, converted once and versioned.

``ivr prompts load PATH --set NAME`` takes a directory or a zip holding a ``manifest.yaml``
(the format of ``prompts/README.md``) and one audio file per prompt (WAV, MP3, OGG or FLAC,
decoded with pydub and ffmpeg). Every file is checked (see the thresholds below), trimmed
and converted to the server's format, mono 16-bit PCM WAV at 8000 and 16000 Hz. The manifest
is checked against the flows that use the set. Only if everything passes is the result
stored as a new version and made active::

    var/prompts/<set>/v1/                  an earlier version, kept for rollback
    var/prompts/<set>/v2/manifest.yaml     written here: each prompt's files, what the checks
                                           found, what was trimmed
    var/prompts/<set>/v2/source-manifest.yaml   the manifest as uploaded
    var/prompts/<set>/v2/<name>.8000.wav   converted, played as they are (no decoding per call)
    var/prompts/<set>/v2/<name>.16000.wav
    var/prompts/<set>/ACTIVE               "v2": the version workers load ("shipped", or no
                                           file: the set shipped in prompts/<set>/)

The work happens in a temporary directory inside the store (``.upload-*``), so the finished
version is moved into place with one rename. ``ACTIVE`` is switched by writing
``ACTIVE.tmp`` and renaming it over ``ACTIVE`` (atomic). A refused upload removes its
temporary directory and changes nothing; :class:`PromptUploadError` lists every problem as
``file: reason``. Workers read ``ACTIVE`` when they load their prompts (``ivr.prompts``).
"""

from __future__ import annotations

import fcntl
import io
import json
import math
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import warnings
import wave
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from media.errors import PromptError
from media.pcm import DIGITAL_SILENCE, LEAD_KEEP_S, lead_end, wav_info, write_wav_mono16

from .flow.model import Flow, FlowError, load_flow
from .yamlsrc import YamlError, parse_yaml

# --- what is stored ------------------------------------------------------------------------
RATES_HZ = (8000, 16000)  # every prompt is stored at both media clock rates
AUDIO_FORMATS = {".wav": "WAV", ".mp3": "MP3", ".ogg": "OGG", ".flac": "FLAC"}
MANIFEST = "manifest.yaml"
SOURCE_MANIFEST = "source-manifest.yaml"
ACTIVE = "ACTIVE"
SHIPPED = "shipped"  # ACTIVE naming no version: workers use the shipped set (prompts/<set>/)

# --- limits on an upload -------------------------------------------------------------------
MAX_FILES = 500  # entries in a zip, or files in a directory
MAX_FILE_BYTES = 100 * 1024 * 1024  # one audio file (120 s of 96 kHz float stereo fits)
MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # everything together, as unpacked (zip bombs)

# --- checks on every audio file ------------------------------------------------------------
MIN_DURATION_S = 0.1  # shorter is refused (an empty or cut take)
MAX_DURATION_S = 120.0  # longer is refused before it is decoded (a wrong file, a whole session)
CLIP_LEVEL = 32700 / 32768  # |sample| at or above this share of full scale counts as clipped
MAX_CLIPPED_SHARE = 0.001  # more than 0.1 % of the samples clipped: refused as clipped
SILENCE_DBFS = -50.0  # a 10 ms frame whose RMS is below this is silence
MIN_LEVEL_DBFS = -40.0  # RMS of the sound (silent frames left out) must be within these
MAX_LEVEL_DBFS = -6.0
MAX_EDGE_SILENCE_S = 0.2  # trailing silence is trimmed to this (not refused)
# Of leading silence, digital silence goes and at most this of a quiet lead-in stays: a caller
# hears it as the IVR being slow to answer a key (media.pcm.trim_lead)
MAX_LEAD_SILENCE_S = LEAD_KEEP_S
TRUNCATED_MIN_S = 0.25  # decoded this much (and 5 %) shorter than the header says: damaged
TRUNCATED_SHARE = 0.05
TOOL_TIMEOUT_S = 60.0  # one ffprobe/ffmpeg run
STALE_UPLOAD_S = 24 * 3600  # left-over .upload-* directories (a killed load) are removed

IGNORED_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}  # desktop junk in uploads
IGNORED_DIRS = {"__MACOSX"}

_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_PROMPT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_VERSION_DIR = re.compile(r"^v([0-9]+)$")
_CODEC = re.compile(r"^[a-z0-9_]+$")
_FRAME_S = 0.010

Samples = npt.NDArray[np.float64]
Pcm16 = npt.NDArray[np.int16]


@dataclass(frozen=True)
class Problem:
    """One reason an upload is refused: which file, and why."""

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


class PromptStoreError(Exception):
    """The prompt library cannot do what was asked; ``problems`` says why, file by file."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        self.problems = list(problems)
        lines = [message, *(f"  {p}" for p in self.problems)]
        super().__init__("\n".join(lines))


class PromptUploadError(PromptStoreError):
    """An upload was refused; nothing in the store changed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(f"prompt upload refused ({len(problems)} problems); nothing changed",
                         problems)


@dataclass(frozen=True)
class PromptReport:
    """What the checks found in one prompt, and what was done to it."""

    name: str
    source: str  # the file in the upload
    format: str
    source_rate_hz: int
    channels: int
    duration_s: float  # as stored, after trimming
    trimmed_start_s: float
    trimmed_end_s: float
    level_dbfs: float  # RMS of the sound, silent frames left out
    peak_dbfs: float


@dataclass(frozen=True)
class LoadReport:
    set_name: str
    version: int
    path: Path
    previous: int | None  # the version that was active before; None for the first upload
    upload: str
    flows: list[str]
    prompts: list[PromptReport]


@dataclass(frozen=True)
class VersionInfo:
    set_name: str
    version: int
    path: Path
    active: bool
    loaded_at: str
    upload: str
    prompts: int


# --- the store layout ----------------------------------------------------------------------


def store_root_for(var_dir: Path) -> Path:
    """Where the library lives for a settings ``paths.var_dir``."""
    return var_dir / "prompts"


def check_set_name(set_name: str) -> None:
    if not _SET_NAME.match(set_name):
        raise PromptStoreError(
            f"{set_name!r} is not a prompt set name (a language tag such as en-US: letters, "
            "digits, '-' and '_')")


def _versions(set_dir: Path) -> list[int]:
    if not set_dir.is_dir():
        return []
    found = []
    for d in set_dir.iterdir():
        m = _VERSION_DIR.match(d.name)
        if m and d.is_dir():
            found.append(int(m.group(1)))
    return sorted(found)


def active_version(set_name: str, store_root: Path) -> int | None:
    """The active version of a set, or None if the shipped set is in use (nothing was ever
    loaded, or the operator went back to the shipped set)."""
    check_set_name(set_name)
    pointer = store_root / set_name / ACTIVE
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PromptStoreError(f"{pointer}: cannot read: {exc.strerror}") from exc
    if text == SHIPPED:
        return None
    m = _VERSION_DIR.match(text)
    if not m:
        raise PromptStoreError(f"{pointer}: holds {text!r}, not a version such as v3")
    version = int(m.group(1))
    if not (store_root / set_name / text).is_dir():
        raise PromptStoreError(f"{pointer}: points to {text}, which does not exist")
    return version


def active_dir(set_name: str, store_root: Path) -> Path | None:
    """The directory of the active version of a set, or None if nothing was loaded for it."""
    version = active_version(set_name, store_root)
    return None if version is None else store_root / set_name / f"v{version}"


def list_sets(store_root: Path) -> list[str]:
    """The sets that have at least one stored version."""
    if not store_root.is_dir():
        return []
    return sorted(d.name for d in store_root.iterdir()
                  if d.is_dir() and _SET_NAME.match(d.name) and _versions(d))


def active_sets(store_root: Path) -> dict[str, Path]:
    """Every set with an active version, and that version's directory."""
    out = {}
    for name in list_sets(store_root):
        d = active_dir(name, store_root)
        if d is not None:
            out[name] = d
    return out


def list_versions(set_name: str, store_root: Path) -> list[VersionInfo]:
    check_set_name(set_name)
    set_dir = store_root / set_name
    current = active_version(set_name, store_root)
    out = []
    for v in _versions(set_dir):
        vdir = set_dir / f"v{v}"
        try:
            data = _read_stored_manifest(vdir)
            prompts = data.get("prompts")
            count = len(prompts) if isinstance(prompts, dict) else 0
            loaded_at, upload = str(data.get("loaded_at", "?")), str(data.get("upload", "?"))
        except PromptStoreError:
            count, loaded_at, upload = 0, "?", "(damaged: no readable manifest)"
        out.append(VersionInfo(set_name, v, vdir, v == current, loaded_at, upload, count))
    return out


def _read_stored_manifest(vdir: Path) -> dict[str, Any]:
    path = vdir / MANIFEST
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PromptStoreError(f"{path}: cannot read the stored manifest ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), dict):
        raise PromptStoreError(f"{path}: not a stored prompt manifest")
    return data


def stored_files(vdir: Path, rate_hz: int) -> tuple[str, dict[str, Path]]:
    """The language of a stored version and its converted file for each prompt at ``rate_hz``.

    The files are checked to exist; they are used as they are (they were converted at load).
    """
    data = _read_stored_manifest(vdir)
    files: dict[str, Path] = {}
    problems = []
    for name, entry in data["prompts"].items():
        rel = entry.get("files", {}).get(rate_hz) if isinstance(entry, dict) else None
        if not isinstance(rel, str) or "/" in rel or not (vdir / rel).is_file():
            problems.append(Problem(f"{vdir}/{MANIFEST}",
                                    f"prompt {name!r} has no file at {rate_hz} Hz"))
            continue
        files[str(name)] = vdir / rel
    if problems:
        raise PromptStoreError(f"{vdir}: stored prompt set is incomplete", problems)
    return str(data.get("language", vdir.parent.name)), files


# --- activation ------------------------------------------------------------------------------


@contextmanager
def _locked(set_dir: Path) -> Iterator[None]:
    """Serialise changes to one set (version numbers, ACTIVE) between processes."""
    set_dir.mkdir(parents=True, exist_ok=True)
    with open(set_dir / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_active(set_dir: Path, version: int | None) -> None:
    """Point ACTIVE at ``v<version>``, or at the shipped set for None."""
    tmp = set_dir / f"{ACTIVE}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"v{version}\n" if version is not None else f"{SHIPPED}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, set_dir / ACTIVE)
    _fsync_dir(set_dir)


def _parse_version(version: int | str) -> int:
    text = str(version).strip()
    m = re.match(r"^v?([0-9]+)$", text)
    if not m:
        raise PromptStoreError(f"{text!r} is not a version (a number such as 3, or v3)")
    return int(m.group(1))


def _check_version(set_name: str, vdir: Path, flows: Sequence[Path]) -> None:
    """Refuse to activate a version that is incomplete or lacks a prompt the flows use."""
    problems: list[Problem] = []
    names: set[str] | None = None
    for rate in RATES_HZ:
        try:
            _, files = stored_files(vdir, rate)
        except PromptStoreError as exc:
            problems.extend(exc.problems or [Problem(str(vdir), str(exc))])
            continue
        names = set(files)
        for path in files.values():
            try:
                info = wav_info(path)
            except PromptError as exc:
                problems.append(Problem(path.name, str(exc)))
                continue
            if info.sample_rate_hz != rate or info.channels != 1 or info.sample_width_bytes != 2:
                problems.append(Problem(path.name, f"not mono 16-bit at {rate} Hz"))
    required, flow_problems = _flow_prompt_names(set_name, flows)
    problems += flow_problems
    for prompt, users in sorted(required.items()):
        if names is not None and prompt not in names:
            problems.append(Problem(vdir.name, f"has no prompt {prompt!r}, which flow "
                                               f"{', '.join(users)} uses"))
    if problems:
        raise PromptStoreError(f"{set_name} {vdir.name} cannot be activated", problems)


def activate(set_name: str, version: int | str, store_root: Path,
             flows: Sequence[Path] = (), shipped_dir: Path | None = None) -> VersionInfo:
    """Make ``version`` (3 or "v3") the active version of a set, atomically; ``"shipped"``
    goes back to the set shipped in ``shipped_dir`` (``prompts/``).

    The version must be complete and hold every prompt the ``flows`` use.
    """
    check_set_name(set_name)
    set_dir = store_root / set_name
    if str(version).strip() == SHIPPED:
        return _activate_shipped(set_name, set_dir, shipped_dir)
    v = _parse_version(version)
    vdir = set_dir / f"v{v}"
    if not vdir.is_dir():
        have = ", ".join(f"v{n}" for n in _versions(set_dir)) or "none"
        raise PromptStoreError(f"prompt set {set_name!r} has no version v{v} (have: {have})")
    _check_version(set_name, vdir, flows)
    with _locked(set_dir):
        _write_active(set_dir, v)
    return next(i for i in list_versions(set_name, store_root) if i.version == v)


def _activate_shipped(set_name: str, set_dir: Path, shipped_dir: Path | None) -> VersionInfo:
    shipped = shipped_dir / set_name if shipped_dir is not None else None
    if shipped is None or not (shipped / MANIFEST).is_file():
        where = f" in {shipped_dir}" if shipped_dir is not None else ""
        raise PromptStoreError(f"prompt set {set_name!r} has no shipped set{where} to go "
                               "back to")
    with _locked(set_dir):
        _write_active(set_dir, None)
    return VersionInfo(set_name, 0, shipped, True, "(shipped)", str(shipped), 0)


def rollback(set_name: str, store_root: Path, flows: Sequence[Path] = (),
             shipped_dir: Path | None = None) -> VersionInfo:
    """Activate the newest version older than the active one (repeat to go further back);
    from the oldest loaded version, back to the shipped set when there is one."""
    check_set_name(set_name)
    current = active_version(set_name, store_root)
    if current is None:
        raise PromptStoreError(f"prompt set {set_name!r}: the shipped set is in use; nothing "
                               "to roll back")
    older = [v for v in _versions(store_root / set_name) if v < current]
    if older:
        return activate(set_name, older[-1], store_root, flows)
    if shipped_dir is not None and (shipped_dir / set_name / MANIFEST).is_file():
        return activate(set_name, SHIPPED, store_root, flows, shipped_dir)
    raise PromptStoreError(
        f"prompt set {set_name!r}: v{current} is the oldest version and no set is shipped; "
        "nothing to roll back to (use 'ivr prompts activate' to choose a version)")


# --- flows ---------------------------------------------------------------------------------


def _names_for_set(flow: Flow, set_name: str) -> set[str] | None:
    """The prompt names a flow plays from ``set_name``, or None if it never uses that set.

    A plain name comes from every language the flow speaks (its own, and any a ``language``
    node switches to); a qualified ``set:name`` from that set only.
    """
    languages = {flow.language} | {
        str(getattr(node, "language", "")) for node in flow.nodes.values()
        if getattr(node, "type", None) == "language"}
    uses = set_name in languages
    names = set()
    for prompt in flow.prompt_names():
        if ":" in prompt:
            qualifier, bare = prompt.split(":", 1)
            if qualifier == set_name:
                names.add(bare)
                uses = True
        elif set_name in languages:
            names.add(prompt)
    return names if uses else None


def flows_for_set(set_name: str, configured_flow: Path) -> list[Path]:
    """The default flows to check an upload against: the configured flow, if it uses the set.

    A flow that cannot be read is returned too, so that the load reports why.
    """
    try:
        flow, _ = load_flow(configured_flow)
    except FlowError:
        return [configured_flow]
    return [configured_flow] if _names_for_set(flow, set_name) is not None else []


def _flow_prompt_names(
    set_name: str, flows: Sequence[Path]
) -> tuple[dict[str, list[str]], list[Problem]]:
    """Prompt name -> the flows that use it; and the flows that cannot be used."""
    required: dict[str, list[str]] = {}
    problems = []
    for path in flows:
        try:
            flow, _ = load_flow(Path(path))
        except FlowError as exc:
            first = exc.issues[0] if exc.issues else None
            detail = f" ({first.message})" if first else ""
            problems.append(Problem(str(path), f"the flow cannot be used{detail}"))
            continue
        names = _names_for_set(flow, set_name)
        if names is None:
            problems.append(Problem(str(path), f"is a flow for {flow.language!r}; it does not "
                                               f"use prompt set {set_name!r}"))
            continue
        for name in sorted(names):
            required.setdefault(name, []).append(str(path))
    return required, problems


# --- reading an upload -----------------------------------------------------------------------


def _ignored(parts: Sequence[str]) -> bool:
    return bool(parts) and (parts[0] in IGNORED_DIRS or parts[-1] in IGNORED_FILES)


def _unpack_zip(zpath: Path, dest: Path) -> list[Problem]:
    """Unpack a zip into ``dest``, refusing anything that could escape it or blow up."""
    label = zpath.name
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return [Problem(label, f"not a readable zip file ({exc})")]
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_FILES:
            return [Problem(label, f"{len(infos)} entries; an upload holds at most {MAX_FILES}")]
        problems: list[Problem] = []
        members: list[tuple[zipfile.ZipInfo, list[str]]] = []
        seen: set[tuple[str, ...]] = set()
        total = 0
        for info in infos:
            name = info.filename
            mode = info.external_attr >> 16
            norm = name.replace("\\", "/")
            parts = [p for p in norm.split("/") if p not in ("", ".")]
            if stat.S_ISLNK(mode):
                problems.append(Problem(name, "a symbolic link; an upload holds plain files"))
            elif norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
                problems.append(Problem(name, "an absolute path; zip entries must be "
                                              "relative to the upload"))
            elif ".." in parts:
                problems.append(Problem(name, "a path with '..' that would land outside the "
                                              "upload"))
            elif "\x00" in name or any(ord(c) < 32 for c in name):
                problems.append(Problem(repr(name), "control characters in the file name"))
            elif info.flag_bits & 0x1:
                problems.append(Problem(name, "encrypted; upload an unencrypted zip"))
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                problems.append(Problem(name, "not a plain file or folder"))
            elif info.is_dir() or not parts or _ignored(parts):
                continue
            elif info.file_size > MAX_FILE_BYTES:
                problems.append(Problem(name, f"unpacks to {_mb(info.file_size)}; a file may "
                                              f"hold at most {_mb(MAX_FILE_BYTES)}"))
            elif tuple(parts) in seen:
                problems.append(Problem(name, "appears twice in the zip"))
            else:
                seen.add(tuple(parts))
                members.append((info, parts))
            total += max(info.file_size, 0)
        if total > MAX_UPLOAD_BYTES:
            problems.append(Problem(label, f"unpacks to {_mb(total)}, more than the "
                                           f"{_mb(MAX_UPLOAD_BYTES)} an upload may hold "
                                           "(a zip bomb?)"))
        if problems:
            return problems
        # A zip of a folder: strip the one top-level folder.
        tops = {parts[0] for _, parts in members}
        if len(tops) == 1 and all(len(parts) > 1 for _, parts in members):
            members = [(info, parts[1:]) for info, parts in members]
        written = 0
        root = dest.resolve()
        for info, parts in members:
            target = dest.joinpath(*parts)
            if root not in target.resolve().parents:  # defence in depth; refused above
                problems.append(Problem(info.filename, "path leaves the upload"))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "xb") as out:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > MAX_UPLOAD_BYTES:
                            raise ValueError(f"unpacks to more than {_mb(MAX_UPLOAD_BYTES)}")
                        out.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
                    RuntimeError) as exc:
                problems.append(Problem(info.filename, f"cannot be unpacked ({exc})"))
                if written > MAX_UPLOAD_BYTES:
                    break
        return problems


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def _list_upload(src: Path) -> tuple[dict[str, Path], list[Problem]]:
    """The files of an upload directory by relative POSIX path (desktop junk left out)."""
    files: dict[str, Path] = {}
    problems = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        here = Path(dirpath)
        for d in list(dirnames):
            if (here / d).is_symlink():
                rel = (here / d).relative_to(src).as_posix()
                problems.append(Problem(rel, "a symbolic link; an upload holds plain files"))
                dirnames.remove(d)
        for f in filenames:
            p = here / f
            rel_path = p.relative_to(src)
            rel = rel_path.as_posix()
            if _ignored(rel_path.parts):
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                problems.append(Problem(rel, "a symbolic link; an upload holds plain files"))
            elif not stat.S_ISREG(st.st_mode):
                problems.append(Problem(rel, "not a plain file"))
            else:
                files[rel] = p
                total += st.st_size
    if len(files) > MAX_FILES:
        problems.append(Problem(src.name, f"{len(files)} files; an upload holds at most "
                                          f"{MAX_FILES}"))
    if total > MAX_UPLOAD_BYTES:
        problems.append(Problem(src.name, f"{_mb(total)}, more than the "
                                          f"{_mb(MAX_UPLOAD_BYTES)} an upload may hold"))
    return files, problems


@dataclass
class _Entry:
    name: str
    file: str
    line: int | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Manifest:
    language: str | None
    sample_rate_hz: int | None
    entries: list[_Entry]
    raw: dict[str, Any]


def _parse_manifest(
    text: str, set_name: str
) -> tuple[_Manifest | None, list[Problem]]:
    try:
        data, smap = parse_yaml(text, MANIFEST)
    except YamlError as exc:
        return None, [Problem(MANIFEST, str(exc).removeprefix(f"{MANIFEST}: "))]
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), dict) \
            or not data["prompts"]:
        return None, [Problem(MANIFEST, "a manifest is a mapping with a 'prompts' mapping of "
                                        "prompt name to {file: ...}; see prompts/README.md")]
    problems = []

    def where(*loc: str) -> str:
        line = smap.line_of(loc)
        return f"{MANIFEST}:{line}" if line else MANIFEST

    language = data.get("language")
    if language is not None and str(language) != set_name:
        problems.append(Problem(where("language"), f"language {language!r} is not the set "
                                                   f"being loaded ({set_name!r})"))
    rate = data.get("sample_rate_hz")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0):
        problems.append(Problem(where("sample_rate_hz"), f"sample_rate_hz {rate!r} is not a "
                                                         "rate in Hz"))
        rate = None
    entries = []
    files_seen: dict[str, str] = {}
    for name, entry in data["prompts"].items():
        w = where("prompts", str(name))
        if not isinstance(name, str) or not _PROMPT_NAME.match(name):
            problems.append(Problem(w, f"prompt name {name!r} must be letters, digits, '_' "
                                       "and '-' (quote names like 'yes' and 'no')"))
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            problems.append(Problem(w, f"prompt {name!r} has no 'file'"))
            continue
        fname = entry["file"]
        ext = PurePosixPath(fname).suffix.lower()
        if "/" in fname or "\\" in fname or fname in (".", "..") or not fname.strip():
            problems.append(Problem(w, f"prompt {name!r}: file {fname!r} must be a plain file "
                                       "name next to manifest.yaml"))
        elif ext not in AUDIO_FORMATS:
            problems.append(Problem(w, f"prompt {name!r}: {fname!r} is not a supported format "
                                       f"({', '.join(AUDIO_FORMATS.values())})"))
        elif fname in files_seen:
            problems.append(Problem(w, f"prompt {name!r}: file {fname} is already used by "
                                       f"prompt {files_seen[fname]!r}"))
        else:
            files_seen[fname] = name
            extra = {k: v for k, v in entry.items() if k in ("text", "generator")}
            entries.append(_Entry(name, fname, smap.line_of(("prompts", name)), extra))
    return _Manifest(None if language is None else str(language), rate, entries, data), problems


# --- audio checks and conversion --------------------------------------------------------------


def _pydub() -> Any:
    """pydub, imported quietly: it imports ``audioop``, deprecated since Python 3.11."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*audioop.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*ffmpeg.*", category=RuntimeWarning)
        import pydub
        import pydub.exceptions  # noqa: F401
    return pydub


def _require_tools() -> None:
    missing = [t for t in ("ffmpeg", "ffprobe") if shutil.which(t) is None]
    if missing:
        raise PromptStoreError(f"{' and '.join(missing)} not found: install ffmpeg "
                               "(apt-get install ffmpeg) to load prompt uploads")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no details"


@dataclass(frozen=True)
class _Probe:
    duration_s: float | None
    rate_hz: int | None
    codec: str | None = None  # ffprobe's codec name, when ffprobe was asked


def _probe(path: Path) -> _Probe:
    """Duration and rate from the file's header, without decoding it.

    Raises ValueError with the reason if the file is not audio.
    """
    if path.suffix.lower() == ".wav":
        try:
            with wave.open(str(path), "rb") as w:
                rate, frames = w.getframerate(), w.getnframes()
                align = w.getnchannels() * w.getsampwidth()
            if rate > 0 and align > 0:
                if frames in (0, 0xFFFFFFFF // align):  # a streamed WAV: no length in it
                    return _Probe(None, rate)
                return _Probe(frames / rate, rate)
        except (wave.Error, EOFError, OSError):
            pass  # not plain PCM (float, ADPCM ...) or damaged: ask ffprobe
    try:
        proc = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
             "stream=codec_name,sample_rate,duration:format=duration", "-of", "json", str(path)],
            capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ValueError("ffprobe took too long to read it") from exc
    if proc.returncode != 0:
        raise ValueError(f"ffprobe: {_last_line(proc.stderr).removeprefix(f'{path}: ')}")
    try:
        info = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError("ffprobe gave no answer") from exc
    streams = info.get("streams") or []
    if not streams:
        raise ValueError("no audio stream in it")

    def num(v: object) -> float | None:
        try:
            f = float(str(v))
        except ValueError:
            return None
        return f if math.isfinite(f) and f >= 0 else None

    duration = num(streams[0].get("duration")) or num(info.get("format", {}).get("duration"))
    stream_rate = num(streams[0].get("sample_rate"))
    codec = streams[0].get("codec_name")
    return _Probe(duration, int(stream_rate) if stream_rate else None,
                  codec if isinstance(codec, str) and _CODEC.match(codec) else None)


def _integer_pcm_wav(path: Path) -> bool:
    """A WAV of integer PCM samples (what Python's ``wave`` module reads)."""
    try:
        with wave.open(str(path), "rb"):
            return True
    except (wave.Error, EOFError, OSError):
        return False


def _decode(path: Path, codec: str | None = None) -> tuple[npt.NDArray[np.float64], int, int]:
    """Decode with pydub: (samples as floats in [-1, 1), frames x channels), rate, channels.

    ``codec`` (from ffprobe) is used for WAVs that are not integer PCM.
    """
    pydub = _pydub()
    try:
        if path.suffix.lower() == ".wav" and _integer_pcm_wav(path):
            with open(path, "rb") as fh:  # pydub's WAV reader leaves a file it opens unclosed
                seg = pydub.AudioSegment.from_file(fh, format="wav")
        elif path.suffix.lower() == ".wav":
            # Float, A-law, 24-bit extensible ... WAVs: pydub's own reader would take float
            # samples for integers, so ffmpeg decodes them (pydub does, given no file name);
            # naming the decoder makes it write 16-bit PCM (pydub would pick 8-bit for A-law).
            seg = pydub.AudioSegment.from_file(io.BytesIO(path.read_bytes()), codec=codec)
        else:
            seg = pydub.AudioSegment.from_file(str(path), format=path.suffix.lower()[1:])
    except pydub.exceptions.CouldntDecodeError as exc:
        raise ValueError(f"ffmpeg: {_last_line(str(exc)).removeprefix(f'{path}: ')}") from exc
    except (OSError, EOFError, ValueError, IndexError, KeyError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from exc
    width = int(seg.sample_width)
    channels = int(seg.channels)
    rate = int(seg.frame_rate)
    if width not in (1, 2, 4) or channels < 1 or rate <= 0:
        raise ValueError(f"unsupported audio layout ({8 * width}-bit, {channels} channels)")
    dtype = {1: np.int8, 2: np.int16, 4: np.int32}[width]
    raw = np.frombuffer(seg.raw_data, dtype=dtype)
    raw = raw[: raw.size - raw.size % channels]
    x = raw.astype(np.float64) / float(2 ** (8 * width - 1))
    return x.reshape(-1, channels), rate, channels


def _dbfs(power: float) -> float:
    return 10 * math.log10(power) if power > 0 else -math.inf


def _frame_power(mono: Samples, rate: int) -> tuple[Samples, int]:
    n = max(1, int(rate * _FRAME_S))
    frames = mono.size // n
    if frames == 0:
        return np.array([float(np.mean(mono**2))]) if mono.size else np.zeros(0), n
    power = np.mean(mono[: frames * n].reshape(frames, n) ** 2, axis=1)
    if mono.size > frames * n:  # the short last frame
        power = np.append(power, float(np.mean(mono[frames * n:] ** 2)))
    return power, n


def _smooth_at_least(n: int) -> int:
    """The smallest 2^a * 3^b * 5^c >= n."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def _resample(mono: Samples, from_hz: int, to_hz: int) -> Pcm16:
    """Convert to 16-bit at ``to_hz``: band-limited resampling in the frequency domain.

    Run once per prompt at load (not in the media path). The signal is padded with silence
    to a length whose spectrum maps exactly onto the new rate (and so that the FFT's wrap-around
    only meets silence); going down, a raised-cosine roll-off over the top 10 % of the new
    band replaces a brick-wall cut, to keep ringing low.
    """
    if from_hz == to_hz:
        same: Pcm16 = np.clip(np.round(mono * 32768.0), -32768, 32767).astype(np.int16)
        return same
    g = math.gcd(from_hz, to_hz)
    step_in, step_out = from_hz // g, to_hz // g
    pad = -(-int(0.05 * from_hz) // step_in) * step_in  # >= 50 ms each side
    blocks = _smooth_at_least(-(-(mono.size + 2 * pad) // step_in))  # 2^a 3^b 5^c: fast FFTs
    n_in, n_out = blocks * step_in, blocks * step_out
    padded = np.zeros(n_in)
    padded[pad:pad + mono.size] = mono
    spectrum = np.fft.rfft(padded)
    bins = n_out // 2 + 1
    if bins <= spectrum.size:  # down: keep the new band, with a roll-off at its top
        spectrum = spectrum[:bins].copy()
        freqs = np.arange(bins) / (bins - 1)  # 0 .. 1 = the new Nyquist
        edge = freqs > 0.9
        spectrum[edge] *= 0.5 + 0.5 * np.cos(np.pi * (freqs[edge] - 0.9) / 0.1)
    else:  # up: nothing above the old Nyquist
        spectrum = np.concatenate([spectrum, np.zeros(bins - spectrum.size, complex)])
    y = np.fft.irfft(spectrum, n_out) * (n_out / n_in)
    start = pad // step_in * step_out
    y = y[start:start + int(round(mono.size * to_hz / from_hz))]
    out: Pcm16 = np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)
    return out


def _check_and_convert(
    entry: _Entry, path: Path, declared_rate: int | None, out_dir: Path
) -> tuple[PromptReport | None, list[Problem]]:
    """Run every check on one file; if all pass write ``<name>.<rate>.wav`` for each rate."""
    f = entry.file
    fmt = AUDIO_FORMATS[path.suffix.lower()]
    size = path.stat().st_size
    if size == 0:
        return None, [Problem(f, "empty file (0 bytes)")]
    if size > MAX_FILE_BYTES:
        return None, [Problem(f, f"{_mb(size)}; a file may hold at most {_mb(MAX_FILE_BYTES)}")]
    try:
        probe = _probe(path)
    except ValueError as exc:
        return None, [Problem(f, f"cannot be decoded as audio: {exc}")]
    if probe.duration_s is not None and probe.duration_s > MAX_DURATION_S:
        return None, [Problem(f, f"{probe.duration_s:.1f} s long; a prompt may last at most "
                                 f"{MAX_DURATION_S:.0f} s")]
    if fmt == "WAV" and declared_rate and probe.rate_hz and probe.rate_hz != declared_rate:
        return None, [Problem(f, f"sample rate {probe.rate_hz} Hz, but manifest.yaml declares "
                                 f"sample_rate_hz: {declared_rate} (export the take at "
                                 f"{declared_rate} Hz, or remove sample_rate_hz from the "
                                 "manifest to have any rate converted)")]
    try:
        x, rate, channels = _decode(path, probe.codec)
    except ValueError as exc:
        return None, [Problem(f, f"cannot be decoded as audio: {exc}")]
    decoded_s = x.shape[0] / rate
    if probe.duration_s is not None and probe.duration_s - decoded_s > max(
            TRUNCATED_MIN_S, TRUNCATED_SHARE * probe.duration_s):
        return None, [Problem(f, f"truncated or damaged: its header says {probe.duration_s:.2f}"
                                 f" s but only {decoded_s:.2f} s can be decoded")]
    if decoded_s > MAX_DURATION_S:
        return None, [Problem(f, f"{decoded_s:.1f} s long; a prompt may last at most "
                                 f"{MAX_DURATION_S:.0f} s")]
    if decoded_s < MIN_DURATION_S:
        return None, [Problem(f, f"{decoded_s:.3f} s long; a prompt lasts at least "
                                 f"{MIN_DURATION_S} s")]
    problems = []
    clipped = float(np.count_nonzero(np.abs(x) >= CLIP_LEVEL)) / x.size
    if clipped > MAX_CLIPPED_SHARE:
        problems.append(Problem(f, f"clipped: {100 * clipped:.2f} % of the samples are at full "
                                   f"scale (at most {100 * MAX_CLIPPED_SHARE:.1f} % allowed); "
                                   "record or export it at a lower level"))
    mono: Samples = x.mean(axis=1) if channels > 1 else x[:, 0]
    power, n = _frame_power(mono, rate)
    loud = np.flatnonzero(power >= 10 ** (SILENCE_DBFS / 10))
    if loud.size == 0:
        problems.append(Problem(f, f"silent: no sound above {SILENCE_DBFS:.0f} dBFS"))
        return None, problems
    level = _dbfs(float(np.mean(power[loud])))
    peak = _dbfs(float(np.max(np.abs(mono)) ** 2))
    if level < MIN_LEVEL_DBFS:
        problems.append(Problem(f, f"too quiet: level {level:.1f} dBFS, below "
                                   f"{MIN_LEVEL_DBFS:.0f} dBFS"))
    elif level > MAX_LEVEL_DBFS:
        problems.append(Problem(f, f"too loud: level {level:.1f} dBFS, above "
                                   f"{MAX_LEVEL_DBFS:.0f} dBFS"))
    if problems:
        return None, problems
    first, last = int(loud[0]) * n, min(mono.size, (int(loud[-1]) + 1) * n)
    nonzero = np.flatnonzero(np.abs(mono[:first]) > DIGITAL_SILENCE / 32768)
    start = lead_end(first, int(nonzero[0]) if nonzero.size else first, rate,
                     MAX_LEAD_SILENCE_S)
    end = min(mono.size, last + int(round(MAX_EDGE_SILENCE_S * rate)))
    trimmed = mono[start:end]
    try:
        for to_hz in RATES_HZ:
            dst = out_dir / f"{entry.name}.{to_hz}.wav"
            write_wav_mono16(dst, _resample(trimmed, rate, to_hz), to_hz)
            with open(dst, "rb") as fh:
                os.fsync(fh.fileno())
    except (ValueError, OSError, MemoryError) as exc:
        return None, [Problem(f, f"cannot be converted: {exc}")]
    return PromptReport(
        name=entry.name, source=f, format=fmt, source_rate_hz=rate, channels=channels,
        duration_s=round(trimmed.size / rate, 3), trimmed_start_s=round(start / rate, 3),
        trimmed_end_s=round((mono.size - end) / rate, 3), level_dbfs=round(level, 1),
        peak_dbfs=round(peak, 1)), []


# --- loading an upload ----------------------------------------------------------------------


def _clean_stale(store_root: Path) -> None:
    now = time.time()
    for d in store_root.glob(".upload-*"):
        try:
            if now - d.stat().st_mtime > STALE_UPLOAD_S:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def _missing_parents(d: Path) -> list[Path]:
    out = []
    while not d.exists() and d != d.parent:
        out.append(d)
        d = d.parent
    return out


def load_upload(path: Path, set_name: str, flows: Sequence[Path], store_root: Path,
                *, workers: int | None = None) -> LoadReport:
    """Check and convert an upload (a directory or a zip); store it as a new active version.

    ``flows`` are the flows that use the set: every prompt they name must be in the
    manifest. On any problem :class:`PromptUploadError` lists them all and nothing changes.
    """
    check_set_name(set_name)
    path = Path(path)
    if not path.exists():
        raise PromptUploadError([Problem(str(path), "no such file or directory")])
    if not path.is_dir() and not zipfile.is_zipfile(path):
        raise PromptUploadError([Problem(path.name, "an upload is a directory or a zip file")])
    _require_tools()
    created = _missing_parents(store_root)
    store_root.mkdir(parents=True, exist_ok=True)
    _clean_stale(store_root)
    tmp = Path(tempfile.mkdtemp(prefix=f".upload-{set_name}-", dir=store_root))
    ok = False
    try:
        report = _validate(path, set_name, flows, tmp, workers)
        set_dir = store_root / set_name
        with _locked(set_dir):
            previous = active_version(set_name, store_root)
            version = max(_versions(set_dir), default=0) + 1
            vdir = set_dir / f"v{version}"
            _write_stored_manifest(tmp / "out", report, version)
            os.rename(tmp / "out", vdir)
            _fsync_dir(set_dir)
            _write_active(set_dir, version)
        ok = True
        return LoadReport(set_name, version, vdir, previous, report.upload, report.flows,
                          report.prompts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            for d in created:  # deepest first; only if still empty
                try:
                    d.rmdir()
                except OSError:
                    break


@dataclass
class _Validated:
    set_name: str
    upload: str
    flows: list[str]
    prompts: list[PromptReport]
    manifest: _Manifest


def _validate(path: Path, set_name: str, flows: Sequence[Path], tmp: Path,
              workers: int | None) -> _Validated:
    problems: list[Problem] = []
    if path.is_dir():
        src = path
    else:
        src = tmp / "src"
        src.mkdir()
        problems = _unpack_zip(path, src)
        if problems:
            raise PromptUploadError(problems)
    files, problems = _list_upload(src)
    if problems:
        raise PromptUploadError(problems)
    if MANIFEST not in files:
        hint = ""
        nested = sorted(r for r in files if r.endswith("/" + MANIFEST))
        if nested:
            hint = f" (found {nested[0]}; it must be at the top of the upload)"
        raise PromptUploadError([Problem(MANIFEST, f"missing: an upload needs a manifest.yaml "
                                                   f"next to its audio files{hint}")])
    try:
        text = files[MANIFEST].read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PromptUploadError([Problem(MANIFEST, "not UTF-8 text")]) from None
    manifest, problems = _parse_manifest(text, set_name)
    required, flow_problems = _flow_prompt_names(set_name, flows)
    problems += flow_problems
    if manifest is None:
        raise PromptUploadError(problems)
    names = {e.name for e in manifest.entries}
    for prompt, users in sorted(required.items()):
        if prompt not in names:
            problems.append(Problem(MANIFEST, f"prompt {prompt!r} is missing: flow "
                                              f"{', '.join(users)} uses it"))
    referenced = {e.file for e in manifest.entries}
    lower = {r.lower(): r for r in files}
    todo = []
    for e in manifest.entries:
        if e.file in files:
            todo.append(e)
            continue
        other = lower.get(e.file.lower())
        hint = f" (the upload has {other}; names are case-sensitive)" if other else ""
        where = f"{MANIFEST}:{e.line}" if e.line else MANIFEST
        problems.append(Problem(where, f"prompt {e.name!r}: file {e.file} is missing from the "
                                       f"upload{hint}"))
    for rel in sorted(files):
        if rel != MANIFEST and rel not in referenced:
            problems.append(Problem(rel, "unknown file: manifest.yaml does not name it"))
    out = tmp / "out"
    out.mkdir()
    def check(e: _Entry) -> tuple[PromptReport | None, list[Problem]]:
        try:
            return _check_and_convert(e, files[e.file], manifest.sample_rate_hz, out)
        except Exception as exc:  # untrusted input: report it against the file, go on
            return None, [Problem(e.file, f"cannot be checked ({type(exc).__name__}: {exc})")]

    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(check, todo))
    reports = []
    for report, file_problems in results:
        problems += file_problems
        if report is not None:
            reports.append(report)
    if problems:
        raise PromptUploadError(problems)
    shutil.copyfile(files[MANIFEST], out / SOURCE_MANIFEST)
    return _Validated(set_name, str(path.resolve()), [str(f) for f in flows], reports, manifest)


def _write_stored_manifest(out: Path, v: _Validated, version: int) -> None:
    by_name = {e.name: e for e in v.manifest.entries}
    prompts: dict[str, Any] = {}
    for r in v.prompts:
        prompts[r.name] = {
            **by_name[r.name].extra,
            "source": r.source,
            "format": r.format,
            "source_rate_hz": r.source_rate_hz,
            "channels": r.channels,
            "duration_s": r.duration_s,
            "level_dbfs": r.level_dbfs,
            "peak_dbfs": r.peak_dbfs,
            "trimmed_start_s": r.trimmed_start_s,
            "trimmed_end_s": r.trimmed_end_s,
            "files": {rate: f"{r.name}.{rate}.wav" for rate in RATES_HZ},
        }
    data = {
        "language": v.manifest.language or v.set_name,
        "version": version,
        "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "upload": v.upload,
        "flows": v.flows,
        "rates_hz": list(RATES_HZ),
        "prompts": prompts,
    }
    header = ("# Written by 'ivr prompts load'; do not edit. The manifest as uploaded is "
              f"{SOURCE_MANIFEST}.\n")
    target = out / MANIFEST
    with open(target, "w", encoding="utf-8") as fh:
        fh.write(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(out)


__all__ = [
    "ACTIVE",
    "LoadReport",
    "Problem",
    "PromptReport",
    "PromptStoreError",
    "PromptUploadError",
    "RATES_HZ",
    "VersionInfo",
    "activate",
    "active_dir",
    "active_sets",
    "active_version",
    "check_set_name",
    "flows_for_set",
    "list_sets",
    "list_versions",
    "load_upload",
    "rollback",
    "store_root_for",
    "stored_files",
]

