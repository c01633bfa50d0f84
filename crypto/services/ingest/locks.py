"""One run per source at a time, across every process that shares the database."""

from __future__ import annotations

import logging
import zlib

from django.db import DatabaseError, InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

# First half of the two-int advisory lock key: keeps our locks apart from any other user's.
_NAMESPACE = 0x4B415350  # "KASP"
_RUNS = 0x4B415352  # "KASR": one key per ingestion run, held while it is alive


def name_key(name: str) -> int:
    return zlib.crc32(name.encode()) - 2**31


def _run_key(run_id: int) -> int:
    return run_id % 2**32 - 2**31


def advisory_xact_lock_try(*, name: str) -> bool:
    """Take a transaction-scoped PostgreSQL advisory lock without waiting.

    Transaction-scoped, so it is released by commit, rollback, or the connection dying with a
    killed worker: no code path can leave it held.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_NAMESPACE, name_key(name)])
        return bool(cursor.fetchone()[0])


def advisory_xact_lock_wait(*, name: str) -> None:
    """Take the same lock, waiting for a run that holds it to finish (for maintenance work)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_NAMESPACE, name_key(name)])


def run_alive_mark(*, run_id: int) -> None:
    """Taken by a run in the transaction that creates its row, so nobody sees it `running`
    without it: a session lock, held while the run waits for its source's lock and works, and
    let go by `run_alive_release` (or by its session ending with its process)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [_RUNS, _run_key(run_id)])


def run_alive_release(*, run_id: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_RUNS, _run_key(run_id)])
    except (OperationalError, InterfaceError):
        pass  # the session is gone, and its locks with it
    except DatabaseError as exc:
        # A caller's aborted transaction: the mark stays until this connection closes.
        logger.warning("run %s: its alive mark could not be released now: %s", run_id, exc)


def run_alive(*, run_id: int) -> bool:
    """Whether a run still holds its mark. Asked with a session lock let go at once, so asking
    never blocks the run."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_RUNS, _run_key(run_id)])
        if not cursor.fetchone()[0]:
            return True
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_RUNS, _run_key(run_id)])
    return False
