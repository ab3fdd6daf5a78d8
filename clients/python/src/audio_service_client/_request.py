"""What sync and async clients share: form fields, file parts, URLs and response parsing."""

from __future__ import annotations

import io
import json
import os
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Literal, NamedTuple, Union

import httpx
from typing_extensions import TypedDict

from audio_service_client.errors import error_from_body
from audio_service_client.results import ResponseFormat, Transcription

FileInput = Union[str, "os.PathLike[str]", bytes, IO[bytes]]
ProgressCallback = Callable[[int, int | None], None]  # (bytes sent, total bytes or None)
TranscriptionProgress = Callable[[float, str], None]  # (audio seconds transcribed so far, new text)

STREAM_PATH = "/v1/audio/transcriptions/streaming"


def form_fields(**params: Any) -> dict[str, str]:
    """Server parameters -> multipart form fields; None means "server default" and is left out."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


def query_params(**params: Any) -> dict[str, str]:
    """Streaming parameters -> query string values (dicts such as ``vad_kwargs`` as JSON)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out[key] = json.dumps(value)
        elif value is not None:
            out.update(form_fields(**{key: value}))
    return out


class _ProgressReader(io.RawIOBase):
    """A file wrapper that reports bytes read, so uploads can show a progress bar."""

    def __init__(self, raw: IO[bytes], total: int | None, callback: ProgressCallback) -> None:
        self._raw, self._total, self._cb, self._sent = raw, total, callback, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._sent += len(data)
        self._cb(self._sent, self._total)
        return data

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = self._raw.seek(offset, whence)
        if whence == 0 and offset == 0:
            self._sent = 0
        return pos

    def tell(self) -> int:
        return self._raw.tell()


def is_url(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def file_part(file: FileInput, on_progress: ProgressCallback | None) -> tuple[dict[str, Any], dict[str, str], IO[bytes] | None]:
    """``(files, extra form fields, handle to close)`` for ``file``: a path, bytes, a file object or a URL."""
    if is_url(file):
        return {}, {"file": str(file).strip()}, None  # the server fetches it
    opened: IO[bytes] | None = None
    if isinstance(file, (bytes, bytearray)):
        name, fh = "audio", io.BytesIO(bytes(file))
    elif isinstance(file, (str, os.PathLike)):
        name = os.path.basename(os.fspath(file))
        fh = opened = open(os.fspath(file), "rb")
    else:
        name, fh = os.path.basename(getattr(file, "name", "audio") or "audio"), file
    if on_progress is not None:
        total = _size(fh)
        fh = _ProgressReader(fh, total, on_progress)  # type: ignore[assignment]
    return {"file": (name, fh, "application/octet-stream")}, {}, opened


def _size(fh: IO[bytes]) -> int | None:
    try:
        pos = fh.tell()
        end = fh.seek(0, os.SEEK_END)
        fh.seek(pos)
        return end - pos
    except (OSError, AttributeError, ValueError):
        return None


def parse_response(resp: httpx.Response, response_format: str | None) -> Transcription | str:
    """A successful response as :class:`Transcription` (JSON formats) or ``str``; errors raise."""
    raise_for_error(resp)
    headers = {k.lower(): v for k, v in resp.headers.items() if k.lower().startswith("x-audio-service-")}
    if resp.headers.get("content-type", "").startswith("application/json"):
        return Transcription.model_validate({**resp.json(), "headers": headers})
    if response_format in (None, "json", "verbose_json"):
        return Transcription(text=resp.text.strip(), headers=headers)
    return resp.text


def raise_for_error(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text
    raise error_from_body(resp.status_code, body, resp.headers)


def ws_url(base_url: str, params: dict[str, str], api_key: str | None, key_in_query: bool) -> str:
    """The streaming endpoint's ``ws(s)://`` URL with its query string."""
    parts = urllib.parse.urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = dict(params)
    if api_key and key_in_query:
        query["Authorization"] = api_key
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path + STREAM_PATH, urllib.parse.urlencode(query), ""))


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class TranslateParams(TypedDict, total=False):
    """Keyword arguments of ``translate()``: every form field of ``/v1/audio/translations``."""

    model: str
    language: str
    prompt: str
    temperature: float | Sequence[float]
    response_format: ResponseFormat
    timestamp_granularities: Sequence[Literal["word", "segment"]]
    vad_model: str
    alignment_model: str
    preprocessing: Literal["none", "dynamic", "soft_dynamic", "bass_dynamic"]
    skip_vad: bool
    max_clip_len: float
    #: more form fields, sent as they are (for server options newer than this client)
    extra: dict[str, Any]
    #: called as ``on_progress(bytes_sent, total_bytes_or_None)`` during the upload
    on_progress: ProgressCallback


