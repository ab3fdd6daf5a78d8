"""Prometheus metrics (names in docs/operations.md and docs/monitoring.md); ``GET /metrics`` is in ``api/routes/metrics.py``.

Each app has its own :class:`CollectorRegistry`, so several apps in one process (tests) or one
app per replica (Ray Serve) each export their own series. Labels never carry an API key, only the
key's name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
NS = "audio_service"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
STREAM_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)


class _Sampled(Collector):
    """Gauges read at scrape time from the live objects (queue, registry), so they are never stale."""

    def __init__(self, read: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self._read()


class Metrics:
    """Every metric of one app, registered in its own registry."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(f"{NS}_requests", "HTTP requests finished", ["route", "method", "status", "model"], registry=r)
        self.request_duration = Histogram(
            f"{NS}_request_duration_seconds", "HTTP request latency", ["route", "method"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.audio_seconds = Counter(f"{NS}_audio_seconds", "Audio processed, seconds", ["mode", "model"], registry=r)
        self.realtime_factor = Histogram(
            f"{NS}_realtime_factor",
            "Processing seconds / audio seconds per request or stream",
            ["mode", "model"],
            buckets=RTF_BUCKETS,
            registry=r,
        )
        self.active_streams = Gauge(f"{NS}_active_streams", "Open WebSocket streams", ["model"], registry=r)
        self.partial_latency = Histogram(
            f"{NS}_stream_partial_latency_seconds",
            "Audio received -> partial text sent",
            ["model"],
            buckets=STREAM_BUCKETS,
            registry=r,
        )
        self.final_latency = Histogram(
            f"{NS}_stream_final_latency_seconds",
            "Segment end received -> final segment sent",
            ["model"],
            buckets=STREAM_BUCKETS,
            registry=r,
        )
        self.stream_lag = Histogram(
            f"{NS}_stream_lag_seconds",
            "Audio received but not yet transcribed, sampled per message",
            ["model"],
            buckets=STREAM_BUCKETS,
            registry=r,
        )
        self.errors = Counter(f"{NS}_errors", "Errors by the error body's code (or type)", ["type"], registry=r)
        self.stream_closes = Counter(f"{NS}_stream_closes", "WebSocket close codes sent", ["code"], registry=r)
        self.quota_rejections = Counter(
            f"{NS}_quota_rejections", "Requests/streams refused by a quota", ["key", "limit"], registry=r
        )
        self.streams = Counter(f"{NS}_streams", "Streams finished", ["model"], registry=r)
        self.batch_in_progress = Gauge(
            f"{NS}_batch_requests_in_progress", "Batch requests being served (upload to last byte)", ["route"], registry=r
        )
        self.fanout_blocks = Gauge(
            f"{NS}_fanout_blocks_in_progress", "Blocks of long files (received by any replica) being transcribed here", registry=r
        )
        # which replica a scrape target is (value 1): the name its responses carry in x-audio-service-replica
        self.replica = Gauge(f"{NS}_replica_info", "This process's replica name", ["replica"], registry=r)

    def sample(
        self, queue_depth: Callable[[], int], busy_workers: Callable[[], int], load_seconds: Callable[[], dict[str, float]]
    ) -> None:
        """Register the scrape-time gauges: batch queue depth, busy workers, model load times."""

        def read() -> Iterable[GaugeMetricFamily]:
            yield GaugeMetricFamily(f"{NS}_queue_depth", "Batch requests waiting for a worker", value=queue_depth())
            yield GaugeMetricFamily(f"{NS}_busy_workers", "Batch workers running a request", value=busy_workers())
            loads = GaugeMetricFamily(f"{NS}_model_load_seconds", "Time it took to load the model", labels=["model"])
            for model, seconds in sorted(load_seconds().items()):
                loads.add_metric([model], seconds)
            yield loads

        self.registry.register(_Sampled(read))

    def observe_audio(self, mode: str, model: str, audio_s: float, processing_s: float) -> None:
        """One finished request or stream: audio seconds and its real-time factor."""
        self.audio_seconds.labels(mode, model).inc(max(0.0, audio_s))
        if audio_s > 0:
            self.realtime_factor.labels(mode, model).observe(processing_s / audio_s)


def serve_on_port(m: Metrics, host: str, port: int) -> Callable[[], None]:
    """Serve ``m`` on a port of its own (a small thread, off the event loop); returns the function that
    stops it. Behind a load balancer (Ray Serve's proxy) this is how each replica is scraped.

    A port that is taken is logged, not fatal: a replica that cannot be scraped still serves audio
    (during a rolling update a new replica may start before the old one has let its port go)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=m.registry)
    except OSError as exc:
        log.error("metrics port %s:%d unavailable (%s): /metrics is served on the main port only", host, port, exc)
        return lambda: None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
