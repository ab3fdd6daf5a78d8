"""What the streaming endpoint needs, built once per app or per stream: the shared streaming services
(engine, per-key stream limiter, speaker trackers), and the session and VAD defaults taken from the settings."""

from __future__ import annotations

import logging
from collections.abc import Callable

from audio_service.api.deps import Services, StreamingServices
from audio_service.models.registry import resolve_device, stream_workers
from audio_service.ops.stream_limits import stream_limiter
from audio_service.settings import Settings, StreamingSettings
from audio_service.streaming.engine import StreamingEngine
from audio_service.streaming.transcript import SpeakerLabeller
from audio_service.streaming.values import SessionConfig
from audio_service.vad.params import VadParams
from audio_service.whisper.rules import DecodeOptions
from audio_service.whisper.types import DecodeBatch

log = logging.getLogger(__name__)


def build_streaming(
    s: Settings, decode: DecodeBatch, speaker_trackers: Callable[..., SpeakerLabeller], options: DecodeOptions
) -> StreamingServices:
    """The app's streaming services, decoding under ``options``; the app's lifespan starts the engine and stops both."""
    engine = StreamingEngine(
        batching=stream_batching(s),
        max_batch=s.streaming.max_batch,
        partial_batch_audio_s=s.streaming.partial_batch_audio_s,
        workers=stream_workers(s),
        decode=decode,
        options=options,
    )
    return StreamingServices(engine=engine, limiter=stream_limiter(s), speaker_trackers=speaker_trackers)


def stream_batching(s: Settings) -> bool:
    """Cross-session batching: as set, or (auto) on a GPU only. On a CPU the engine runs one
    single-threaded call per core instead, which measured more streams than batched calls did."""
    if s.streaming.batching == "auto":
        return resolve_device(s.models.device) != "cpu"
    return bool(s.streaming.batching)


def session_config(s: StreamingSettings) -> SessionConfig:
    """The engine-wide session knobs, as set: their bounds are checked when the settings load."""
    return SessionConfig(
        partial_interval_s=s.partial_interval_s,
        max_segment_s=s.max_segment_s,
        max_backlog_s=s.max_backlog_s,
        final_beam_size=s.final_beam_size,
        short_segment_s=s.short_segment_s,
        short_endpoint_s=s.short_endpoint_s,
        commit_words=s.commit_words,
        commit_interval_s=s.commit_interval_s,
        commit_languages=tuple(x.strip() for x in s.commit_languages.split(",") if x.strip()),
    )


def default_vad(s: StreamingSettings) -> VadParams:
    """The VAD parameters a stream gets unless it sends ``vad_kwargs``."""
    return VadParams(threshold=s.vad_threshold, min_silence_duration_ms=s.endpoint_silence_ms, speech_pad_ms=s.speech_pad_ms)


def partial_model(services: Services, model):
    """The shared draft model for a stream's partials (``streaming.partial_model``), or None: when unset,
    the same as the stream's model, or not loadable (then partials use the stream's model). Blocking."""
    name = services.settings.streaming.partial_model
    if not name:
        return None
    try:
        draft = services.registry.get(name, stream=True)
    except Exception:  # a missing draft model costs speed, never the stream
        log.warning("streaming.partial_model %r is not available: partials use the stream's model", name)
        return None
    return None if draft.spec.id == model.spec.id else draft
