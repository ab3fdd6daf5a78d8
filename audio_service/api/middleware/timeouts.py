"""The request body's deadlines: it must keep coming (no pause longer than ``server.upload_idle_timeout_s``)
and be complete within ``server.upload_timeout_s``; otherwise the request fails with 408 and the error body,
and the connection is closed. (The request line's and headers' deadline is uvicorn's protocol:
:func:`audio_service.server.protocols.header_timeout_protocol`.)"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audio_service.errors import RequestTimeoutError


class BodyTimeoutMiddleware:
    """Fail a request with 408 when its body pauses longer than ``idle_s`` or takes longer than ``total_s``."""

    def __init__(self, app: ASGIApp, idle_s: float, total_s: float) -> None:
        self.app = app
        self.idle_s = idle_s
        self.total_s = total_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_s
        body_done = False
        timed_out = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done:  # afterwards receive() only waits for a disconnect: never time that out
                return await receive()
            left = deadline - loop.time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(min(self.idle_s, left), 0.0))
            except asyncio.TimeoutError:
                timed_out = True
                what = f"paused for more than {self.idle_s:g} s" if left > self.idle_s else f"took longer than {self.total_s:g} s"
                raise RequestTimeoutError(f"The request body {what}; send it faster.") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def closing_send(message: Message) -> None:
            if timed_out and message["type"] == "http.response.start":
                # The rest of the body is never read: the connection cannot carry another request.
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, timed_receive, closing_send)
