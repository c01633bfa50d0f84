"""The shared rate budget: a pause the upstream asked for holds every caller of the budget."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from crypto.sources.ratelimit import RateLimitTimeout, SharedRateLimiter
from tests.processes import RedisServer


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.mark.parametrize("shared", [False, True], ids=["in process", "redis"])
def test_a_pause_holds_every_limiter_of_the_upstream_and_never_shortens(shared: bool, request: Any) -> None:
    storage_url = request.getfixturevalue("private_redis") if shared else ""
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


def test_history_takes_its_calls_from_its_share_of_the_budget_and_live_runs_find_calls_left(settings: Any) -> None:
    from crypto.services.ingest.run import _limiters
    from crypto.sources.base import Source

    class Budgeted(Source):
        name = f"budget-test-{uuid.uuid4().hex[:8]}"
        calls_per_minute_setting = "COINGECKO_CALLS_PER_MINUTE"

    settings.COINGECKO_CALLS_PER_MINUTE, settings.HISTORY_BUDGET_SHARE = 5, 0.6
    share, whole = _limiters(source=Budgeted(), history=True)
    assert whole.name == Budgeted.name and share.item.amount == 3 and whole.item.amount == 5
    for _ in range(3):
        share.acquire()
        whole.acquire()
    assert not share.limiter.test(share.item, share.name), "history has spent its share"
    [live] = _limiters(source=Budgeted(), history=False)
    live.sleep = lambda seconds: pytest.fail("a live run waited behind history")
    live.acquire()
    live.acquire()
    assert not whole.limiter.test(whole.item, whole.name), "together they never pass the whole budget"
