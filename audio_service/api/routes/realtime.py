"""``WS /v1/realtime?intent=transcription``: OpenAI Realtime transcription sessions, WebSocket I/O only.

The second protocol over the streaming engine: the connection holds one
:class:`~audio_service.streaming.session.StreamSession` on the shared engine, model and per-key
stream limit, with the same metrics, quotas and drain as ``/v1/audio/transcriptions/streaming``;
:mod:`audio_service.streaming.realtime` translates between the two. Keys come as the streaming
endpoint takes them, or (browsers) as OpenAI's ``openai-insecure-api-key.KEY`` WebSocket subprotocol.
Refused events get an ``error`` event and the session goes on; what ends the stream (keys, limits,
quota, drain, lag) sends an ``error`` event and then the close code the error carries.
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
from audio_service.api.routes.streaming import QUOTA_FLUSH_TIMEOUT_S, back_pressure, send_error_and_close
from audio_service.api.stream_ops import StreamMonitor
from audio_service.api.stream_setup import default_vad, partial_model, session_config
from audio_service.audio.resample import PcmResampler
from audio_service.errors import CloseCode, InvalidRequestError, OverloadedError, ServiceError
from audio_service.ops.auth import key_from_authorization
from audio_service.streaming.protocol import close_code_for
from audio_service.streaming.realtime import (
    RealtimeConfig,
    RealtimeEventError,
    RealtimeTranslator,
    TurnDetection,
    apply_update,
    audio_bytes,
    error_event,
    new_id,
    parse_event,
    server_event,
    session_event,
)
from audio_service.streaming.session import StreamSession
from audio_service.streaming.values import StreamOptions

log = logging.getLogger(__name__)
router = APIRouter()
ROUTE = "/v1/realtime"
MAX_OUTBOUND = 1000
KEY_PROTOCOL = "openai-insecure-api-key."


@dataclass(frozen=True)
class _Close:
    error: ServiceError
    code: int


def _key(ws: WebSocket) -> str | None:
    for proto in ws.scope.get("subprotocols") or ():
        if proto.startswith(KEY_PROTOCOL):
            return proto[len(KEY_PROTOCOL) :]
    return key_from_authorization(ws.headers.get("authorization") or ws.query_params.get("Authorization"))


@router.websocket(ROUTE)
async def realtime(ws: WebSocket) -> None:
    """OpenAI Realtime API transcription session; see docs/realtime.md for the protocol subset."""
    services: Services = ws.app.state.services
    ops = services.ops
    monitor = StreamMonitor(ops, request_id_from(ws.headers.get("x-request-id")), route=ROUTE)
    protocol = "realtime" if "realtime" in (ws.scope.get("subprotocols") or ()) else None
    await ws.accept(subprotocol=protocol, headers=[(b"x-request-id", monitor.request_id.encode())])
    limiter = services.streaming.limiter
    try:
        if ops.drain.draining:
            raise ops.drain.error()
        intent = ws.query_params.get("intent") or "transcription"
        if intent != "transcription":
            raise InvalidRequestError(
                f"intent {intent!r}: this server serves transcription sessions only (?intent=transcription).", param="intent"
            )
        who = monitor.who = ops.keys.authenticate(_key(ws))
        turn = TurnDetection.of(default_vad(services.settings.streaming))  # server_vad = the streaming endpoint's VAD
        config = RealtimeConfig(
            model=_known_model(services, ws.query_params.get("model")), turn_detection=turn, default_turn=turn
        )
        await ops.quotas.check_audio(who)
        lease = await limiter.acquire(who.name, ops.quotas.streams_limit(who))
    except ServiceError as exc:
        await _close(ws, exc, close_code_for(exc), monitor)
        monitor.finished()
        return
    monitor.opened(services.registry.resolve(config.model).id)
    try:
        await _Connection(ws, services, monitor, config).run()
    finally:
        await limiter.release(lease)
        monitor.finished()


def _known_model(services: Services, name: str | None) -> str | None:
    """The connection URL's ``model`` as the first transcription model, when this server has it:
    clients put OpenAI's realtime model names there, which select nothing here."""
    if not name:
        return None
    try:
        services.registry.resolve(name)
    except ServiceError:
        return None
    return name


