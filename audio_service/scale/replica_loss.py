"""The Serve proxy's middleware for a replica that dies under a request or a stream (Ray Serve only).

Installed in Ray Serve's HTTP proxy through ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``
(``audio_service.scale.ray_serve:proxy_middlewares``); it wraps the proxy's ASGI app, which sends each request
to a replica. When that replica's process dies, the proxy ends the request without an answer (the
client would see a bare 500, or a WebSocket dropped with 1006). Instead:

- an HTTP request whose response had not started is sent once more (Serve's router picks a live
  replica): its body was kept as it went through (in memory up to 1 MB, then in a temporary file, up to
  ``RETRY_BODY_BYTES``). A second loss, or a larger body, is answered 503 ``replica_lost`` with
  ``Retry-After``. Only once: a request that itself kills replicas (a crashing input) costs at most two.
- a WebSocket stream gets an error message and close code 1014: its audio not yet answered final is
  gone with the replica's memory, and the client reconnects (a new stream goes to a live replica).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audio_service.errors import CloseCode, ServiceError

log = logging.getLogger(__name__)
RETRY_BODY_BYTES = 256 << 20  # bodies kept for a retry (spooled to disk above SPOOL_MEMORY_BYTES)
SPOOL_MEMORY_BYTES = 1 << 20
REPLAY_CHUNK = 1 << 20
RETRY_AFTER_S = 2  # Serve notices a dead replica and routes around it within about a second


class ReplicaLostError(ServiceError):
    status_code = 503
    default_code = "replica_lost"
    close_code = CloseCode.REPLICA_LOST


class _KeptBody:
    """The request body as the proxy reads it, kept so the request can be sent again."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
        self.size = 0
        self.complete = False  # the last body message has been read from the client
        self.disconnected = False

    @property
    def replayable(self) -> bool:
        return not self.disconnected and self.size <= RETRY_BODY_BYTES

    async def receive(self) -> Message:
        """The client's next message, kept on the way (the first attempt's ``receive``)."""
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        elif message["type"] == "http.request":
            body = message.get("body", b"")
            self.size += len(body)
            if self.size <= RETRY_BODY_BYTES:
                self._file.write(body)  # page-cache writes: no real wait on the proxy's event loop
            elif not self._file.closed:
                self._file.close()  # too large to send again: give the space back now
            self.complete = not message.get("more_body", False)
        return message

    def replay(self) -> Receive:
        """A ``receive`` that gives the kept body again, then goes on reading the client."""
        self._file.seek(0)
        done = False

        async def receive() -> Message:
            nonlocal done
            if not done:
                chunk = self._file.read(REPLAY_CHUNK)
                last = self._file.tell() >= self.size
                if not last or self.complete:
                    done = last
                    return {"type": "http.request", "body": chunk, "more_body": not last}
                done = True
                if chunk:  # the kept part; the rest is still with the client
                    return {"type": "http.request", "body": chunk, "more_body": True}
            return await self.receive()

        return receive

    def close(self) -> None:
        self._file.close()


class ReplicaLossMiddleware:
    """See the module docstring: a retry for HTTP requests, error and 1014 for streams."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._stream(scope, receive, send)
        elif scope["type"] == "http":
            await self._request(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _request(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = _KeptBody(receive)
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started |= message["type"] == "http.response.start"
            await send(message)

        try:
            for attempt in range(2):
                await self._attempt(scope, body.receive if attempt == 0 else body.replay(), watched_send)
                # the proxy answers everything itself (errors included) unless the replica died under the request
                if started or body.disconnected or not body.replayable:
                    break
                if attempt == 0:
                    log.warning("%s %s: its replica was lost before answering; sent again", scope["method"], scope["path"])
            if not started and not body.disconnected:
                await _lost_response("The replica serving this request stopped before answering. Retry it.")(scope, receive, send)
        finally:
            body.close()

    async def _attempt(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception:  # noqa: BLE001 - the replica call failed: retried or answered by the caller
            log.warning("a request's replica failed", exc_info=True)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = {"accepted": False, "closed": False}

        async def watched_receive() -> Message:
            message = await receive()
            state["closed"] |= message["type"] == "websocket.disconnect"
            return message

        async def watched_send(message: Message) -> None:
            state["accepted"] |= message["type"] == "websocket.accept"
            state["closed"] |= message["type"] == "websocket.close"
            await send(message)

        try:
            await self.app(scope, watched_receive, watched_send)
        except Exception:  # noqa: BLE001 - the replica call failed: report it below like a silent end
            log.warning("a stream's replica failed", exc_info=True)
        if state["accepted"] and not state["closed"]:
            err = ReplicaLostError(
                "The replica serving this stream stopped; audio not yet answered final was lost. Reconnect: a new "
                "stream goes to a healthy replica."
            )
            with contextlib.suppress(Exception):  # the client may be gone too
                await send({"type": "websocket.send", "text": json.dumps(err.body())})
                await send({"type": "websocket.close", "code": int(ReplicaLostError.close_code), "reason": "replica_lost"})


def _lost_response(message: str) -> JSONResponse:
    """The service's error body (``ServiceError.body``), 503 with ``Retry-After``."""
    err = ReplicaLostError(message)
    return JSONResponse(err.body(), status_code=err.status_code, headers={"Retry-After": str(RETRY_AFTER_S)})
