"""The streaming protocol: query parameters, client messages and server messages.

Query parameters become a frozen :class:`~.values.StreamOptions`; client text frames become a
:class:`~.values.Checkpoint` or a :class:`~.values.Trace` (values, in :mod:`~.values`); every protocol
violation is a :class:`ServiceError` subclass that carries the WebSocket close code
(:class:`audio_service.errors.CloseCode`) the API layer uses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from audio_service.audio.decode import pcm16_to_float
from audio_service.errors import CloseCode, InvalidRequestError, OverloadedError, ServiceError, UnsupportedError
from audio_service.streaming.values import Checkpoint, JsonValue, StreamOptions, Trace
from audio_service.vad.params import VadParams
from audio_service.whisper.decoding import MAX_PROMPT_CHARS, keyterms_text, language_code

MIN_TEXT_TIMEOUT_S = 1.0
MAX_TEXT_TIMEOUT_S = 29.0
MAX_ID_CHARS = 256  # checkpoint and trace ids are echoed back: bounded, so queued echoes stay small


class InvalidFrameError(InvalidRequestError):
    """A frame whose bytes are not what the protocol allows (odd-length PCM, non-JSON text)."""

    default_code = "invalid_frame"
    close_code = CloseCode.INVALID_PAYLOAD


class FrameTooLargeError(InvalidRequestError):
    default_code = "frame_too_large"
    close_code = CloseCode.TOO_BIG


class UnknownMessageError(UnsupportedError):
    default_code = "unknown_message_type"
    close_code = CloseCode.UNSUPPORTED_DATA


class StreamFinishedError(InvalidRequestError):
    """Audio arrived after the client's ``final`` checkpoint."""

    default_code = "stream_finished"
    close_code = CloseCode.POLICY


class TooManyStreamsError(OverloadedError):
    default_code = "too_many_streams"
    close_code = CloseCode.POLICY


class StreamLagError(OverloadedError):
    """The server fell so far behind this stream that buffering more audio would be unbounded."""

    default_code = "stream_lagging"
    close_code = CloseCode.TRY_AGAIN_LATER


def close_code_for(exc: BaseException) -> CloseCode:
    """The close code for an error: a service error's own (carried on its type), else 1011."""
    return exc.close_code if isinstance(exc, ServiceError) else CloseCode.SERVER_ERROR


def error_message(exc: ServiceError) -> dict[str, Any]:
    """The JSON error sent before closing: the HTTP API's error body."""
    return exc.body()


# --- query parameters --------------------------------------------------------------------------


_VAD_KWARGS = {
    "threshold": float,
    "neg_threshold": float,
    "min_speech_duration_ms": int,
    "min_silence_duration_ms": int,
    "speech_pad_ms": int,
}


def parse_options(query: Mapping[str, str], default_vad: VadParams, default_text_timeout_s: float) -> StreamOptions:
    """Validate the query parameters of a stream; unknown parameters are ignored.

    Raises :class:`InvalidRequestError` naming the bad parameter.
    """
    q = {k: v for k, v in query.items() if k != "Authorization"}
    language = _language(q.get("language"))
    prompt = q.get("prompt") or None
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidRequestError(f"prompt: at most {MAX_PROMPT_CHARS} characters", param="prompt")
    hotwords = _hotwords(query)
    temperature = _float(q, "temperature", 0.0, 0.0, 1.0)
    fmt = q.get("response_format") or "verbose_json"
    if fmt not in ("verbose_json", "json"):
        raise InvalidRequestError(
            f"response_format: streaming supports 'verbose_json' (or 'json'), not {fmt!r}", param="response_format"
        )
    grans = [
        g.strip()
        for g in (q.get("timestamp_granularities") or q.get("timestamp_granularities[]") or "segment,word").split(",")
        if g.strip()
    ]
    if any(g not in ("word", "segment") for g in grans):
        raise InvalidRequestError("timestamp_granularities: each must be 'word' or 'segment'", param="timestamp_granularities")
    text_timeout = _float(q, "text_timeout_seconds", default_text_timeout_s, MIN_TEXT_TIMEOUT_S, MAX_TEXT_TIMEOUT_S)
    return StreamOptions(
        model=q.get("model") or None,
        language=language,
        prompt=prompt,
        hotwords=hotwords,
        temperature=temperature,
        response_format=fmt,
        word_timestamps="word" in grans,
        skip_vad=_bool(q, "skip_vad"),
        vad=_vad_params(q.get("vad_kwargs"), default_vad),
        text_timeout_s=text_timeout,
        diarize=_bool(q, "diarize"),
    )


def _language(value: str | None) -> str | None:
    try:
        return language_code(value)
    except ValueError as exc:
        raise InvalidRequestError(f"language: {exc}", param="language") from None


def _hotwords(query: Mapping[str, str]) -> str | None:
    """``keyterms`` (comma-separated, the parameter may repeat; ``keyterms[]`` too) or ``hotwords`` (free text)."""
    getlist = getattr(query, "getlist", None)
    values = [*getlist("keyterms"), *getlist("keyterms[]")] if getlist else [query.get("keyterms") or ""]
    terms = [t for v in values for t in v.split(",")]
    try:
        return keyterms_text(terms, query.get("hotwords"))
    except ValueError as exc:
        param = str(exc).split(":")[0]
        raise InvalidRequestError(str(exc), param=param) from None


