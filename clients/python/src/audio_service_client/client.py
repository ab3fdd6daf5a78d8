"""``Client`` (sync) and ``AsyncClient``: the batch endpoints over HTTP and the streaming endpoint."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx
from typing_extensions import Unpack

from audio_service_client import _request as rq
from audio_service_client.errors import APIConnectionError
from audio_service_client.results import Transcription
from audio_service_client.streaming import AsyncTranscriptionStream, StreamConfig, StreamSource, TranscriptionStream, check_source

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 600.0  # long files take a while; connect errors still fail fast


def _config(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """Arguments win over ``AUDIO_SERVICE_URL`` / ``AUDIO_SERVICE_API_KEY``."""
    return (base_url or os.environ.get("AUDIO_SERVICE_URL") or DEFAULT_BASE_URL).rstrip("/"), (
        api_key if api_key is not None else os.environ.get("AUDIO_SERVICE_API_KEY") or None
    )


class _Base:
    def __init__(self, base_url: str | None, api_key: str | None, key_in_query: bool) -> None:
        self.base_url, self.api_key = _config(base_url, api_key)
        # browsers must put the key in the query; Python can use the header (kept out of logs and proxies)
        self._key_in_query = key_in_query

    def _stream_args(
        self,
        language: str | None,
        prompt: str | None,
        temperature: float | None,
        model: str | None,
        timestamp_granularities: Sequence[str] | None,
        skip_vad: bool | None,
        vad_kwargs: dict | None,
        text_timeout_seconds: float | None,
        diarize: bool | None,
        extra: dict[str, Any] | None,
    ) -> tuple[str, dict[str, str]]:
        params = rq.query_params(
            response_format="verbose_json",
            language=language,
            prompt=prompt,
            temperature=temperature,
            model=model,
            timestamp_granularities=timestamp_granularities,
            skip_vad=skip_vad,
            vad_kwargs=vad_kwargs,
            text_timeout_seconds=text_timeout_seconds,
            diarize=diarize,
            **(extra or {}),
        )
        url = rq.ws_url(self.base_url, params, self.api_key, self._key_in_query)
        headers = {} if self._key_in_query else rq.auth_headers(self.api_key)
        return url, headers


class Client(_Base):
    """Synchronous client. ``base_url`` defaults to ``$AUDIO_SERVICE_URL`` or http://127.0.0.1:8000,
    ``api_key`` to ``$AUDIO_SERVICE_API_KEY``. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        key_in_query: bool = False,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(base_url, api_key, key_in_query)
        self._http = http_client or httpx.Client(
            base_url=self.base_url, headers=rq.auth_headers(self.api_key), timeout=httpx.Timeout(timeout, connect=10.0)
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, file: rq.FileInput, req: rq.Prepared) -> Transcription | str:
        files, url_field, opened = rq.file_part(file, req.on_progress)
        try:
            if req.on_transcription is not None:  # stream=true: progress events, then the text
                with self._http.stream("POST", path, data={**req.fields, **url_field}, files=files or None) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        rq.raise_for_error(resp)
                    reader = rq.EventReader(req.on_transcription, req.response_format, resp.headers)
                    for line in resp.iter_lines():
                        if (result := reader.feed(line)) is not None:
                            return result
                    raise reader.missing_done()
            resp = self._http.post(path, data={**req.fields, **url_field}, files=files or None)
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{self.base_url}{path}: {exc}") from exc
        finally:
            if opened is not None:
                opened.close()
        return rq.parse_response(resp, req.response_format)

    def transcribe(self, file: rq.FileInput, **params: Unpack[rq.TranscribeParams]) -> Transcription | str:
        """Transcribe ``file`` (path, bytes, binary file object, or an http(s) URL the server fetches).

        Keyword arguments are the server's form fields (:class:`TranscribeParams`). Returns a
        :class:`Transcription` for ``json``/``verbose_json`` and the body text for ``text``/``srt``/``vtt``.
        ``diarize=True`` implies ``verbose_json`` with word timestamps unless given. Errors raise
        :class:`~audio_service_client.AudioServiceError` subclasses carrying the server's message.
        """
        return self._post("/v1/audio/transcriptions", file, rq.prepare(params, rq.TranscribeParams))

    def translate(self, file: rq.FileInput, **params: Unpack[rq.TranslateParams]) -> Transcription | str:
        """Translate speech in ``file`` into English text; inputs and results as in :meth:`transcribe`."""
        return self._post("/v1/audio/translations", file, rq.prepare(params, rq.TranslateParams))

    def align(self, file: rq.FileInput, text: str, **params: Unpack[rq.AlignParams]) -> Transcription | str:
        """Force-align the known ``text`` to ``file``: word and segment timings (servers with alignment)."""
        return self._post("/v1/audio/alignments", file, rq.prepare_align(text, params))

    def models(self) -> list[dict[str, Any]]:
        """``GET /v1/models``: the model ids and aliases the server accepts."""
        resp = self._get("/v1/models")
        return list(resp.json()["data"])

    def ready(self) -> bool:
        """True once the server has loaded its models (``GET /ready``)."""
        try:
            return self._http.get("/ready").status_code == 200
        except httpx.TransportError:
            return False

    def _get(self, path: str) -> httpx.Response:
        try:
            resp = self._http.get(path)
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{self.base_url}{path}: {exc}") from exc
        rq.raise_for_error(resp)
        return resp

    def stream(
        self,
        source: StreamSource,
        *,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
        model: str | None = None,
        timestamp_granularities: Sequence[str] | None = None,
        skip_vad: bool | None = None,
        vad_kwargs: dict[str, Any] | None = None,
        text_timeout_seconds: float | None = None,
        diarize: bool | None = None,
        extra: dict[str, Any] | None = None,
        sample_rate: int = 16000,
        frame_ms: int = 100,
        speed: float | None = None,
        open_timeout: float = 10.0,
        final_timeout: float = 120.0,
    ) -> TranscriptionStream:
        """Stream ``source`` over the WebSocket; iterate the result for updates, or call ``.result()``.

        ``source``: a file path (decoded to 16 kHz mono with PyAV), a numpy array (float or int16 at
        ``sample_rate``), PCM16 bytes, or an iterator of chunks (may interleave :class:`Checkpoint` /
        :class:`TraceProbe`). ``speed``: 1.0 paces at real time, None sends as fast as possible.
        ``diarize=True`` asks for ``speaker_id`` on segments and words (servers with a speaker tracker). The
        stream ends with the ``final`` checkpoint, so every segment of ``.transcript`` is final then.
        """
        check_source(source)
        url, headers = self._stream_args(
            language,
            prompt,
            temperature,
            model,
            timestamp_granularities,
            skip_vad,
            vad_kwargs,
            text_timeout_seconds,
            diarize,
            extra,
        )
        return TranscriptionStream(StreamConfig(url, headers, frame_ms, sample_rate, speed, open_timeout, final_timeout), source)


