"""Reaching the configured database: the embedded server the settings name, created when it is
missing, and one line saying what to do when it cannot be reached (used by `migrate`,
`quickstart`, `dbserver` and by manage.py for every command)."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from psycopg2 import errors as pg_errors

from kasparro import embedded_db
from kasparro.embedded_db import EmbeddedPostgres

_MISSING = re.compile(r'database "[^"]+" does not exist')
# psycopg2 words a failed connection this way; errors raised by statements never are.
_CONNECT_FAILURE = re.compile(r"connection to server|could not connect|could not translate host name|timeout expired")


class DatabaseSetupError(RuntimeError):
    """The database cannot be used; the message says what to run."""


def embedded_server() -> EmbeddedPostgres:
    """The embedded server the settings name (EMBEDDED_DB_DIR, EMBEDDED_DB_PORT)."""
    return EmbeddedPostgres(data_dir=Path(settings.EMBEDDED_DB_DIR), port=settings.EMBEDDED_DB_PORT)


def embedded_where(server: EmbeddedPostgres) -> str:
    return embedded_db.describe(server, base_dir=settings.BASE_DIR)


def embedded_shown(path: Path) -> str:
    return embedded_db.shown_path(path, base_dir=settings.BASE_DIR)


@contextmanager
def embedded_database_held(*, say: Callable[[str], None]) -> Iterator[EmbeddedPostgres]:
    """The embedded server, running for the block, and stopped after it when this process started
    it or took it over from a process that was killed (a server from `dbserver start` stays up)."""
    server = embedded_server()
    stop_after = embedded_db.claim(server)
    say(embedded_where(server))
    try:
        yield server
    finally:
        if stop_after:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
            embedded_db.release(server)
            say(f"Stopped the embedded PostgreSQL (data kept in {embedded_shown(server.data_dir)})")


def database_create_if_missing(*, alias: str = DEFAULT_DB_ALIAS) -> bool:
    """Create the configured database when its server answers and it does not exist yet; True
    when it was created now."""
    connection = connections[alias]
    try:
        connection.ensure_connection()
        return False
    except OperationalError as exc:
        if not _MISSING.search(str(exc)):
            raise DatabaseSetupError(connect_failure_line(exc) or str(exc).strip()) from exc
    name, user = connection.settings_dict["NAME"], connection.settings_dict["USER"]
    host, port = _host_port(connection.settings_dict)
    try:
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)}")
    except Exception as exc:
        if isinstance(exc.__cause__, pg_errors.DuplicateDatabase):
            return False  # created meanwhile by another migrate
        if isinstance(exc.__cause__, pg_errors.InsufficientPrivilege):
            raise DatabaseSetupError(
                f'database "{name}" does not exist and user "{user}" may not create it: ask its administrator to '
                f"run `createdb -h {host} -p {port} -O {user} {name}`, then run migrate again"
            ) from exc
        raise
    return True


def connect_failure_line(exc: BaseException) -> str | None:
    """One line for an error of connecting to the database, or None for any other error."""
    text = str(exc).strip()
    if not isinstance(exc, OperationalError) or not (_CONNECT_FAILURE.search(text) or _MISSING.search(text)):
        return None
    config = connections[DEFAULT_DB_ALIAS].settings_dict
    where = _where(config)
    if _MISSING.search(text):
        return (
            f'database "{config["NAME"]}" does not exist on {where}: run `python manage.py migrate`, which creates it'
        )
    reason = text.splitlines()[-1].strip() if "FATAL" in text else text.splitlines()[0].strip()
    if settings.EMBEDDED_DATABASE:
        return (
            f"no database answers at {where}, the embedded server's address: start it with "
            f"`python manage.py dbserver start` (make run starts it by itself), or set DATABASE_URL ({reason})"
        )
    return f"cannot connect to the database at {where} named by DATABASE_URL: {reason}"


def _host_port(config: dict) -> tuple[str, str]:
    return str(config.get("HOST") or "localhost"), str(config.get("PORT") or 5432)


def _where(config: dict) -> str:
    return ":".join(_host_port(config))
