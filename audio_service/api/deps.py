"""Request-scoped access to the app's services, and the API-key dependency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from audio_service.api.ops import Ops
from audio_service.keys import KeyIdentity
from audio_service.models.registry import ModelLoader, ModelRegistry, load_faster_whisper
from audio_service.ops.auth import key_from_authorization
from audio_service.ops.jobs import JobRunner
from audio_service.ops.stream_limits import StreamLimiter
from audio_service.pipeline import asr
from audio_service.pipeline.batch import BatchService
from audio_service.settings import Settings
from audio_service.streaming.engine import StreamingEngine
from audio_service.streaming.transcript import SpeakerLabeller
from audio_service.whisper import stream
from audio_service.whisper.types import DecodeBatch


@dataclass(frozen=True)
class DecodingBackend:
    """The model calls behind every route: load a model, transcribe a file's speech, decode stream windows.

    :func:`audio_service.app.create_app` wires them into the registry, the batch service and the
    streaming engine. The default is faster-whisper; the fast test layer (``tests/fast/``) builds the
    app on a fake one, so the HTTP and WebSocket edge runs in-process without a model.
    """

    load: ModelLoader = load_faster_whisper
    transcribe: asr.Transcribe = asr.transcribe
    decode_windows: DecodeBatch = stream.decode_batch


@dataclass(frozen=True)
class StreamingServices:
    """What every stream shares: the engine (the scheduler of model calls), the per-key stream limiter,
    and the factory of streaming speaker trackers (one per ``diarize=true`` session)."""

    engine: StreamingEngine
    limiter: StreamLimiter
    speaker_trackers: Callable[..., SpeakerLabeller]


@dataclass
class Services:
    """Everything a route may call; built once per app in :func:`audio_service.app.create_app`, started
    and stopped by its lifespan."""

    settings: Settings
    registry: ModelRegistry
    batch: BatchService
    ops: Ops
    streaming: StreamingServices
    jobs: JobRunner
    backend: DecodingBackend = DecodingBackend()
    ready: bool = False  # the configured models are loaded (/ready)


def get_services(request: Request) -> Services:
    return request.app.state.services


def require_api_key(request: Request) -> KeyIdentity:
    """FastAPI dependency: who is calling (its key's name and limits; "anonymous" on an open server)."""
    services: Services = request.app.state.services
    return services.ops.keys.authenticate(key_from_authorization(request.headers.get("authorization")))
