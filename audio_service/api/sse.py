"""``stream=true`` on ``/v1/audio/transcriptions``: server-sent events, as OpenAI's transcription API.

Events (``data: {json}`` lines): ``transcript.text.delta`` events, then ``transcript.text.done``
with the whole ``text`` (the same as the non-streamed answer: same job, same pipeline). Each event
carries an extra ``audio_position_s``: how far into the file transcription has come, so clients can
show progress. While a block (``batch.block_s``) decodes, deltas with an empty ``delta`` report the
position as each batch of windows finishes; when the block is done, one delta per final segment
carries its text, so the deltas' texts join exactly into the done event's text. A failure after the events
began is sent as an ``error`` event with the usual error body. The pipeline runs on the worker pool
and reports through a thread-safe callback, bridged to this async generator by a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData

from audio_service.api.deps import Services
from audio_service.api.multipart import audio_source
from audio_service.errors import ServiceError
from audio_service.formatting.render import verbose_json
from audio_service.keys import KeyIdentity
from audio_service.pipeline.batch import BatchJob, Progress
from audio_service.streaming.protocol import error_message


def _event(data: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


async def stream_transcription(
    request: Request,
    services: Services,
    form: FormData,
    job: BatchJob,
    who: KeyIdentity,
    response_format: str = "json",
    granularities: tuple[str, ...] = ("segment",),
) -> StreamingResponse:
    """Start the job and answer with its events; errors before the first event are ordinary HTTP errors.

    With ``response_format=verbose_json`` the done event also carries the verbose_json fields
    (segments, words, language, duration: extra fields the OpenAI SDK ignores), so a client that
    shows progress gets the timed transcript without a second request. Takes ownership of ``form``
    (closed when the events end).
    """
    stack = contextlib.AsyncExitStack()
    stack.push_async_callback(form.close)
    try:
        source = await stack.enter_async_context(audio_source(form, services))
        loop = asyncio.get_running_loop()
        reports: asyncio.Queue[Progress] = asyncio.Queue()
        t0 = time.perf_counter()
        task = asyncio.ensure_future(services.batch.run(source, job, lambda p: loop.call_soon_threadsafe(reports.put_nowait, p)))
        await asyncio.sleep(0)  # the task runs up to its worker: a full queue refuses it now, as a 429
        if task.done() and (refused := task.exception()) is not None:
            raise refused
    except BaseException:
        await stack.aclose()
        raise

    async def events() -> AsyncIterator[bytes]:
        async with stack:
            deltas = _Deltas()
            while True:
                getter = asyncio.ensure_future(reports.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                yield deltas.event(getter.result())
            while not reports.empty():  # reports made before the job ended are already queued (same loop path)
                yield deltas.event(reports.get_nowait())
            try:
                transcript = task.result()
            except Exception as exc:  # after the 200: reported as an error event
                err = exc if isinstance(exc, ServiceError) else ServiceError("Internal server error: transcription failed.")
                yield _event({**error_message(err), "request_id": request.state.request_id}, "error")
                return
            await services.ops.batch_done(request, who, job.model or "", transcript.duration, time.perf_counter() - t0)
            timed = verbose_json(transcript, granularities) if response_format == "verbose_json" else {}
            yield _event(
                {
                    **timed,
                    "type": "transcript.text.done",
                    "text": transcript.text,
                    "audio_position_s": round(transcript.duration, 3),
                }
            )

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


class _Deltas:
    """Delta events whose texts concatenate like the transcript's text (segments joined by one space)."""

    def __init__(self) -> None:
        self.first = True
        self.position = 0.0

    def event(self, p: Progress) -> bytes:
        self.position = max(self.position, p.position_s)
        text = p.text.strip()
        delta = text if self.first or not text else " " + text
        self.first = self.first and not text
        return _event({"type": "transcript.text.delta", "delta": delta, "audio_position_s": round(self.position, 3)})
