"""The WebSocket streaming session, sync and async: send PCM16 frames, merge segment patches by id.

Protocol (server side: ``/v1/audio/transcriptions/streaming``): binary frames of 16 kHz mono PCM16LE go
up; ``{"segments": [...]}`` patches (only changed segments, by integer ``id``), ``{"checkpoint_id": X}``
echoes and ``{"object": "stt.output.trace", "trace_id": T}`` echoes come down. The client ends a stream
by sending ``{"checkpoint_id": "final"}`` and waiting for its echo: by then every segment is final.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from audio_service_client.audio import SAMPLE_RATE, chunk_to_bytes, decode_file, frames, to_pcm16
from audio_service_client.errors import APIConnectionError, StreamError, error_from_body
from audio_service_client.results import Checkpoint, StreamSegment, StreamTranscript, StreamUpdate, TraceProbe

FINAL = "final"
Item = Union[bytes, Checkpoint, TraceProbe]
#: what ``stream()`` accepts: a file path, samples (numpy, 16 kHz unless ``sample_rate``), raw PCM16
#: bytes, or a (async) iterator of PCM16 chunks (bytes or arrays) that may interleave
#: :class:`Checkpoint` / :class:`TraceProbe` items
StreamSource = Any


def control_message(item: Checkpoint | TraceProbe) -> str:
    """The JSON text frame for a checkpoint or a trace probe."""
    if isinstance(item, Checkpoint):
        return json.dumps({"checkpoint_id": item.checkpoint_id})
    return json.dumps({"event_id": item.event_id or item.trace_id, "object": "stt.input.trace", "trace_id": item.trace_id})


def _chunk_item(item: Any, sample_rate: int) -> Item:
    """One item of a user's iterator: control items pass, bytes are PCM16 already, arrays are converted."""
    if isinstance(item, (Checkpoint, TraceProbe)):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)) or sample_rate == SAMPLE_RATE:
        return chunk_to_bytes(item)
    return chunk_to_bytes(to_pcm16(item, sample_rate))


def sync_items(source: StreamSource, frame_ms: int, sample_rate: int) -> Iterator[Item]:
    """Frames and control items from any synchronous source."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield from frames(np.frombuffer(bytes(source), dtype="<i2"), frame_ms)
    elif isinstance(source, str) or hasattr(source, "__fspath__"):
        yield from frames(decode_file(source), frame_ms)
    elif isinstance(source, np.ndarray):
        yield from frames(to_pcm16(source, sample_rate), frame_ms)
    elif isinstance(source, Iterable):
        for item in source:
            yield _chunk_item(item, sample_rate)
    else:
        raise TypeError(f"cannot stream a {type(source).__name__}: give a path, an array, bytes or an iterator")


def check_source(source: StreamSource) -> None:
    """Fail before connecting on a path that does not exist (decoding happens while streaming)."""
    if (isinstance(source, str) or hasattr(source, "__fspath__")) and not os.path.isfile(os.fspath(source)):
        raise FileNotFoundError(f"no such audio file: {os.fspath(source)}")


class _Pacer:
    """Sends no faster than ``speed`` x real time (None: as fast as the socket takes it)."""

    def __init__(self, speed: float | None) -> None:
        self.speed, self.sent_s, self.t0 = speed, 0.0, None

    def delay_after(self, item: Item) -> float:
        if self.speed is None or not isinstance(item, bytes):
            return 0.0
        if self.t0 is None:
            self.t0 = time.monotonic()
        self.sent_s += len(item) / 2 / SAMPLE_RATE
        return max(0.0, self.t0 + self.sent_s / self.speed - time.monotonic())


class _Merger:
    """Turns server messages into :class:`StreamUpdate` values and keeps the merged transcript."""

    def __init__(self) -> None:
        self.transcript = StreamTranscript()
        self.error: dict[str, Any] | None = None

    def handle(self, raw: str | bytes) -> StreamUpdate | None:
        msg = json.loads(raw)
        if not isinstance(msg, dict):
            return None
        if isinstance(msg.get("error"), dict):
            self.error = msg["error"]
            return None
        if "segments" in msg:
            segs = tuple(StreamSegment.model_validate(s) for s in msg["segments"])
            self.transcript.apply(list(segs))
            return StreamUpdate("segments", self.transcript, segments=segs, raw=msg)
        if "checkpoint_id" in msg:
            return StreamUpdate("checkpoint", self.transcript, checkpoint_id=str(msg["checkpoint_id"]), raw=msg)
        if msg.get("object") == "stt.output.trace":
            return StreamUpdate("trace", self.transcript, trace_id=str(msg.get("trace_id")), raw=msg)
        return StreamUpdate("other", self.transcript, raw=msg)

    def failure(self, close_code: int | None, reason: str = "") -> StreamError:
        err = self.error or {}
        message = err.get("message") or reason or f"stream closed with code {close_code}"
        return StreamError(
            message, close_code=close_code, type=err.get("type"), param=err.get("param"), code=err.get("code"), body=self.error
        )


def _handshake_error(exc: Exception) -> Exception:
    """A refused WebSocket handshake (HTTP 4xx/5xx) -> the matching API error."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is None:
        return APIConnectionError(f"could not connect: {exc}")
    body: Any = getattr(response, "body", b"") or b""
    try:
        body = json.loads(body)
    except ValueError:
        body = body.decode(errors="replace") if isinstance(body, bytes) else body
    return error_from_body(status, body)


