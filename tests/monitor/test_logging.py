"""Structured logs: one JSON object per line, with the ids of the work, and no secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import responses
from django.conf import settings
from django.test import Client

from crypto.services.ingest.run import ingestion_run
from tests.conftest import mock_gecko_page, mock_gecko_two_pages

pytestmark = pytest.mark.django_db
SECRET = "CG-structured-log-secret-9911"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The root handler's formatter and filters, writing to a buffer."""
    configured = logging.getLogger().handlers[0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configured.formatter)
    for log_filter in configured.filters:
        handler.addFilter(log_filter)
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_logs_are_json_lines_formatted_by_default() -> None:
    assert settings.LOG_FORMAT == "json"
    assert type(logging.getLogger().handlers[0].formatter).__name__ == "JsonFormatter"


def test_a_run_logs_json_with_its_run_id_and_source_and_no_key(
    http: responses.RequestsMock, settings, json_lines: io.StringIO
) -> None:
    settings.COINGECKO_API_KEY = SECRET
    mock_gecko_page(http, 1, b'{"error": "rate limited"}', status=429, headers={"Retry-After": "0"})
    mock_gecko_two_pages(http)
    run = ingestion_run(source="coingecko", trigger="cli")
    lines = records(json_lines)
    ours = [line for line in lines if line["logger"].startswith("crypto")]
    assert {"ingestion run started", "upstream call failed, retrying", "ingestion run finished"} <= {
        line["message"] for line in ours
    }
    assert all(line["run_id"] == run.pk and line["source"] == "coingecko" for line in ours)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert SECRET not in json_lines.getvalue()


def test_a_secret_logged_by_mistake_is_redacted(settings, json_lines: io.StringIO) -> None:
    settings.COINPAPRIKA_API_KEY = SECRET
    logging.getLogger("anything").warning("oops %s", SECRET, extra={"header": f"Authorization: {SECRET}"})
    line = records(json_lines)[-1]
    assert line["message"] == "oops ***" and line["header"] == "Authorization: ***"


def test_requests_get_an_id_on_their_log_line_and_response(json_lines: io.StringIO) -> None:
    response = Client().get("/stats", HTTP_X_REQUEST_ID="req-123", HTTP_ACCEPT="application/json")
    assert response["X-Request-ID"] == "req-123"
    line = next(line for line in records(json_lines) if line["logger"] == "kasparro.request")
    assert (line["request_id"], line["path"], line["status"]) == ("req-123", "/stats", 200)
    generated = Client().get("/health", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]
    assert len(generated) == 32 and " " not in generated


def test_a_secret_inside_a_traceback_is_redacted(settings, json_lines: io.StringIO) -> None:
    settings.COINGECKO_API_KEY = SECRET
    try:
        raise RuntimeError(f"upstream said {SECRET}")
    except RuntimeError:
        logging.getLogger("anything").exception("it broke")
    line = records(json_lines)[-1]
    assert "RuntimeError: upstream said ***" in line["exc_info"]
    assert SECRET not in json_lines.getvalue()
