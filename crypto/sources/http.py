"""The one HTTP client for every upstream call.

It always sets connect and read timeouts, classifies every failure as transient (worth retrying)
or permanent (fail now, say why) in one table, retries transient ones with capped exponential
backoff and full jitter, honours Retry-After, and checks that a body is the JSON it should be
before anyone parses it. Secret header values never reach a log line or an error message.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

import orjson
import requests
import urllib3

from crypto.sources.body import SourceError, json_loads
from crypto.sources.deadline import deadline_check, remaining

USER_AGENT = "kasparro-crypto-etl/1.0"

logger = logging.getLogger(__name__)


class UpstreamError(SourceError):
    transient = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds the upstream asked us to wait, when it said


class TransientUpstreamError(UpstreamError):
    """Worth trying again later: throttling, server trouble, a dropped connection."""

    transient = True


class PermanentUpstreamError(UpstreamError):
    """Trying again will not help: bad key, bad request, a body that is not the expected JSON."""


# The classification table: HTTP status -> (transient?, what to tell the operator).
_STATUS_TABLE: dict[int, tuple[bool, str]] = {
    400: (False, "the upstream rejected the request as malformed"),
    401: (False, "the API key is missing or not accepted; check the *_API_KEY setting"),
    402: (True, "the upstream's free tier is throttling us (402)"),
    403: (False, "access is forbidden; the key lacks rights or a CDN blocked this client"),
    404: (False, "nothing at this address: check the *_BASE_URL setting, or the id asked for"),
    408: (True, "the upstream timed out waiting for the request"),
    429: (True, "rate limited by the upstream"),
}


def classify_status(status: int) -> tuple[bool, str]:
    if status in _STATUS_TABLE:
        return _STATUS_TABLE[status]
    if status >= 500:
        return True, f"the upstream had a server error ({status})"
    return False, f"the upstream refused the request ({status})"


_TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass(frozen=True)
class JsonResponse:
    data: Any
    url: str  # the URL asked, with its query; keys travel in headers so none is here
    status: int
    fetched_at: datetime
    size: int


def parse_retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait, from `Retry-After` (seconds or HTTP-date) or CoinGecko's
    `x-ratelimit-reset` (`2025-07-25 14:54:00 +0000`). None when neither is usable."""
    now = now or datetime.now(UTC)
    value = headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - now).total_seconds())
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            when = datetime.strptime(reset.strip(), "%Y-%m-%d %H:%M:%S %z")
        except ValueError:
            return None
        return max(0.0, (when - now).total_seconds())
    return None


