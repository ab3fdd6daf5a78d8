"""``/v1/audio/transcriptions/jobs``: long transcriptions run in the background, polled or called back."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from audio_service.api.deps import Services, get_services, require_api_key
from audio_service.api.forms import TranscriptionParams, multipart_openapi, parse_params
from audio_service.api.multipart import audio_source, read_form
from audio_service.audio.decode import probe_audio
from audio_service.errors import InvalidRequestError
from audio_service.ops.job_store import JobRecord
from audio_service.ops.jobs import check_callback_url, new_job_id

router = APIRouter(prefix="/v1/audio/transcriptions/jobs", tags=["jobs"], dependencies=[Depends(require_api_key)])


class TranscriptionJob(BaseModel):
    """A transcription job, as every jobs endpoint answers and as callbacks carry it."""

    id: str = Field(description="job_...")
    object: Literal["audio.transcription.job"] = "audio.transcription.job"
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created_at: int = Field(description="Unix time of the submission.")
    started_at: int | None = Field(None, description="Unix time the job last started running.")
    finished_at: int | None = Field(None, description="Unix time the job ended.")
    progress: float = Field(description="Share of the audio transcribed so far, 0 to 1.")
    model: str | None = None
    response_format: str
    callback_url: str | None = None
    result: dict[str, Any] | None = Field(
        None,
        description="When succeeded: the synchronous endpoint's JSON body for json and verbose_json; "
        'for text, srt and vtt, {"text": <the body it would send>}.',
    )
    error: dict[str, Any] | None = Field(None, description="When failed: the error object (message, type, param, code).")


class TranscriptionJobList(BaseModel):
    """A page of the caller's jobs, newest first."""

    object: Literal["list"] = "list"
    data: list[TranscriptionJob]
    has_more: bool = Field(description="Older jobs follow this page.")


_FORM = multipart_openapi(TranscriptionParams)
_FORM["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["callback_url"] = {
    "type": "string",
    "description": "http(s) URL that receives the job's JSON (POST, signed) when it ends.",
}
_JOB = {"model": TranscriptionJob, "description": "The job."}


@router.post(
    "",
    status_code=202,
    openapi_extra=_FORM,
    responses={202: _JOB},
    summary="Submit a transcription job",
    description="The same form as POST /v1/audio/transcriptions (no stream), plus callback_url. "
    "Answers 202 at once with the queued job; poll it or wait for the callback.",
)
async def submit(request: Request, services: Services = Depends(get_services)) -> JSONResponse:
    who = request.state.key_identity
    form = await read_form(request)
    try:
        params = parse_params(form, "transcribe")
        job = services.batch.validate(params.to_job("transcribe"))
        request.state.model = job.model
        callback = form.get("callback_url")
        if callback is not None and not isinstance(callback, str):
            raise InvalidRequestError("callback_url must be a URL, not a file.", param="callback_url")
        callback_url = None
        if callback and callback.strip():
            callback_url = await check_callback_url(callback, services.settings.server.url_fetch_allowlist)
        await services.ops.check_audio(request, who)
        record = JobRecord(
            id=new_job_id(),
            created_at=int(time.time()),
            job=job,
            who=who,
            response_format=params.response_format,
            granularities=params.timestamp_granularities,
            callback_url=callback_url,
        )
        answer = record.public()  # as submitted: the runner may start it before this answer is sent
        async with audio_source(form, services) as source:
            await asyncio.to_thread(probe_audio, source)  # an undecodable file is refused now, not after the queue
            await services.jobs.submit(record, source)
    finally:
        await form.close()
    return JSONResponse(answer, status_code=202)


@router.get(
    "",
    responses={200: {"model": TranscriptionJobList, "description": "A page of the caller's jobs."}},
    summary="List transcription jobs",
    description="The calling API key's jobs, newest first, `limit` at a time; pass the id of a page's last job "
    "as `after` for the next one (404 `job_not_found` when `after` is not one of the key's jobs). "
    "Records of ended jobs are deleted `jobs.retention_s` (default 7 days) after they end.",
)
async def list_jobs(
    request: Request,
    limit: int = Query(20, ge=1, le=100, description="Jobs per page, 1 to 100."),
    after: str | None = Query(None, description="A job id: list the jobs older than it."),
    services: Services = Depends(get_services),
) -> JSONResponse:
    page = await services.jobs.page(request.state.key_identity, limit, after)
    return JSONResponse({"object": "list", "data": [record.public() for record in page.records], "has_more": page.has_more})


@router.get("/{job_id}", responses={200: _JOB}, summary="Get a transcription job")
async def get_job(job_id: str, request: Request, services: Services = Depends(get_services)) -> JSONResponse:
    return JSONResponse((await services.jobs.get(job_id, request.state.key_identity)).public())


@router.delete(
    "/{job_id}",
    responses={200: _JOB},
    summary="Cancel a transcription job",
    description="A queued job is cancelled at once; a running one stops at its next segment (poll until cancelled).",
)
async def cancel_job(job_id: str, request: Request, services: Services = Depends(get_services)) -> JSONResponse:
    record = await services.jobs.cancel(job_id, request.state.key_identity)
    return JSONResponse(record.public())
