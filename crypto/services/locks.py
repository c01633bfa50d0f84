"""One run per source at a time, across every process that shares the database."""

from __future__ import annotations

import zlib

from django.db import connection

# First half of the two-int advisory lock key: keeps our locks apart from any other user's.
_NAMESPACE = 0x4B415350  # "KASP"


def advisory_xact_lock_try(*, name: str) -> bool:
    """Take a transaction-scoped PostgreSQL advisory lock without waiting.

    Transaction-scoped, so it is released by commit, rollback, or the connection dying with a
    killed worker: no code path can leave it held. SQLite has no such lock and serializes writers
    itself; it is only used for single-process local runs.
    """
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_NAMESPACE, zlib.crc32(name.encode()) - 2**31])
        return bool(cursor.fetchone()[0])


def advisory_xact_lock_wait(*, name: str) -> None:
    """Take the same lock, waiting for a run that holds it to finish (for maintenance work)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_NAMESPACE, zlib.crc32(name.encode()) - 2**31])
