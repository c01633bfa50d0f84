"""Prometheus metrics, moved by the pipeline itself and served at /metrics.

Multi-process: every process (gunicorn or runserver, each Celery process, `manage.py ingest`)
writes its own files in PROMETHEUS_MULTIPROC_DIR (./var/metrics by default, set by the settings;
docker/entrypoint.sh names a folder the Compose services share as a volume) and /metrics adds
them up. Without a writable folder, the metrics of the serving process alone.
"""

from __future__ import annotations

import os
import socket

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from kasparro.processes import process_alive


def _host() -> str:
    return socket.gethostname().replace("_", "-")


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Files are named by process id alone, and containers sharing the metrics volume each count
    # their processes from 1: the host name keeps a gunicorn worker and a Celery child with the
    # same pid from writing one file. (No "_": the collector splits file names on it.)
    values.ValueClass = values.MultiProcessValue(lambda: f"{_host()}-{os.getpid()}")

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
TASK_RETRIES = Counter("kasparro_task_retries_total", "Ingestion tasks scheduled to run again", ["source"])
QUARANTINED = Counter("kasparro_records_quarantined_total", "Invalid records kept in quarantine", ["source"])
SCHEMA_DRIFT = Counter(
    "kasparro_schema_drift_total", "Bodies whose structure drifted from the previous one", ["source", "severity"]
)
RUN_FLAGS = Counter("kasparro_run_flags_total", "Anomalies flagged on runs, by kind", ["source", "kind"])
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LAST_SUCCESS = Gauge(
    "kasparro_last_success_timestamp_seconds",
    "Unix time of the last successful run",
    ["source"],
    multiprocess_mode="max",
)


def method_label(method: str | None) -> str:
    # Clients choose the method: a bounded label keeps them from minting series at will.
    return method if method in HTTP_METHODS else "OTHER"


def metrics_files_clear() -> int:
    """Remove the metrics files of this host's processes that have ended, as a stack starts
    (`make run`): series of an earlier start would otherwise be added to this one's, while the
    files of processes still running (here or on another host sharing the folder) stay. Returns
    the files removed."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return 0
    removed = 0
    for name in os.listdir(folder):
        ident = name.removesuffix(".db").partition("_")[2]
        host, _, pid = ident.rpartition("-")
        if not name.endswith(".db") or not pid.isdigit() or host not in ("", _host()) or process_alive(int(pid)):
            continue
        os.remove(os.path.join(folder, name))
        removed += 1
    return removed


def metrics_exposition() -> tuple[bytes, str]:
    """The text exposition of every process's metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
