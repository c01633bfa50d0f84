"""DRF's throttles, counted atomically, and letting a request through when their counts cannot
be reached.

DRF keeps a list of request times per client and writes it back after reading it: concurrent
requests all read the same list, and all get through. Here each request increments a counter in
one atomic step (Redis INCR), one counter per client and period (`120/min`: the calendar minute),
so in each period exactly the limit gets through, however many clients ask at once.

The counts live in the shared cache (Redis). Redis down must not take the read API down with it:
`/health` already reports the broker down, and the data is in PostgreSQL. While the cache is
unreachable requests are not throttled, and that is logged (at most once a minute per process).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError
from rest_framework import throttling

logger = logging.getLogger(__name__)
_last_warning = 0.0


class _Counted(throttling.SimpleRateThrottle):
    num_requests: int
    duration: int
    now: float
    reset_at: float

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        period = int(self.now // self.duration)
        self.reset_at = (period + 1) * self.duration
        key = f"{self.key}:{period}"
        self.cache.add(key, 0, self.duration + 1)  # the period's counter, unless a request made it
        try:
            count = self.cache.incr(key)
        except ValueError:  # it lapsed between the two calls
            self.cache.add(key, 0, self.duration + 1)
            count = self.cache.incr(key)
        return bool(count <= self.num_requests)

    def wait(self) -> float:
        return max(0.0, self.reset_at - self.now)


class _FailOpen(_Counted):
    def allow_request(self, request: Any, view: Any) -> bool:
        global _last_warning
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError) as exc:
            if time.monotonic() - _last_warning > 60:
                _last_warning = time.monotonic()
                logger.warning("throttle counts unreachable, requests are not throttled: %s", exc)
            return True


class AnonRateThrottle(_FailOpen, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_FailOpen, throttling.UserRateThrottle):
    pass


class ScopedRateThrottle(_FailOpen, throttling.ScopedRateThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        # DRF's own scoped throttle reads its rate here, then counts the old way: read it, count ours.
        self.scope = getattr(view, self.scope_attr, None)
        self.rate = self.get_rate() if self.scope else None
        if self.rate is not None:
            requests, duration = self.parse_rate(self.rate)
            self.num_requests, self.duration = int(requests or 0), int(duration or 0)
        return super().allow_request(request, view)
