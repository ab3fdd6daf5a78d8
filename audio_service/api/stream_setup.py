"""What the streaming endpoint sets up once per app or per stream: the engine, the per-key stream
limiter, and the session and VAD defaults taken from the settings."""

from __future__ import annotations

import logging

from audio_service.api.deps import Services
from audio_service.api.stream_limits import StreamLimiter, stream_limiter
from audio_service.models.registry import resolve_device, stream_workers
from audio_service.models.silero import VadParams
from audio_service.settings import Settings
from audio_service.streaming.decoder import WindowPolicy
from audio_service.streaming.engine import StreamingEngine
from audio_service.streaming.session import SessionConfig

log = logging.getLogger(__name__)


def streaming_services(services: Services) -> tuple[StreamingEngine, StreamLimiter]:
    """The app's engine and limiter, created on first use; the engine stops at shutdown."""
    if "streaming_engine" not in services.extra:
        s = services.settings
        engine = StreamingEngine(
            batching=stream_batching(s),
            max_batch=s.stream_max_batch,
            window=WindowPolicy(full=s.stream_full_window, fixed_buckets=s.stream_fixed_buckets),
            partial_batch_audio_s=s.stream_partial_batch_audio_s,
            workers=stream_workers(s),
            decode=services.backend.decode_windows,
        )
        engine.start()
        services.extra["streaming_engine"] = engine
        limiter = services.extra["stream_limiter"] = stream_limiter(s)
        services.extra.setdefault("shutdown_hooks", []).extend([engine.stop, limiter.close])
    return services.extra["streaming_engine"], services.extra["stream_limiter"]


def stream_batching(s: Settings) -> bool:
    """Cross-session batching: as set, or (auto) on a GPU only. On a CPU the engine runs one
    single-threaded call per core instead, which measured more streams than batched calls did."""
    if s.stream_batching == "auto":
        return resolve_device(s.device) != "cpu"
    return bool(s.stream_batching)


def session_config(s: Settings) -> SessionConfig:
    """The engine-wide session knobs from the settings."""
    return SessionConfig(
        partial_interval_s=s.stream_partial_interval_s,
        adaptive_partials=s.stream_partial_policy == "adaptive",
        max_segment_s=min(s.stream_max_segment_s, 28.0),
        max_backlog_s=s.stream_max_backlog_s,
        final_beam_size=s.stream_final_beam_size,
        early_final=s.stream_early_final,
        short_segment_s=s.stream_short_segment_s,
        short_endpoint_s=s.stream_short_endpoint_s,
    )


def default_vad(s: Settings) -> VadParams:
    """The VAD parameters a stream gets unless it sends ``vad_kwargs``."""
    return VadParams(
        threshold=s.stream_vad_threshold,
        min_silence_duration_ms=s.stream_endpoint_silence_ms,
        speech_pad_ms=s.stream_speech_pad_ms,
    )


def partial_model(services: Services, model):
    """The shared draft model for a stream's partials (``stream_partial_model``), or None: when unset,
    the same as the stream's model, or not loadable (then partials use the stream's model). Blocking."""
    name = services.settings.stream_partial_model
    if not name:
        return None
    try:
        draft = services.registry.get(name, stream=True)
    except Exception:  # a missing draft model costs speed, never the stream
        log.warning("stream_partial_model %r is not available: partials use the stream's model", name)
        return None
    return None if draft.spec.id == model.spec.id else draft
