"""What the streaming endpoint sets up once per app or per stream: the engine, the per-key stream
limiter, and the session and VAD defaults taken from the settings."""

from __future__ import annotations

from collections import Counter

from audio_service.api.deps import Services
from audio_service.models.silero import VadParams
from audio_service.settings import Settings
from audio_service.streaming.decoder import WindowPolicy
from audio_service.streaming.engine import StreamingEngine
from audio_service.streaming.protocol import TooManyStreamsError
from audio_service.streaming.session import SessionConfig


class StreamLimiter:
    """Concurrent streams per API key (per server when it is open). Used on the event loop only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: Counter[str | None] = Counter()

    def acquire(self, key: str | None, limit: int | None = None) -> None:
        """Count a stream of ``key``; ``limit`` (the key's own) overrides the server-wide one."""
        limit = self.limit if limit is None else limit
        if self._counts[key] >= limit:
            raise TooManyStreamsError(f"Too many concurrent streams for this API key (limit {limit}).", param="Authorization")
        self._counts[key] += 1

    def release(self, key: str | None) -> None:
        self._counts[key] -= 1
        if self._counts[key] <= 0:
            del self._counts[key]


def streaming_services(services: Services) -> tuple[StreamingEngine, StreamLimiter]:
    """The app's engine and limiter, created on first use; the engine stops at shutdown."""
    if "streaming_engine" not in services.extra:
        s = services.settings
        engine = StreamingEngine(
            batching=s.stream_batching,
            max_batch=s.stream_max_batch,
            window=WindowPolicy(full=s.stream_full_window),
            partial_batch_audio_s=s.stream_partial_batch_audio_s,
        )
        engine.start()
        services.extra["streaming_engine"] = engine
        services.extra["stream_limiter"] = StreamLimiter(s.max_streams_per_key)
        services.extra.setdefault("shutdown_hooks", []).append(engine.stop)
    return services.extra["streaming_engine"], services.extra["stream_limiter"]


def session_config(s: Settings) -> SessionConfig:
    """The engine-wide session knobs from the settings."""
    return SessionConfig(
        partial_interval_s=s.stream_partial_interval_s,
        max_segment_s=min(s.stream_max_segment_s, 28.0),
        max_backlog_s=s.stream_max_backlog_s,
        final_beam_size=s.stream_final_beam_size,
        short_segment_s=s.stream_short_segment_s,
        short_endpoint_s=s.stream_short_endpoint_s,
    )


def default_vad(s: Settings) -> VadParams:
    """The VAD parameters a stream gets unless it sends ``vad_kwargs``."""
    return VadParams(
        threshold=s.stream_vad_threshold, min_silence_duration_ms=s.stream_endpoint_silence_ms, speech_pad_ms=s.stream_speech_pad_ms
    )
