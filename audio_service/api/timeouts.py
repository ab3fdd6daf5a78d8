"""Deadlines for slow and stuck HTTP clients (slowloris), which uvicorn alone does not bound.

* :func:`header_timeout_protocol`: the request line and headers must arrive within
  ``request_header_timeout_s`` of the connection opening (or of a later request's first byte); a client
  that trickles its headers is answered 408 and disconnected. uvicorn only times out a keep-alive
  connection that sends nothing at all, and only after a first request.
* :class:`BodyTimeoutMiddleware`: the request body must keep coming (no pause longer than
  ``upload_idle_timeout_s``) and be complete within ``upload_timeout_s``; otherwise the request fails
  with 408 and the error body, and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from audio_service.api.errors import error_body
from audio_service.errors import CloseCode, ServiceError


class RequestTimeoutError(ServiceError):
    """The client took too long to send its request."""

    status_code = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"
    close_code = CloseCode.POLICY


def _timeout_response(message: str) -> bytes:
    body = json.dumps(error_body(message, RequestTimeoutError.error_type, None, RequestTimeoutError.default_code)).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def header_timeout_protocol(timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline on each request's line and headers."""

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            # No request is running (its headers never completed), so the socket is ours to answer.
            self.transport.write(_timeout_response(f"The request headers did not arrive within {timeout_s:g} s."))
            self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn declares it
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:  # a later request on a kept-alive connection: from its first byte
                self._arm()  # (an idle kept-alive connection is closed by uvicorn's timeout_keep_alive)

    return HeaderTimeoutProtocol


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


def stuck_reader_ws_protocol() -> type:
    """uvicorn's WebSocket protocol, except that closing a client that reads nothing drops the connection.

    uvicorn waits for the transport to become writable before sending the close frame, and a plain
    transport close flushes the unread buffer first: for a client that stopped reading, both wait
    forever. Here the close of such a client (its TCP window full, our buffer over the high-water
    mark) aborts the connection instead; a reading client gets the normal close handshake.
    """
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    base: type = AutoWebSocketsProtocol  # type: ignore[assignment]

    class StuckReaderProtocol(base):
        async def send(self, message) -> None:
            writable = getattr(self, "writable", None)
            stuck = isinstance(writable, asyncio.Event) and not writable.is_set()
            if message["type"] == "websocket.close" and stuck and getattr(self, "handshake_complete", False):
                self.transport.abort()  # connection_lost() then tells the app's receive() it is gone
                return
            await super().send(message)

    return StuckReaderProtocol
