"""The shared rate budget: a pause the upstream asked for holds every caller of the budget."""

from __future__ import annotations

import pytest

from crypto.sources.ratelimit import RateLimitTimeout, SharedRateLimiter


@pytest.mark.parametrize("storage_url", ["", "redis://127.0.0.1:6379/15"], ids=["in process", "redis"])
def test_a_pause_holds_every_limiter_of_the_upstream_and_never_shortens(storage_url: str) -> None:
    slept: list[float] = []
    name = f"pause-test-{storage_url or 'memory'}"
    first = SharedRateLimiter(name=name, calls=100, window_seconds=60, storage_url=storage_url)

    def sleep(seconds: float) -> None:  # time passes: the pause ends
        slept.append(seconds)
        _expire(first, storage_url)

    other = SharedRateLimiter(name=name, calls=100, window_seconds=60, storage_url=storage_url, sleep=sleep)
    first.pause(3)
    first.pause(1)  # a shorter pause asked later does not cut the first
    assert 2.5 < other.paused_for() <= 3
    other.acquire()
    assert len(slept) == 1 and 2.5 < slept[0] <= 3, "the other limiter waited out the pause, once"

    impatient = SharedRateLimiter(name=name, calls=100, window_seconds=60, storage_url=storage_url, max_wait=1)
    first.pause(5)
    with pytest.raises(RateLimitTimeout, match="asked every caller to wait") as refused:
        impatient.acquire()
    assert refused.value.retry_after is not None and refused.value.retry_after > 4
    _expire(first, storage_url)


def _expire(limiter: SharedRateLimiter, storage_url: str) -> None:
    """End the pause, as time would."""
    from crypto.sources import ratelimit

    if storage_url:
        limiter._redis().delete(f"kasparro-upstream-pause:{limiter.name}")
    else:
        ratelimit._PAUSES.pop(limiter.name, None)