class TranscribeParams(TranslateParams, total=False):
    """Keyword arguments of ``transcribe()``: translation's plus diarization."""

    diarize: bool
    min_speakers: int
    max_speakers: int
    diarization_model: str
    #: called as ``on_transcription_progress(audio_seconds_done, new_text)`` while the server
    #: transcribes (asks for ``stream=true`` server-sent events; ``json``/``text`` results only)
    on_transcription_progress: TranscriptionProgress


class AlignParams(TypedDict, total=False):
    """Keyword arguments of ``align()``."""

    language: str
    alignment_model: str
    response_format: ResponseFormat
    extra: dict[str, Any]
    on_progress: ProgressCallback


class Prepared(NamedTuple):
    fields: dict[str, str]
    response_format: str | None
    on_progress: ProgressCallback | None
    on_transcription: TranscriptionProgress | None = None


def prepare(params: Mapping[str, Any], allowed: type) -> Prepared:
    """Check keyword arguments against ``allowed`` (a TypedDict) and build the form fields.

    ``diarize=True`` needs ``verbose_json`` with word timestamps on the server; they are filled in
    when the caller gave neither, so ``transcribe(f, diarize=True)`` just works.
    """
    unknown = set(params) - set(allowed.__annotations__) - set(getattr(allowed, "__optional_keys__", ()))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    p = dict(params)
    on_progress = p.pop("on_progress", None)
    on_transcription = p.pop("on_transcription_progress", None)
    extra = p.pop("extra", None) or {}
    if p.get("diarize"):
        p.setdefault("response_format", "verbose_json")
        p.setdefault("timestamp_granularities", ("word", "segment"))
    if on_transcription is not None:
        if p.get("response_format") not in (None, "json", "text"):
            raise ValueError("on_transcription_progress gives the text only: use response_format json or text")
        p["stream"] = True
    return Prepared(form_fields(**p, **extra), p.get("response_format"), on_progress, on_transcription)


class EventReader:
    """Reads ``stream=true`` server-sent events line by line: reports each delta, returns the done event's text."""

    def __init__(self, on_text: TranscriptionProgress, response_format: str | None, headers: Mapping[str, str]) -> None:
        self._on_text, self._format, self._headers = on_text, response_format, headers
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> Transcription | str | None:
        """One line of the event stream; the result once the ``done`` event has come, else None."""
        if line.startswith("event:"):
            self._event = line[6:].strip()
        elif line.startswith("data:"):
            self._data.append(line[5:].strip())
        elif not line.strip() and self._data:
            body = json.loads("\n".join(self._data))
            event, self._event, self._data = self._event, None, []
            if event == "error" or "error" in body:
                raise error_from_body(500, body, self._headers)
            position = float(body.get("audio_position_s") or 0.0)
            if body.get("type") == "transcript.text.delta":
                self._on_text(position, body.get("delta") or "")
            elif body.get("type") == "transcript.text.done":
                self._on_text(position, "")
                kept = {k.lower(): v for k, v in self._headers.items() if k.lower().startswith("x-audio-service-")}
                return body["text"] + "\n" if self._format == "text" else Transcription(text=body["text"], headers=kept)
        return None

    def missing_done(self) -> Exception:
        body = {"error": {"message": "the event stream ended without a done event", "type": "server_error"}}
        return error_from_body(502, body, self._headers)


def prepare_align(text: str, params: Mapping[str, Any]) -> Prepared:
    """Form fields of ``/v1/audio/alignments``: the known ``text`` plus options (``verbose_json`` by default)."""
    req = prepare({"response_format": "verbose_json", **params}, AlignParams)
    req.fields["text"] = text
    return req
