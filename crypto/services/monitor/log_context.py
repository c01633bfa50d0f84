"""Structured logs: every line one JSON object carrying the run id, source, task id and request id
of the work it belongs to, and never a secret.

The ids travel in a context variable, so any logger called while a run, task or request is in
progress (ours, Celery's, Django's) gets them without being passed anything.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from crypto.services.monitor.metrics import HTTP_REQUEST_SECONDS, method_label

_context: ContextVar[dict[str, Any]] = ContextVar("log_context", default={})  # noqa: B039 (never mutated)

logger = logging.getLogger("kasparro.request")


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


# What every LogRecord has: anything else on a record is a field a caller gave it (`extra=`).
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class PlainFormatter(logging.Formatter):
    """One line for a person: time, level, logger and message, then the record's fields as
    `key=value` (the request's method, path, status and duration; a retry's url, attempt and
    reason), which the JSON format carries as keys."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # logging's name
        fields = {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}
        line = super().formatMessage(record)
        return " ".join([line, *(f"{key}={_plain_value(value)}" for key, value in fields.items())])


def _plain_value(value: object) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if not text or any(ch in text for ch in ' "=\n') else text


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _secrets() -> list[str]:
    names = ("COINGECKO_API_KEY", "COINPAPRIKA_API_KEY", "SECRET_KEY", "METRICS_TOKEN")
    values = [str(getattr(settings, name, "") or "") for name in names]
    values.append(str(settings.DATABASES["default"].get("PASSWORD") or ""))
    values.append((urlparse(settings.REDIS_URL).password or "") if settings.REDIS_URL else "")
    values.append(os.environ.get("FLOWER_BASIC_AUTH", "").partition(":")[2])
    return [value for value in values if len(value) >= 4]


class RedactFilter(logging.Filter):
    """The last guard: a configured secret found in a log line is replaced, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _secrets()
        if not secrets:
            return True
        message = record.getMessage()
        cleaned = message
        for secret in secrets:
            cleaned = cleaned.replace(secret, "***")
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info:
            # Tracebacks are formatted after filters run: format this one here, redacted.
            text = logging.Formatter().formatException(record.exc_info)
            for secret in secrets:
                text = text.replace(secret, "***")
            record.exc_text, record.exc_info = text, None
        for key, value in list(record.__dict__.items()):
            if isinstance(value, str) and any(secret in value for secret in secrets):
                for secret in secrets:
                    value = value.replace(secret, "***")
                setattr(record, key, value)
        return True


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIdMiddleware:
    """Gives each request an id (the caller's `X-Request-ID` when sane), puts it on every log
    line of the request and on the response, logs one line per request and observes its latency."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        started = time.perf_counter()
        with log_context(request_id=request_id):
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            match = request.resolver_match
            route = (match.view_name or match.route) if match else "unmatched"
            HTTP_REQUEST_SECONDS.labels(method_label(request.method), route, str(response.status_code)).observe(elapsed)
            logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
        response["X-Request-ID"] = request_id
        return response