@dataclass(frozen=True)
class StreamConfig:
    """Where and how a session streams; built by the clients' ``stream()``."""

    url: str
    headers: dict[str, str]
    frame_ms: int = 100
    sample_rate: int = SAMPLE_RATE
    speed: float | None = None
    open_timeout: float = 10.0
    final_timeout: float = 120.0


class TranscriptionStream:
    """A synchronous streaming session. Iterate it for :class:`StreamUpdate` values; the merged transcript is
    ``.transcript``. Sending runs in a thread so that updates arrive while audio is still going up."""

    def __init__(self, config: StreamConfig, source: StreamSource) -> None:
        self._cfg, self._source = config, source
        self._merger = _Merger()
        self._send_error: BaseException | None = None
        self._stop = threading.Event()

    @property
    def transcript(self) -> StreamTranscript:
        return self._merger.transcript

    def result(self) -> StreamTranscript:
        """Run the stream to its final checkpoint and return the merged transcript."""
        for _ in self:
            pass
        return self.transcript

    def __iter__(self) -> Iterator[StreamUpdate]:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake
        from websockets.sync.client import connect

        try:
            ws = connect(self._cfg.url, additional_headers=self._cfg.headers, open_timeout=self._cfg.open_timeout, max_size=None)
        except InvalidHandshake as exc:
            raise _handshake_error(exc) from exc
        except OSError as exc:
            raise APIConnectionError(f"could not connect to {self._cfg.url.split('?')[0]}: {exc}") from exc
        sender = threading.Thread(target=self._send, args=(ws,), name="audio-service-stream-sender", daemon=True)
        sender.start()
        try:
            while True:
                try:
                    raw = ws.recv(timeout=None if sender.is_alive() else self._cfg.final_timeout)
                except TimeoutError:
                    raise StreamError(f"no final checkpoint within {self._cfg.final_timeout} s after the audio ended") from None
                except ConnectionClosed as exc:
                    if self._send_error is not None:
                        raise self._send_error from exc
                    raise self._merger.failure(ws.close_code, ws.close_reason or "") from None
                update = self._merger.handle(raw)
                if self._merger.error is not None:
                    self._wait_close(ws)
                    raise self._merger.failure(ws.close_code)
                if update is None:
                    continue
                yield update
                if update.kind == "checkpoint" and update.checkpoint_id == FINAL:
                    return
        finally:
            self._stop.set()
            ws.close()
            sender.join(timeout=5)

    @staticmethod
    def _wait_close(ws: Any) -> None:
        """After an error message the server closes; wait briefly to learn the close code."""
        try:
            while True:
                ws.recv(timeout=2)
        except Exception:
            pass

    def _send(self, ws: Any) -> None:
        pacer = _Pacer(self._cfg.speed)
        try:
            for item in sync_items(self._source, self._cfg.frame_ms, self._cfg.sample_rate):
                if self._stop.is_set():
                    return
                ws.send(item if isinstance(item, bytes) else control_message(item))
                pause = pacer.delay_after(item)
                if pause and self._stop.wait(pause):
                    return
            ws.send(control_message(Checkpoint(FINAL)))
        except Exception as exc:  # connection gone (the receiver reports why) or a bad source
            if not self._stop.is_set() and not type(exc).__module__.startswith("websockets"):
                self._send_error = exc
                ws.close(1011, "client source failed")