class AsyncClient(_Base):
    """Asynchronous client with the same methods as :class:`Client` (``await``-ed; ``stream`` is ``async for``)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        key_in_query: bool = False,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, api_key, key_in_query)
        self._http = http_client or httpx.AsyncClient(
            base_url=self.base_url, headers=rq.auth_headers(self.api_key), timeout=httpx.Timeout(timeout, connect=10.0)
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, file: rq.FileInput, req: rq.Prepared) -> Transcription | str:
        files, url_field, opened = rq.file_part(file, req.on_progress)
        try:
            if files:
                # httpx's async multipart needs bytes, not a sync file object: read it (with progress) first
                name, fh, ctype = files["file"]
                files = {"file": (name, fh.read(), ctype)}
            if req.on_transcription is not None:  # stream=true: progress events, then the text
                async with self._http.stream("POST", path, data={**req.fields, **url_field}, files=files or None) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        rq.raise_for_error(resp)
                    reader = rq.EventReader(req.on_transcription, req.response_format, resp.headers)
                    async for line in resp.aiter_lines():
                        if (result := reader.feed(line)) is not None:
                            return result
                    raise reader.missing_done()
            resp = await self._http.post(path, data={**req.fields, **url_field}, files=files or None)
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{self.base_url}{path}: {exc}") from exc
        finally:
            if opened is not None:
                opened.close()
        return rq.parse_response(resp, req.response_format)

    async def transcribe(self, file: rq.FileInput, **params: Unpack[rq.TranscribeParams]) -> Transcription | str:
        """Async :meth:`Client.transcribe`."""
        return await self._post("/v1/audio/transcriptions", file, rq.prepare(params, rq.TranscribeParams))

    async def translate(self, file: rq.FileInput, **params: Unpack[rq.TranslateParams]) -> Transcription | str:
        """Async :meth:`Client.translate`."""
        return await self._post("/v1/audio/translations", file, rq.prepare(params, rq.TranslateParams))

    async def align(self, file: rq.FileInput, text: str, **params: Unpack[rq.AlignParams]) -> Transcription | str:
        """Async :meth:`Client.align`."""
        return await self._post("/v1/audio/alignments", file, rq.prepare_align(text, params))

    async def models(self) -> list[dict[str, Any]]:
        """``GET /v1/models``."""
        try:
            resp = await self._http.get("/v1/models")
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{self.base_url}/v1/models: {exc}") from exc
        rq.raise_for_error(resp)
        return list(resp.json()["data"])

    async def ready(self) -> bool:
        try:
            return (await self._http.get("/ready")).status_code == 200
        except httpx.TransportError:
            return False

    def stream(
        self,
        source: StreamSource,
        *,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
        model: str | None = None,
        timestamp_granularities: Sequence[str] | None = None,
        skip_vad: bool | None = None,
        vad_kwargs: dict[str, Any] | None = None,
        text_timeout_seconds: float | None = None,
        diarize: bool | None = None,
        extra: dict[str, Any] | None = None,
        sample_rate: int = 16000,
        frame_ms: int = 100,
        speed: float | None = None,
        open_timeout: float = 10.0,
        final_timeout: float = 120.0,
    ) -> AsyncTranscriptionStream:
        """Async :meth:`Client.stream`: ``async for update in client.stream(...)``; ``source`` may also be an
        async iterator of chunks."""
        check_source(source)
        url, headers = self._stream_args(
            language,
            prompt,
            temperature,
            model,
            timestamp_granularities,
            skip_vad,
            vad_kwargs,
            text_timeout_seconds,
            diarize,
            extra,
        )
        return AsyncTranscriptionStream(
            StreamConfig(url, headers, frame_ms, sample_rate, speed, open_timeout, final_timeout), source
        )
