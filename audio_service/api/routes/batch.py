"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations``."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from audio_service.api.deps import Services, get_services, require_api_key
from audio_service.api.forms import TRANSLATION_FIELDS, TranscriptionParams, multipart_openapi, parse_params
from audio_service.api.multipart import audio_source, read_form, respond
from audio_service.api.sse import stream_transcription
from audio_service.errors import InvalidRequestError
from audio_service.schema import Task

router = APIRouter(prefix="/v1/audio", tags=["batch"], dependencies=[Depends(require_api_key)])

_TRANSCRIPTION_FORM = multipart_openapi(TranscriptionParams)
_TRANSLATION_FORM = multipart_openapi(TranscriptionParams, TRANSLATION_FIELDS)


@router.post("/transcriptions", openapi_extra=_TRANSCRIPTION_FORM, summary="Transcribe audio")
async def transcriptions(request: Request, services: Services = Depends(get_services)) -> Response:
    return await _handle(request, services, "transcribe")


@router.post("/translations", openapi_extra=_TRANSLATION_FORM, summary="Translate audio into English")
async def translations(request: Request, services: Services = Depends(get_services)) -> Response:
    return await _handle(request, services, "translate")


async def _handle(request: Request, services: Services, task: Task) -> Response:
    ops, who = services.ops, request.state.key_identity
    form = await read_form(request)
    streamed = False
    try:
        stream = _stream_flag(form, task)
        params = parse_params(form, task)
        job = services.batch.validate(params.to_job(task))
        request.state.model = job.model
        await ops.check_audio(request, who)
        if stream and params.multichannel:
            raise InvalidRequestError("multichannel=true cannot be combined with stream=true.", param="multichannel")
        if stream:
            streamed = True  # the event stream owns the form from here on
            return await stream_transcription(
                request, services, form, job, who, params.response_format, params.timestamp_granularities
            )
        t0 = time.perf_counter()
        async with audio_source(form, services) as source:
            transcript = await services.batch.run(source, job)
        await ops.batch_done(request, who, job.model or "", transcript.duration, time.perf_counter() - t0)
    finally:
        if not streamed:
            await form.close()  # deletes the spooled upload at once, not when garbage-collected
    return respond(transcript, params.response_format, params.timestamp_granularities)


def _stream_flag(form, task: Task) -> bool:
    """``stream=true``: server-sent progress events (transcriptions only, as in the reference API)."""
    raw = form.get("stream")
    if raw is None or not isinstance(raw, str) or raw.strip().lower() in ("", "false", "0"):
        return False
    if raw.strip().lower() not in ("true", "1"):
        raise InvalidRequestError("stream must be true or false.", param="stream")
    if task != "transcribe":
        raise InvalidRequestError("stream=true is only supported on /v1/audio/transcriptions.", param="stream")
    return True
