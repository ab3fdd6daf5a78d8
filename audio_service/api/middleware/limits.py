"""ASGI middleware that stops reading a request body once it exceeds the upload limit."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audio_service.api.errors import error_response
from audio_service.errors import PayloadTooLargeError

# Multipart framing and the small form fields travel beside the file itself.
FORM_OVERHEAD_BYTES = 1 << 20


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.limit = max_bytes + FORM_OVERHEAD_BYTES
        self.max_bytes = max_bytes

    def _error(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(f"The request body exceeds the {self.max_bytes}-byte upload limit.", param="file")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            # Refuse before reading anything: the client learns at once and we spool nothing.
            await error_response(self._error())(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # chunked upload without Content-Length
                    raise self._error()
            return message

        await self.app(scope, limited_receive, send)
