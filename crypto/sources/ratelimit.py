"""One call budget per upstream, shared by every worker process.

Celery's own `rate_limit` counts per worker, so N workers would make N times the calls. This
limiter keeps a moving window of call times in Redis (the `limits` library's Lua script, atomic),
so in any window the upstream sees at most `calls` requests from all processes together.
Without Redis (embedded mode) the window lives in process memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from crypto.sources.body import SourceError

logger = logging.getLogger(__name__)
# Without Redis (embedded mode) the budgets and the pauses upstreams asked for live in this process,
# one store for every limiter in it.
_IN_PROCESS = storage_from_string("memory://", wrap_exceptions=True)
_PAUSES: dict[str, float] = {}  # monotonic ends


class RateLimitTimeout(SourceError):
    transient = True
    retry_after: float | None = None


class RateLimiterUnavailable(SourceError):
    """The store that holds the shared budget (Redis) cannot be reached: no call may be made, and
    the run is worth trying again once it is back."""

    transient = True


class SharedRateLimiter:
    def __init__(
        self,
        *,
        name: str,
        calls: int,
        window_seconds: int,
        storage_url: str = "",
        max_wait: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        # One second of margin: the upstream counts arrivals, and a call admitted just as the
        # window turns can arrive a few milliseconds later, inside the upstream's window.
        self.item = RateLimitItemPerSecond(calls, window_seconds + 1, namespace="kasparro-upstream")
        self.storage_url = storage_url
        # Storage errors raised as one class (StorageError); a Redis that hangs is given up on.
        options = {"socket_connect_timeout": 5, "socket_timeout": 5} if storage_url else {}
        storage = storage_from_string(storage_url, wrap_exceptions=True, **options) if storage_url else _IN_PROCESS
        self.limiter = MovingWindowRateLimiter(storage)
        # Several processes compete for the same slots, so one may wait a few windows; the task's
        # soft time limit bounds the wait in the end, this only turns endless starvation into an error.
        self.max_wait = max_wait if max_wait is not None else 10.0 * (window_seconds + 1)
        self.sleep = sleep
        self._client: Any = None

    def acquire(self) -> None:
        """Block until a call to this upstream fits in the window; give up after `max_wait`."""
        try:
            self._acquire()
        except StorageError as exc:
            where = self.storage_url.rsplit("@", 1)[-1]  # never a password
            raise RateLimiterUnavailable(
                f"{self.name}: the shared rate limit's store ({where}) is unreachable, so no call was made: "
                f"{exc.storage_error}"
            ) from None

    def pause(self, seconds: float) -> None:
        """The upstream asked to wait (a 429's Retry-After): no process calls it for `seconds`.
        A pause never shortens one already set."""
        if seconds <= 0:
            return
        try:
            if self.storage_url:
                key = f"kasparro-upstream-pause:{self.name}"
                until = self._redis().pttl(key)
                if until < seconds * 1000:
                    self._redis().set(key, "1", px=max(1, int(seconds * 1000)))
            else:
                _PAUSES[self.name] = max(_PAUSES.get(self.name, 0.0), time.monotonic() + seconds)
        except RedisError:
            logger.warning("could not share the upstream's pause", extra={"upstream": self.name})
        logger.warning("upstream asked every caller to wait", extra={"upstream": self.name, "wait_s": seconds})

    def paused_for(self) -> float:
        """Seconds left of a pause the upstream asked for (0.0: none)."""
        if not self.storage_url:
            return max(0.0, _PAUSES.get(self.name, 0.0) - time.monotonic())
        try:
            left = self._redis().pttl(f"kasparro-upstream-pause:{self.name}")
        except RedisError as exc:
            raise StorageError(exc) from None
        return left / 1000 if left > 0 else 0.0

    def _redis(self) -> Any:
        if self._client is None:
            self._client = redis.Redis.from_url(self.storage_url, socket_connect_timeout=5, socket_timeout=5)
        return self._client

    def _acquire(self) -> None:
        deadline = time.monotonic() + self.max_wait
        while (pause := self.paused_for()) > 0:
            if time.monotonic() + pause > deadline:
                error = RateLimitTimeout(f"{self.name}: the upstream asked every caller to wait {pause:.0f}s more")
                error.retry_after = pause
                raise error
            logger.info("upstream paused, waiting", extra={"upstream": self.name, "wait_s": round(pause, 2)})
            self.sleep(pause)
        while not self.limiter.hit(self.item, self.name):
            reset_at = self.limiter.get_window_stats(self.item, self.name).reset_time
            wait = max(0.05, reset_at - time.time())
            if time.monotonic() + wait > deadline:
                error = RateLimitTimeout(
                    f"{self.name}: the shared budget of {self.item.amount} calls per "
                    f"{self.item.get_expiry()}s stayed full for {self.max_wait:.0f}s"
                )
                error.retry_after = wait
                raise error
            logger.info("rate limit reached, waiting", extra={"upstream": self.name, "wait_s": round(wait, 2)})
            self.sleep(wait)
