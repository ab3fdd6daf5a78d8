"""Which server process answered: the ``x-audio-service-replica`` header on every response.

On one machine it is ``<hostname>:<pid>``; under Ray Serve each replica sets ``server.replica_name`` to its
Serve replica id, so operators and tests can see how requests and streams spread. HTTP responses
carry it as a header, WebSocket streams in the handshake's accept headers (before any message).
"""

from __future__ import annotations

import os
import socket

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audio_service.settings import Settings

REPLICA_HEADER = "x-audio-service-replica"


def replica_name(settings: Settings) -> str:
    """The configured name, else ``<hostname>:<pid>`` (unique per process on a machine)."""
    return settings.server.replica_name or f"{socket.gethostname()}:{os.getpid()}"


class ReplicaHeaderMiddleware:
    """Pure ASGI (streamed responses and WebSockets pass through untouched apart from the header)."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.value = name.encode("latin-1", "replace")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_name(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REPLICA_HEADER] = self.value.decode("latin-1")
            elif message["type"] == "websocket.accept":
                message = {**message, "headers": [*message.get("headers", []), (REPLICA_HEADER.encode(), self.value)]}
            await send(message)

        await self.app(scope, receive, send_with_name)
