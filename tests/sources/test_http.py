"""The one HTTP client: timeouts, retry classification, Retry-After, body checks, no leaked keys."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses

from crypto.sources.http import (
    HttpClient,
    HttpPolicy,
    PermanentUpstreamError,
    TransientUpstreamError,
    parse_retry_after,
)

URL = "https://api.example.test/v1/tickers"
SECRET = "sk-live-very-secret-key"


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sleeps: Sleeps) -> HttpClient:
    policy = HttpPolicy(max_attempts=4, backoff_base=1.0, backoff_cap=8.0, retry_after_cap=30.0)
    return HttpClient(policy=policy, sleep=sleeps)


def test_every_request_carries_connect_and_read_timeouts(http: responses.RequestsMock) -> None:
    seen = {}

    def capture(request: requests.PreparedRequest) -> tuple[int, dict, str]:
        seen["timeout"] = request.req_kwargs["timeout"]  # type: ignore[attr-defined]
        return 200, {"Content-Type": "application/json"}, "[]"

    http.add_callback(responses.GET, URL, callback=capture)
    HttpClient(policy=HttpPolicy(connect_timeout=3, read_timeout=17)).get_json(URL)
    assert seen["timeout"] == (3, 17)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 402])
def test_transient_statuses_are_retried_until_success(
    http: responses.RequestsMock, client: HttpClient, sleeps: Sleeps, status: int
) -> None:
    http.add(responses.GET, URL, status=status, json={"error": "slow down"})
    http.add(responses.GET, URL, status=200, json=[{"id": "btc-bitcoin"}])
    assert client.get_json(URL).data == [{"id": "btc-bitcoin"}]
    assert len(sleeps) == 1


def test_connection_errors_and_timeouts_are_retried(
    http: responses.RequestsMock, client: HttpClient, sleeps: Sleeps
) -> None:
    http.add(responses.GET, URL, body=requests.ConnectionError("reset by peer"))
    http.add(responses.GET, URL, body=requests.ReadTimeout("read timed out"))
    http.add(responses.GET, URL, json=[])
    assert client.get_json(URL).data == []
    assert len(sleeps) == 2


def test_backoff_is_exponential_with_full_jitter_and_capped(
    http: responses.RequestsMock, client: HttpClient, sleeps: Sleeps
) -> None:
    for _ in range(4):
        http.add(responses.GET, URL, status=503)
    with pytest.raises(TransientUpstreamError, match="gave up after 4 attempts"):
        client.get_json(URL)
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps, start=1):
        assert 0 <= delay <= min(8.0, 2 ** (attempt - 1))
    assert all(client.backoff(10) <= 8.0 for _ in range(100))
    assert len({round(client.backoff(3), 6) for _ in range(20)}) > 1, "delays are jittered"


def test_retry_after_seconds_is_honoured(http: responses.RequestsMock, client: HttpClient, sleeps: Sleeps) -> None:
    http.add(responses.GET, URL, status=429, json={"error": "too many"}, headers={"Retry-After": "7"})
    http.add(responses.GET, URL, json=[])
    client.get_json(URL)
    assert sleeps == [7.0]


def test_retry_after_http_date_is_honoured() -> None:
    now = datetime(2025, 7, 25, 14, 53, 0, tzinfo=UTC)
    when = format_datetime(now + timedelta(seconds=12), usegmt=True)
    assert parse_retry_after({"Retry-After": when}, now=now) == 12.0


def test_coingecko_ratelimit_reset_header_is_understood() -> None:
    now = datetime(2025, 7, 25, 14, 53, 30, tzinfo=UTC)
    assert parse_retry_after({"x-ratelimit-reset": "2025-07-25 14:54:00 +0000"}, now=now) == 30.0
    assert parse_retry_after({}, now=now) is None
    assert parse_retry_after({"Retry-After": "soon"}, now=now) is None


def test_retry_after_beyond_the_cap_fails_as_transient_without_sleeping(
    http: responses.RequestsMock, client: HttpClient, sleeps: Sleeps
) -> None:
    http.add(responses.GET, URL, status=429, headers={"Retry-After": "3600"})
    with pytest.raises(TransientUpstreamError, match="asked to wait 3600s, longer than HTTP_RETRY_AFTER_CAP=30s"):
        client.get_json(URL)
    assert sleeps == []


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (401, "API key is missing or not accepted"),
        (403, "forbidden"),
        (404, "nothing at this address"),
        (400, "malformed"),
    ],
)
def test_permanent_statuses_fail_at_once_with_a_clear_message(
    http: responses.RequestsMock, client: HttpClient, sleeps: Sleeps, status: int, words: str
) -> None:
    http.add(responses.GET, URL, status=status, json={"error": "nope"})
    with pytest.raises(PermanentUpstreamError, match=f"HTTP {status}: .*{words}.*\\(nope\\)"):
        client.get_json(URL)
    assert sleeps == [] and len(http.calls) == 1


def test_the_upstreams_own_reason_is_quoted_however_deep_it_nests(
    http: responses.RequestsMock, client: HttpClient
) -> None:
    reason = "Your request exceeds the allowed time range. Public API users are limited to 365 days."
    http.add(responses.GET, URL, status=401, json={"error": {"status": {"error_code": 10012, "error_message": reason}}})
    with pytest.raises(PermanentUpstreamError, match="HTTP 401: .*\\(Your request exceeds the allowed time range"):
        client.get_json(URL)


def test_a_402_that_says_the_plan_does_not_allow_the_request_fails_at_once_and_other_402s_are_retried(
    http: responses.RequestsMock, client: HttpClient, sleeps: Sleeps
) -> None:
    refusal = "Getting daily historical data before 2024-12-01 is not allowed in this plan. Check plans on …/api"
    http.add(responses.GET, URL, status=402, json={"error": refusal})
    with pytest.raises(PermanentUpstreamError, match="plan does not allow this request.*not allowed in this plan"):
        client.get_json(URL)
    assert sleeps == [] and len(http.calls) == 1


def test_html_from_a_cdn_is_refused_before_parsing(http: responses.RequestsMock, client: HttpClient) -> None:
    http.add(
        responses.GET,
        URL,
        status=200,
        body="<!DOCTYPE html><html><head><title>Just a moment...</title>",
        content_type="text/html; charset=UTF-8",
    )
    with pytest.raises(PermanentUpstreamError, match="HTML page .* not JSON"):
        client.get_json(URL)


def test_html_429_from_a_cdn_is_still_retried(http: responses.RequestsMock, client: HttpClient, sleeps: Sleeps) -> None:
    http.add(responses.GET, URL, status=429, body="<html><head></head></html>", content_type="text/html")
    http.add(responses.GET, URL, json=[])
    assert client.get_json(URL).data == []
    assert len(sleeps) == 1


def test_truncated_json_is_a_clear_permanent_error(http: responses.RequestsMock, client: HttpClient) -> None:
    http.add(responses.GET, URL, body='[{"id": "btc-bitcoin", "name": "Bitc', content_type="application/json")
    with pytest.raises(PermanentUpstreamError, match="not valid JSON .*cut short"):
        client.get_json(URL)


def test_keys_never_appear_in_errors_or_logs(
    http: responses.RequestsMock, client: HttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    http.add(responses.GET, URL, status=503, body=f"upstream echoed {SECRET}", content_type="text/plain")
    http.add(responses.GET, URL, status=401, json={"error": f"invalid key {SECRET}"})
    with pytest.raises(PermanentUpstreamError) as failure:
        client.get_json(URL, secret_headers={"Authorization": SECRET})
    assert http.calls[0].request.headers["Authorization"] == SECRET
    assert SECRET not in str(failure.value)
    assert "***" in str(failure.value)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "retrying" in logged
    assert SECRET not in logged
