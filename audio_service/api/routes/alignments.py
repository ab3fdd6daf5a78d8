"""``POST /v1/audio/alignments``: audio plus its known text in, forced-aligned word and segment timings out."""

from __future__ import annotations

from typing import ClassVar, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from audio_service.api.deps import Services, get_services, require_api_key
from audio_service.api.forms import TranscriptionParams, multipart_openapi
from audio_service.api.multipart import audio_source, read_form, respond
from audio_service.errors import InvalidRequestError

router = APIRouter(prefix="/v1/audio", tags=["alignment"], dependencies=[Depends(require_api_key)])

MAX_TEXT_CHARS = 200_000


class AlignmentParams(BaseModel):
    """Form fields of ``/v1/audio/alignments`` (``file`` is read separately)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    text: str = Field(..., max_length=MAX_TEXT_CHARS, description="The words spoken in the audio.")
    model: str | None = Field(None, description="Whisper model whose cross-attention aligns (default model if absent).")
    alignment_model: str | None = Field(None, description="mms_fa | tdnn_ffn | gentle | whisper, as mapped by the operator.")
    language: str | None = Field(None, description="ISO-639-1 code of the text's language (detected if absent).")
    response_format: Literal["verbose_json", "json", "text", "srt", "vtt"] = "verbose_json"

    # The response carries both granularities (what verbose_json renders); not a form field.
    timestamp_granularities: ClassVar[tuple[str, ...]] = ("word", "segment")

    @field_validator("language")
    @classmethod
    def _language_code(cls, v: str | None) -> str | None:
        return TranscriptionParams._language_code(v)  # same rule as transcriptions

    @field_validator("text")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty: give the words spoken in the audio")
        return v


def _parse(form) -> AlignmentParams:
    data = {k: v for k, v in form.multi_items() if k != "file" and isinstance(v, str) and (v != "" or k == "text")}
    if "text" not in data:
        raise InvalidRequestError("Missing 'text': give the words spoken in the audio.", param="text")
    try:
        return AlignmentParams.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = str(err["loc"][0]) if err.get("loc") else None
        raise InvalidRequestError(f"{param}: {err['msg'].removeprefix('Value error, ')}", param=param) from None


@router.post("/alignments", openapi_extra=multipart_openapi(AlignmentParams), summary="Force-align a known text to audio")
async def alignments(request: Request, services: Services = Depends(get_services)) -> Response:
    form = await read_form(request)
    try:
        params = _parse(form)
        spec = services.registry.resolve(params.model)
        services.batch.aligners.resolve(params.alignment_model)
        async with audio_source(form, services) as source:
            transcript = await services.batch.queue.run(_align, services, spec.id, source, params)
    finally:
        await form.close()
    return respond(transcript, params.response_format, params.timestamp_granularities)


def _align(services: Services, model_id: str, source, params: AlignmentParams):
    model = services.registry.get(model_id)
    return services.batch.aligners.align_source(model, source, params.text, params.alignment_model, params.language)