@dataclass(frozen=True, kw_only=True)
class HttpPolicy:
    """How patient the client is: timeouts on every request, and how transient failures retry."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    retry_after_cap: float = 60.0
    # An answer larger than this (decompressed) is refused while it is read, never held whole.
    max_body_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class HttpHooks:
    """What the caller does around each attempt: wait for the rate budget before it, count its
    outcome (a status code or an error's name) and each retry."""

    before_request: Callable[[], None] = lambda: None
    outcome: Callable[[str], None] = lambda outcome: None
    retried: Callable[[], None] = lambda: None
    # The upstream asked for a pause (Retry-After): every caller of it waits, not only this one.
    paused: Callable[[float], None] = lambda seconds: None


class HttpClient:
    def __init__(
        self,
        *,
        policy: HttpPolicy | None = None,
        hooks: HttpHooks | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        policy = policy or HttpPolicy()
        self.timeout = (policy.connect_timeout, policy.read_timeout)
        self.max_attempts = policy.max_attempts
        self.backoff_base = policy.backoff_base
        self.backoff_cap = policy.backoff_cap
        self.retry_after_cap = policy.retry_after_cap
        self.max_body_bytes = policy.max_body_bytes
        self.session = session or requests.Session()
        self.sleep = sleep
        # Called around every attempt, retries included: the shared rate limiter waits here.
        self.hooks = hooks or HttpHooks()

    def backoff(self, attempt: int) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        secret_headers: Mapping[str, str] | None = None,
    ) -> JsonResponse:
        """GET a JSON document, retrying what is transient. Raises UpstreamError otherwise."""
        secrets = [v for v in (secret_headers or {}).values() if v]
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(secret_headers or {})}
        request = requests.Request("GET", url, params=params).prepare()
        shown_url = redact(str(request.url), secrets)
        attempt = 0
        while True:
            attempt += 1
            deadline_check(doing=f"GET {shown_url}")
            self.hooks.before_request()
            try:
                return self._attempt(url, params, headers, shown_url, secrets)
            except TransientUpstreamError as exc:
                retry_after = exc.retry_after
                if retry_after is not None:
                    self.hooks.paused(retry_after)
                if attempt >= self.max_attempts:
                    raise TransientUpstreamError(
                        f"{exc} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})",
                        status=exc.status,
                        retry_after=retry_after,
                    ) from None
                if retry_after is not None:
                    if retry_after > self.retry_after_cap:
                        raise TransientUpstreamError(
                            f"{exc}; the upstream asked to wait {retry_after:.0f}s, longer than "
                            f"HTTP_RETRY_AFTER_CAP={self.retry_after_cap:.0f}s",
                            status=exc.status,
                            retry_after=retry_after,
                        ) from None
                    delay = retry_after
                else:
                    delay = self.backoff(attempt)
                logger.warning(
                    "upstream call failed, retrying",
                    extra={
                        "url": shown_url,
                        "attempt": attempt,
                        "delay_s": round(delay, 2),
                        "reason": str(exc),
                    },
                )
                self.hooks.retried()
                left = remaining()
                self.sleep(delay if left is None else max(0.0, min(delay, left)))

    def _content(self, response: requests.Response, shown_url: str) -> bytes:
        """The answer's body read as it arrives (decompressed): stopped past the run's deadline,
        however slowly it drips, and past `max_body_bytes`, however well it compresses."""
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                deadline_check(doing=f"GET {shown_url}: still answering")
                chunk = response.raw.read1(1 << 16, decode_content=True)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise PermanentUpstreamError(
                        f"GET {shown_url} answered more than {self.max_body_bytes:,} bytes (HTTP_MAX_BODY_BYTES); "
                        "refused rather than held in memory"
                    )
                chunks.append(chunk)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise requests.exceptions.ChunkedEncodingError(exc) from None  # cut short: transient
        finally:
            response.close()

    def _attempt(
        self,
        url: str,
        params: Mapping[str, Any] | None,
        headers: dict[str, str],
        shown_url: str,
        secrets: list[str],
    ) -> JsonResponse:
        left = remaining()
        connect, read = self.timeout
        timeout = (connect, read) if left is None else (max(0.1, min(connect, left)), max(0.1, min(read, left)))
        try:
            response = self.session.get(url, params=params, headers=headers, timeout=timeout, stream=True)
            content = self._content(response, shown_url)
        except _TRANSIENT_EXCEPTIONS as exc:
            self.hooks.outcome(type(exc).__name__)
            raise TransientUpstreamError(f"GET {shown_url}: {redact(_network_reason(exc), secrets)}") from None
        except requests.RequestException as exc:
            self.hooks.outcome(type(exc).__name__)
            # Not str(exc): for a bad header it quotes the header's value, which may be the key.
            raise PermanentUpstreamError(
                f"GET {shown_url}: the request could not be made ({type(exc).__name__})"
            ) from None

        status = response.status_code
        self.hooks.outcome(str(status))
        if status >= 400:
            transient, meaning = classify_status(status)
            detail = _error_detail(response, content)
            if status == 402 and _PLAN_REFUSAL.search(detail):
                # Payment required for what was asked (a range or interval beyond the plan, say), not
                # throttling: asking again cannot help.
                transient, meaning = False, "the upstream's plan does not allow this request (402)"
            message = redact(f"GET {shown_url} answered HTTP {status}: {meaning}{detail}", secrets)
            if transient:
                raise TransientUpstreamError(message, status=status, retry_after=parse_retry_after(response.headers))
            raise PermanentUpstreamError(message, status=status)

        content_type = response.headers.get("Content-Type", "")
        if not _is_json_type(content_type):
            kind = (
                "an HTML page (likely a CDN or captive portal)"
                if _looks_like_html(content)
                else (f"content of type {content_type or 'unknown'!r}")
            )
            raise PermanentUpstreamError(f"GET {shown_url} answered HTTP {status} with {kind}, not JSON", status=status)
        try:
            data = json_loads(content)
        except ValueError as exc:
            raise PermanentUpstreamError(
                f"GET {shown_url} answered HTTP {status} with a body that is not valid JSON "
                f"({len(content)} bytes, {exc}); it may have been cut short",
                status=status,
            ) from None
        return JsonResponse(data=data, url=shown_url, status=status, fetched_at=datetime.now(UTC), size=len(content))


def _network_reason(exc: requests.RequestException) -> str:
    """A one-line reason instead of urllib3's nested retry message."""
    host = urlparse(exc.request.url).hostname if exc.request is not None and exc.request.url else "the host"
    text = str(exc)
    if isinstance(exc, requests.Timeout):
        return f"timed out talking to {host} ({type(exc).__name__})"
    if "NameResolutionError" in text or "Name or service not known" in text or "getaddrinfo" in text:
        return f"cannot resolve {host}: no network or DNS?"
    if "Connection refused" in text:
        return f"connection to {host} refused"
    if isinstance(exc, requests.ConnectionError):
        return f"connection to {host} failed or was cut ({type(exc).__name__})"
    return f"{type(exc).__name__} while reading from {host}"


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _looks_like_html(content: bytes) -> bool:
    head = content[:512].lstrip().lower()
    return head.startswith(b"<!doctype html") or head.startswith(b"<html") or b"<head" in head


_PLAN_REFUSAL = re.compile(r"\bplans?\b", re.IGNORECASE)


def _error_detail(response: requests.Response, content: bytes) -> str:
    """The upstream's own error text when it sent JSON: `{"error": "..."}`, `{"status": {...}}`, or
    nested (CoinGecko's `{"error": {"status": {"error_code": 10012, "error_message": "..."}}}`)."""
    if not _is_json_type(response.headers.get("Content-Type", "")):
        return " (HTML page)" if _looks_like_html(content) else ""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ""
    text = _error_text(body, depth=3)
    return f" ({text[:200]})" if text else ""


def _error_text(body: Any, *, depth: int) -> str:
    if not isinstance(body, dict) or depth == 0:
        return ""
    for key in ("error", "error_message", "message"):
        if isinstance(body.get(key), str):
            return str(body[key])
    for key in ("error", "status"):
        text = _error_text(body.get(key), depth=depth - 1)
        if text:
            return text
    return ""


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
