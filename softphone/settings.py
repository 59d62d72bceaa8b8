"""The agent's softphone settings, per user, in the platform's config location
(``platformdirs``: ``~/.config/callcenter-softphone/settings.json`` on Linux,
``%APPDATA%`` on Windows, ``~/Library/Application Support`` on macOS), and the password in
the system keyring when there is one; without a keyring it is not stored at all (asked for
at each sign-in)."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("softphone.settings")

APP = "callcenter-softphone"
KEYRING_SERVICE = "callcenter-softphone"

DEFAULT_HOTKEYS = {"answer": "Ctrl+Return", "hang_up": "Ctrl+E", "mute": "Ctrl+M",
                   "hold": "Ctrl+H", "ready": "Ctrl+R", "not_ready": "Ctrl+N"}


@dataclass
class Settings:
    server: str = "http://127.0.0.1:8080"
    sip: str = "127.0.0.1:5060"
    agent_id: str = ""
    microphone: str = ""  # device names, as PortAudio lists them
    speaker: str = ""
    ring_device: str = ""
    auto_answer_s: float | None = None
    hotkeys: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_HOTKEYS))


def config_dir() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP, appauthor=False))


def load(path: Path | None = None) -> Settings:
    path = path or config_dir() / "settings.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Settings()
    except ValueError as exc:
        log.warning("%s is not valid JSON (%s): using the defaults", path, exc)
        return Settings()
    known = {f.name for f in dataclasses.fields(Settings)}
    settings = Settings(**{k: v for k, v in data.items() if k in known})
    settings.hotkeys = {**DEFAULT_HOTKEYS, **settings.hotkeys}
    return settings


def save(settings: Settings, path: Path | None = None) -> Path:
    path = path or config_dir() / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(settings), indent=2, sort_keys=True))
    tmp.replace(path)
    return path


def _keyring() -> Any | None:
    """The system keyring, or None when there is none (keyring's fail/null backends)."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or "null" in type(backend).__module__:
        return None
    return keyring


def store_password(agent_id: str, server: str, password: str) -> bool:
    """True if stored in the keyring; False (and nothing stored anywhere) without one."""
    ring = _keyring()
    if ring is None:
        return False
    ring.set_password(KEYRING_SERVICE, f"{agent_id}@{server}", password)
    return True


def stored_password(agent_id: str, server: str) -> str | None:
    ring = _keyring()
    if ring is None:
        return None
    value = ring.get_password(KEYRING_SERVICE, f"{agent_id}@{server}")
    return str(value) if value is not None else None
