"""Scale out on Ray Serve: the same FastAPI app as one Serve deployment of N replicas.

``audio-service serve --ray.enabled --ray.replicas N`` joins the cluster at ``ray.address`` / ``RAY_ADDRESS``
(or starts a local one), deploys, serves on ``server.host``:``server.port`` through Serve's HTTP proxy and, on SIGTERM or
Ctrl-C, deletes the application and stops the local cluster it started. Operators can deploy the same
application with ``serve run`` / ``serve deploy`` and ``deploy/ray/serve.yaml`` (:func:`app_builder`).

Every replica builds the whole app with :func:`audio_service.app.create_app` from the one ``Settings``
object (pickled to the replicas), loads its own models before it takes traffic, and names itself in the
``x-audio-service-replica`` header. Serve's router sends each request and each WebSocket stream (one
long request) to the least loaded of two sampled replicas; a stream stays on its replica for its life.
Cluster-wide stream limits and the shared batch waiting room need a shared store:
``quotas.storage=redis://...``.

A batch file longer than ``ray.fanout_block_s`` is cut into blocks by the replica that received it; the
receiver transcribes blocks on its own workers and keeps one block in flight per other replica through a
handle to this same deployment (``transcribe_block``: see :class:`BlocksOnReplicas` for why not all at
once); it joins them on the file's clock and diarizes the whole file itself, so speaker labels hold over
the whole file.

This is the only module that imports Ray (the ``ray`` extra); the single-process server never loads it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

import ray
from ray import serve
from starlette.middleware import Middleware

from audio_service.api.middleware.identity import replica_name
from audio_service.scale.replica_loss import ReplicaLossMiddleware
from audio_service.settings import Settings

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

    from audio_service.ops.metrics import Metrics
    from audio_service.pipeline.batch import BatchService
    from audio_service.pipeline.fanout import BlockResult, BlockTask

log = logging.getLogger(__name__)
APP_NAME = "audio-service"
DEPLOYMENT_NAME = "audio-service"
PROXY_CALLBACK = "audio_service.scale.ray_serve:proxy_middlewares"


@serve.ingress()
class AudioServiceReplica:
    """One replica: the service's FastAPI app with its own models (built when Serve starts the replica)."""

    def __init__(self, settings: Settings) -> None:
        context = serve.get_replica_context()
        # the Serve replica id, and where it runs (operators find its process and logs)
        name = settings.server.replica_name or f"{context.deployment}#{context.replica_id.unique_id}@{replica_name(settings)}"
        server: dict[str, Any] = {"replica_name": name}
        if settings.server.metrics_port:  # one scrape port per replica of this node (ranks are 0..n-1 per node)
            server["metrics_port"] = settings.server.metrics_port + _local_rank(context)
        self._settings = settings.updated({"server": server, **replica_threads(settings)})
        self._blocks = BlocksOnReplicas(context.app_name, context.deployment, settings)
        self._batch: BatchService | None = None  # both set by __serve_build_asgi_app__
        self._metrics: Metrics | None = None

    async def __serve_build_asgi_app__(self):
        """Build the app and load the preloaded models first: Serve routes nothing to a replica before, and
        a replica whose model fails to load fails to start (Serve retries it)."""
        from audio_service.app import create_app  # the app's modules load inside the replica process

        app = create_app(self._settings, self._blocks if self._settings.ray.fanout_block_s > 0 else None)
        self._batch, self._metrics = app.state.services.batch, app.state.services.ops.metrics
        for model in self._settings.models.preload:
            await asyncio.to_thread(app.state.services.registry.get, model)
            await asyncio.to_thread(app.state.services.registry.get, model, stream=True)
        return app

    async def transcribe_block(self, task: BlockTask) -> BlockResult:
        """One block of a long file that a replica (maybe this one) fans out."""
        from audio_service.pipeline.fanout import BlockResult

        assert self._batch is not None and self._metrics is not None  # Serve routes nothing before the app is built
        with self._metrics.fanout_blocks.track_inprogress():
            return BlockResult(await self._batch.transcribe_block(task), self._settings.server.replica_name)


def _local_rank(context) -> int:
    """The replica's rank among this deployment's replicas on its node (0 where Serve gives none)."""
    rank = getattr(context, "rank", None)
    return int(getattr(rank, "local_rank", rank) or 0)


class BlocksOnReplicas:
    """The Ray :class:`~audio_service.pipeline.fanout.BlockTranscriber`: each block is one call to the
    deployment's ``transcribe_block``, routed like any request (to the less loaded of two replicas), with
    one block in flight per other replica (``lanes``) beside the receiver's own."""

    def __init__(self, app_name: str, deployment: str, settings: Settings) -> None:
        self._names = (deployment, app_name)
        self._settings = settings
        self._handle: DeploymentHandle | None = None  # made on first use: the application is still being deployed in __init__

    @property
    def lanes(self) -> int:
        """Replicas besides this one: Serve's count (a config file's ``deployments`` section may set it),
        else the settings' (with autoscaling, at least ``min_replicas`` run)."""
        world = getattr(serve.get_replica_context(), "world_size", None)
        if not world:
            auto = self._settings.ray.autoscaling or {}
            world = int(auto.get("min_replicas", 1)) if auto else self._settings.ray.replicas
        return max(0, int(world) - 1)

    async def __call__(self, task: BlockTask) -> BlockResult:
        from audio_service.pipeline.fanout import LaneLost

        if self._handle is None:
            self._handle = serve.get_deployment_handle(*self._names)
        try:
            return await self._handle.transcribe_block.remote(task)
        except ray.exceptions.RayActorError as exc:  # the replica died (or became unreachable) mid-block
            log.warning("a block's replica was lost (%s): the block goes to another", type(exc).__name__)
            raise LaneLost(str(exc)) from exc


