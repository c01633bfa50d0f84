"""Prometheus metrics, moved by the pipeline itself and served at /metrics.

Multi-process safe: with PROMETHEUS_MULTIPROC_DIR set (docker/entrypoint.sh sets it, and the
Compose services share it as a volume) every gunicorn worker and Celery process writes its own
files there and /metrics adds them up; without it, the metrics of the serving process alone.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUEST_SECONDS = Histogram(
    "kasparro_http_request_duration_seconds",
    "HTTP request latency by route and status",
    ["method", "route", "status"],
)
RUNS = Counter("kasparro_ingestion_runs_total", "Ingestion runs by source and final status", ["source", "status"])
RECORDS_FETCHED = Counter("kasparro_records_fetched_total", "Records received from upstream bodies", ["source"])
ROWS_UPSERTED = Counter("kasparro_rows_upserted_total", "Normalized rows written", ["source"])
RUN_SECONDS = Histogram(
    "kasparro_ingestion_run_duration_seconds",
    "Ingestion run duration",
    ["source"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
UPSTREAM_CALLS = Counter(
    "kasparro_upstream_calls_total", "Upstream HTTP calls by outcome (status code or error)", ["upstream", "status"]
)
UPSTREAM_RETRIES = Counter("kasparro_upstream_retries_total", "Upstream calls retried", ["upstream"])
LAST_SUCCESS = Gauge(
    "kasparro_last_success_timestamp_seconds",
    "Unix time of the last successful run",
    ["source"],
    multiprocess_mode="max",
)


def metrics_exposition() -> tuple[bytes, str]:
    """The text exposition of every process's metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
