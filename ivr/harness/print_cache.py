"""A disk cache of the prompt sets' fingerprints, so that a harness start does not redo them.

Fingerprinting the 181 shipped prompts takes about 1.5 s of CPU, at every ``ivr-harness``
start (and a load run's warm parent is one). The cache keeps, per prompt set (one file per
``manifest.yaml``), each prompt's fingerprint under a key of its WAV's path, size and
modification time and of the fingerprint's parameters (:data:`fingerprint.VERSION`): a WAV
replaced, or a fingerprint computed another way, is computed afresh. The cache is only an
aid: one that cannot be read is ignored, one that cannot be written is not written.

It lives in ``$XDG_CACHE_HOME/ivr-harness`` (``~/.cache/ivr-harness``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from . import fingerprint as fp
from .fingerprint import Fingerprint


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ivr-harness"


def wav_key(wav: Path) -> str:
    """What a cached fingerprint of ``wav`` is valid for (empty: the file cannot be read)."""
    try:
        st = wav.stat()
    except OSError:
        return ""
    return f"{fp.VERSION}|{wav.resolve()}|{st.st_size}|{st.st_mtime_ns}"


class PrintCache:
    """The cached fingerprints of one prompt set; :meth:`save` writes new ones back."""

    def __init__(self, cache_dir: Path | None, manifest: Path) -> None:
        self._path: Path | None = None
        # per WAV: its print, and where its sound begins (media.pcm.sound_start)
        self._prints: dict[str, tuple[Fingerprint, int]] = {}
        self._dirty = False
        if cache_dir is None:
            return
        digest = hashlib.sha1(str(manifest.resolve()).encode()).hexdigest()[:16]
        self._path = cache_dir / f"prints-{digest}.npz"
        try:
            with np.load(self._path, allow_pickle=False) as data:
                keys = [str(k) for k in data["keys"]]
                for i, key in enumerate(keys):
                    start, sound = (int(x) for x in data[f"s{i}"])
                    self._prints[key] = (Fingerprint(data[f"b{i}"].astype(np.uint16),
                                                     data[f"v{i}"].astype(bool), start), sound)
        except (OSError, ValueError, KeyError, EOFError):
            self._prints = {}  # no cache yet, or one we cannot read: computed afresh

    def get(self, key: str) -> tuple[Fingerprint, int] | None:
        """The print of the WAV ``key`` names and the sample its sound begins at."""
        return self._prints.get(key) if key else None

    def put(self, key: str, print_: Fingerprint, sound_sample: int) -> None:
        if key:
            self._prints[key] = (print_, sound_sample)
            self._dirty = True

    def save(self, keep: set[str]) -> None:
        """Write the fingerprints of ``keep`` (this load's keys) when any was new."""
        if self._path is None or not self._dirty:
            return
        kept = [k for k in self._prints if k in keep]
        arrays: dict[str, np.ndarray] = {"keys": np.array(kept, dtype=str)}
        for i, key in enumerate(kept):
            print_, sound = self._prints[key]
            arrays[f"b{i}"] = print_.bits
            arrays[f"v{i}"] = print_.voiced
            arrays[f"s{i}"] = np.array([print_.start_sample, sound], dtype=np.int64)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, suffix=".npz")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, self._path)
        except OSError:
            return  # a read-only cache: the next start computes them again