def replica_threads(settings: Settings) -> dict[str, dict[str, Any]]:
    """The automatic thread counts (``models.cpu_threads``, ``streaming.workers`` at 0) of a replica on a CPU,
    from its CPU reservation (``ray.num_cpus``) rather than the node's cores: replicas share a node, and each
    sizing itself to all the cores would oversubscribe them N times. Group -> field -> value."""
    from audio_service.models.registry import resolve_device

    cores = max(1, math.floor(settings.ray.num_cpus))
    update: dict[str, dict[str, Any]] = {}
    if settings.models.cpu_threads == 0:
        update["models"] = {"cpu_threads": cores}
    if settings.streaming.workers == 0 and resolve_device(settings.models.device) == "cpu":  # a GPU replica keeps one
        update["streaming"] = {"workers": max(1, cores // max(1, settings.streaming.cpu_threads))}
    return update


def proxy_middlewares() -> list[Middleware]:
    """The Serve HTTP proxy's middlewares (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` points here)."""
    return [Middleware(ReplicaLossMiddleware)]


def deployment_options(settings: Settings, cluster_gpus: float = 0.0) -> dict[str, Any]:
    """Serve deployment options from the settings: replicas or autoscaling, CPUs or GPUs per replica."""
    gpus = settings.ray.num_gpus
    if gpus is None:
        gpus = 1.0 if settings.models.device != "cpu" and cluster_gpus > 0 else 0.0
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "ray_actor_options": {"num_cpus": settings.ray.num_cpus, "num_gpus": gpus},
        "max_ongoing_requests": settings.ray.max_ongoing_requests,
        "health_check_period_s": 10,
    }
    if settings.ray.autoscaling:
        # Serve wants whole numbers of replicas; JSON numbers arrive as floats
        options["autoscaling_config"] = {k: int(v) if k.endswith("replicas") else v for k, v in settings.ray.autoscaling.items()}
    else:
        options["num_replicas"] = max(1, settings.ray.replicas)
    return options


def build_application(settings: Settings, cluster_gpus: float = 0.0):
    """The Serve application (bound deployment) for ``settings``."""
    # Ray annotates serve.deployment() as returning the decorator, but given a class it returns the Deployment
    deployment = serve.deployment(AudioServiceReplica).options(**deployment_options(settings, cluster_gpus))  # type: ignore[attr-defined]
    return deployment.bind(settings)


def app_builder(args: dict[str, Any]):
    """``serve run``/``serve deploy`` entry (``import_path: audio_service.scale.ray_serve:app_builder``).

    Settings come from ``AUDIO_SERVICE_*`` (the config's ``runtime_env.env_vars``) with ``args`` on top
    (grouped like the settings: ``{"streaming": {"max_batch": 4}}``);
    the config file's ``deployments`` section then overrides replicas, resources and autoscaling.
    """
    settings = Settings(**(args or {}))
    return build_application(settings, _cluster_gpus())


def _cluster_gpus() -> float:
    if not ray.is_initialized():  # asking would start a local cluster
        return 0.0
    try:
        return float(ray.cluster_resources().get("GPU", 0.0))
    except Exception:  # noqa: BLE001 - not connected: the config file decides
        return 0.0


def serve_forever(settings: Settings) -> int:
    """Deploy on the cluster, serve until SIGTERM/SIGINT, then remove the deployment (and a local cluster)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reporting from a self-hosted service
    # Read by the proxy actors of a local cluster (they inherit this environment); a cluster that is
    # joined needs it in its own environment (deploy/kuberay sets it).
    os.environ.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", PROXY_CALLBACK)
    address = settings.ray.address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        # A local cluster just big enough: logical CPUs are a scheduling budget, so a small machine may
        # still run N one-CPU replicas; no dashboard (it costs a process and a port).
        cpus = max(os.cpu_count() or 1, math.ceil(settings.ray.replicas * settings.ray.num_cpus))
        ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=512 << 20, logging_level=logging.WARNING)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # after ray.init: Ray installs handlers of its own that abort
        signal.signal(sig, lambda *_: stop.set())
    log.info("ray cluster: %s (%s)", ray.get_runtime_context().gcs_address, "joined" if address else "started locally")
    try:
        serve.start(http_options={"host": settings.server.host, "port": settings.server.port})
        serve.run(build_application(settings, _cluster_gpus()), name=APP_NAME, route_prefix="/")
        log.info("serving %s on http://%s:%d", APP_NAME, settings.server.host, settings.server.port)
        while not stop.wait(1.0):
            pass
        log.info("stopping: removing the %s application", APP_NAME)
    finally:
        try:
            if address:
                serve.delete(APP_NAME)  # a shared cluster keeps Serve for its other applications
            else:
                serve.shutdown()
        finally:
            ray.shutdown()  # a local cluster's GCS and raylet stop with the driver that started them
    return 0
