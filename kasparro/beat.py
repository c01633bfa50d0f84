"""Only one beat may dispatch.

Two beats over one schedule would send every task twice. Each beat therefore takes a lease in
Redis before it dispatches: the holder renews it on every tick, another beat finds it taken and
only waits, and takes over if the holder dies and the lease lapses (BEAT_LOCK_TTL_SECONDS).
A duplicate dispatch in the moment of a takeover is still harmless: runs are idempotent and
one run per source holds the advisory lock.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import redis
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

LEASE_KEY = "kasparro:beat:leader"

# Renew only if we still hold it; compare-and-extend must be atomic.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class SingleBeatScheduler(DatabaseScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._token = f"{socket.gethostname()}:{os.getpid()}"
        self._redis = redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
        self._leader: bool | None = None  # unknown until the first tick, so that one is logged
        super().__init__(*args, **kwargs)

    def _hold_lease(self) -> bool:
        if self._redis is None:
            return True  # no broker, no other beat to race with
        ttl_ms = settings.BEAT_LOCK_TTL_SECONDS * 1000
        try:
            held = bool(self._redis.set(LEASE_KEY, self._token, nx=True, px=ttl_ms)) or bool(
                self._redis.eval(_RENEW, 1, LEASE_KEY, self._token, ttl_ms)
            )
        except redis.RedisError as exc:
            logger.warning("beat cannot reach Redis to hold its lease: %s", exc)
            held = False
        if held != self._leader:
            logger.warning(
                "this beat %s dispatching",
                "is now" if held else "stands by (another beat holds the lease) and stops",
            )
            self._leader = held
        return held

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._hold_lease():
            return min(float(settings.BEAT_LOCK_TTL_SECONDS) / 3, float(self.max_interval))
        return super().tick(*args, **kwargs)

    def close(self) -> None:
        if self._redis is not None and self._leader:
            try:
                if self._redis.get(LEASE_KEY) == self._token.encode():
                    self._redis.delete(LEASE_KEY)
            except redis.RedisError:
                pass
        super().close()
