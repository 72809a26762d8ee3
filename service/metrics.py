"""Every Prometheus metric of the service, declared here and nowhere else.

One `ServiceMetrics` per app, each with its own registry, so several apps in one process (tests) never
collide. Names follow the conventions (`_seconds`, `_total`, base units); labels never carry ids: routes
are templates (`/stickers/{sticker_id:path}`), stages are `encode`, `retrieve`, `rerank`.
"""

from __future__ import annotations

from typing import get_args

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE_LATEST
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from service.recommender import Stage

PREFIX = "stickers"
# latency buckets suited to a 5-60 ms service: fine below 50 ms, coarse up to 10 s
LATENCY_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03,
                           0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(f"{PREFIX}_http_requests_total", "HTTP requests by route template, method, status",
                                ["route", "method", "status"], registry=r)
        self.request_seconds = Histogram(f"{PREFIX}_http_request_duration_seconds",
                                         "HTTP request latency by route template, method, status",
                                         ["route", "method", "status"], buckets=LATENCY_BUCKETS_SECONDS, registry=r)
        self.stage_seconds = Histogram(f"{PREFIX}_stage_duration_seconds",
                                       "Time of one recommendation stage for one micro-batch",
                                       ["stage"], buckets=LATENCY_BUCKETS_SECONDS, registry=r)
        self.cache_hits = Counter(f"{PREFIX}_cache_hits_total", "Dialogue encodings found in the cache", registry=r)
        self.cache_misses = Counter(f"{PREFIX}_cache_misses_total", "Dialogue encodings not in the cache", registry=r)
        self.cache_errors = Counter(f"{PREFIX}_cache_errors_total",
                                    "Cache operations that failed (the request went on without the cache)",
                                    registry=r)
        self.cache_invalid = Counter(f"{PREFIX}_cache_invalid_total",
                                     "Cached values refused (wrong layout, shape, dtype or values): a miss, "
                                     "recomputed and overwritten", registry=r)
        self.batch_size = Histogram(f"{PREFIX}_batch_size", "Requests per model micro-batch",
                                    buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.queue_depth = Gauge(f"{PREFIX}_queue_depth", "Requests waiting for the model worker", registry=r)
        self.rejected = Counter(f"{PREFIX}_rejected_total", "Requests refused because the queue was full",
                                registry=r)
        self.abandoned = Counter(f"{PREFIX}_abandoned_total",
                                 "Queued requests dropped before the model: the client left, or the queue "
                                 "deadline passed", ["reason"], registry=r)
        self.worker_restarts = Counter(f"{PREFIX}_worker_restarts_total",
                                       "Times the model worker died and was restarted", registry=r)
        self.body_too_large = Counter(f"{PREFIX}_body_too_large_total",
                                      "Requests refused (413) for a body over the limit", registry=r)
        self.index_info = Info(f"{PREFIX}_index", "The loaded sticker index", registry=r)
        self.index_stickers = Gauge(f"{PREFIX}_index_stickers", "Stickers in the loaded index", registry=r)
        self.index_reloads = Counter(f"{PREFIX}_index_reloads_total", "Index loads by result",
                                     ["result"], registry=r)
        self.sync_errors = Counter(f"{PREFIX}_index_sync_errors_total",
                                   "Failures talking to Redis for index versions (pub/sub, version key)",
                                   registry=r)
        for reason in ("disconnected", "deadline"):
            self.abandoned.labels(reason=reason)
        for stage in get_args(Stage):
            self.stage_seconds.labels(stage=stage)  # so every stage shows up at 0 before the first request

    def observe_stage(self, stage: Stage, seconds: float) -> None:
        self.stage_seconds.labels(stage=stage).observe(seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = {"route": route, "method": method, "status": str(status)}
        self.requests.labels(**labels).inc()
        self.request_seconds.labels(**labels).observe(seconds)

    def set_index(self, version: str, model_version: str, stickers: int) -> None:
        self.index_info.info({"version": version, "model_version": model_version})
        self.index_stickers.set(stickers)

    def render(self) -> bytes:
        return generate_latest(self.registry)
