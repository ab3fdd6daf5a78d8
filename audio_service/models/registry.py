"""The model registry: which ids and aliases exist, and the one shared instance of each model.

Model ids a client may send are aliases the operator configures (``Settings.models`` and
``Settings.aliases``). A model is loaded once and then shared by every request and stream:
faster-whisper's ``WhisperModel`` is safe to call from several threads, and all per-request state
lives in the request's own objects, never on the model.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from audio_service.errors import ModelUnavailableError, NotFoundError
from audio_service.models.packaged import packaged_model_dir, set_default_cache_dir
from audio_service.models.priority import limit_numpy_blas, limit_torch_threads, lower_thread_priority
from audio_service.settings import Settings
from audio_service.whisper.load import load_whisper, resolve_device
from audio_service.whisper.types import LoadedModel, ModelSpec

log = logging.getLogger(__name__)

# Loads one model: (settings, spec, CPU threads per call, calls at once) -> the loaded model. The
# service's is :func:`load_faster_whisper`; tests build the app on a fake one (tests/fast/).
ModelLoader = Callable[[Settings, ModelSpec, int, int], LoadedModel]


def stream_workers(s: Settings) -> int:
    """Streaming model calls at once: ``streaming.workers``, else one per ``streaming.cpu_threads`` cores on a CPU,
    one on a GPU (the batched generate already fills it)."""
    if s.streaming.workers:
        return s.streaming.workers
    if resolve_device(s.models.device) != "cpu" or not s.streaming.cpu_threads:
        return 1
    return max(1, (os.cpu_count() or 1) // s.streaming.cpu_threads)


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


class ModelRegistry:
    """Resolves names to model specs and loads each model once, thread-safely."""

    def __init__(self, settings: Settings, loader: ModelLoader | None = None) -> None:
        self._loader = loader or load_faster_whisper
        limit_numpy_blas(settings.models.blas_threads)  # once per process that runs models (see models/priority.py)
        limit_torch_threads(settings.models.cpu_threads)
        self._settings = settings
        self._specs = {mid: ModelSpec(mid, src) for mid, src in settings.models.sources.items()}
        self._aliases = dict(settings.models.aliases)
        for alias, target in self._aliases.items():
            if target not in self._specs:
                raise ValueError(f"alias {alias!r} points to unknown model {target!r}")
        if settings.models.default not in self._specs and settings.models.default not in self._aliases:
            raise ValueError(f"models.default {settings.models.default!r} is not in the model table")
        self._loaded: dict[tuple[str, int], LoadedModel] = {}  # (model id, CPU threads per call)
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {mid: threading.Lock() for mid in self._specs}
        set_default_cache_dir(settings.models.cache_dir)  # for the shared segmentation model (pyannote)
        self.load_seconds: dict[str, float] = {}  # model id -> how long loading took (metrics)

    # --- names ---
    def names(self) -> list[str]:
        return sorted(self._specs) + sorted(self._aliases)

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def specs(self) -> list[ModelSpec]:
        return [self._specs[k] for k in sorted(self._specs)]

    def resolve(self, name: str | None) -> ModelSpec:
        """Map a client-sent model name (or None for the default) to its spec."""
        key = name or self._settings.models.default
        key = self._aliases.get(key, key)
        spec = self._specs.get(key)
        if spec is None:
            raise NotFoundError(
                f"The model {name!r} does not exist. Available models: {', '.join(self.names())}.",
                param="model",
                code="model_not_found",
            )
        return spec

    # --- loading ---
    def is_loaded(self, name: str | None = None) -> bool:
        model_id = self.resolve(name).id
        return any(key[0] == model_id for key in self._loaded)

    def get(self, name: str | None = None, *, stream: bool = False) -> LoadedModel:
        """The shared loaded model for ``name``; loads it on first use (blocking: call off the event loop).

        ``stream``: the instance all streams share. On a CPU it is a second instance when
        ``streaming.cpu_threads`` differs from ``models.cpu_threads`` (CTranslate2 fixes threads per call at load);
        on a GPU, and otherwise, batch and streams share one.
        """
        spec = self.resolve(name)
        threads, workers = self._threads(stream)
        key = (spec.id, threads)
        loaded = self._loaded.get(key)
        if loaded is not None:
            return loaded
        with self._load_locks[spec.id]:  # one loader per model; others wait for it
            loaded = self._loaded.get(key)
            if loaded is None:
                t0 = time.perf_counter()
                loaded = self._load_in_low_priority_thread(spec, threads, workers)
                self.load_seconds.setdefault(spec.id, time.perf_counter() - t0)
                with self._lock:
                    self._loaded[key] = loaded
        return loaded

    def _threads(self, stream: bool) -> tuple[int, int]:
        """(CPU threads per call, calls at once) of the batch or the stream instance."""
        s = self._settings
        cores = os.cpu_count() or 1
        batch = (s.models.cpu_threads or cores, max(1, s.batch.workers + 1))  # batch workers and the stream engine
        if not stream or resolve_device(s.models.device) != "cpu" or not s.streaming.cpu_threads:
            return batch
        threads = min(s.streaming.cpu_threads, cores)
        return (threads, stream_workers(s)) if threads != batch[0] else batch

    def _load_in_low_priority_thread(self, spec: ModelSpec, threads: int, workers: int) -> LoadedModel:
        """Load on a fresh thread at lower priority: CTranslate2's worker threads, created now, inherit it."""
        result: dict[str, object] = {}

        def target() -> None:
            lower_thread_priority()
            try:
                result["model"] = self._loader(self._settings, spec, threads, workers)
            except BaseException as exc:  # re-raised in the caller's thread
                result["error"] = exc

        thread = threading.Thread(target=target, name=f"load-{spec.id}")
        thread.start()
        thread.join()
        if "error" in result:
            raise result["error"]  # type: ignore[misc]
        return result["model"]  # type: ignore[return-value]


def load_faster_whisper(s: Settings, spec: ModelSpec, threads: int, workers: int) -> LoadedModel:
    """faster-whisper's ``WhisperModel`` for ``spec`` (blocking; raises :class:`ModelUnavailableError`)."""
    device = resolve_device(s.models.device)
    compute_type = resolve_compute_type(s.models.compute_type, device)
    try:
        path = model_path(s, spec)
        log.info("loading model %s from %s on %s (%s, %d threads per call)", spec.id, path, device, compute_type, threads)
        # workers: calls that may run at once (batch workers, stream engine workers)
        return load_whisper(spec, path, device, compute_type, threads, workers, s.models.cache_dir / "hub")
    except Exception as exc:  # weights missing, no hub access, bad directory...
        log.exception("model %s failed to load", spec.id)
        raise ModelUnavailableError(f"Model {spec.id!r} could not be loaded: {exc}", param="model") from exc


def model_path(s: Settings, spec: ModelSpec) -> Path | str:
    """Local directory for packaged or local models; the hub id otherwise (faster-whisper downloads it)."""
    if spec.source.startswith("packaged:"):
        return packaged_model_dir(spec.source.split(":", 1)[1], s.models.cache_dir)
    return Path(spec.source) if Path(spec.source).expanduser().exists() else spec.source
