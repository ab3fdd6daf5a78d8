"""API keys: named, stored as SHA-256 hashes, compared in constant time.

Keys come from ``Settings.auth.api_keys`` (plain keys in the environment; each gets the name
``key-<first 8 hex digits of its hash>``) and from ``Settings.auth.keys_file``, a JSON file::

    {"keys": [{"name": "alice", "sha256": "<hex>", "requests_per_minute": 100,
               "audio_seconds_per_minute": 600, "max_streams": 2}]}

where the limits are optional per-key overrides of the server-wide defaults. ``audio-service keys
add NAME`` creates a key, prints it once and stores only its hash. Logs and metrics carry the
key's *name*, never the key. The file is re-read when it changes, so added keys work without a
restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from audio_service.errors import AuthenticationError

ANONYMOUS = "anonymous"
RELOAD_CHECK_S = 1.0  # how often the keys file's modification time is looked at


@dataclass(frozen=True)
class KeyIdentity:
    """Who is calling: the key's name and its own limits (None = the server-wide default)."""

    name: str
    requests_per_minute: int | None = None
    audio_seconds_per_minute: float | None = None
    max_streams: int | None = None


@dataclass(frozen=True)
class _StoredKey:
    digest: bytes
    identity: KeyIdentity


def hash_key(key: str) -> str:
    """The hex SHA-256 of a key, as stored in the keys file."""
    return hashlib.sha256(key.encode()).hexdigest()


def _entry_identity(entry: dict) -> KeyIdentity:
    return KeyIdentity(
        name=str(entry["name"]),
        requests_per_minute=entry.get("requests_per_minute"),
        audio_seconds_per_minute=entry.get("audio_seconds_per_minute"),
        max_streams=entry.get("max_streams"),
    )


def read_keys_file(path: Path) -> list[dict]:
    """The entries of a keys file (an absent file has none)."""
    if not path.exists():
        return []
    data = json.loads(path.read_text() or "{}")
    entries = data.get("keys", [])
    for e in entries:
        if not isinstance(e, dict) or "name" not in e or len(str(e.get("sha256", ""))) != 64:
            raise ValueError(f"{path}: every key needs a 'name' and a 64-hex-digit 'sha256'")
    return entries


def add_key(path: Path, name: str, **limits: float | int | None) -> str:
    """Create a key named ``name``, store its hash (and any limits) in ``path``; return the key."""
    entries = read_keys_file(path)
    if any(e["name"] == name for e in entries):
        raise ValueError(f"a key named {name!r} already exists in {path}")
    key = "as-" + secrets.token_urlsafe(32)
    entry: dict = {"name": name, "sha256": hash_key(key)}
    entry.update({k: v for k, v in limits.items() if v is not None})
    entries.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"keys": entries}, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)  # atomic: a running server never reads half a file
    return key


class KeyStore:
    """The accepted keys; :meth:`authenticate` maps a presented key to its :class:`KeyIdentity`."""

    def __init__(self, plain_keys: list[str], keys_file: Path | None = None) -> None:
        self._env = [self._stored_plain(k) for k in plain_keys]
        self._file = keys_file
        self._file_keys: list[_StoredKey] = []
        self._mtime: float | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._reload()

    @staticmethod
    def _stored_plain(key: str) -> _StoredKey:
        digest = hash_key(key)
        return _StoredKey(bytes.fromhex(digest), KeyIdentity(f"key-{digest[:8]}"))

    def _reload(self) -> None:
        if self._file is None:
            return
        try:
            mtime = self._file.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return
        entries = read_keys_file(self._file)
        self._file_keys = [_StoredKey(bytes.fromhex(e["sha256"]), _entry_identity(e)) for e in entries]
        self._mtime = mtime

    def _keys(self) -> list[_StoredKey]:
        now = time.monotonic()
        if self._file is not None and now - self._checked_at >= RELOAD_CHECK_S:
            with self._lock:
                self._checked_at = now
                self._reload()
        return self._env + self._file_keys

    @property
    def open(self) -> bool:
        """No key configured: everyone is the anonymous caller."""
        return not self._keys()

    def identify(self, presented: str | None) -> KeyIdentity | None:
        """The identity of ``presented``; anonymous on an open server; None for a missing or wrong key."""
        keys = self._keys()
        if not keys:
            return KeyIdentity(ANONYMOUS)
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for stored in keys:  # compare with every key: the time taken says nothing about which matched
            if hmac.compare_digest(digest, stored.digest):
                found = stored.identity
        return found

    def authenticate(self, presented: str | None) -> KeyIdentity:
        """Like :meth:`identify`, but raise :class:`AuthenticationError` for a missing or wrong key."""
        identity = self.identify(presented)
        if identity is None:
            if not presented:
                raise AuthenticationError("Missing API key: send 'Authorization: Bearer <key>'.")
            raise AuthenticationError("Incorrect API key provided.")
        return identity
