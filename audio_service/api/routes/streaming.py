"""``WS /v1/audio/transcriptions/streaming``: WebSocket I/O only.

Accept, authenticate (``Authorization`` header, raw or Bearer, or an ``Authorization`` query
parameter, since browsers cannot set WebSocket headers), enforce the per-key stream limit, then
pump frames into the session and the session's messages out. Errors are sent as
``{"error": {...}}`` followed by the close code the error carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from audio_service.api.deps import Services
from audio_service.api.middleware.requests import request_id_from
from audio_service.api.stream_ops import StreamMonitor
from audio_service.api.stream_setup import default_vad, partial_model, session_config
from audio_service.errors import CloseCode, InvalidRequestError, OverloadedError, ServiceError
from audio_service.extras import require
from audio_service.ops.auth import key_from_authorization
from audio_service.schema import SAMPLE_RATE
from audio_service.settings import Settings
from audio_service.streaming.engine import StreamingEngine
from audio_service.streaming.protocol import (
    StreamFinishedError,
    StreamLagError,
    close_code_for,
    error_message,
    parse_audio_frame,
    parse_client_text,
    parse_options,
)
from audio_service.streaming.session import StreamSession

log = logging.getLogger(__name__)
router = APIRouter()
BACK_PRESSURE_MAX_WAIT_S = 60.0
QUOTA_FLUSH_TIMEOUT_S = 60.0  # a stream over its audio budget: time to transcribe what was accepted
MAX_OUTBOUND = 1000  # messages queued for a client that does not read; more closes the stream


@dataclass(frozen=True)
class _Close:
    error: ServiceError
    code: int


@router.websocket("/v1/audio/transcriptions/streaming")
async def transcribe_stream(ws: WebSocket) -> None:
    """Real-time transcription of 16 kHz mono PCM16LE frames; see docs/streaming.md for the protocol."""
    services: Services = ws.app.state.services
    s = services.settings
    ops = services.ops
    monitor = StreamMonitor(ops, request_id_from(ws.headers.get("x-request-id")))
    # accept first: errors are reported as a message, then a close code
    await ws.accept(headers=[(b"x-request-id", monitor.request_id.encode())])
    engine, limiter = services.streaming.engine, services.streaming.limiter
    try:
        if ops.drain.draining:
            raise ops.drain.error()
        who = monitor.who = ops.keys.authenticate(
            key_from_authorization(ws.headers.get("authorization") or ws.query_params.get("Authorization"))
        )
        options = parse_options(ws.query_params, default_vad(s.streaming), s.streaming.text_timeout_s)
        if options.diarize:
            require("diarization", param="diarize")  # closes with 1003, naming the extra
        model = await asyncio.to_thread(services.registry.get, options.model, stream=True)
        draft = await asyncio.to_thread(partial_model, services, model)
        await ops.quotas.check_audio(who)
        lease = await limiter.acquire(who.name, ops.quotas.streams_limit(who))
    except ServiceError as exc:
        await _reject(ws, exc, monitor=monitor)
        monitor.finished()
        return
    monitor.opened(model.spec.id)
    try:  # the lease is released whatever happens from here on
        tracker = services.streaming.speaker_trackers() if options.diarize else None
        await _serve(ws, engine, options, (model, draft), tracker, s, monitor)
    finally:
        await limiter.release(lease)
        monitor.finished()


async def _serve(ws: WebSocket, engine: StreamingEngine, options, models, tracker, s: Settings, monitor: StreamMonitor) -> None:
    model, draft = models
    loop = asyncio.get_running_loop()
    out: asyncio.Queue[Any] = asyncio.Queue()

    def put(message: Any) -> None:  # runs on the event loop
        if monitor.intercept(message):
            return
        if out.qsize() == MAX_OUTBOUND:
            out.put_nowait(_Close(OverloadedError("The client does not read its messages."), CloseCode.POLICY))
        elif out.qsize() < MAX_OUTBOUND:
            out.put_nowait(message)

    session = StreamSession(
        options, model, session_config(s.streaming), lambda m: loop.call_soon_threadsafe(put, m), tracker, draft
    )
    monitor.decode_s = lambda: engine.decode_seconds(session)
    monitor.lag_s = session.lag_s
    engine.add(session)
    sender = asyncio.create_task(_send_loop(ws, out, monitor, s.streaming.send_timeout_s))
    try:
        close = await _receive_loop(ws, engine, session, s, sender, monitor)
        if close is not None:
            out.put_nowait(close)
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(sender), timeout=5)
    finally:
        engine.remove(session)
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender


async def _receive_loop(
    ws: WebSocket, engine: StreamingEngine, session: StreamSession, s: Settings, sender, monitor: StreamMonitor
) -> _Close | None:
    """Feed frames to the session until the client leaves or the stream must stop; return how to close."""
    stop = asyncio.ensure_future(monitor.stop.wait())  # set when the server drains
    try:
        while not sender.done():
            recv = asyncio.ensure_future(ws.receive())
            await asyncio.wait({recv, stop}, timeout=s.streaming.idle_timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if not recv.done():
                recv.cancel()  # safe: an unread frame stays unread (not accepted, so nothing is lost)
                if stop.done():
                    return await _flush(
                        engine, session, monitor, monitor.ops.drain.error(), CloseCode.SERVICE_RESTART, s.server.shutdown_grace_s
                    )
                err = InvalidRequestError(
                    f"No frame for {s.streaming.idle_timeout_s:.0f} s: closing the idle stream.", code="idle_timeout"
                )
                return _Close(err, CloseCode.NORMAL)
            close = await _handle_frame(recv, engine, session, s, monitor)
            if close is not False:
                return close
    finally:
        stop.cancel()
    return None


async def _flush(
    engine: StreamingEngine, session: StreamSession, monitor: StreamMonitor, err: ServiceError, code: int, timeout: float
) -> _Close:
    """Transcribe all accepted audio and send its segments final, then close with ``code``."""
    await engine.mark(session, monitor.flush_checkpoint())
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(monitor.flushed.wait(), timeout)
    return _Close(err, code)


async def _handle_frame(
    recv: asyncio.Future, engine: StreamingEngine, session: StreamSession, s: Settings, monitor: StreamMonitor
):
    """One received message: False to go on, None when the client left, or how to close."""
    try:
        msg = recv.result()
    except (WebSocketDisconnect, RuntimeError):
        return None
    if msg["type"] == "websocket.disconnect":
        monitor.closed(int(msg.get("code") or 1000), sent=False)
        return None
    try:
        if msg.get("bytes") is not None:
            if session.finished:
                raise StreamFinishedError("Audio after the 'final' checkpoint: the stream has ended.", param="audio")
            samples = parse_audio_frame(msg["bytes"], s.streaming.max_frame_bytes)
            if not await monitor.admit(len(samples) / SAMPLE_RATE):
                quotas = monitor.ops.quotas
                assert monitor.who is not None
                err = quotas.exceeded_stream_error(await quotas.state(monitor.who), monitor.received_s)
                return await _flush(engine, session, monitor, err, err.close_code, QUOTA_FLUSH_TIMEOUT_S)
            await engine.feed(session, samples)
            await back_pressure(session, s)
        elif msg.get("text") is not None:
            await engine.mark(session, parse_client_text(msg["text"]))
    except ServiceError as exc:
        return _Close(exc, close_code_for(exc))
    except Exception:
        log.exception("stream failed")
        return _Close(ServiceError("Internal server error."), CloseCode.SERVER_ERROR)
    return False


async def back_pressure(session: StreamSession, s: Settings) -> None:
    """Stop reading while the stream holds too much untranscribed audio: TCP then slows the client.

    A client sending faster than the model transcribes is thus paced instead of dropped; if the
    backlog does not shrink for a long time, the stream is closed with 1013 (try again later).
    """
    deadline = asyncio.get_running_loop().time() + BACK_PRESSURE_MAX_WAIT_S
    while session.backlog_s() >= s.streaming.max_backlog_s:
        if asyncio.get_running_loop().time() > deadline:
            raise StreamLagError(
                f"Transcription is more than {s.streaming.max_backlog_s:.0f} s behind this stream; try again later.",
                param="audio",
            )
        await asyncio.sleep(0.05)


async def _send_loop(ws: WebSocket, out: asyncio.Queue, monitor: StreamMonitor, send_timeout_s: float) -> None:
    """Send the session's messages in order; an error item sends the error and closes.

    A client that stops reading fills its TCP window and then ``send`` waits: after
    ``send_timeout_s`` the stream is closed (1008), so a stuck reader holds no queue and no session.
    """
    try:
        while True:
            item = await out.get()
            if isinstance(item, _Close):
                await _reject(ws, item.error, item.code, monitor)
                return
            if isinstance(item, BaseException):
                exc = item if isinstance(item, ServiceError) else ServiceError("Internal server error: transcription failed.")
                await _reject(ws, exc, monitor=monitor)
                return
            monitor.sent(item)
            try:
                await asyncio.wait_for(ws.send_json(item), timeout=send_timeout_s)
            except asyncio.TimeoutError:
                log.info("closing a stream whose client read nothing for %.0f s", send_timeout_s)
                # No error message: the client reads none. The close frame may still get through.
                with contextlib.suppress(Exception):  # a stuck client's connection is dropped (server/protocols.py)
                    await asyncio.wait_for(ws.close(code=CloseCode.POLICY, reason="client_not_reading"), timeout=send_timeout_s)
                return
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the client is gone; the receive loop sees the disconnect


async def _reject(ws: WebSocket, exc: ServiceError, code: int | None = None, monitor: StreamMonitor | None = None) -> None:
    """Send ``{"error": ...}`` and close with the error's code (quietly if the client is gone)."""
    if ws.application_state == WebSocketState.DISCONNECTED:
        return
    code = code if code is not None else close_code_for(exc)
    body = error_message(exc)
    if monitor is not None:
        body["request_id"] = monitor.request_id
    await send_error_and_close(ws, body, code, exc.code or "", monitor)


async def send_error_and_close(ws: WebSocket, body: dict, code: int, reason: str, monitor: StreamMonitor | None) -> None:
    """The last message of a stream (either protocol's error shape), then the close frame with ``code``."""
    if monitor is not None:
        monitor.error(body)
        monitor.closed(code)
    with contextlib.suppress(Exception):  # the client may be gone already
        await ws.send_json(body)
        await ws.close(code=code, reason=reason[:100])


__all__ = ["router"]
