"""Build the FastAPI application from one :class:`Settings` object."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from fastapi import FastAPI

from audio_service import __version__
from audio_service.api.deps import DecodingBackend, Services
from audio_service.api.errors import install_error_handlers
from audio_service.api.middleware.identity import ReplicaHeaderMiddleware, replica_name
from audio_service.api.middleware.limits import BodyLimitMiddleware
from audio_service.api.middleware.requests import OpsMiddleware
from audio_service.api.middleware.timeouts import BodyTimeoutMiddleware
from audio_service.api.ops import Ops
from audio_service.api.routes import alignments, batch, demo, jobs, metrics, realtime, streaming, system
from audio_service.api.stream_setup import build_streaming
from audio_service.diarization.tracker import speaker_tracker_factory
from audio_service.models.registry import ModelRegistry
from audio_service.ops.jobs import JobRunner
from audio_service.ops.metrics import serve_on_port
from audio_service.pipeline.batch import BatchService
from audio_service.pipeline.fanout import BlockTranscriber
from audio_service.settings import Settings
from audio_service.whisper.rules import DecodeOptions

log = logging.getLogger(__name__)


def create_app(settings: Settings, fanout: BlockTranscriber | None = None, backend: DecodingBackend | None = None) -> FastAPI:
    """The application, with its services built from ``settings`` (nothing global); ``fanout`` transcribes
    the blocks of long files elsewhere (Ray Serve's replicas), else they run here in order; ``backend``
    makes the model calls (faster-whisper unless given)."""
    services = build_services(settings, fanout, backend or DecodingBackend())
    app = FastAPI(
        title="audio-service",
        version=__version__,
        description="Self-hostable speech-to-text: OpenAI-compatible batch API and WebSocket streaming.",
        lifespan=functools.partial(_lifespan, services=services),
    )
    app.state.services = services
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.server.max_upload_bytes)
    app.add_middleware(
        BodyTimeoutMiddleware, idle_s=settings.server.upload_idle_timeout_s, total_s=settings.server.upload_timeout_s
    )
    app.add_middleware(OpsMiddleware, ops=services.ops)  # sees every response, errors included
    app.add_middleware(ReplicaHeaderMiddleware, name=replica_name(settings))  # outermost: even health checks say who answered
    app.include_router(system.router)
    app.include_router(jobs.router)
    app.include_router(batch.router)
    app.include_router(streaming.router)
    app.include_router(realtime.router)
    app.include_router(alignments.router)
    app.include_router(demo.router)
    app.include_router(metrics.router)
    return app


def build_services(settings: Settings, fanout: BlockTranscriber | None, backend: DecodingBackend) -> Services:
    """Every service of one app, built once; the app's lifespan starts and stops them."""
    registry = ModelRegistry(settings, backend.load)
    ops = Ops.build(settings)
    decode = DecodeOptions.from_settings(settings)  # one set of decoding options for files and streams
    trackers = speaker_tracker_factory(settings.streaming.speaker_context_s)
    batch_service = BatchService(settings, registry, fanout, backend.transcribe, decode)
    services = Services(
        settings=settings,
        registry=registry,
        batch=batch_service,
        ops=ops,
        streaming=build_streaming(settings, backend.decode_windows, trackers, decode),
        jobs=JobRunner(settings, batch_service, ops.charge_batch),
        backend=backend,
    )
    ops.metrics.replica.labels(replica_name(settings)).set(1)
    workers = max(1, settings.batch.workers)
    ops.metrics.sample(
        queue_depth=lambda: max(0, services.batch.queue.admitted - workers),
        busy_workers=lambda: min(services.batch.queue.admitted, workers),
        load_seconds=lambda: dict(registry.load_seconds),
    )
    return services


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI, services: Services):
    settings, ops = services.settings, services.ops
    if ops.keys.open:
        log.warning("no API keys configured: the server is open to anyone who can reach it")
    services.streaming.engine.start()
    await services.jobs.start()
    loader = asyncio.create_task(_preload(services))
    stop_metrics = (
        serve_on_port(ops.metrics, settings.server.host, settings.server.metrics_port) if settings.server.metrics_port else None
    )
    try:
        yield
    finally:
        loader.cancel()
        await services.jobs.stop()
        if stop_metrics is not None:
            await asyncio.to_thread(stop_metrics)
        await services.streaming.engine.stop()
        await services.streaming.limiter.close()
        await services.batch.close()
        services.batch.shutdown()


async def _preload(services: Services) -> None:
    """Load the configured models off the event loop, then mark the server ready."""
    for name in services.settings.models.preload:
        try:
            await asyncio.to_thread(services.registry.get, name)
            await asyncio.to_thread(services.registry.get, name, stream=True)  # the same one unless streaming.cpu_threads differs
        except Exception:  # logged by the registry; /ready stays 503 for this model
            log.error("preloading %s failed", name)
            return
    if services.settings.streaming.partial_model:  # streams' draft model: optional, so never a reason to stay unready
        try:
            await asyncio.to_thread(services.registry.get, services.settings.streaming.partial_model, stream=True)
        except Exception:
            log.warning("streaming.partial_model %s could not be loaded", services.settings.streaming.partial_model)
    services.ready = True
    log.info("ready: %s", ", ".join(services.settings.models.preload) or "no models preloaded")
