"""DRF's throttles, except that they let a request through when their counts cannot be reached.

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


class _FailOpen(throttling.SimpleRateThrottle):
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
    pass
