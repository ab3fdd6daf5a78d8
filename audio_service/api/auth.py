"""API-key checks shared by the HTTP routes and the WebSocket endpoint."""

from __future__ import annotations

import hmac

from audio_service.errors import AuthenticationError


def key_from_authorization(value: str | None) -> str | None:
    """``Bearer KEY`` or a raw ``KEY`` (the reference API accepts both)."""
    if not value:
        return None
    value = value.strip()
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    return value or None


def check_api_key(presented: str | None, accepted: list[str]) -> str | None:
    """Return the caller's key (None on an open server); raise :class:`AuthenticationError` if wrong."""
    if not accepted:
        return None
    if presented is None:
        raise AuthenticationError("Missing API key: send 'Authorization: Bearer <key>'.")
    # compare_digest against every key: timing does not reveal which prefix matched
    if not any(hmac.compare_digest(presented.encode(), k.encode()) for k in accepted):
        raise AuthenticationError("Incorrect API key provided.")
    return presented
