"""Parse and validate the multipart form of the batch endpoints.

Accepts both spellings clients use for list fields (``timestamp_granularities=word,segment`` and
OpenAI's repeated ``timestamp_granularities[]``) and the reference SDK's always-sent defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.datastructures import FormData, UploadFile

from audio_service.audio.decode import MAX_CHANNELS
from audio_service.errors import InvalidRequestError
from audio_service.pipeline.batch import BatchJob
from audio_service.schema import Task
from audio_service.whisper.decoding import MAX_HOTWORDS_CHARS, MAX_KEYTERMS, MAX_PROMPT_CHARS, keyterms_text, language_code


class TranscriptionParams(BaseModel):
    """Every form field of ``/v1/audio/transcriptions`` (translations use a subset)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str | None = Field(None, description="Model id or alias (see GET /v1/models).")
    vad_model: str = Field("silero", description="silero | whisperx-pyannet")
    alignment_model: str | None = Field(None, description="mms_fa | tdnn_ffn | gentle, as mapped by the operator.")
    language: str | None = Field(None, description="ISO-639-1 code of the spoken language (a hint; detected if absent).")
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS, description="Text to condition the decoder on.")
    keyterms: tuple[str, ...] = Field(
        (),
        description=f"Rare words and names to bias the decoder towards (up to {MAX_KEYTERMS} terms, "
        f"{MAX_HOTWORDS_CHARS} characters in all): a repeated field (keyterms[] also accepted) or a "
        "comma-separated list. They go into Whisper's prompt, as faster-whisper's hotwords.",
    )
    hotwords: str | None = Field(
        None,
        description=f"faster-whisper's hotwords: free text put into Whisper's prompt (up to {MAX_HOTWORDS_CHARS} "
        "characters). Give keyterms or hotwords, not both.",
    )
    temperature: tuple[float, ...] = Field((0.0,), description="A float, or a fallback list like 0.0,0.2,0.4.")
    response_format: Literal["json", "text", "srt", "verbose_json", "vtt"] = "json"
    timestamp_granularities: tuple[Literal["word", "segment"], ...] = Field(("segment",))
    diarize: bool = False
    diarization_model: str | None = None
    min_speakers: int | None = Field(None, ge=1, le=64)
    max_speakers: int | None = Field(None, ge=1, le=64)
    preprocessing: Literal["none", "dynamic", "soft_dynamic", "bass_dynamic"] = "none"
    skip_vad: bool = False
    max_clip_len: float = Field(30.0, ge=1.0, le=30.0, description="Longest chunk given to the decoder, seconds (1 to 30).")
    multichannel: bool = Field(
        False,
        description=f"Transcribe each channel of the file on its own (up to {MAX_CHANNELS} channels); segments "
        "and words carry `channel` (0-based), srt/vtt cues start with [channel N]. Not with diarize or stream.",
    )

    @field_validator("keyterms", mode="before")
    @classmethod
    def _split_keyterms(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = (v,)
        if isinstance(v, (tuple, list)):
            return tuple(t.strip() for item in v for t in str(item).split(",") if t.strip())
        return v

    @field_validator("temperature", mode="before")
    @classmethod
    def _split_temperatures(cls, v: Any) -> Any:
        if isinstance(v, str):
            parts = [p.strip() for p in v.split(",") if p.strip()]
            if not parts:
                raise ValueError("temperature must be a number or a comma-separated list of numbers")
            return tuple(parts)
        return v

    @field_validator("temperature")
    @classmethod
    def _temperature_range(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(not 0.0 <= t <= 1.0 for t in v):
            raise ValueError("each temperature must be between 0 and 1")
        return v

    @field_validator("language")
    @classmethod
    def _language_code(cls, v: str | None) -> str | None:
        return language_code(v)

    @model_validator(mode="after")
    def _combinations(self) -> TranscriptionParams:
        try:
            keyterms_text(self.keyterms, self.hotwords)
        except ValueError as exc:
            raise _combo(str(exc).split(":")[0], str(exc)) from None
        if self.multichannel and self.diarize:
            raise _combo(
                "multichannel",
                "multichannel=true cannot be combined with diarize=true: each channel is already one side of the call "
                "(segments carry channel)",
            )
        if "word" in self.timestamp_granularities and self.response_format != "verbose_json":
            raise _combo("timestamp_granularities", "timestamp_granularities=word requires response_format=verbose_json")
        if self.diarize:
            if self.response_format != "verbose_json" or "word" not in self.timestamp_granularities:
                raise _combo(
                    "diarize", "diarize=true requires response_format=verbose_json and timestamp_granularities to include word"
                )
        elif self.min_speakers is not None or self.max_speakers is not None:
            raise _combo(
                "min_speakers" if self.min_speakers is not None else "max_speakers",
                "min_speakers/max_speakers require diarize=true",
            )
        if self.min_speakers is not None and self.max_speakers is not None and self.min_speakers > self.max_speakers:
            raise _combo("min_speakers", "min_speakers must not exceed max_speakers")
        return self

    def to_job(self, task: Task) -> BatchJob:
        return BatchJob(
            task=task,
            model=self.model,
            language=self.language,
            prompt=self.prompt,
            hotwords=keyterms_text(self.keyterms, self.hotwords),
            keyterms=tuple(t.strip() for t in self.keyterms if t.strip()),
            temperatures=self.temperature,
            word_timestamps="word" in self.timestamp_granularities,
            timed_segments=self.response_format in ("srt", "vtt", "verbose_json"),
            vad_model=self.vad_model,
            skip_vad=self.skip_vad,
            max_clip_len=self.max_clip_len,
            preprocessing=self.preprocessing,
            alignment_model=self.alignment_model,
            diarize=self.diarize,
            diarization_model=self.diarization_model,
            min_speakers=self.min_speakers,
            max_speakers=self.max_speakers,
            multichannel=self.multichannel,
        )


class _ComboError(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _combo(param: str, message: str) -> _ComboError:
    return _ComboError(param, message)


TRANSLATION_FIELDS = frozenset(
    {
        "model",
        "vad_model",
        "alignment_model",
        "language",
        "prompt",
        "keyterms",
        "hotwords",
        "temperature",
        "response_format",
        "timestamp_granularities",
        "preprocessing",
        "skip_vad",
        "max_clip_len",
    }
)


def _form_dict(form: FormData, allowed: frozenset[str] | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    granularities: list[str] = []
    temperatures: list[str] = []
    keyterms: list[str] = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile) or key == "file":
            continue
        if key in ("timestamp_granularities", "timestamp_granularities[]"):
            granularities += [g.strip() for g in str(value).split(",") if g.strip()]
            continue
        if key in ("temperature", "temperature[]") and value != "":  # a list may come as repeated fields
            temperatures.append(str(value))
            continue
        if allowed is not None and key.removesuffix("[]") not in allowed:
            continue
        if key in ("keyterms", "keyterms[]"):
            keyterms.append(str(value))
            continue
        if value == "" and key not in ("prompt",):
            continue  # empty optional fields mean "default", as multipart clients often send them
        data[key] = value
    if granularities:
        data["timestamp_granularities"] = tuple(dict.fromkeys(granularities))
    if temperatures:
        data["temperature"] = ",".join(temperatures)
    if keyterms:
        data["keyterms"] = tuple(keyterms)
    return data


def parse_params(form: FormData, task: Task) -> TranscriptionParams:
    """Validate the form's fields; raise :class:`InvalidRequestError` naming the bad parameter."""
    data = _form_dict(form, None if task == "transcribe" else TRANSLATION_FIELDS)
    try:
        return TranscriptionParams.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _ComboError):
            raise InvalidRequestError(str(ctx_error), param=ctx_error.param) from None
        param = str(err["loc"][0]) if err.get("loc") else None
        msg = err["msg"].removeprefix("Value error, ")
        if err.get("type") == "literal_error" and param:
            msg = f"Invalid value {err.get('input')!r}; {msg[0].lower()}{msg[1:]}"
        raise InvalidRequestError(f"{param}: {msg}" if param else msg, param=param) from None


def multipart_openapi(model: type[BaseModel], fields: frozenset[str] | None = None) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint whose form is ``file`` plus ``model``'s fields.

    Built from the same pydantic model that validates the form (one source, so the document and
    the parser cannot drift); ``fields`` limits it to the fields the endpoint reads.
    """
    schema = model.model_json_schema()
    assert "$defs" not in schema, "form fields must be flat"
    props = {name: _form_field(p) for name, p in schema["properties"].items() if fields is None or name in fields}
    file = {"type": "string", "format": "binary", "description": "Audio file, or an http(s) URL to one."}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", *(name for name in schema.get("required", []) if name in props)],
                        "properties": {"file": file, **props},
                    }
                }
            },
        }
    }


def _form_field(prop: dict[str, Any]) -> dict[str, Any]:
    """A form has no null: an absent field is the default, so ``X | None`` is documented as ``X``."""
    branches = [b for b in prop.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **branches[0]}
    return prop