def _float(q: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequestError(f"{name}: {raw!r} is not a number", param=name) from None
    if not lo <= value <= hi:
        raise InvalidRequestError(f"{name}: must be between {lo} and {hi}", param=name)
    return value


def _bool(q: Mapping[str, str], name: str) -> bool:
    raw = (q.get(name) or "false").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise InvalidRequestError(f"{name}: must be true or false", param=name)


def _vad_params(raw: str | None, default: VadParams) -> VadParams:
    if not raw:
        return default
    try:
        given = json.loads(raw)
    except ValueError:
        raise InvalidRequestError("vad_kwargs: must be a JSON object", param="vad_kwargs") from None
    if not isinstance(given, dict):
        raise InvalidRequestError("vad_kwargs: must be a JSON object", param="vad_kwargs")
    values = {}
    for key, value in given.items():
        if key not in _VAD_KWARGS:
            raise InvalidRequestError(f"vad_kwargs: unknown key {key!r}; known: {', '.join(_VAD_KWARGS)}", param="vad_kwargs")
        try:
            values[key] = _VAD_KWARGS[key](value)
        except (TypeError, ValueError):
            raise InvalidRequestError(f"vad_kwargs: {key} must be a number", param="vad_kwargs") from None
    params = VadParams(**{**default.__dict__, **values})
    if not 0.0 < params.threshold < 1.0 or (
        params.neg_threshold is not None and not 0.0 < params.neg_threshold <= params.threshold
    ):
        raise InvalidRequestError("vad_kwargs: thresholds must lie in (0, 1), neg_threshold <= threshold", param="vad_kwargs")
    if (
        not 100 <= params.min_silence_duration_ms <= 29000
        or not 0 <= params.speech_pad_ms <= 2000
        or params.min_speech_duration_ms < 0
    ):
        raise InvalidRequestError(
            "vad_kwargs: min_silence_duration_ms 100-29000, speech_pad_ms 0-2000, min_speech_duration_ms >= 0", param="vad_kwargs"
        )
    return params


# --- client messages ---------------------------------------------------------------------------


def parse_audio_frame(data: bytes, max_bytes: int) -> np.ndarray:
    """PCM16LE bytes -> float32 samples; any whole number of samples up to ``max_bytes``."""
    if len(data) > max_bytes:
        raise FrameTooLargeError(f"Binary frame of {len(data)} bytes exceeds the maximum of {max_bytes} bytes.", param="audio")
    if len(data) % 2:
        raise InvalidFrameError(f"Binary frame of {len(data)} bytes is not a whole number of 16-bit PCM samples.", param="audio")
    return pcm16_to_float(data)


def parse_client_text(text: str) -> Checkpoint | Trace:
    """A text frame -> :class:`Checkpoint` or :class:`Trace`."""
    try:
        msg = json.loads(text)
    except ValueError:
        raise InvalidFrameError("Text frames must be JSON objects.", param="message") from None
    if not isinstance(msg, dict):
        raise InvalidFrameError("Text frames must be JSON objects.", param="message")
    if msg.get("object") == "stt.input.trace":
        if "trace_id" not in msg:
            raise InvalidFrameError("stt.input.trace needs a trace_id.", param="trace_id")
        _check_id_size(msg["trace_id"], "trace_id")
        _check_id_size(msg.get("event_id"), "event_id")
        return Trace(msg["trace_id"], msg.get("event_id"))
    if "checkpoint_id" in msg and "object" not in msg:
        cid = msg["checkpoint_id"]
        if not isinstance(cid, (str, int)) or isinstance(cid, bool):
            raise InvalidFrameError("checkpoint_id must be a string.", param="checkpoint_id")
        _check_id_size(cid, "checkpoint_id")
        return Checkpoint(cid)
    raise UnknownMessageError(
        'Unknown message: expected {"checkpoint_id": ...} or {"object": "stt.input.trace", "trace_id": ...}.',
        param="message",
    )


def _check_id_size(value: Any, name: str) -> None:
    if value is not None and len(json.dumps(value)) > MAX_ID_CHARS:
        raise InvalidFrameError(f"{name} is too long: at most {MAX_ID_CHARS} characters as JSON.", param=name)


# --- server messages ---------------------------------------------------------------------------


def checkpoint_message(checkpoint_id: JsonValue) -> dict[str, Any]:
    return {"checkpoint_id": checkpoint_id}


def trace_message(trace: Trace, lag_s: float) -> dict[str, Any]:
    """The trace echo; ``lag_s`` is how far transcription trails the audio received (seconds)."""
    msg: dict[str, Any] = {"object": "stt.output.trace", "trace_id": trace.trace_id, "lag_s": round(lag_s, 3)}
    if trace.event_id is not None:
        msg["event_id"] = trace.event_id
    return msg