class _Connection:
    """One Realtime connection: its config, and once audio arrives, its stream session."""

    def __init__(self, ws: WebSocket, services: Services, monitor: StreamMonitor, config: RealtimeConfig) -> None:
        self.ws, self.services, self.monitor, self.config = ws, services, monitor, config
        self.s = services.settings
        self.engine = services.streaming.engine
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.session: StreamSession | None = None
        self.translator: RealtimeTranslator | None = None
        self.resampler: PcmResampler | None = None
        self.session_id = new_id("sess")

    async def run(self) -> None:
        self.put_event(session_event(self.config, self.session_id, created=True))
        sender = asyncio.create_task(self._send_loop())
        try:
            close = await self._receive_loop(sender)
            if close is not None:
                self.out.put_nowait(close)
                with contextlib.suppress(asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(asyncio.shield(sender), timeout=5)
        finally:
            if self.session is not None:
                self.engine.remove(self.session)
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender

    # --- out ----------------------------------------------------------------------------------------
    def put_event(self, item: Any) -> None:
        if self.out.qsize() == MAX_OUTBOUND:
            self.out.put_nowait(_Close(OverloadedError("The client does not read its events."), CloseCode.POLICY))
        elif self.out.qsize() < MAX_OUTBOUND:
            self.out.put_nowait(item)

    def _on_message(self, message: Any) -> None:
        """A stream session's message (on the event loop): its Realtime events go out."""
        if self.monitor.intercept(message):
            return
        if isinstance(message, BaseException):
            exc = message if isinstance(message, ServiceError) else ServiceError("Internal server error: transcription failed.")
            self.put_event(_Close(exc, close_code_for(exc)))
            return
        self.monitor.sent(message)
        assert self.translator is not None
        for event in self.translator.translate(message):
            self.put_event(event)

    async def _send_loop(self) -> None:
        timeout = self.s.streaming.send_timeout_s
        try:
            while True:
                item = await self.out.get()
                if isinstance(item, _Close):
                    await _close(self.ws, item.error, item.code, self.monitor)
                    return
                try:
                    await asyncio.wait_for(self.ws.send_json(item), timeout=timeout)
                except asyncio.TimeoutError:
                    log.info("closing a realtime session whose client read nothing for %.0f s", timeout)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self.ws.close(code=CloseCode.POLICY, reason="client_not_reading"), timeout=timeout)
                    return
        except (WebSocketDisconnect, RuntimeError, OSError):
            return

    # --- in -----------------------------------------------------------------------------------------
    async def _receive_loop(self, sender: asyncio.Task) -> _Close | None:
        stop = asyncio.ensure_future(self.monitor.stop.wait())  # set when the server drains
        idle = self.s.streaming.idle_timeout_s
        try:
            while not sender.done():
                recv = asyncio.ensure_future(self.ws.receive())
                await asyncio.wait({recv, stop}, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
                if not recv.done():
                    recv.cancel()
                    if stop.done():
                        err = self.monitor.ops.drain.error()
                        return await self._flush(err, CloseCode.SERVICE_RESTART, self.s.server.shutdown_grace_s)
                    return _Close(
                        InvalidRequestError(f"No event for {idle:.0f} s: closing the idle session.", code="idle_timeout"),
                        CloseCode.NORMAL,
                    )
                try:
                    msg = recv.result()
                except (WebSocketDisconnect, RuntimeError):
                    return None
                if msg["type"] == "websocket.disconnect":
                    self.monitor.closed(int(msg.get("code") or 1000), sent=False)
                    return None
                close = await self._handle(msg.get("text"))
                if close is not None:
                    return close
        finally:
            stop.cancel()
        return None

    async def _handle(self, text: str | None) -> _Close | None:
        """One client event; how to close when the session must end, else None."""
        event: dict[str, Any] = {}
        try:
            event = parse_event(text)
            kind = event["type"]
            if kind.endswith("session.update"):
                self._update(event)
            elif kind == "input_audio_buffer.append":
                return await self._append(event)
            elif kind == "input_audio_buffer.commit":
                await self._commit(event)
            else:
                await self._clear()
        except RealtimeEventError as exc:
            self.put_event(error_event(exc))
        except ServiceError as exc:
            if close_code_for(exc) in (CloseCode.TRY_AGAIN_LATER, CloseCode.SERVER_ERROR) or exc.status_code >= 500:
                return _Close(exc, close_code_for(exc))
            self.put_event(error_event(exc, event.get("event_id")))  # a model name this server does not have
        except Exception:
            log.exception("realtime session failed")
            return _Close(ServiceError("Internal server error."), CloseCode.SERVER_ERROR)
        return None

    def _update(self, event: dict[str, Any]) -> None:
        config = apply_update(self.config, event)
        if self.session is not None and config.stream_fields() != self.config.stream_fields():
            raise RealtimeEventError(
                "The transcription model, language, prompt, audio format and turn detection cannot change "
                "once audio was appended: open a new session.",
                param="session",
                code="session_update_after_audio",
                event_id=event.get("event_id"),
            )
        self.services.registry.resolve(config.model)  # an unknown model is refused here, not at the first audio
        self.config = config
        self.put_event(session_event(config, self.session_id, created=False))

    async def _start(self) -> StreamSession:
        """The stream session, built from the config at the first audio."""
        c, st = self.config, self.s.streaming
        model = await asyncio.to_thread(self.services.registry.get, c.model, stream=True)
        draft = await asyncio.to_thread(partial_model, self.services, model)
        options = StreamOptions(
            model=c.model,
            language=c.language,
            prompt=c.prompt,
            word_timestamps=True,  # internal: the translator sends committed words as deltas (clients get no words)
            vad=default_vad(st) if c.turn_detection is None else c.turn_detection.vad(default_vad(st)),
            text_timeout_s=st.text_timeout_s,
        )
        loop = asyncio.get_running_loop()
        self.translator = RealtimeTranslator(manual=c.turn_detection is None)
        self.resampler = PcmResampler(c.rate)
        session = StreamSession(
            options, model, session_config(st), lambda m: loop.call_soon_threadsafe(self._on_message, m), None, draft
        )
        self.monitor.decode_s = lambda: self.engine.decode_seconds(session)
        self.monitor.lag_s = session.lag_s
        self.engine.add(session)
        self.session = session
        return session

    async def _append(self, event: dict[str, Any]) -> _Close | None:
        data = audio_bytes(event, self.s.streaming.max_frame_bytes * 8)
        session = self.session or await self._start()
        assert self.resampler is not None and self.translator is not None
        seconds = len(data) / 2 / self.resampler.rate
        if not await self.monitor.admit(seconds):
            quotas = self.monitor.ops.quotas
            assert self.monitor.who is not None
            err = quotas.exceeded_stream_error(await quotas.state(self.monitor.who), self.monitor.received_s)
            return await self._flush(err, err.close_code, QUOTA_FLUSH_TIMEOUT_S)
        self.translator.appended(seconds)
        await self.engine.feed(session, self.resampler.push(data))
        await back_pressure(session, self.s)
        return None

    async def _commit(self, event: dict[str, Any]) -> None:
        if self.session is None or self.translator is None:
            raise RealtimeEventError(
                "Error committing input audio buffer: the buffer is empty.",
                code="input_audio_buffer_commit_empty",
                event_id=event.get("event_id"),
            )
        checkpoint = self.translator.commit(event.get("event_id"))
        assert self.resampler is not None
        await self.engine.feed(self.session, self.resampler.flush())  # the utterance's last milliseconds
        await self.engine.mark(self.session, checkpoint)

    async def _clear(self) -> None:
        if self.session is None or self.translator is None:
            self.put_event(server_event("input_audio_buffer.cleared"))
            return
        if self.resampler is not None:
            self.resampler.flush()  # cleared too
        await self.engine.mark(self.session, self.translator.clear())

    async def _flush(self, err: ServiceError, code: int, timeout: float) -> _Close:
        """Transcribe all accepted audio and send its events (commit the open item), then close with ``code``."""
        if self.session is not None:
            assert self.resampler is not None
            await self.engine.feed(self.session, self.resampler.flush())
            if self.translator is not None and self.translator.manual:
                with contextlib.suppress(RealtimeEventError):  # nothing uncommitted
                    await self.engine.mark(self.session, self.translator.commit(None))  # the open item completes
            await self.engine.mark(self.session, self.monitor.flush_checkpoint())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.monitor.flushed.wait(), timeout)
        return _Close(err, code)


async def _close(ws: WebSocket, exc: ServiceError, code: int, monitor: StreamMonitor) -> None:
    """Send the error event and close with ``code`` (quietly if the client is gone)."""
    if ws.application_state == WebSocketState.DISCONNECTED:
        return
    await send_error_and_close(ws, error_event(exc), code, exc.code or "", monitor)


__all__ = ["router"]
