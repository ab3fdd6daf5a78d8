"""uvicorn's protocols, bounded against slow and stuck clients (slowloris), which uvicorn alone does not bound.

* :func:`header_timeout_protocol`: the request line and headers must arrive within
  ``server.request_header_timeout_s`` of the connection opening (or of a later request's first byte); a client
  that trickles its headers is answered 408 and disconnected. uvicorn only times out a keep-alive
  connection that sends nothing at all, and only after a first request.
* :func:`stuck_reader_ws_protocol`: closing a WebSocket client that reads nothing drops the connection.

The request body's deadlines are :class:`audio_service.api.middleware.timeouts.BodyTimeoutMiddleware`.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from audio_service.errors import RequestTimeoutError, error_body


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
