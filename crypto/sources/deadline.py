"""A run's overall deadline: set by the run's lifecycle, honoured wherever a source waits (an
upstream that answers one byte at a time, a retry's pause), so no run holds its transaction and
its source's lock for ever, in the command as on a worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from crypto.sources.body import SourceError

_deadline: ContextVar[tuple[float, float] | None] = ContextVar("run_deadline", default=None)


class DeadlinePassed(SourceError):
    """The run went past its time limit; worth trying again (the upstream may answer faster)."""

    transient = True


@contextmanager
def run_deadline(*, seconds: float) -> Iterator[None]:
    token = _deadline.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left to the current run's deadline; None outside a run."""
    current = _deadline.get()
    return None if current is None else current[0] - time.monotonic()


def deadline_check(*, doing: str) -> None:
    current = _deadline.get()
    if current is not None and time.monotonic() >= current[0]:
        raise DeadlinePassed(
            f"{doing}: the run passed its time limit (INGEST_SOFT_TIME_LIMIT={current[1]:.0f}s) and was stopped"
        )