async def async_items(source: StreamSource, frame_ms: int, sample_rate: int) -> AsyncIterator[Item]:
    """Frames and control items from any source, async iterators included (files decode in a thread)."""
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield _chunk_item(item, sample_rate)
        return
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        source = await asyncio.to_thread(decode_file, source)
        sample_rate = SAMPLE_RATE
    for item in sync_items(source, frame_ms, sample_rate):
        yield item


class AsyncTranscriptionStream:
    """The asynchronous session: ``async for update in stream``; ``await stream.result()``."""

    def __init__(self, config: StreamConfig, source: StreamSource) -> None:
        self._cfg, self._source = config, source
        self._merger = _Merger()

    @property
    def transcript(self) -> StreamTranscript:
        return self._merger.transcript

    async def result(self) -> StreamTranscript:
        async for _ in self:
            pass
        return self.transcript

    def __aiter__(self) -> AsyncIterator[StreamUpdate]:
        return self._run()

    async def _run(self) -> AsyncIterator[StreamUpdate]:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        try:
            ws = await connect(
                self._cfg.url, additional_headers=self._cfg.headers, open_timeout=self._cfg.open_timeout, max_size=None
            )
        except InvalidHandshake as exc:
            raise _handshake_error(exc) from exc
        except OSError as exc:
            raise APIConnectionError(f"could not connect to {self._cfg.url.split('?')[0]}: {exc}") from exc
        sender = asyncio.create_task(self._send(ws))
        try:
            while True:
                try:
                    timeout = None if not sender.done() else self._cfg.final_timeout
                    raw = await asyncio.wait_for(ws.recv(), timeout)
                except asyncio.TimeoutError:
                    raise StreamError(f"no final checkpoint within {self._cfg.final_timeout} s after the audio ended") from None
                except ConnectionClosed:
                    if sender.done() and not sender.cancelled() and sender.exception() is not None:
                        raise sender.exception() from None  # type: ignore[misc]
                    raise self._merger.failure(ws.close_code, ws.close_reason or "") from None
                update = self._merger.handle(raw)
                if self._merger.error is not None:
                    try:
                        await asyncio.wait_for(ws.wait_closed(), 2)
                    except asyncio.TimeoutError:
                        pass
                    raise self._merger.failure(ws.close_code)
                if update is None:
                    continue
                yield update
                if update.kind == "checkpoint" and update.checkpoint_id == FINAL:
                    return
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await ws.close()

    async def _send(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        pacer = _Pacer(self._cfg.speed)
        try:
            async for item in async_items(self._source, self._cfg.frame_ms, self._cfg.sample_rate):
                await ws.send(item if isinstance(item, bytes) else control_message(item))
                pause = pacer.delay_after(item)
                if pause:
                    await asyncio.sleep(pause)
            await ws.send(control_message(Checkpoint(FINAL)))
        except ConnectionClosed:
            pass  # the receiver reports why
        except Exception:
            await ws.close(1011, "client source failed")
            raise
