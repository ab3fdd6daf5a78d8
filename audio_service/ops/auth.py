"""API-key checks shared by the HTTP routes and the WebSocket endpoint."""

from __future__ import annotations


def key_from_authorization(value: str | None) -> str | None:
    """``Bearer KEY`` or a raw ``KEY`` (the reference API accepts both)."""
    if not value:
        return None
    value = value.strip()
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    return value or None
