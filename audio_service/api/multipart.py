"""Shared multipart plumbing for the audio endpoints: read the form, open the audio, render the answer."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import FormData, UploadFile

from audio_service.api.deps import Services
from audio_service.audio.fetch import fetch_to_tempfile, looks_like_url
from audio_service.errors import InvalidRequestError, PayloadTooLargeError, ServiceError
from audio_service.formatting import render
from audio_service.schema import Transcript


async def read_form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise InvalidRequestError("Send the request as multipart/form-data with a 'file' field.", param="file")
    try:
        return await request.form(max_files=2, max_fields=100)
    except ServiceError:  # too large, too slow: already the right error
        raise
    except Exception as exc:  # malformed multipart body
        raise InvalidRequestError(f"Malformed form data: {exc}", param=None) from exc


@contextlib.asynccontextmanager
async def audio_source(form: FormData, services: Services):
    """Yield a readable binary source for the form's ``file``: the spooled upload or a fetched URL."""
    settings = services.settings
    value = form.get("file")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidRequestError("Missing 'file': upload an audio file or give its URL.", param="file", code="missing_file")
    url: str | None = None
    if isinstance(value, str):
        if not looks_like_url(value):
            raise InvalidRequestError("'file' must be an uploaded file or an http(s) URL.", param="file")
        url = value.strip()
    else:
        upload: UploadFile = value
        if upload.size is not None and upload.size > settings.server.max_upload_bytes:
            raise PayloadTooLargeError(
                f"The file exceeds the {settings.server.max_upload_bytes}-byte upload limit.", param="file"
            )
        if upload.size is not None and upload.size <= 4096:
            head = await upload.read()
            await upload.seek(0)
            if looks_like_url(head):  # the reference SDK sends URLs as a file part
                url = head.decode().strip()
        if url is None:
            yield upload.file
            return
    fetched = await fetch_to_tempfile(
        url,
        max_bytes=settings.server.max_upload_bytes,
        timeout_s=settings.server.url_fetch_timeout_s,
        allowlist=settings.server.url_fetch_allowlist,
    )
    try:
        yield fetched
    finally:
        fetched.close()


def respond(transcript: Transcript, response_format: str, granularities: tuple[str, ...]) -> Response:
    """The rendered transcript, with ``x-audio-service-*`` headers naming what ran."""
    rendered = render(transcript, response_format, granularities)
    headers = {f"x-audio-service-{k}": v for k, v in transcript.provenance.items()}
    if isinstance(rendered.body, dict):
        body: Any = rendered.body
        return JSONResponse(body, headers=headers)
    return PlainTextResponse(rendered.body, media_type=rendered.media_type, headers=headers)
