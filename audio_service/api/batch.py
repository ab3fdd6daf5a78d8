"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from audio_service.api.deps import Services, get_services, require_api_key
from audio_service.api.forms import TRANSLATION_FIELDS, TranscriptionParams, multipart_openapi, parse_params
from audio_service.api.multipart import audio_source, read_form, respond
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
    form = await read_form(request)
    try:
        params = parse_params(form, task)
        job = services.batch.validate(params.to_job(task))
        async with audio_source(form, services) as source:
            transcript = await services.batch.run(source, job)
    finally:
        await form.close()  # deletes the spooled upload at once, not when garbage-collected
    return respond(transcript, params.response_format, params.timestamp_granularities)
